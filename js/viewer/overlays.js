// kNN edges and vector-field arrows: load them when switched on, hand them to the renderer.
import { arrowSegments } from "./decode.js";
import { requestEmbedding, vectorsBound } from "./embeddings.js";

/**
 * Arrow length factor so that a typical arrow is `fraction` of the [-1, 1] view.
 * @param {Float32Array} vec  n * dim components
 * @param {number} dim
 * @param {number} [fraction=0.06]
 */
export function arrowScale(vec, dim, fraction = 0.06) {
  let sum = 0, cnt = 0;
  const n = vec.length / dim, step = Math.max(1, Math.floor(n / 5000));
  for (let i = 0; i < n; i += step) {
    let s = 0;
    for (let c = 0; c < dim; c++) s += vec[i * dim + c] ** 2;
    if (Number.isFinite(s)) { sum += Math.sqrt(s); cnt++; }
  }
  return cnt && sum > 0 ? fraction / (sum / cnt) : 1;
}

/**
 * @param {object} ctx
 * @param {ReturnType<typeof import("./data_cache.js").createDataCache>} ctx.data
 * @param {() => any} ctx.getRenderer
 * @param {() => any} ctx.meta
 * @param {() => {showEdges: boolean, showVectors: boolean, vectorField: string|null, dim: number, embedding?: string|null}} ctx.state
 * @param {(text: string) => void} ctx.setStatus
 */
export function createOverlays(ctx) {
  return {
    async refreshEdges() {
      const r = ctx.getRenderer();
      if (!r) return;
      if (!ctx.state().showEdges || !ctx.meta().has_edges) { r.setEdges(null); return; }
      ctx.setStatus("loading kNN edges…");
      const pairs = await ctx.data.edges();
      ctx.setStatus("");
      const now = ctx.getRenderer();
      if (now && ctx.state().showEdges) now.setEdges(pairs);
    },
    async refreshVectors() {
      const r = ctx.getRenderer();
      if (!r) return;
      const { showVectors, vectorField, dim, embedding = null } = ctx.state();
      const spec = vectorField && (ctx.meta().vectors || {})[vectorField];
      if (!showVectors || !spec || !spec.dims.includes(dim) || dim === 1 || !vectorsBound(spec, embedding)) { r.setArrows(null); return; }
      ctx.setStatus("loading vectors…");
      const e = requestEmbedding(ctx.meta(), dim, embedding);
      const [vec, pts] = await Promise.all([ctx.data.vectors(vectorField, dim, e), ctx.data.points(dim, e)]);
      ctx.setStatus("");
      const s = ctx.state(), now = ctx.getRenderer();
      // the dimension, embedding or field may have changed while loading: draw only what is still asked
      if (!now || !s.showVectors || s.dim !== dim || (s.embedding ?? null) !== embedding || s.vectorField !== vectorField) return;
      now.setArrows(arrowSegments(pts.raw, vec, dim, arrowScale(vec, dim)));
    },
  };
}
