// The start-up sequence: meta first, then the embedding and the colour field in
// parallel while the GPU compiles its shaders, then the first frame.
import { defaultField, isValidField } from "./fields.js";

function now() {
  return typeof performance !== "undefined" ? performance.now() : Date.now();
}

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
  const { dim, field, error } = initialChoice(meta, v.options);
  if (error) v.showError(error);
  // Points and colours travel in parallel; meanwhile the GPU compiles the shaders for
  // these data formats, and the points go to the GPU as soon as they arrive.
  if (field) v.data.field(meta, field).catch(() => {}); // reported by setColorField below
  const pointsPromise = v.data.points(dim);
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
  await v.setDimension(dim, { emit: false });
  await v.setColorField(field, { emit: false });
  if (v.state.showEdges) await v.refreshEdges();
  v.stats.timings.data_ready = now() - v.stats.t_mount;
  v.emitState();
  v.requestDraw();
}
