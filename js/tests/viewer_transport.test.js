// Transport tests against a fake anywidget model that plays the Python backend's part.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createCommTransport, createHttpTransport } from "../viewer/transport.js";
import { arraysFromBlob, parseFramed, FRAME_MAGIC } from "../viewer/protocol.js";
import { pointsInBox, pointsInPolygon, nearestPoint, projectPoints } from "../viewer/picking.js";

/** A fake model: records sent messages, lets the test deliver messages as Python would. */
function fakeModel() {
  const listeners = new Set();
  return {
    sent: [],
    send(content, _callbacks, buffers) { this.sent.push({ content, buffers: buffers || [] }); if (this.onSend) this.onSend(content, buffers); },
    on(ev, fn) { assert.equal(ev, "msg:custom"); listeners.add(fn); },
    off(ev, fn) { listeners.delete(fn); },
    deliver(content, buffers = []) { for (const fn of listeners) fn(content, buffers.map((b) => new DataView(b.buffer, b.byteOffset, b.byteLength))); },
    get nListeners() { return listeners.size; },
  };
}

/** Backend double: answers a request with a blob split in chunks, each sent after the previous ack. */
function chunkedAnswer(model, id, header, blob, chunkBytes) {
  const n = Math.ceil(blob.length / chunkBytes);
  let seq = 0;
  const sendNext = () => {
    const part = blob.subarray(seq * chunkBytes, (seq + 1) * chunkBytes);
    model.deliver({ type: "viewer:response", id, seq, n_chunks: n, nbytes: blob.length, chunk_bytes: chunkBytes, ...(seq === 0 ? { header } : {}) }, [part]);
    seq += 1;
  };
  model.onSend = (content) => { if (content.type === "viewer:ack" && content.id === id && seq < n) queueMicrotask(sendNext); };
  sendNext();
}

test("a chunked response is reassembled into typed arrays, one ack per chunk", async () => {
  const model = fakeModel();
  const t = createCommTransport(model, { timeoutMs: 1000 });
  const pts = new Float32Array(1000).map((_, i) => i * 0.5);
  const codes = new Uint8Array(500).map((_, i) => i % 3);
  const blob = new Uint8Array(4000 + 504);
  blob.set(new Uint8Array(pts.buffer), 0);
  blob.set(codes, 4000);
  const header = { arrays: [
    { name: "points", dtype: "float32", shape: [500, 2], offset: 0, nbytes: 4000 },
    { name: "codes", dtype: "uint8", shape: [500], offset: 4000, nbytes: 500 },
  ], dim: 2 };
  const p = t.request("points", { dim: 2 });
  const req = model.sent[0].content;
  assert.equal(req.type, "viewer:request");
  assert.equal(req.kind, "points");
  assert.deepEqual(req.args, { dim: 2 });
  chunkedAnswer(model, req.id, header, blob, 1024);
  const { header: h, arrays } = await p;
  assert.equal(h.dim, 2);
  assert.deepEqual(Array.from(arrays.points), Array.from(pts));
  assert.deepEqual(Array.from(arrays.codes), Array.from(codes));
  const acks = model.sent.filter((m) => m.content.type === "viewer:ack");
  assert.equal(acks.length, Math.ceil(blob.length / 1024));
  assert.deepEqual(acks.map((a) => a.content.seq), [0, 1, 2, 3, 4]);
  t.destroy();
  assert.equal(model.nListeners, 0);
});

test("header-only answers (meta) resolve without acks", async () => {
  const model = fakeModel();
  const t = createCommTransport(model);
  const p = t.request("meta");
  model.deliver({ type: "viewer:response", id: model.sent[0].content.id, seq: 0, n_chunks: 0, nbytes: 0, chunk_bytes: 4, header: { n_cells: 7 } });
  const { header } = await p;
  assert.equal(header.n_cells, 7);
  assert.equal(model.sent.filter((m) => m.content.type === "viewer:ack").length, 0);
  t.destroy();
});

test("a missing chunk surfaces as a timeout error naming the request", async () => {
  const model = fakeModel();
  const t = createCommTransport(model, { timeoutMs: 50 });
  const p = t.request("obs", { key: "x" });
  const id = model.sent[0].content.id;
  model.deliver({ type: "viewer:response", id, seq: 0, n_chunks: 3, nbytes: 30, chunk_bytes: 10, header: { arrays: [] } }, [new Uint8Array(10)]);
  await assert.rejects(p, /No answer from the Python kernel for 'obs'.*1 of 3 chunks/);
  t.destroy();
});

test("backend errors reject the request with the backend's message", async () => {
  const model = fakeModel();
  const t = createCommTransport(model);
  const p = t.request("gene", { gene: "NOPE" });
  model.deliver({ type: "viewer:error", id: model.sent[0].content.id, message: "KeyError: gene 'NOPE' is not in the export" });
  await assert.rejects(p, /NOPE/);
  t.destroy();
});

