// The static site's reading of exports: every layout answers the viewer's requests with
// exactly what the Python backend (viewer_protocol.build_response) sends for the same
// files; gzip is detected by its magic bytes only; hostile paths are refused.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { gzipSync, gunzipSync } from "node:zlib";
import { openExport, detectLayout, manifestNames } from "../site/export_model.js";
import { decodePayload, inflate, isGzip } from "../site/payloads.js";
import { joinPath, safeName, safeRelPath } from "../site/paths.js";
import { createUrlSource } from "../site/sources.js";
import { createStaticTransport } from "../site/transport.js";
import { createProgressive } from "../viewer/progressive.js";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const FIXTURES = {
  key: "tests/fixtures/cellucid_0_0_9/gzip_q16_u16",
  index: "tests/fixtures/cellucid_0_9_2/gzip_q8_u8_2d3d",
  v2: "tests/fixtures/cellucid_0_9_4/gzip_q8_u8_multi",
  plain: "tests/fixtures/cellucid_0_0_9/plain",
};

/** A fetch over a folder on disk, as a static server at http://data.test/<prefix>/ would answer. */
function diskFetch(folder, { inflated = false, log = [] } = {}) {
  return async (url) => {
    log.push(url);
    const rel = decodeURIComponent(new URL(url).pathname.replace(/^\/+/, ""));
    const file = path.join(ROOT, folder, rel);
    if (!existsSync(file)) return { ok: false, status: 404, arrayBuffer: async () => new ArrayBuffer(0) };
    let bytes = readFileSync(file);
    if (inflated && rel.endsWith(".gz")) bytes = gunzipSync(bytes); // Content-Encoding: gzip: the browser inflated it
    return { ok: true, status: 200, arrayBuffer: async () => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) };
  };
}

/** What the Python backend answers for the same export (meta and a digest of every payload). */
function backendAnswers(folder) {
  const script = `
import json, sys, hashlib
import numpy as np
from cellucid_nb.format.reader import read_export
from cellucid_nb.viewer_protocol import build_response, build_meta
r = read_export(sys.argv[1])
meta = build_meta(r)
out = {"meta": meta, "payloads": {}}
def digest(kind, args):
    header, blob = build_response(r, kind, args)
    out["payloads"][kind + json.dumps(args, sort_keys=True)] = {"header": {k: v for k, v in header.items() if k != "arrays"}, "sha": hashlib.sha256(blob).hexdigest(), "arrays": header.get("arrays", [])}
for e in r.embeddings: digest("points", {"dim": e.dim, "embedding": e.id})
for d in r.dimensions: digest("points", {"dim": d})
for k in r.obs_keys: digest("obs", {"key": k})
for g in r.genes: digest("gene", {"gene": g})
if r.connectivity_manifest: digest("edges", {})
dims = {e.id: e.dim for e in r.embeddings}
for f, spec in (meta["vectors"] or {}).items():
    for d in spec["dims"]: digest("vectors", {"field": f, "dim": d})
    for e in spec["embeddings"]: digest("vectors", {"field": f, "dim": dims[e], "embedding": e})
# draw-order slices (the progressive viewer's requests): the whole order, a middle slice, an empty one
n = int(r.n_cells)
for sl in ({}, {"start": n // 3, "stop": n - 2}, {"start": 5, "stop": 5}):
    p = {"order": "permuted", **sl}
    for e in r.embeddings: digest("points", {"dim": e.dim, "embedding": e.id, **p})
    for k in r.obs_keys: digest("obs", {"key": k, **p})
    for g in r.genes[:3]: digest("gene", {"gene": g, **p})
    for f, spec in (meta["vectors"] or {}).items():
        for e in spec["embeddings"]: digest("vectors", {"field": f, "dim": dims[e], "embedding": e, **p})
if r.connectivity_manifest: digest("edges", {"order": "permuted"})
for k in r.obs_keys:
    if r.obs_field_info(k).kind == "categorical":
        for e in r.embeddings: digest("centroids", {"key": k, "embedding": e.id})
print(json.dumps(out))
`;
  const python = path.join(ROOT, ".venv/bin/python");
  const proc = spawnSync(existsSync(python) ? python : "python3", ["-c", script, path.join(ROOT, folder)], { cwd: ROOT, encoding: "utf8", maxBuffer: 1 << 26 });
  assert.equal(proc.status, 0, proc.stderr);
  return JSON.parse(proc.stdout);
}

