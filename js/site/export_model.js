// Read an exports folder in the browser, in any of the three layouts the Python reader
// reads (docs/FORMAT.md): key-named compact_v1 (cellucid 0.0.9, cellucid_nb), index-named
// compact_v1 (cellucid 0.9.2) and compact_v2 (cellucid 0.9.4). It answers the viewer's
// requests as cellucid_nb/viewer_protocol.py's build_response does: stored values
// (inflated, still quantized) plus the header the viewer dequantizes with. Like the
// backend, its meta advertises the draw order (cellucid_nb/viewer_order.py) and it answers
// `order: "permuted", start, stop` slices, gathered from the whole payloads it fetches, so
// the shared viewer draws a uniform subsample first on a static site too.
import { createDrawOrder, gatherDrawOrder } from "../viewer/progressive.js";
import { decodePayload } from "./payloads.js";
import { safeName, safeRelPath } from "./paths.js";

export const IDENTITY_FILE = "dataset_identity.json";
export const SIDECAR_FILE = "cellucid_nb.json";
const DEFAULT_MANIFESTS = { obs: "obs_manifest.json", var: "var_manifest.json", connectivity: "connectivity_manifest.json" };
const DTYPE_BITS = { uint8: 8, uint16: 16 };
/** The draw order the page recomputes (twin of viewer_order.order_spec()). */
export const ORDER_SPEC = Object.freeze({ kind: "feistel-lowbias32", seed: 0x5eedce11, rounds: 4 });
const CODES_EXT = { uint8: "u8", uint16: "u16", uint32: "u32" };

/** @param {Uint8Array|null} bytes @param {string} label */
function parseJson(bytes, label) {
  if (bytes === null) return null;
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new Error(`${label} is not valid JSON: ${err.message}`);
  }
}

/** Manifest file names: the defaults, or those the sidecar's settings name. */
export function manifestNames(sidecar) {
  const names = { ...DEFAULT_MANIFESTS };
  const settings = sidecar && typeof sidecar === "object" ? sidecar.settings : null;
  if (settings && typeof settings === "object") {
    for (const kind of Object.keys(names)) {
      const v = settings[`${kind}_manifest_filename`];
      if (typeof v === "string" && v && !/[/\\]/.test(v) && v !== "..") names[kind] = v;
    }
  }
  return names;
}

/**
 * The layout of an export, from its JSON files only.
 * @returns {{v2: boolean, indexed: boolean}}
 */
export function detectLayout(identity, obs, vars) {
  const v2 = identity.version === 3 || (obs && obs._format === "compact_v2") || (vars && vars._format === "compact_v2");
  if (v2) return { v2: true, indexed: true };
  const patterns = [];
  const schemas = (obs && obs._obsSchemas) || {};
  for (const s of Object.values(schemas)) for (const v of Object.values(s || {})) if (typeof v === "string") patterns.push(v);
  if (vars && vars._varSchema && typeof vars._varSchema.pathPattern === "string") patterns.push(vars._varSchema.pathPattern);
  return { v2: false, indexed: patterns.some((p) => p.includes("{index}")) };
}

/**
 * Open one export.
 * @param {import("./sources.js").Source} source   the export folder
 * @param {{name?: string}} [options]  name shown when the identity has none
 */
