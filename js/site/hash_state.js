// The view in the URL hash, so a copied link reopens it:
//   #dataset=<id>&field=obs:<key>&dim=2&emb=<embedding id>&cam=2:cx,cy,scale   (3D: cam=3:tx,ty,tz,yaw,pitch,distance)
// (emb only when the dimension has several embeddings: compact_v2 exports)

/**
 * @typedef {object} ViewState
 * @property {string} [dataset]
 * @property {string} [field]
 * @property {number} [dim]
 * @property {string} [embedding]  an embedding id of meta.embeddings
 * @property {object} [camera]  {mode: 2, cx, cy, scale} or {mode: 3, target, yaw, pitch, distance}
 */

const round = (v) => Number(Number(v).toPrecision(6));

/** @param {any} cam a camera's getState() */
export function encodeCamera(cam) {
  if (!cam) return "";
  if (cam.mode === 3) return `3:${[...cam.target, cam.yaw, cam.pitch, cam.distance].map(round).join(",")}`;
  return `2:${[cam.cx, cam.cy, cam.scale].map(round).join(",")}`;
}

/** @param {string} text @returns {object|null} */
export function decodeCamera(text) {
  const m = /^([23]):(.*)$/.exec(text || "");
  if (!m) return null;
  const v = m[2].split(",").map(Number);
  if (!v.every(Number.isFinite)) return null;
  if (m[1] === "2" && v.length === 3 && v[2] > 0) return { mode: 2, cx: v[0], cy: v[1], scale: v[2] };
  if (m[1] === "3" && v.length === 6 && v[5] > 0) return { mode: 3, target: v.slice(0, 3), yaw: v[3], pitch: v[4], distance: v[5] };
  return null;
}

/** @param {string} hash location.hash @returns {ViewState} */
export function parseHash(hash) {
  const params = new URLSearchParams(String(hash || "").replace(/^#/, ""));
  /** @type {ViewState} */
  const out = {};
  if (params.get("dataset")) out.dataset = params.get("dataset");
  if (params.get("field")) out.field = params.get("field");
  const dim = Number(params.get("dim"));
  if ([1, 2, 3].includes(dim)) out.dim = dim;
  if (params.get("emb")) out.embedding = params.get("emb");
  const cam = decodeCamera(params.get("cam"));
  if (cam) out.camera = cam;
  return out;
}

/** @param {ViewState} state @returns {string} "#..." */
export function formatHash(state) {
  const params = new URLSearchParams();
  if (state.dataset) params.set("dataset", state.dataset);
  if (state.field) params.set("field", state.field);
  if (state.dim) params.set("dim", String(state.dim));
  if (state.embedding) params.set("emb", state.embedding);
  const cam = encodeCamera(state.camera);
  if (cam) params.set("cam", cam);
  return `#${params.toString()}`;
}

/**
 * Apply a decoded camera to a viewer's camera (same mode only).
 * @param {any} camera  the viewer's camera object
 * @param {object|null} cam
 * @returns {boolean} whether it was applied
 */
export function applyCamera(camera, cam) {
  if (!camera || !cam || camera.mode !== cam.mode) return false;
  if (cam.mode === 2) Object.assign(camera, { cx: cam.cx, cy: cam.cy, scale: cam.scale });
  else Object.assign(camera, { target: [...cam.target], yaw: cam.yaw, pitch: cam.pitch, distance: cam.distance });
  camera.version++;
  return true;
}