/** The backend's blob for our arrays: same packing (8-byte aligned) as viewer_protocol.pack_arrays. */
async function blobDigest(arrays, specs) {
  const parts = [];
  let offset = 0;
  for (const spec of specs) {
    const a = arrays[spec.name];
    assert.ok(a, `array ${spec.name} missing`);
    assert.equal(a.constructor.name.toLowerCase().replace("array", ""), spec.dtype, `${spec.name} dtype`);
    const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    parts.push(bytes);
    offset += bytes.length;
    const pad = (8 - (offset % 8)) % 8;
    if (pad) { parts.push(new Uint8Array(pad)); offset += pad; }
  }
  const { createHash } = await import("node:crypto");
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
}

for (const [layout, folder] of Object.entries(FIXTURES)) {
  test(`${layout} layout: meta and every payload equal the Python backend's answers`, async () => {
    const expected = backendAnswers(folder);
    const source = createUrlSource("http://data.test/", { fetchImpl: diskFetch(folder) });
    const model = await openExport(source);
    const meta = JSON.parse(JSON.stringify(model.meta));
    assert.deepEqual(meta, expected.meta);
    for (const [key, want] of Object.entries(expected.payloads)) {
      const kind = key.slice(0, key.indexOf("{"));
      const args = JSON.parse(key.slice(kind.length));
      const { header, arrays } = await model.request(kind, args);
      for (const [k, v] of Object.entries(want.header)) assert.deepEqual(header[k] ?? null, v, `${key}: header ${k}`);
      assert.equal(await blobDigest(arrays, want.arrays), want.sha, `${key}: payload bytes`);
    }
  });
}

test("payloads already inflated by the browser (Content-Encoding: gzip) decode the same", async () => {
  const raw = await openExport(createUrlSource("http://data.test/", { fetchImpl: diskFetch(FIXTURES.key) }));
  const inflated = await openExport(createUrlSource("http://data.test/", { fetchImpl: diskFetch(FIXTURES.key, { inflated: true }) }));
  for (const [kind, args] of [["points", { dim: 2 }], ["obs", { key: "cell type" }], ["gene", { gene: "CD3E" }], ["edges", {}]]) {
    const a = await raw.request(kind, args), b = await inflated.request(kind, args);
    assert.deepEqual(Object.keys(a.arrays), Object.keys(b.arrays));
    for (const name of Object.keys(a.arrays)) assert.deepEqual(Array.from(a.arrays[name]), Array.from(b.arrays[name]), `${kind} ${name}`);
  }
});

test("a site under a sub-path fetches relative URLs below it, once per payload", async () => {
  const log = [];
  const fetchImpl = async (url) => diskFetch(FIXTURES.key, { log })(url.replace("http://host.test/a/b/site/k/", "http://data.test/"));
  const t = createStaticTransport(createUrlSource("http://host.test/a/b/site/", { fetchImpl }).sub("k/"));
  const { header } = await t.request("meta");
  assert.equal(header.n_cells, 40);
  await Promise.all([t.request("points", { dim: 3 }), t.request("points", { dim: 3 })]);
  const points = log.filter((u) => u.includes("points_3d"));
  assert.equal(points.length, 1, "two asks share one fetch");
  assert.equal(t.kind, "static");
  const seen = [];
  const off = t.onSelection((idx) => seen.push(Array.from(idx)));
  t.sendSelection(new Uint32Array([1, 2]));
  off();
  t.sendSelection(new Uint32Array([3]));
  assert.deepEqual(seen, [[1, 2]]);
  assert.equal(typeof t.onCommand(() => {}), "function");
  t.sendEvent("first_frame", {});
  t.destroy();
  await assert.rejects(t.request("meta"), /destroyed/);
});

