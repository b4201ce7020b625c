// Loading through the transport, with caches: embeddings per dimension (and embedding id), colour fields,
// the kNN edges and vector fields. Concurrent asks for the same thing share one request;
// a failed request is not cached (asking again retries).
import { prepareField } from "./fields.js";
import { stripFrom1D } from "./decode.js";
import { now } from "./frame.js";

/**
 * "Latest request wins": every `next()` returns a check that stays true only until the
 * following `next()`. An async step that awaited data compares before it applies them,
 * so a slow reply to an older request never overwrites a newer choice.
 */
export function createLatest() {
  let token = 0;
  return {
    next() {
      const mine = ++token;
      return () => mine === token;
    },
  };
}

/**
 * @param {{request: (kind: string, args?: object) => Promise<{header: any, arrays: any}>}} transport
 * @param {{timings: Object<string, number>}} stats
 */
export function createDataCache(transport, stats) {
  /** @type {Map<string, Promise<any>>} */
  const cache = new Map();

  /** @param {string} key @param {() => Promise<any>} load */
  function once(key, load) {
    let p = cache.get(key);
    if (!p) {
      const ts = now();
      p = load().then((value) => { stats.timings[key] = now() - ts; return value; });
      p.catch(() => { if (cache.get(key) === p) cache.delete(key); });
      cache.set(key, p);
    }
    return p;
  }

  return {
    /**
     * Embedding of `dim` dimensions: drawn positions (1D as a 2D strip) and the raw ones.
     * @param {number} dim
     * @param {string|null} [embedding]  an embedding id (embeddings.js); absent: the dimension's default
     * @returns {Promise<{positions: Float32Array, comps: number, raw: Float32Array}>}
     */
    points(dim, embedding = null) {
      return once(`points_${dim}d${embedding ? `:${embedding}` : ""}`, async () => {
        const { arrays } = await transport.request("points", embedding ? { dim, embedding } : { dim });
        return dim === 1 ? { positions: stripFrom1D(arrays.points), comps: 2, raw: arrays.points } : { positions: arrays.points, comps: dim, raw: arrays.points };
      });
    },
    /**
     * A colour field, prepared for drawing.
     * @param {{obs: any[]}} meta
     * @param {string} field
     * @returns {Promise<import("./fields.js").PreparedField>}
     */
    field(meta, field) {
      if (field.startsWith("obs:")) {
        const key = field.slice(4);
        const fm = meta.obs.find((f) => f.key === key);
        if (!fm) return Promise.reject(new Error(`obs field '${key}' is not in this export; fields: ${meta.obs.map((f) => f.key).join(", ")}`));
        return once(`field:${field}`, async () => prepareField(field, fm, await transport.request("obs", { key })));
      }
      if (field.startsWith("gene:")) {
        return once(`field:${field}`, async () => prepareField(field, null, await transport.request("gene", { gene: field.slice(5) })));
      }
      return Promise.reject(new Error(`colour field must look like 'obs:<key>' or 'gene:<id>', got '${field}'`));
    },
    /** kNN edges as index pairs. */
    edges() {
      return once("edges", async () => (await transport.request("edges", {})).arrays.pairs);
    },
    /** Vectors of one vector field at one dimension (n * dim floats), over `embedding` when given. */
    vectors(field, dim, embedding = null) {
      const args = embedding ? { field, dim, embedding } : { field, dim };
      return once(`vectors:${field}|${dim}|${embedding || ""}`, async () => (await transport.request("vectors", args)).arrays.vectors);
    },
  };
}
