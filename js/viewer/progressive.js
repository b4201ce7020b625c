// Progressive loading of large exports (10^7 cells): the first frame draws a uniform
// random subsample, the rest follows in chunks, and colour fields stream the same way.
//
// How: the backend serves every per-cell array in one fixed pseudo-random *draw order*
// (cellucid_nb/viewer_order.py) in [start, stop) slices; the page appends each slice to
// one full-size typed array per field and the renderer uploads only the new range, so a
// prefix of the stream is a uniform subsample and memory is one copy per field. Picking
// and lasso/box selection work on draw positions; the order (a seeded Feistel
// permutation that both ends recompute from (n, seed): no index array travels or is
// kept) maps the hits back to the original cell indices, and highlights the other way,
// only for the indices at hand. Small exports (meta.n_cells <= firstFrameCells) and
// transports whose meta has no `order` load everything at once in the original order.
import { categoryCounts, MISSING_CODE, QUANT_MAX, stripFrom1D } from "./decode.js";
import { categoryColors } from "../common/colors.js";
import { countMissing } from "./fields.js";
import { now } from "./frame.js";

/** Cells in the first frame (the subsample). */
export const FIRST_FRAME_CELLS = 500_000;
/** Cells per later chunk. */
export const CHUNK_CELLS = 1_000_000;
/** Cells drawn while the camera moves (everything again once it stops). */
export const MOTION_CELLS = 1_000_000;
/** Quiet time after the last camera change before the full redraw (ms). */
export const SETTLE_MS = 160;
/** Colour fields kept in the page (least recently used dropped first). */
export const FIELD_CACHE = 3;

const ORDER_KIND = "feistel-lowbias32";
const GOLDEN = 0x9e3779b9;