test("the progressive viewer streams a static site in draw order: the subsample first, every cell once", async () => {
  const t = createStaticTransport(createUrlSource("http://data.test/", { fetchImpl: diskFetch(FIXTURES.key) }));
  const meta = (await t.request("meta")).header;
  assert.deepEqual(meta.order, { kind: "feistel-lowbias32", seed: 0x5eedce11, rounds: 4 });
  const prog = createProgressive(t, { timings: {} }, { firstFrameCells: 16, chunkCells: 10 });
  prog.enable(meta);
  assert.equal(prog.enabled, true, "40 cells > 16: progressive");
  const p = await prog.points(2);
  assert.equal(p.loaded, 16, "the first answer is the subsample");
  assert.equal(await p.done, true);
  assert.equal(p.loaded, 40);
  const whole = (await t.request("points", { dim: 2 })).arrays.points;
  const first = [];
  for (let k = 0; k < 40; k++) {
    const c = prog.order.cellAt(k);
    if (k < 16) first.push(c);
    assert.deepEqual([p.positions[2 * k], p.positions[2 * k + 1]], [whole[2 * c], whole[2 * c + 1]], `draw position ${k} holds cell ${c}`);
  }
  assert.notDeepEqual(first, Array.from({ length: 16 }, (_, i) => i), "the subsample is not the first cells");
  const f = await prog.field(meta, "obs:cell type");
  await f.done;
  const codes = (await t.request("obs", { key: "cell type" })).arrays.values;
  assert.deepEqual(Array.from(f.codes), Array.from({ length: 40 }, (_, k) => codes[prog.order.cellAt(k)]));
  // edges join draw positions: mapped back they are the export's pairs
  const pairs = await prog.edges();
  const orig = (await t.request("edges")).arrays.pairs;
  assert.deepEqual(Array.from(pairs, (k) => prog.order.cellAt(k)), Array.from(orig));
});

test("errors name the request and the file", async () => {
  const model = await openExport(createUrlSource("http://data.test/", { fetchImpl: diskFetch(FIXTURES.key) }));
  await assert.rejects(model.request("obs", { key: "nope" }), /obs field 'nope' is not in the export/);
  await assert.rejects(model.request("gene", { gene: "nope" }), /gene 'nope' is not in the export/);
  await assert.rejects(model.request("points", { dim: 4 }), /dimension 4 is not in the export/);
  await assert.rejects(model.request("vectors", { field: "nope", dim: 2 }), /vector field 'nope' is not in the export; fields: velocity_umap, drift/);
  await assert.rejects(model.request("vectors", { field: "drift", dim: 3 }), /vector field 'drift' has no 3D file on embedding '3d'/);
  await assert.rejects(model.request("points", { dim: 2, embedding: "3d" }), /embedding '3d' is 3D, expected one of the 2D embeddings/);
  await assert.rejects(model.request("points", { dim: 2, embedding: "umap" }), /embedding 'umap' is not in the export; known embeddings: 1d, 2d, 3d/);
  await assert.rejects(model.request("centroids", { key: "score" }), /'score' is not a categorical obs field/);
  await assert.rejects(model.request("points", { dim: 2, order: "shuffled" }), /points: order 'shuffled' is not known, expected 'permuted' or 'original'/);
  await assert.rejects(model.request("obs", { key: "cell type", order: "permuted", start: 3, stop: 41 }), /obs: slice start=3, stop=41 is not within 0 <= start <= stop <= n_cells=40/);
  await assert.rejects(model.request("gene", { gene: "CD3E", order: "permuted", start: 1.5 }), /gene: argument start=1.5 is not an integer/);
  const { header } = await model.request("centroids", { key: "cell type" });
  assert.equal(header.embedding, "3d");
  assert.ok(header.centroids.length > 0 && header.centroids[0].position.length === 3);
  await assert.rejects(model.request("colour"), /unknown viewer request kind 'colour'/);
  const noEdges = await openExport(createUrlSource("http://data.test/", { fetchImpl: diskFetch(FIXTURES.plain) }));
  if (!noEdges.meta.has_edges) await assert.rejects(noEdges.request("edges"), /no connectivity/);
  await assert.rejects(openExport(createUrlSource("http://data.test/", { fetchImpl: diskFetch("tests") })), /dataset_identity.json does not exist/);
});

