// Transports: how the viewer asks for data. Both expose the same interface:
//   request(kind, args) -> Promise<{header, arrays}>
//   onCommand(cb) -> unsubscribe      (Python -> JS commands: highlight, reset_view, ...)
//   sendSelection(Uint32Array)        (JS -> Python, comm only; HTTP keeps it local)
//   destroy()
// The comm protocol is documented at the top of cellucid_nb/viewer_protocol.py.
import { MESSAGE_PREFIX, arraysFromBlob, asBytes, parseFramed } from "./protocol.js";

export const DEFAULT_TIMEOUT_MS = 30000;

/**
 * The interface every transport implements (comm, HTTP, and any other host such as a
 * static site): mountViewer uses nothing else.
 * @typedef {object} Transport
 * @property {(kind: "meta"|"points"|"obs"|"gene"|"edges"|"vectors", args?: object) => Promise<{header: any, arrays: Object<string, any>}>} request
 *   meta {} -> header: the export's meta; points {dim} -> arrays.points (float32, n * dim);
 *   obs {key} -> arrays.values (codes or quantized values; header bits/min/max for continuous);
 *   gene {gene} -> arrays.values (header bits/min/max); edges {} -> arrays.pairs;
 *   vectors {field, dim} -> arrays.vectors (float32, n * dim)
 * @property {(cb: (command: string, args: object, buffers: DataView[]) => void) => () => void} onCommand
 *   host -> viewer commands: highlight (one uint32 buffer), reset_view, set_color_field {field}, set_dimension {dim}
 * @property {(indices: Uint32Array) => void} sendSelection  the cells selected with the lasso or box
 * @property {(name: string, payload?: object) => void} [sendEvent]  first_frame and error reports
 * @property {() => void} destroy
 */

/**
 * Transport over an anywidget model's custom messages.
 * Every message it sends or handles has a `type` starting with "viewer:", so a
 * host widget (the wizard) can share its model and route the rest itself.
 * @param {object} model  anywidget model: send(content, callbacks, buffers), on/off("msg:custom")
 * @param {{timeoutMs?: number}} [options]  no progress for this long rejects the request
 */