/** lowbias32 integer hash (twin of viewer_order._hash32). */
export function hash32(x) {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** Bits of each Feistel half: the smallest h with 4^h >= n (at least 1). */
export function halfBits(n) {
  const m = Math.max(1, n - 1);
  return Math.max(1, Math.floor((32 - Math.clz32(m) + 1) / 2));
}

/**
 * The draw order of n cells (same values as cellucid_nb/viewer_order.py).
 * @param {number} n
 * @param {{kind?: string, seed: number, rounds: number}} spec  meta.order
 */
export function createDrawOrder(n, spec) {
  if (spec.kind && spec.kind !== ORDER_KIND) throw new Error(`draw order '${spec.kind}' is not known, expected '${ORDER_KIND}'`);
  const h = halfBits(n), mask = (1 << h) - 1;
  const keys = Array.from({ length: spec.rounds }, (_, i) => hash32((spec.seed + Math.imul(i, GOLDEN)) >>> 0));
  const enc = (x) => {
    let l = x >>> h, r = x & mask;
    for (let i = 0; i < keys.length; i++) { const t = r; r = (l ^ (hash32((r ^ keys[i]) >>> 0) & mask)) >>> 0; l = t; }
    return ((l << h) | r) >>> 0;
  };
  const dec = (x) => {
    let l = x >>> h, r = x & mask;
    for (let i = keys.length - 1; i >= 0; i--) { const t = l; l = (r ^ (hash32((l ^ keys[i]) >>> 0) & mask)) >>> 0; r = t; }
    return ((l << h) | r) >>> 0;
  };
  const walk = (f, x) => { let y = f(x); while (y >= n) y = f(y); return y; };
  return {
    n,
    /** Cell (original index) drawn at position k. */
    cellAt: (k) => walk(enc, k),
    /** Draw position of cell i. */
    positionOf: (i) => walk(dec, i),
    /** Draw positions -> sorted original cell indices (a selection). */
    toCells(positions) {
      const out = new Uint32Array(positions.length);
      for (let j = 0; j < positions.length; j++) out[j] = walk(enc, positions[j]);
      return out.sort();
    },
    /** Original cell indices -> draw positions (indices >= n dropped). */
    toPositions(cells) {
      const out = [];
      for (let j = 0; j < cells.length; j++) if (cells[j] < n) out.push(walk(dec, cells[j]));
      return Uint32Array.from(out);
    },
  };
}

/**
 * Rows [start, stop) of the draw order gathered from an array in the original order:
 * how a transport without a server (a static site) can answer `order: "permuted"`
 * requests from a payload it has fetched whole.
 * @template {Float32Array|Uint8Array|Uint16Array|Uint32Array} T
 * @param {ReturnType<typeof createDrawOrder>} order
 * @param {T} src  n * comps values
 * @param {number} comps
 * @param {number} start
 * @param {number} stop
 * @returns {T}
 */
export function gatherDrawOrder(order, src, comps, start, stop) {
  if (!(0 <= start && start <= stop && stop <= order.n)) throw new Error(`draw order slice [${start}, ${stop}) is not within [0, ${order.n}]`);
  const out = /** @type {T} */ (new /** @type {any} */ (src.constructor)((stop - start) * comps));
  for (let k = start; k < stop; k++) {
    const c = order.cellAt(k) * comps, o = (k - start) * comps;
    for (let j = 0; j < comps; j++) out[o + j] = src[c + j];
  }
  return out;
}

/**
 * Slices of the draw order: the subsample first, then chunks.
 * @returns {[number, number][]}
 */
export function chunkRanges(n, first = FIRST_FRAME_CELLS, chunk = CHUNK_CELLS) {
  if (!(first > 0) || !(chunk > 0)) throw new Error(`chunk sizes must be positive, got first=${first}, chunk=${chunk}`);
  /** @type {[number, number][]} */
  const out = [];
  for (let s = 0; s < n; s = Math.min(n, s === 0 ? first : s + chunk)) out.push([s, Math.min(n, s === 0 ? first : s + chunk)]);
  return out;
}

/**
 * Fetch slices with `ahead` requests in flight beyond the one being applied, and apply
 * them strictly in order (so what is loaded is always a prefix).
 * @param {[number, number][]} ranges
 * @param {(start: number, stop: number) => Promise<any>} fetchChunk
 * @param {(start: number, stop: number, reply: any) => void} apply
 * @param {{isCurrent?: () => boolean, ahead?: number, gate?: Promise<any>}} [o]  `gate`: slices after the
 *   first are requested only once it settles (the viewer opens it after its first frame, so on
 *   a small machine the subsample is drawn without competing with the rest of the transfer)
 * @returns {Promise<boolean>} true when every slice was applied, false when stopped
 */
export async function streamChunks(ranges, fetchChunk, apply, o = {}) {
  const isCurrent = o.isCurrent || (() => true);
  const ahead = o.ahead ?? 1;
  /** @type {Promise<any>[]} */
  const inflight = [];
  let next = 0;
  const fill = (upto) => { while (next < ranges.length && next <= upto) { const [a, b] = ranges[next++]; const p = fetchChunk(a, b); p.catch(() => {}); inflight.push(p); } };
  for (let i = 0; i < ranges.length; i++) {
    if (!isCurrent()) return false;
    if (i > 0 && o.gate) {
      await o.gate;
      if (!isCurrent()) return false;
    }
    fill(o.gate && i === 0 ? 0 : i + ahead);
    const reply = await inflight[i];
    if (!isCurrent()) return false;
    apply(ranges[i][0], ranges[i][1], reply);
  }
  return true;
}

/**
 * While the camera moves, draw at most `budget` cells; redraw everything `settleMs` after
 * the last move. Small data (available <= budget) are always drawn in full.
 * @param {{budget?: number, settleMs?: number, onSettle: () => void, timers?: {set: Function, clear: Function}}} o
 */
export function createMotionLOD(o) {
  const budget = o.budget ?? MOTION_CELLS, settleMs = o.settleMs ?? SETTLE_MS;
  const timers = o.timers || { set: (fn, ms) => setTimeout(fn, ms), clear: (id) => clearTimeout(id) };
  let last = null, moving = false, timer = null;
  return {
    /** Cells to draw now out of `available`, given the camera's version. */
    count(version, available) {
      if (last !== null && version !== last && available > budget) {
        moving = true;
        if (timer !== null) timers.clear(timer);
        timer = timers.set(() => { timer = null; moving = false; o.onSettle(); }, settleMs);
      }
      last = version;
      return moving && available > budget ? budget : available;
    },
    get moving() { return moving; },
    stop() { if (timer !== null) timers.clear(timer); timer = null; moving = false; },
  };
}

/** Quantize float32 values to 16-bit codes against a fixed range (missing: 65535). */
export function quantize16(values, lo, hi, out, offset) {
  const scale = 65534 / (hi > lo ? hi - lo : 1);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out[offset + i] = Number.isFinite(v) ? Math.max(0, Math.min(65534, Math.round((v - lo) * scale))) : 65535;
  }
}

