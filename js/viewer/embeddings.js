// Embedding choice. A compact_v2 export (cellucid 0.9.3+) holds several embeddings per
// dimension; meta.embeddings lists them ({"<dim>": [{id, label, dimension, default}]},
// see viewer_protocol.py). The viewer shows one per dimension, the default until the
// user picks another, and remembers the pick of each dimension. Requests name the
// embedding only when it is not the dimension's default, so they stay those of an
// export (or a backend) without embedding ids.
import { h } from "./ui.js";

/** @typedef {{id: string, label: string, dimension: number, default: boolean}} Embedding */

/**
 * Embeddings of `dim` in export order (empty when the meta does not list any).
 * @param {{embeddings?: Object<string, Embedding[]>}|null} meta
 * @param {number} dim
 * @returns {Embedding[]}
 */
export function embeddingsOf(meta, dim) {
  return (meta && meta.embeddings && meta.embeddings[String(dim)]) || [];
}

/**
 * The dimension of embedding `id`; an unknown id is an error naming the known ones.
 * @param {{embeddings?: Object<string, Embedding[]>}} meta
 * @param {string} id
 */
export function dimensionOf(meta, id) {
  const all = Object.values(meta.embeddings || {}).flat();
  const e = all.find((x) => x.id === id);
  if (!e) throw new Error(`embedding '${id}' is not in this export; embeddings: ${all.map((x) => x.id).join(", ") || "none"}`);
  return Number(e.dimension);
}

/**
 * The id to put in a request for embedding `id` of `dim`: null for the default one.
 * @param {any} meta
 * @param {number} dim
 * @param {string|null} id
 */
export function requestEmbedding(meta, dim, id) {
  const e = embeddingsOf(meta, dim).find((x) => x.id === id);
  return e && !e.default ? e.id : null;
}

/** The embedding each dimension shows: asked for, else the last picked, else the default. */
export function createEmbeddingChoice() {
  /** @type {Map<number, string>} */
  const picked = new Map();
  return {
    /**
     * @param {any} meta
     * @param {number} dim
     * @param {string|null} [wanted]  an id of this dimension (remembered); "" forgets the pick
     * @returns {string|null}  null when the meta lists no embeddings
     */
    resolve(meta, dim, wanted) {
      const list = embeddingsOf(meta, dim);
      if (wanted === "") picked.delete(dim);
      if (wanted) {
        const d = dimensionOf(meta, wanted);
        if (d !== dim) throw new Error(`embedding '${wanted}' is ${d}D, not ${dim}D`);
        picked.set(dim, wanted);
        return wanted;
      }
      const last = picked.get(dim);
      if (last && list.some((e) => e.id === last)) return last;
      const def = list.find((e) => e.default) || list[0];
      return def ? def.id : null;
    },
  };
}

/**
 * Fill the "Embedding" select with the embeddings of `dim`; hidden unless there are two or more.
 * @param {{embedding: HTMLSelectElement, embeddingWrap: HTMLElement}} ui
 * @param {any} meta
 * @param {number} dim
 * @param {string|null} id  the one shown
 */
export function fillEmbeddingSelect(ui, meta, dim, id) {
  const list = embeddingsOf(meta, dim);
  ui.embeddingWrap.classList.toggle("cnb-absent", list.length < 2);
  ui.embedding.replaceChildren(...list.map((e) => h("option", { value: e.id, text: e.label || e.id })));
  if (id) ui.embedding.value = id;
}

/**
 * Centroid labels of a categorical field on the embedding shown: the meta's per-embedding
 * centroids when it has them, else the field's per-dimension ones; null for other fields.
 * @param {any} meta
 * @param {any} f  prepared field (fields.js / progressive.js)
 * @param {number} dim
 * @param {string|null} id
 */
export function centroidsFor(meta, f, dim, id) {
  if (!f || f.kind !== "categorical" || !f.centroids) return null;
  const fm = id && f.field && f.field.startsWith("obs:") ? meta.obs.find((o) => o.key === f.field.slice(4)) : null;
  const byEmbedding = fm && fm.centroids_by_embedding;
  if (byEmbedding && byEmbedding[id]) return byEmbedding[id];
  return f.centroids[String(dim)] || [];
}

/**
 * Can vector field `spec` be drawn over embedding `id`? (meta.vectors[f].embeddings lists
 * the embeddings a field is bound to; a meta without that list binds every one.)
 * @param {{embeddings?: string[]}} spec
 * @param {string|null} id
 */
export function vectorsBound(spec, id) {
  return !spec.embeddings || !id || spec.embeddings.includes(id);
}