export async function openExport(source, options = {}) {
  const identity = parseJson(await source.read(IDENTITY_FILE), IDENTITY_FILE);
  if (!identity || typeof identity !== "object") throw new Error(`${IDENTITY_FILE} does not hold a JSON object`);
  const sidecar = parseJson(await source.readOptional(SIDECAR_FILE), SIDECAR_FILE);
  const names = manifestNames(sidecar);
  // the identity's stats say which optional manifests exist (no request that can only 404)
  const stats = identity.stats && typeof identity.stats === "object" ? identity.stats : {};
  const wanted = { obs: true, var: stats.n_genes !== 0, connectivity: stats.has_connectivity !== false };
  const [obs, vars, conn] = await Promise.all(["obs", "var", "connectivity"].map(async (k) => (wanted[k] ? parseJson(await source.readOptional(names[k]), names[k]) : null)));
  const layout = detectLayout(identity, obs, vars);
  const split = (entry) => {
    if (!Array.isArray(entry)) throw new Error(`field tuple ${JSON.stringify(entry)} is not a list`);
    return layout.indexed ? [entry[0], entry.slice(1)] : [null, entry];
  };
  const fill = (pattern, key, index, ext) => {
    let out = layout.indexed ? pattern.replace("{index}", String(index)) : pattern.replace("{key}", safeName(key));
    if (ext !== undefined) out = out.replace("{ext}", ext);
    return safeRelPath(out);
  };
  const nCells = Number((identity.stats && identity.stats.n_cells) ?? (obs && obs.n_points));
  if (!Number.isInteger(nCells) || nCells < 0) throw new Error(`${IDENTITY_FILE} has no valid stats.n_cells`);

  // ------------------------------------------------------------ embeddings
  // items in export order: {id, dim, file, label}; v1 has one per dimension, id "<d>d"
  const emb = identity.embeddings || {};
  /** @type {{id: string, dim: number, file: string, label: string}[]} */
  let items;
  if (layout.v2) {
    items = Object.entries(emb.items || {}).map(([id, it]) => ({ id, dim: Number(it.dimension), file: it.file, label: String(it.label ?? id) }));
  } else {
    items = Object.entries(emb.files || {}).map(([k, file]) => { const d = parseInt(k, 10); return { id: `${d}d`, dim: d, file, label: `${d}D` }; })
      .sort((a, b) => a.dim - b.dim);
  }
  const byId = new Map(items.map((e) => [e.id, e]));
  /** @type {Map<number, string>} dimension -> default embedding id */
  const defaults = new Map();
  for (const e of items) if (!defaults.has(e.dim)) defaults.set(e.dim, e.id);
  if (layout.v2) for (const [slot, id] of Object.entries(emb.defaults || {})) defaults.set(parseInt(slot, 10), String(id));
  const pointFiles = new Map([...defaults].filter(([, id]) => byId.has(id)).map(([d, id]) => [d, byId.get(id).file]));
  const available = !layout.v2 && Array.isArray(emb.available_dimensions) ? emb.available_dimensions.map(Number) : [...pointFiles.keys()];
  const dimensions = available.filter((d) => pointFiles.has(d)).sort((a, b) => a - b);
  if (!dimensions.length) throw new Error(`${IDENTITY_FILE} lists no embedding`);
  const defaultDimension = dimensions.includes(Number(emb.default_dimension)) ? Number(emb.default_dimension) : Math.max(...dimensions);
  const embeddings = {};
  for (const e of items) (embeddings[String(e.dim)] ||= []).push({ id: e.id, label: e.label, dimension: e.dim, default: defaults.get(e.dim) === e.id });
  /** An embedding id of a request (default: the dimension's), checked like the backend does. */
  function embeddingOf(kind, args, dim) {
    const eid = args.embedding;
    if (eid === undefined || eid === null || eid === "") return dim === undefined ? null : defaults.get(dim) ?? null;
    const item = byId.get(String(eid));
    if (!item) throw new Error(`${kind}: embedding '${eid}' is not in the export; known embeddings: ${[...byId.keys()].sort().join(", ")}`);
    if (dim !== undefined && item.dim !== dim) throw new Error(`${kind}: embedding '${eid}' is ${item.dim}D, expected one of the ${dim}D embeddings`);
    return item.id;
  }
  const centroidsByDim = (c) => {
    if (!c || typeof c !== "object") return {};
    if (!layout.v2) return c;
    const out = {};
    for (const [d, id] of defaults) out[String(d)] = c[id] || [];
    return out;
  };
  /** Centroids of a field's raw centroids object on one embedding (v1 keys them by dimension). */
  const centroidsOn = (c, eid) => (c && typeof c === "object" ? c[layout.v2 ? eid : String(byId.get(eid).dim)] || [] : []);

  // ------------------------------------------------------------ obs fields
  const obsFields = new Map(); // key -> {meta, path, dtype}
  const schemas = (obs && obs._obsSchemas) || {};
  const colors = (sidecar && sidecar.category_colors) || {};
  const cont = schemas.continuous || {};
  for (const indexed of (obs && obs._continuousFields) || []) {
    const [index, e] = split(indexed);
    const key = String(e[0]);
    const dtype = cont.dtype || "float32";
    const bits = DTYPE_BITS[dtype] ?? null;
    obsFields.set(key, {
      meta: { key, kind: "continuous", dtype, bits, min: e.length >= 3 ? Number(e[1]) : null, max: e.length >= 3 ? Number(e[2]) : null },
      path: fill(cont.pathPattern, key, index), dtype,
    });
  }
  const cat = schemas.categorical || {};
  for (const indexed of (obs && obs._categoricalFields) || []) {
    const [index, e] = split(indexed);
    const key = String(e[0]);
    const dtype = String(e[2]);
    if (!CODES_EXT[dtype]) throw new Error(`categorical field '${key}' has codes dtype '${dtype}', expected uint8, uint16 or uint32`);
    obsFields.set(key, {
      meta: {
        key, kind: "categorical", dtype, bits: null, min: null, max: null,
        categories: (e[1] || []).map(String), missing_code: Number(e[3]), centroids: centroidsByDim(e[4]),
        centroids_by_embedding: Object.fromEntries(items.map((it) => [it.id, centroidsOn(e[4], it.id)])),
        colors: Array.isArray(colors[key]) ? colors[key] : null,
      },
      path: fill(cat.codesPathPattern, key, index, CODES_EXT[dtype]), dtype, rawCentroids: e[4],
    });
  }

  // ------------------------------------------------------------ genes
  const genes = new Map(); // name -> {path, dtype, bits, min, max}
  const vschema = (vars && vars._varSchema) || {};
  for (const indexed of (vars && vars.fields) || []) {
    const [index, e] = split(indexed);
    const name = String(e[0]);
    const dtype = vschema.dtype || "float32";
    const bits = DTYPE_BITS[dtype] ?? null;
    genes.set(name, { path: fill(vschema.pathPattern, name, index), dtype, bits, min: bits ? Number(e[1]) : null, max: bits ? Number(e[2]) : null });
  }

  // ------------------------------------------------------------ vector fields
  const vectorFiles = new Map(); // "id|embedding id" -> file
  const vectors = {};
  const vfields = (identity.vector_fields && identity.vector_fields.fields) || {};
  for (const [id, entry] of Object.entries(vfields)) {
    const files = (entry && entry.files) || {};
    const dims = [];
    const bound = [];
    for (const [k, f] of Object.entries(files)) {
      const eid = layout.v2 ? k : `${parseInt(k, 10)}d`;
      if (!byId.has(eid)) continue;
      bound.push(eid);
      vectorFiles.set(`${id}|${eid}`, f);
      if (defaults.get(byId.get(eid).dim) === eid) dims.push(byId.get(eid).dim);
    }
    vectors[id] = { label: (entry && entry.label) || id, dims: dims.sort((a, b) => a - b), embeddings: bound.sort() };
  }

  const meta = {
    name: identity.name || identity.id || options.name || "dataset",
    id: identity.id ?? null,
    n_cells: nCells,
    dimensions,
    default_dimension: defaultDimension,
    embeddings,
    obs: [...obsFields.values()].map((f) => f.meta),
    genes: [...genes.keys()],
    has_edges: !!conn,
    n_edges: conn ? Number(conn.n_edges) : 0,
    vectors,
    order: { ...ORDER_SPEC },
  };
  /** @type {ReturnType<typeof createDrawOrder>|null} built on the first permuted request */
  let drawOrder = null;
  /** @type {Uint32Array|null} draw position of each cell (permuted edges) */
  let positionsOfCells = null;
  const order = () => (drawOrder ||= createDrawOrder(nCells, ORDER_SPEC));

  /** Is the request for the draw order? (checked like viewer_protocol._wants_permuted) */
  function wantsPermuted(kind, args) {
    const o = args.order;
    if (o === undefined || o === null || o === "" || o === "original") return false;
    if (o !== "permuted") throw new Error(`${kind}: order '${o}' is not known, expected 'permuted' or 'original'`);
    return true;
  }
  /** An integer argument (a string from a URL too), as the backend reads it. */
  function intArg(kind, args, name, fallback) {
    const v = args[name];
    if (v === undefined || v === null) return fallback;
    const x = typeof v === "string" && /^\s*[-+]?\d+\s*$/.test(v) ? Number(v) : v;
    if (!Number.isInteger(x)) throw new Error(`${kind}: argument ${name}=${JSON.stringify(v)} is not an integer`);
    return x;
  }
  /**
   * The whole array, or rows [start, stop) of the draw order and the header keys saying so.
   * @template {import("./payloads.js").TypedArray} T
   * @param {string} kind @param {object} args @param {T} whole @param {number} comps
   * @returns {[T, object]}
   */
  function sliced(kind, args, whole, comps) {
    if (!wantsPermuted(kind, args)) return [whole, {}];
    const start = intArg(kind, args, "start", 0), stop = intArg(kind, args, "stop", nCells);
    if (!(0 <= start && start <= stop && stop <= nCells)) throw new Error(`${kind}: slice start=${start}, stop=${stop} is not within 0 <= start <= stop <= n_cells=${nCells}`);
    return [/** @type {T} */ (gatherDrawOrder(order(), /** @type {any} */ (whole), comps, start, stop)), { order: "permuted", start, stop }];
  }

  const cache = new Map();
  /** Decode a payload once (the CSV download asks again for the shown field). */
  function payload(path, dtype, count) {
    const key = `${path}|${dtype}|${count}`;
    let p = cache.get(key);
    if (!p) {
      p = source.read(safeRelPath(path)).then((bytes) => decodePayload(bytes, dtype, count, path));
      p.catch(() => cache.delete(key));
      cache.set(key, p);
    }
    return p;
  }

  /**
   * Answer one viewer request ({header, arrays}), as the Python backend does.
   * @param {string} kind
   * @param {object} [args]
   */
  async function request(kind, args = {}) {
    if (kind === "meta") return { header: meta, arrays: {} };
    if (kind === "points") {
      const dim = Number(args.dim);
      if (!dimensions.includes(dim)) throw new Error(`points: dimension ${args.dim} is not in the export, which has ${dimensions.join(", ")}`);
      const eid = embeddingOf(kind, args, dim);
      wantsPermuted(kind, args); // a bad order is refused before any fetch
      const [points, extra] = sliced(kind, args, await payload(byId.get(eid).file, "float32", nCells * dim), dim);
      return { header: { dim, embedding: eid, ...extra }, arrays: { points } };
    }
    if (kind === "obs") {
      const f = obsFields.get(String(args.key));
      if (!f) throw new Error(`obs field '${args.key}' is not in the export; fields: ${[...obsFields.keys()].slice(0, 20).join(", ")}`);
      const { key, kind: fk, bits, min, max } = f.meta;
      wantsPermuted(kind, args);
      const [values, extra] = sliced(kind, args, await payload(f.path, f.dtype, nCells), 1);
      return { header: { key, kind: fk, bits, min, max, missing_code: f.meta.missing_code ?? null, ...extra }, arrays: { values } };
    }
    if (kind === "gene") {
      const g = genes.get(String(args.gene));
      if (!g) throw new Error(`gene '${args.gene}' is not in the export (${genes.size} genes exported)`);
      wantsPermuted(kind, args);
      const [values, extra] = sliced(kind, args, await payload(g.path, g.dtype, nCells), 1);
      return { header: { gene: String(args.gene), bits: g.bits, min: g.min, max: g.max, ...extra }, arrays: { values } };
    }
    if (kind === "edges") {
      if (!conn) throw new Error("edges: the export has no connectivity (no connectivity manifest)");
      const n = Number(conn.n_edges);
      const permuted = wantsPermuted(kind, args);
      const [src, dst] = await Promise.all([payload(conn.sourcesPath, conn.index_dtype, n), payload(conn.destinationsPath, conn.index_dtype, n)]);
      const pairs = nCells > 65536 ? new Uint32Array(2 * n) : new Uint16Array(2 * n);
      if (permuted) { // the viewer's position buffer is in draw order
        if (!positionsOfCells) {
          const o = order(), pos = new Uint32Array(nCells);
          for (let k = 0; k < nCells; k++) pos[o.cellAt(k)] = k;
          positionsOfCells = pos;
        }
        const pos = positionsOfCells;
        for (let i = 0; i < n; i++) {
          if (src[i] >= nCells || dst[i] >= nCells) throw new Error(`edges: edge ${i} joins cells ${src[i]} and ${dst[i]}, expected indices below n_cells=${nCells}`);
          pairs[2 * i] = pos[src[i]]; pairs[2 * i + 1] = pos[dst[i]];
        }
      } else {
        for (let i = 0; i < n; i++) { pairs[2 * i] = src[i]; pairs[2 * i + 1] = dst[i]; }
      }
      return { header: { n_edges: n, ...(permuted ? { order: "permuted" } : {}) }, arrays: { pairs } };
    }
    if (kind === "vectors") {
      const dim = Number(args.dim);
      if (!vectors[args.field]) throw new Error(`vector field '${args.field}' is not in the export; fields: ${Object.keys(vectors).join(", ")}`);
      const eid = dimensions.includes(dim) ? embeddingOf(kind, args, dim) : null;
      const file = vectorFiles.get(`${args.field}|${eid}`);
      if (!file) throw new Error(`vector field '${args.field}' has no ${args.dim}D file on embedding '${eid}'`);
      wantsPermuted(kind, args);
      const [vecs, extra] = sliced(kind, args, await payload(file, "float32", nCells * dim), dim);
      return { header: { field: String(args.field), dim, embedding: eid, ...extra }, arrays: { vectors: vecs } };
    }
    if (kind === "centroids") {
      const f = obsFields.get(String(args.key));
      if (!f || f.meta.kind !== "categorical") throw new Error(`centroids: '${args.key}' is not a categorical obs field of the export`);
      const eid = embeddingOf(kind, args) ?? defaults.get(defaultDimension);
      return { header: { key: f.meta.key, embedding: eid, centroids: centroidsOn(f.rawCentroids, eid) }, arrays: {} };
    }
    throw new Error(`unknown viewer request kind '${kind}'; expected meta, points, obs, gene, edges, vectors or centroids`);
  }

  return { meta, request, layout };
}