/**
 * Progressive loads over a transport: points per dimension (only the one shown is kept)
 * and colour fields (a few kept), each a full-size array filled chunk by chunk.
 * @param {{request: (kind: string, args?: object) => Promise<{header: any, arrays: any}>}} transport
 * @param {{timings: Object<string, number>}} stats
 * @param {{firstFrameCells?: number, chunkCells?: number, holdUntilFirstFrame?: boolean}} [options]  with
 *   `holdUntilFirstFrame`, slices after the first wait for firstFrameDrawn() (the viewer's choice)
 */
export function createProgressive(transport, stats, options = {}) {
  const first = options.firstFrameCells ?? FIRST_FRAME_CELLS;
  const chunk = options.chunkCells ?? CHUNK_CELLS;
  const s = { enabled: false, n: 0, /** @type {ReturnType<typeof createDrawOrder>|null} */ order: null };
  /** @type {{dim: number, embedding: string|null, promise: Promise<any>}|null} */
  let pointsEntry = null;
  /** @type {Map<string, Promise<any>>} */
  const fields = new Map();
  let bound = { points: null, field: null };
  /** @type {() => void} */
  let openGate = () => {};
  const gate = new Promise((resolve) => { openGate = () => resolve(undefined); });


  /**
   * Start a stream; resolves with `target` after its first slice, `target.done` settles
   * when all slices arrived (or the stream was dropped). Timings: `key` (first slice, the
   * data cache's name for the whole load) and `key + " all"` (every slice).
   */
  function start(kind, args, target, applySlice, isCurrent, key) {
    const ranges = chunkRanges(s.n, first, chunk);
    const t0 = now();
    let resolveFirst, rejectFirst;
    const firstPromise = new Promise((res, rej) => { resolveFirst = res; rejectFirst = rej; });
    let gotFirst = false;
    // started on the next microtask, once the caller has recorded this stream as current
    target.done = Promise.resolve().then(() => streamChunks(ranges, (a, b) => transport.request(kind, { ...args, order: "permuted", start: a, stop: b }), (a, b, reply) => {
      applySlice(a, b, reply);
      target.loaded = b;
      if (!gotFirst) { gotFirst = true; stats.timings[key] = now() - t0; resolveFirst(target); }
      else if (target.onChunk) target.onChunk(a, b);
    }, { isCurrent, gate: options.holdUntilFirstFrame ? gate : undefined })).then((complete) => {
      if (complete) stats.timings[`${key} all`] = now() - t0;
      if (!gotFirst) rejectFirst(new Error(`${kind} stream stopped before its first slice`));
      return complete;
    }, (err) => { if (!gotFirst) rejectFirst(err); throw err; });
    target.done.catch(() => {});
    return firstPromise;
  }

  function loadPoints(dim, embedding) {
    const comps = dim === 1 ? 2 : dim;
    const target = { progressive: true, dim, comps, loaded: 0, positions: new Float32Array(s.n * comps), raw: null, done: null, onChunk: null };
    target.raw = dim === 1 ? new Float32Array(s.n) : target.positions;
    const entry = { dim, embedding, promise: null };
    entry.promise = start("points", embedding ? { dim, embedding } : { dim }, target, (a, _b, reply) => {
      const pts = reply.arrays.points;
      if (dim === 1) { target.raw.set(pts, a); target.positions.set(stripFrom1D(pts), 2 * a); }
      else target.positions.set(pts, a * comps);
    }, () => pointsEntry === entry, `points_${dim}d${embedding ? `:${embedding}` : ""}`);
    return entry;
  }

  function loadField(meta, field) {
    const fm = field.startsWith("obs:") ? meta.obs.find((f) => f.key === field.slice(4)) : null;
    if (field.startsWith("obs:") && !fm) return Promise.reject(new Error(`obs field '${field.slice(4)}' is not in this export; fields: ${meta.obs.map((f) => f.key).join(", ")}`));
    if (!field.startsWith("obs:") && !field.startsWith("gene:")) return Promise.reject(new Error(`colour field must look like 'obs:<key>' or 'gene:<id>', got '${field}'`));
    const args = fm ? { key: fm.key } : { gene: field.slice(5) };
    const label = field.replace(/^(obs|gene):/, "");
    /** @type {any} */
    const f = { progressive: true, field, label, loaded: 0, codes: null, done: null, onChunk: null };
    const p = start(fm ? "obs" : "gene", args, f, (a, b, reply) => {
      const v = reply.arrays.values, hdr = reply.header;
      if (!f.codes) initField(f, fm, hdr, v);
      if (f.float) quantize16(v, f.min, f.max, f.codes, a);
      else f.codes.set(v, a);
      // legend counts grow with each slice (only the new cells are counted)
      if (f.kind === "categorical") {
        const add = categoryCounts(f.codes.subarray(a, b), f.categories.length);
        if (!f.counts) f.counts = add;
        else for (let i = 0; i < add.length; i++) f.counts[i] += add[i];
      } else f.nMissing = (f.nMissing || 0) + countMissing(f.codes.subarray(a, b), f.missing);
    }, () => fields.get(field) === p, `field:${field}`);
    return p;
  }

  /** Allocate a field's full-size codes from its first slice. */
  function initField(f, fm, hdr, v) {
    if (fm && fm.kind === "categorical") {
      const n = fm.categories.length;
      Object.assign(f, {
        kind: "categorical", categories: fm.categories, colors: categoryColors(n, fm.colors),
        missingCode: fm.missing_code ?? (v instanceof Uint8Array ? 255 : 65535), centroids: fm.centroids || {},
        categoryIndex: new Map(fm.categories.map((c, i) => [String(c), i])),
        codes: new (v instanceof Uint16Array ? Uint16Array : Uint8Array)(s.n),
      });
      return;
    }
    if (hdr.bits === 8 || hdr.bits === 16) {
      Object.assign(f, { kind: "continuous", bits: hdr.bits, qmax: QUANT_MAX[hdr.bits], missing: MISSING_CODE[hdr.bits], min: hdr.min, max: hdr.max,
        codes: new (hdr.bits === 8 ? Uint8Array : Uint16Array)(s.n) });
      return;
    }
    // float32 values: 16-bit codes against the export's range (one copy, not the floats too)
    const lo = Number.isFinite(hdr.min) ? hdr.min : 0;
    const hi = Number.isFinite(hdr.max) && hdr.max > lo ? hdr.max : lo + 1;
    Object.assign(f, { kind: "continuous", float: true, bits: 16, qmax: 65534, missing: 65535, min: lo, max: hi, codes: new Uint16Array(s.n) });
  }

  return {
    get enabled() { return s.enabled; },
    get order() { return s.order; },
    /** The first frame is on screen (or cannot be drawn): later slices may load. */
    firstFrameDrawn() { openGate(); },
    /** Decide from the export's meta (call once it is known). */
    enable(meta) {
      s.enabled = !!(meta && meta.order && meta.order.kind === ORDER_KIND && meta.n_cells > first);
      s.n = meta ? meta.n_cells : 0;
      s.order = s.enabled ? createDrawOrder(s.n, meta.order) : null;
    },
    /** Points of `dim` (of `embedding`: embeddings.js), resolved after the first slice (only the last asked is kept). */
    points(dim, embedding = null) {
      if (!pointsEntry || pointsEntry.dim !== dim || pointsEntry.embedding !== embedding) pointsEntry = loadPoints(dim, embedding);
      return pointsEntry.promise;
    },
    /** A colour field, resolved after its first slice. */
    field(meta, field) {
      let p = fields.get(field);
      if (p) { fields.delete(field); fields.set(field, p); return p; } // most recent last
      p = loadField(meta, field);
      fields.set(field, p);
      p.catch(() => { if (fields.get(field) === p) fields.delete(field); });
      while (fields.size > FIELD_CACHE) fields.delete(fields.keys().next().value);
      return p;
    },
    /** kNN edges as pairs of draw positions. */
    async edges() {
      return (await transport.request("edges", { order: "permuted" })).arrays.pairs;
    },
    /** A vector field in draw order (one request). */
    async vectors(field, dim, embedding = null) {
      const args = { field, dim, ...(embedding ? { embedding } : {}), order: "permuted", start: 0, stop: s.n };
      return (await transport.request("vectors", args)).arrays.vectors;
    },
    /**
     * Send the loaded part of `p` to the renderer now and each later slice as it comes.
     * @param {any} p  points from points()
     * @param {any} renderer
     * @param {() => void} onChange
     */
    bindPoints(p, renderer, onChange) {
      if (bound.points && bound.points !== p) bound.points.onChunk = null;
      bound.points = p;
      renderer.reservePositions(s.n, p.comps);
      renderer.updatePositions(0, p.positions.subarray(0, p.loaded * p.comps));
      p.onChunk = (a, b) => { renderer.updatePositions(a, p.positions.subarray(a * p.comps, b * p.comps)); onChange(); };
    },
    /**
     * Upload each later slice of field `f` (already given whole to the renderer).
     * @param {any} f
     * @param {any} renderer
     * @param {() => void} onChange  after each slice
     * @param {() => void} onDone    once every slice arrived (final legend counts)
     */
    bindField(f, renderer, onChange, onDone) {
      if (bound.field && bound.field !== f) bound.field.onChunk = null;
      bound.field = f;
      f.onChunk = (a, b) => { renderer.updateValues(a, f.codes.subarray(a, b)); onChange(); };
      f.done.then((complete) => { if (complete && bound.field === f) onDone(); }, () => {});
    },
    /** Cells that can be drawn: loaded points and, when a field is shown, loaded values. */
    drawable(points, field) {
      if (!points || !points.progressive) return undefined;
      return field && field.progressive ? Math.min(points.loaded, field.loaded) : points.loaded;
    },
  };
}

/**
 * The loader the viewer uses: progressive when enabled, else the plain data cache.
 * @param {ReturnType<typeof createProgressive>} prog
 * @param {ReturnType<typeof import("./data_cache.js").createDataCache>} data
 */
export function progressiveLoader(prog, data) {
  return {
    points: (dim, embedding = null) => (prog.enabled ? prog.points(dim, embedding) : data.points(dim, embedding)),
    field: (meta, field) => (prog.enabled ? prog.field(meta, field) : data.field(meta, field)),
    edges: () => (prog.enabled ? prog.edges() : data.edges()),
    vectors: (field, dim, embedding = null) => (prog.enabled ? prog.vectors(field, dim, embedding) : data.vectors(field, dim, embedding)),
  };
}
