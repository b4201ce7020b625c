// The start-up sequence: meta first, then the embedding and the colour field in
// parallel while the GPU compiles its shaders, then the first frame.
import { dimensionOf, requestEmbedding } from "./embeddings.js";
import { defaultField, isValidField } from "./fields.js";
import { now } from "./frame.js";

/**
 * The dimension and field to start with. An unknown dimension falls back to the export's
 * default; an unknown field to the default field, with an error to show.
 * @param {{dimensions: number[], default_dimension: number, obs: any[], genes: string[]}} meta
 * @param {{dimension?: number, colorField?: string}} options
 * @returns {{dim: number, field: string, error: Error|null}}
 */
export function initialChoice(meta, options) {
  const dim = meta.dimensions.includes(Number(options.dimension)) ? Number(options.dimension) : meta.default_dimension;
  let field = options.colorField || "";
  let error = null;
  if (field && !isValidField(meta, field)) {
    error = new Error(`colour field '${field}' is not in this export`);
    field = "";
  }
  return { dim, field: field || defaultField(meta), error };
}

/**
 * The embedding to start with: `options.embedding` when the export has it (it sets the
 * dimension), else null (the dimension's default) with an error to show for an unknown id.
 * @param {any} meta
 * @param {{embedding?: string}} options
 * @param {number} dim  the dimension chosen otherwise
 * @returns {{dim: number, embedding: string|null, error: Error|null}}
 */
export function initialEmbedding(meta, options, dim) {
  if (!options.embedding) return { dim, embedding: null, error: null };
  try {
    return { dim: dimensionOf(meta, options.embedding), embedding: options.embedding, error: null };
  } catch (err) {
    return { dim, embedding: null, error: /** @type {Error} */ (err) };
  }
}

/**
 * Run the start-up. The viewer reports its state (onStateChange) once, at the end, with
 * the field and dimension it shows: a report in between would carry a half-set state
 * (e.g. no field yet) back to the host, which would then ask for that.
 * @param {object} v  the viewer's internals (see mount.js)
 */
export async function startViewer(v) {
  v.setStatus("loading…");
  const tm = now();
  const { header: meta } = await v.transport.request("meta", {});
  v.stats.timings.meta = now() - tm;
  if (v.isDestroyed()) return;
  v.setMeta(meta);
  const first = initialChoice(meta, v.options);
  const { field } = first;
  const { dim, embedding, error: embeddingError } = initialEmbedding(meta, v.options, first.dim);
  const error = first.error || embeddingError;
  if (error) v.showError(error);
  // Points and colours travel in parallel; meanwhile the GPU compiles the shaders for
  // these data formats, and the points go to the GPU as soon as they arrive.
  if (field) v.data.field(meta, field).catch(() => {}); // reported by setColorField below
  const pointsPromise = v.data.points(dim, requestEmbedding(meta, dim, embedding));
  const renderer = v.getRenderer();
  if (renderer) {
    const fm = field.startsWith("obs:") ? meta.obs.find((f) => f.key === field.slice(4)) : null;
    const wide = !!fm && fm.kind === "categorical" && fm.missing_code === 65535;
    const t = now();
    renderer.warmUp(dim === 3 ? 3 : 2, wide, dim === 3);
    v.stats.timings.warm_up = now() - t;
  }
  await pointsPromise;
  if (v.isDestroyed()) return;
  await v.setDimension(dim, { emit: false, embedding });
  await v.setColorField(field, { emit: false });
  if (v.state.showEdges) await v.refreshEdges();
  v.stats.timings.data_ready = now() - v.stats.t_mount;
  v.emitState();
  v.requestDraw();
}