test("hostile manifests: paths leaving the export are refused before any fetch", async () => {
  const files = {
    "dataset_identity.json": { version: 2, id: "x", stats: { n_cells: 2, n_genes: 1, has_connectivity: true }, embeddings: { available_dimensions: [2], default_dimension: 2, files: { "2d": "../../secret.bin" } } },
    "obs_manifest.json": { _format: "compact_v1", n_points: 2, _obsSchemas: { continuous: { pathPattern: "https://evil.test/{key}.bin", dtype: "float32" } }, _continuousFields: [["a"]] },
    "var_manifest.json": { _format: "compact_v1", _varSchema: { pathPattern: "/etc/{key}", dtype: "float32" }, fields: [["g"]] },
    "connectivity_manifest.json": { n_edges: 1, sourcesPath: "..\\x", destinationsPath: "y", index_dtype: "uint16" },
  };
  const log = [];
  const fetchImpl = async (url) => {
    log.push(url);
    const rel = new URL(url).pathname.slice(1);
    if (!(rel in files)) return { ok: false, status: 404, arrayBuffer: async () => new ArrayBuffer(0) };
    return { ok: true, status: 200, arrayBuffer: async () => new TextEncoder().encode(JSON.stringify(files[rel])).buffer };
  };
  await assert.rejects(openExport(createUrlSource("http://data.test/", { fetchImpl })), /https:\/\/evil.test\/a.bin.*leaves the export/);
  files["obs_manifest.json"]._obsSchemas.continuous.pathPattern = "obs/{key}.bin";
  await assert.rejects(openExport(createUrlSource("http://data.test/", { fetchImpl })), /'\/etc\/g', which leaves the export/);
  files["var_manifest.json"]._varSchema.pathPattern = "var/{key}.bin";
  const model = await openExport(createUrlSource("http://data.test/", { fetchImpl }));
  await assert.rejects(model.request("points", { dim: 2 }), /'..\/..\/secret.bin', which leaves the export/);
  await assert.rejects(model.request("edges"), /'..\\x', which leaves the export/);
  assert.ok(log.every((u) => u.startsWith("http://data.test/") && !u.includes("secret") && !u.includes("etc")), log.join(" "));
  assert.throws(() => safeRelPath("a/.hidden/b"), /leaves the export/);
  for (const bad of ["", "/x", "a/../../b", "a?b", "c:/x", "a#b", "%2e%2e/x", 5]) assert.throws(() => safeRelPath(bad), /path/);
  assert.equal(safeRelPath("./obs//a.u8"), "obs/a.u8");
});

test("gzip is inflated by its magic bytes only, with the expected length as a limit", async () => {
  const values = new Uint16Array([1, 2, 3, 65535]);
  const raw = new Uint8Array(values.buffer);
  const gz = new Uint8Array(gzipSync(raw));
  assert.ok(isGzip(gz) && !isGzip(raw) && !isGzip(new Uint8Array([0x1f])));
  assert.deepEqual(Array.from(await decodePayload(gz, "uint16", 4, "x.u16.gz")), [1, 2, 3, 65535]);
  assert.deepEqual(Array.from(await decodePayload(raw.buffer, "uint16", 4, "x.u16.gz")), [1, 2, 3, 65535]);
  await assert.rejects(decodePayload(raw, "uint16", 5, "x.u16"), /x.u16 holds 8 bytes, expected 10 \(5 uint16 values\)/);
  await assert.rejects(decodePayload(raw, "int64", 1, "x"), /dtype 'int64'/);
  const bomb = new Uint8Array(gzipSync(new Uint8Array(1 << 20)));
  await assert.rejects(decodePayload(bomb, "uint8", 100, "bomb.gz"), /bomb.gz inflates to more than the 100 bytes/);
  const broken = gz.slice(0, 12);
  await assert.rejects(inflate(broken, 100, "broken.gz"), /broken.gz is not valid gzip/);
  const odd = new Uint8Array(9);
  odd.set(new Uint8Array(new Float32Array([1.5, -2]).buffer), 1);
  assert.deepEqual(Array.from(await decodePayload(odd.subarray(1), "float32", 2, "f")), [1.5, -2], "unaligned views are copied");
});

test("file names, manifest names and layout detection follow docs/FORMAT.md", () => {
  assert.equal(safeName("cell type"), "cell_type");
  assert.equal(safeName("__a/b.."), "a_b");
  assert.equal(safeName("..."), "field");
  assert.equal(safeName("HLA-A*B"), "HLA-A_B");
  assert.equal(joinPath("", "x"), "x");
  assert.equal(joinPath("a/", "x"), "a/x");
  assert.equal(joinPath("a", "x"), "a/x");
  assert.deepEqual(manifestNames({ settings: { obs_manifest_filename: "o.json", var_manifest_filename: "../v.json" } }),
    { obs: "o.json", var: "var_manifest.json", connectivity: "connectivity_manifest.json" });
  assert.deepEqual(manifestNames(null).obs, "obs_manifest.json");
  assert.deepEqual(detectLayout({ version: 3 }, null, null), { v2: true, indexed: true });
  assert.deepEqual(detectLayout({ version: 2 }, { _obsSchemas: { continuous: { pathPattern: "obs/{index}.values.u8" } } }, null), { v2: false, indexed: true });
  assert.deepEqual(detectLayout({ version: 2 }, null, { _varSchema: { pathPattern: "var/{key}.values.u8" } }), { v2: false, indexed: false });
});