export function createCommTransport(model, options = {}) {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const pending = new Map(); // id -> {resolve, reject, kind, timer, bytes, received, nChunks, header}
  const commandListeners = new Set();
  // Ids unique per view: one model shown twice has two views sharing its messages.
  const idPrefix = `${Math.random().toString(36).slice(2, 10)}-`;
  let nextId = 1;
  let destroyed = false;

  function fail(id, error) {
    const entry = pending.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    pending.delete(id);
    entry.reject(error);
  }

  function arm(id) {
    const entry = pending.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      const got = entry.nChunks ? ` (${entry.received} of ${entry.nChunks} chunks received)` : "";
      fail(id, new Error(`No answer from the Python kernel for '${entry.kind}' within ${Math.round(timeoutMs / 1000)} s${got}: is the kernel busy, restarted or disconnected? Re-run the cell to retry.`));
    }, timeoutMs);
  }

  function onResponse(msg, buffers) {
    const entry = pending.get(msg.id);
    if (!entry) return; // late chunk of a failed or cancelled request
    if (entry.bytes === null) {
      entry.header = msg.header || {};
      entry.nChunks = msg.n_chunks || 0;
      entry.bytes = new Uint8Array(msg.nbytes || 0);
      entry.chunkBytes = msg.chunk_bytes || 0;
    }
    if (entry.nChunks > 0) {
      const chunk = asBytes(buffers[0]);
      entry.bytes.set(chunk, msg.seq * entry.chunkBytes);
      entry.received += 1;
      model.send({ type: `${MESSAGE_PREFIX}ack`, id: msg.id, seq: msg.seq });
    }
    if (entry.received >= entry.nChunks) {
      clearTimeout(entry.timer);
      pending.delete(msg.id);
      entry.resolve({ header: entry.header, arrays: arraysFromBlob(entry.header, entry.bytes.buffer) });
    } else {
      arm(msg.id);
    }
  }

  function onMessage(msg, buffers) {
    if (!msg || typeof msg.type !== "string" || !msg.type.startsWith(MESSAGE_PREFIX)) return;
    const type = msg.type.slice(MESSAGE_PREFIX.length);
    if (type === "response") onResponse(msg, buffers || []);
    else if (type === "error") fail(msg.id, new Error(msg.message || "error in the Python viewer backend"));
    else if (type === "command") for (const cb of commandListeners) cb(msg.command, msg.args || {}, buffers || []);
  }
  model.on("msg:custom", onMessage);

  return {
    kind: "comm",
    request(kind, args = {}) {
      if (destroyed) return Promise.reject(new Error("viewer transport was destroyed"));
      const id = `${idPrefix}${nextId++}`;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject, kind, timer: null, bytes: null, received: 0, nChunks: 0, header: null });
        arm(id);
        model.send({ type: `${MESSAGE_PREFIX}request`, id, kind, args });
      });
    },
    onCommand(cb) {
      commandListeners.add(cb);
      return () => commandListeners.delete(cb);
    },
    sendSelection(indices) {
      if (destroyed) return;
      const data = indices instanceof Uint32Array ? indices : Uint32Array.from(indices);
      model.send({ type: `${MESSAGE_PREFIX}select`, n: data.length }, undefined, [data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)]);
    },
    sendEvent(name, payload = {}) {
      if (!destroyed) model.send({ type: `${MESSAGE_PREFIX}event`, name, payload });
    },
    destroy() {
      destroyed = true;
      model.off("msg:custom", onMessage);
      for (const id of [...pending.keys()]) fail(id, new Error("viewer closed"));
      commandListeners.clear();
    },
  };
}

/**
 * Transport over HTTP for the standalone page served by `cellucid-nb serve`.
 * @param {string} apiBase  e.g. "/_cellucid/api/<dataset id>"
 * @param {{timeoutMs?: number, fetchImpl?: Function}} [options]
 */
export function createHttpTransport(apiBase, options = {}) {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const fetchImpl = options.fetchImpl ?? globalThis.fetch.bind(globalThis);
  const controllers = new Set();
  const commandListeners = new Set();
  const selectionListeners = new Set();
  return {
    kind: "http",
    async request(kind, args = {}) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(args)) params.set(k, String(v));
      const ctrl = new AbortController();
      controllers.add(ctrl);
      const timer = setTimeout(() => ctrl.abort(), timeoutMs);
      try {
        const resp = await fetchImpl(`${apiBase}/${encodeURIComponent(kind)}?${params}`, { signal: ctrl.signal });
        if (!resp.ok) {
          let detail = "";
          try { detail = (await resp.json()).error || ""; } catch (_) { /* not JSON */ }
          throw new Error(`server answered ${resp.status} for '${kind}'${detail ? `: ${detail}` : ""}`);
        }
        return parseFramed(await resp.arrayBuffer());
      } catch (err) {
        if (err.name === "AbortError") throw new Error(`No answer from the server for '${kind}' within ${Math.round(timeoutMs / 1000)} s: is 'cellucid-nb serve' still running?`);
        throw err;
      } finally {
        clearTimeout(timer);
        controllers.delete(ctrl);
      }
    },
    onCommand(cb) {
      commandListeners.add(cb);
      return () => commandListeners.delete(cb);
    },
    sendSelection(indices) {
      for (const cb of selectionListeners) cb(indices);
    },
    onSelection(cb) {
      selectionListeners.add(cb);
      return () => selectionListeners.delete(cb);
    },
    sendEvent() {},
    destroy() {
      for (const c of controllers) c.abort();
      commandListeners.clear();
      selectionListeners.clear();
    },
  };
}