test("commands reach listeners; messages without the viewer: prefix are ignored", () => {
  const model = fakeModel();
  const t = createCommTransport(model);
  const got = [];
  t.onCommand((cmd, args, bufs) => got.push([cmd, args, bufs.length]));
  model.deliver({ type: "wizard:progress", done: 1 });
  model.deliver({ type: "viewer:command", command: "highlight", args: { n: 2 } }, [new Uint32Array([3, 4])]);
  assert.deepEqual(got, [["highlight", { n: 2 }, 1]]);
  t.destroy();
});

test("selections go to Python as one uint32 buffer", () => {
  const model = fakeModel();
  const t = createCommTransport(model);
  t.sendSelection(new Uint32Array([5, 9, 11]));
  const m = model.sent[0];
  assert.equal(m.content.type, "viewer:select");
  assert.equal(m.content.n, 3);
  assert.deepEqual(Array.from(new Uint32Array(m.buffers[0])), [5, 9, 11]);
  t.destroy();
});

test("HTTP framed responses parse into header and aligned arrays", async () => {
  const header = { arrays: [{ name: "values", dtype: "uint16", shape: [3], offset: 0, nbytes: 6 }], bits: 16 };
  const head = new TextEncoder().encode(JSON.stringify(header));
  const base = Math.ceil((8 + head.length) / 8) * 8;
  const buf = new ArrayBuffer(base + 8);
  const dv = new DataView(buf);
  dv.setUint32(0, FRAME_MAGIC, true);
  dv.setUint32(4, head.length, true);
  new Uint8Array(buf, 8).set(head);
  new Uint16Array(buf, base, 3).set([1, 65535, 7]);
  const parsed = parseFramed(buf);
  assert.equal(parsed.header.bits, 16);
  assert.deepEqual(Array.from(parsed.arrays.values), [1, 65535, 7]);
  const fetchImpl = async (url) => {
    assert.match(url, /^\/api\/ds\/obs\?key=a\+b$/);
    return { ok: true, arrayBuffer: async () => buf };
  };
  const t = createHttpTransport("/api/ds", { fetchImpl });
  const r = await t.request("obs", { key: "a b" });
  assert.deepEqual(Array.from(r.arrays.values), [1, 65535, 7]);
  const failing = createHttpTransport("/api/ds", { fetchImpl: async () => ({ ok: false, status: 400, json: async () => ({ error: "unknown obs field" }) }) });
  await assert.rejects(failing.request("obs", { key: "z" }), /400.*unknown obs field/);
});

test("misaligned arrays are copied rather than failing", () => {
  const buf = new ArrayBuffer(16);
  new Uint8Array(buf).set([0, 1, 0, 2, 0], 0);
  const arrays = arraysFromBlob({ arrays: [{ name: "v", dtype: "uint16", shape: [2], offset: 1, nbytes: 4 }] }, buf);
  assert.deepEqual(Array.from(arrays.v), [1, 2]);
});

test("picking: projection, nearest point, lasso and box agree", () => {
  const pos = new Float32Array([0, 0, 0.5, 0.5, -0.5, 0.5, 0.9, -0.9]);
  const m = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
  const s = projectPoints(pos, 2, m, 200, 200);
  assert.deepEqual(Array.from(s.slice(0, 4)), [100, 100, 150, 50]);
  assert.equal(nearestPoint(s, 148, 52, 5), 1);
  assert.equal(nearestPoint(s, 10, 10, 5), -1);
  assert.equal(nearestPoint(s, 148, 52, 5, (i) => i !== 1), -1);
  const lasso = pointsInPolygon(s, [90, 40, 160, 40, 160, 110, 90, 110]);
  assert.deepEqual(Array.from(lasso), [0, 1]);
  const box = pointsInBox(s, 0, 0, 200, 120, (i) => i !== 0);
  assert.deepEqual(Array.from(box), [1, 2]);
});

test("two views of one model do not take each other's answers", async () => {
  const model = fakeModel();
  const a = createCommTransport(model, { timeoutMs: 200 });
  const b = createCommTransport(model, { timeoutMs: 200 });
  const pa = a.request("meta");
  const pb = b.request("meta");
  const [ida, idb] = model.sent.map((m) => m.content.id);
  assert.notEqual(ida, idb);
  model.deliver({ type: "viewer:response", id: idb, seq: 0, n_chunks: 0, nbytes: 0, chunk_bytes: 4, header: { who: "b" } });
  model.deliver({ type: "viewer:response", id: ida, seq: 0, n_chunks: 0, nbytes: 0, chunk_bytes: 4, header: { who: "a" } });
  assert.equal((await pa).header.who, "a");
  assert.equal((await pb).header.who, "b");
  a.destroy();
  b.destroy();
});
