// The static site's page with happy-dom: where it finds the exports (page folder, ?url=,
// folder picker and drop when file:// blocks fetch), the dataset switcher, the view in
// the URL hash, and the selection as CSV. Data come from the checked-in fixtures.
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { installDom, installObservers, manualFrames, settle } from "./helpers/dom.js";
import { fakeRenderer } from "./helpers/fakes.js";

const window = installDom();
installObservers();
const { createSite, datasetsFrom, startBase, listDatasets, FILE_URL_MESSAGE, download } = await import("../site/site.js");
const { parseHash, formatHash, encodeCamera, decodeCamera, applyCamera } = await import("../site/hash_state.js");
const { csvCell, fieldValues, selectionCsv } = await import("../site/csv.js");
const { createFileSource, createUrlSource, entriesFromDrop, entriesFromInput, rootFiles } = await import("../site/sources.js");

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const KEY = "tests/fixtures/cellucid_0_0_9/gzip_q8";
const INDEX = "tests/fixtures/cellucid_0_9_2/gzip_q8_u8_2d3d";

/** Files of a fixture folder: relative path -> bytes. */
function folderFiles(folder, prefix = "") {
  const out = new Map();
  const walk = (dir, rel) => {
    for (const name of readdirSync(dir)) {
      const full = path.join(dir, name);
      if (statSync(full).isDirectory()) walk(full, `${rel}${name}/`);
      else out.set(`${prefix}${rel}${name}`, readFileSync(full));
    }
  };
  walk(path.join(ROOT, folder), "");
  return out;
}

/** A published site in memory: datasets.json + two exports. */
function siteFiles() {
  const files = new Map([...folderFiles(KEY, "key/"), ...folderFiles(INDEX, "idx/")]);
  const idxId = JSON.parse(files.get("idx/dataset_identity.json").toString()).id;
  files.set("datasets.json", Buffer.from(JSON.stringify({ version: 1, default: "ref_gzip_q8", datasets: [
    { id: idxId, path: "idx/", name: "Index export" }, { id: "ref_gzip_q8", path: "key/", name: "Key export" }] })));
  return { files, idxId };
}

function fetchFrom(files, base, log = []) {
  return async (url) => {
    log.push(url);
    if (!url.startsWith(base)) throw new TypeError("Failed to fetch");
    const bytes = files.get(decodeURIComponent(url.slice(base.length)));
    if (!bytes) return { ok: false, status: 404, arrayBuffer: async () => new ArrayBuffer(0) };
    return { ok: true, status: 200, arrayBuffer: async () => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) };
  };
}

const PAGE = `<header><h1 id="title"></h1><select id="dataset" hidden></select><span id="selection"></span>
<button id="download" hidden></button></header><div id="notice" hidden><p id="notice-text"></p>
<p><label><input id="folder" type="file"></label></p></div><div id="app"></div>`;

/** A page at `href` with a site whose fetch answers from `files` below `base`. */
function page(href, fetchImpl) {
  document.body.innerHTML = PAGE;
  window.cellucidViewer = null;
  // happy-dom fires hashchange on replaceState (browsers do not): a location of our own
  const url = new URL(href);
  const location = { get href() { return url.href; }, get hash() { return url.hash; }, set hash(v) { url.hash = v; }, get protocol() { return url.protocol; } };
  const replaced = [];
  const history = { replaceState: (_s, _t, hash) => { replaced.push(hash); url.hash = hash; } };
  const site = createSite({
    document, location, history, window, fetchImpl,
    viewerOptions: { createRenderer: () => fakeRenderer(), frames: manualFrames() },
  });
  return { site, replaced, location };
}

async function until(cond, what) {
  for (let i = 0; i < 300; i++) { if (cond()) return; await settle(2); await new Promise((r) => setTimeout(r, 10)); }
  throw new Error(`timed out waiting for ${what}`);
}

test("the page's folder: datasets.json, the default dataset, the switcher, the hash", async () => {
  const { files, idxId } = siteFiles();
  const { site, location } = page("http://host.test/a/b/site/index.html#dim=3&field=obs:batch", fetchFrom(files, "http://host.test/a/b/site/"));
  await site.start();
  await site.site.ready;
  const viewer = window.cellucidViewer;
  assert.equal(document.getElementById("title").textContent, "Key export");
  assert.equal(document.title, "Key export · Cellucid");
  assert.equal(viewer.state.dim, 3);
  assert.equal(viewer.state.colorField, "obs:batch");
  const picker = document.getElementById("dataset");
  assert.equal(picker.hidden, false);
  assert.deepEqual(Array.from(picker.options, (o) => o.value), [idxId, "ref_gzip_q8"].sort((a) => (a === "ref_gzip_q8" ? -1 : 1)));
  await until(() => location.hash.includes("dataset=ref_gzip_q8"), "the hash");
  const view = parseHash(location.hash);
  assert.equal(view.dim, 3);
  assert.equal(view.field, "obs:batch");
  assert.equal(view.camera.mode, 3);
  // switch dataset
  picker.value = idxId;
  assert.equal(picker.value, idxId);
  picker.dispatchEvent(new window.Event("change"));
  await site.site.ready;
  assert.equal(window.cellucidViewer.meta.n_cells, 200);
  assert.equal(document.getElementById("title").textContent, "Index export");
  // a pasted link (hashchange): dataset, dimension, field and camera follow
  location.hash = formatHash({ dataset: "ref_gzip_q8", dim: 2, field: "obs:score", camera: { mode: 2, cx: 0.25, cy: -0.5, scale: 3 } });
  window.dispatchEvent(new window.HashChangeEvent("hashchange"));
  await site.site.ready;
  await until(() => window.cellucidViewer.state.colorField === "obs:score", "the field");
  assert.equal(window.cellucidViewer.meta.name, "ref_gzip_q8");
  assert.deepEqual([window.cellucidViewer.camera.cx, window.cellucidViewer.camera.cy, window.cellucidViewer.camera.scale], [0.25, -0.5, 3]);
  location.hash = formatHash({ dataset: "ref_gzip_q8", dim: 3, field: "obs:cell type" });
  window.dispatchEvent(new window.HashChangeEvent("hashchange"));
  await until(() => window.cellucidViewer.state.dim === 3 && window.cellucidViewer.state.colorField === "obs:cell type", "dim and field");
  window.cellucidViewer.destroy();
});

test("compact_v2 with several embeddings per dimension: the hash keeps the embedding shown", async () => {
  const files = folderFiles("tests/fixtures/cellucid_0_9_4/gzip_q8_u8_multi");
  const { site, location } = page("http://host.test/e/#dim=2&emb=X_tsne", fetchFrom(files, "http://host.test/e/"));
  await site.start();
  await site.site.ready;
  const viewer = window.cellucidViewer;
  assert.equal(viewer.state.embedding, "X_tsne");
  assert.equal(viewer.state.dim, 2);
  await until(() => location.hash.includes("emb=X_tsne"), "the embedding in the hash");
  location.hash = formatHash({ dim: 2, embedding: "X_umap" });
  window.dispatchEvent(new window.HashChangeEvent("hashchange"));
  await until(() => viewer.state.embedding === "X_umap", "the other embedding");
  await viewer.setDimension(3);
  await until(() => location.hash.includes("dim=3") && !location.hash.includes("emb="), "a dimension with one embedding");
  viewer.destroy();
});

test("selection CSV: cell index and the shown field's decoded values", async () => {
  const { files } = siteFiles();
  const { site } = page("http://host.test/s/#field=obs:cell%20type&dim=2", fetchFrom(files, "http://host.test/s/"));
  await site.start();
  await site.site.ready;
  const viewer = window.cellucidViewer;
  const model = await site.site.transport.opened;
  const codes = (await model.request("obs", { key: "cell type" })).arrays.values;
  const cats = viewer.meta.obs.find((f) => f.key === "cell type").categories;
  await viewer.select([0, 3, 5]);
  assert.equal(document.getElementById("selection").textContent, "3 cells selected");
  assert.equal(document.getElementById("download").hidden, false);
  const name = (i) => cats[codes[i]] ?? ""; // the missing code has no category
  assert.equal(await site.selectionText(), `cell_index,cell type\n${[0, 3, 5].map((i) => `${i},${name(i)}`).join("\n")}\n`);
  await viewer.setColorField("obs:score");
  const score = await model.request("obs", { key: "score" });
  const { min, max } = score.header;
  const value = (q) => (q === 255 ? "" : Number((min + (q * (max - min)) / 254).toPrecision(7))); // 255: missing
  const expected = [0, 3, 5].map((i) => value(score.arrays.values[i]));
  assert.equal(await site.selectionText(), `cell_index,score\n${[0, 3, 5].map((i, j) => `${i},${expected[j]}`).join("\n")}\n`);
  await viewer.setColorField("gene:CD3E");
  assert.match(await site.selectionText(), /^cell_index,CD3E\n0,[-0-9.e]+\n3,/);
  // the button downloads the file through a link
  let clicked = null;
  const realCreate = document.createElement.bind(document);
  document.createElement = (tag) => { const el = realCreate(tag); if (tag === "a") el.click = () => { clicked = { name: el.download, href: el.href }; }; return el; };
  globalThis.URL.createObjectURL = () => "blob:csv";
  globalThis.URL.revokeObjectURL = () => {};
  document.getElementById("download").click();
  await until(() => clicked, "the download");
  assert.deepEqual(clicked, { name: "ref_gzip_q8_selection.csv", href: "blob:csv" });
  document.createElement = realCreate;
  viewer.destroy();
});

test("?url= reads an export on another origin; bad URLs and missing exports are reported", async () => {
  const files = folderFiles(KEY);
  const log = [];
  const { site } = page("http://site.test/index.html?url=http://data.test/exports/k", fetchFrom(files, "http://data.test/exports/k/", log));
  await site.start();
  await site.site.ready;
  assert.equal(window.cellucidViewer.meta.n_cells, 40);
  assert.equal(document.getElementById("dataset").hidden, true);
  assert.equal(log[0], "http://data.test/exports/k/dataset_identity.json", "an export is asked for first");
  window.cellucidViewer.destroy();
  const bad = page("http://site.test/index.html?url=javascript:alert(1)", fetchFrom(files, "http://data.test/"));
  await bad.site.start();
  assert.match(document.getElementById("notice-text").textContent, /\?url= must be an http or https URL/);
  assert.equal(document.getElementById("notice").hidden, false);
  const missing = page("http://site.test/index.html?url=http://data.test/none/", fetchFrom(files, "http://data.test/"));
  await missing.site.start();
  assert.match(document.getElementById("notice-text").textContent, /Could not open the exports at http:\/\/data.test\/none\/: .*neither datasets.json nor dataset_identity.json/);
  assert.equal(document.getElementById("folder").parentElement.hidden, true);
});

test("file:// without fetch: the page says so and opens a picked or dropped folder", async () => {
  const { files } = siteFiles();
  const failing = async () => { throw new TypeError("Failed to fetch"); };
  const { site } = page("file:///home/me/site/index.html", failing);
  await site.start();
  assert.equal(document.getElementById("notice-text").textContent, FILE_URL_MESSAGE);
  assert.equal(document.getElementById("notice").hidden, false);
  // the folder input lists files with webkitRelativePath "site/..."
  const picked = [...files].map(([rel, bytes]) => Object.assign(new Blob([bytes]), { name: rel.split("/").pop(), webkitRelativePath: `site/${rel}` }));
  Object.defineProperty(document.getElementById("folder"), "files", { value: picked, configurable: true });
  document.getElementById("folder").dispatchEvent(new window.Event("change"));
  await until(() => window.cellucidViewer && window.cellucidViewer.meta, "the picked site");
  await site.site.ready;
  assert.equal(document.getElementById("notice").hidden, true);
  assert.equal(window.cellucidViewer.meta.name, "ref_gzip_q8");
  window.cellucidViewer.destroy();
  // a drop of an export folder (FileSystemEntry tree)
  const exportFiles = folderFiles(KEY);
  const tree = { name: "gzip_q8", isDirectory: true, children: new Map() };
  for (const [rel, bytes] of exportFiles) {
    let node = tree;
    const parts = rel.split("/");
    for (const dir of parts.slice(0, -1)) {
      if (!node.children.has(dir)) node.children.set(dir, { name: dir, isDirectory: true, children: new Map() });
      node = node.children.get(dir);
    }
    node.children.set(parts.at(-1), { name: parts.at(-1), isFile: true, bytes });
  }
  const entry = (n) => n.isFile
    ? { name: n.name, isFile: true, file: (ok) => ok(new Blob([n.bytes])) }
    : { name: n.name, isDirectory: true, createReader: () => { let done = false; return { readEntries: (ok) => { ok(done ? [] : [...n.children.values()].map(entry)); done = true; } }; } };
  const drop = new window.Event("drop");
  drop.dataTransfer = { items: [{ webkitGetAsEntry: () => entry(tree) }] };
  const notice = document.getElementById("notice");
  notice.hidden = false;
  notice.dispatchEvent(new window.Event("dragover"));
  assert.ok(notice.classList.contains("cnb-drag"));
  notice.dispatchEvent(new window.Event("dragleave"));
  notice.dispatchEvent(drop);
  await until(() => window.cellucidViewer.meta && window.cellucidViewer.meta.n_cells === 40 && notice.hidden, "the dropped export");
  window.cellucidViewer.destroy();
  // a folder that is not an export
  await site.openFiles([{ file: new Blob(["x"]), path: "x/notes.txt" }]);
  assert.match(document.getElementById("notice-text").textContent, /Could not open the chosen folder: .*neither datasets.json nor dataset_identity.json/);
});

test("sources: rootFiles picks the shallowest site or export; files and URLs refuse escaping paths", async () => {
  const blob = (t) => new Blob([t]);
  const { files, kind } = rootFiles([{ file: blob("{}"), path: "/top/site/datasets.json" }, { file: blob("1"), path: "top/site/a/dataset_identity.json" },
    { file: blob("2"), path: "top/other.txt" }]);
  assert.equal(kind, "site");
  assert.deepEqual([...files.keys()].sort(), ["a/dataset_identity.json", "datasets.json"]);
  assert.equal(rootFiles([{ file: blob("1"), path: "e/dataset_identity.json" }]).kind, "export");
  assert.throws(() => rootFiles([{ file: blob("1"), path: "e/xdataset_identity.json" }]), /neither datasets.json/);
  const src = createFileSource(files);
  assert.equal(new TextDecoder().decode(await src.sub("a").read("dataset_identity.json")), "1");
  assert.equal(await src.readOptional("nope.json"), null);
  await assert.rejects(src.read("nope.json"), /nope.json is not in the chosen folder/);
  await assert.rejects(src.read("../datasets.json"), /leaves the export/);
  assert.deepEqual(entriesFromInput([Object.assign(blob("x"), { name: "n", webkitRelativePath: "" })]).map((e) => e.path), ["n"]);
  assert.deepEqual((await entriesFromDrop({ items: [], files: [Object.assign(blob("x"), { name: "f.json" })] })).map((e) => e.path), ["f.json"]);
  const log = [];
  const url = createUrlSource("http://h.test/a b/", { fetchImpl: async (u) => { log.push(u); return { ok: false, status: 500 }; } });
  await assert.rejects(url.read("x y.json"), /http:\/\/h.test\/a%20b\/x%20y.json: the server answered 500/);
  await assert.rejects(createUrlSource("http://h.test", { fetchImpl: async () => { throw new TypeError("offline"); } }).read("x"), /could not fetch http:\/\/h.test\/x: offline/);
  await assert.rejects(createUrlSource("http://h.test/", { fetchImpl: async () => ({ ok: false, status: 404 }) }).read("x"), /does not exist \(404\)/);
  assert.equal(url.sub("d e").label, "http://h.test/a%20b/d%20e/");
  // a query on the base URL (a token) goes with every file, also below a sub-folder
  const asked = [];
  const tokened = createUrlSource("http://h.test/x/?token=abc#frag", { fetchImpl: async (u) => { asked.push(u); return { ok: true, status: 200, arrayBuffer: async () => new ArrayBuffer(1) }; } });
  await tokened.read("datasets.json");
  await tokened.sub("d").read("obs/a.u8");
  assert.deepEqual(asked, ["http://h.test/x/datasets.json?token=abc", "http://h.test/x/d/obs/a.u8?token=abc"]);
  assert.throws(() => url.sub("../up"), /leaves the export/);
});

test("datasets.json entries, start URLs, listDatasets", async () => {
  assert.deepEqual(datasetsFrom({ default: "b", datasets: [{ id: "a", path: "a/" }, { id: "b", path: "b/", name: "B" }] }),
    [{ id: "b", name: "B", path: "b" }, { id: "a", name: "a", path: "a" }]);
  assert.throws(() => datasetsFrom({ datasets: [] }), /lists no dataset/);
  assert.throws(() => datasetsFrom({ datasets: [null] }), /entry 0 is not an object/);
  assert.throws(() => datasetsFrom({ datasets: [{ id: "x", path: "../x" }] }), /datasets.json names the path '..\/x'/);
  assert.deepEqual(startBase({ href: "http://h.test/a/b/site/index.html#x" }), { base: "http://h.test/a/b/site/", remote: false });
  assert.deepEqual(startBase({ href: "http://h.test/?url=https://d.test/e/datasets.json" }), { base: "https://d.test/e/", remote: true });
  assert.deepEqual(startBase({ href: "http://h.test/?url=/other/exp" }), { base: "http://h.test/other/exp/", remote: true });
  assert.deepEqual(startBase({ href: "http://h.test/?url=" + encodeURIComponent("http://127.0.0.1:8765/?token=t") }), { base: "http://127.0.0.1:8765/?token=t", remote: true });
  const src = createFileSource(new Map([["dataset_identity.json", new Blob([JSON.stringify({ name: "N" })])]]));
  assert.deepEqual(await listDatasets(src), { datasets: [{ id: "dataset", name: "N", path: "" }], single: true });
  let clicked = 0;
  const doc = { createElement: () => ({ click() { clicked++; }, remove() {} }), body: { appendChild() {} } };
  globalThis.URL.createObjectURL = () => "blob:x";
  download(doc, "a.csv", "x");
  assert.equal(clicked, 1);
});

test("hash state and camera round trip", () => {
  const cam2 = { mode: 2, cx: 0.123456789, cy: -1, scale: 2.5 };
  assert.equal(encodeCamera(cam2), "2:0.123457,-1,2.5");
  assert.deepEqual(decodeCamera("2:0.123457,-1,2.5"), { mode: 2, cx: 0.123457, cy: -1, scale: 2.5 });
  const cam3 = { mode: 3, target: [0, 0.5, 1], yaw: 0.6, pitch: 0.35, distance: 3.4 };
  assert.deepEqual(decodeCamera(encodeCamera(cam3)), cam3);
  for (const bad of ["", "4:1,2,3", "2:1,2", "2:1,2,0", "3:1,2,3,4,5,x", "2:a,b,c"]) assert.equal(decodeCamera(bad), null, bad);
  const hash = formatHash({ dataset: "d 1", field: "obs:a&b", dim: 3, embedding: "X_pca 3d", camera: cam3 });
  assert.deepEqual(parseHash(hash), { dataset: "d 1", field: "obs:a&b", dim: 3, embedding: "X_pca 3d", camera: cam3 });
  assert.deepEqual(parseHash("#dim=7&cam=x"), {});
  assert.equal(formatHash({}), "#");
  assert.equal(encodeCamera(null), "");
  const camera = { mode: 2, cx: 0, cy: 0, scale: 1, version: 0 };
  assert.equal(applyCamera(camera, cam3), false, "a 3D camera is not applied to a 2D view");
  assert.equal(applyCamera(camera, cam2), true);
  assert.deepEqual([camera.cx, camera.scale, camera.version], [0.123456789, 2.5, 1]);
  const c3 = { mode: 3, target: [0, 0, 0], version: 0 };
  assert.equal(applyCamera(c3, cam3), true);
  assert.deepEqual(c3.target, [0, 0.5, 1]);
  assert.equal(applyCamera(null, cam2), false);
});

test("CSV cells: quoting, formula guard, missing values, float32 and categorical", () => {
  assert.equal(csvCell('a,"b"'), '"a,""b"""');
  assert.equal(csvCell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
  assert.equal(csvCell(-1.5), "-1.5");
  assert.equal(csvCell(null), "");
  assert.equal(csvCell("line\nbreak"), '"line\nbreak"');
  const cat = fieldValues({ header: {}, arrays: { values: new Uint8Array([0, 1, 255]) } }, { kind: "categorical", categories: ["x", "y"] }, [2, 1, 0]);
  assert.deepEqual(cat, [null, "y", "x"]);
  const f32 = fieldValues({ header: { bits: null }, arrays: { values: new Float32Array([1.5, NaN, 0.1]) } }, null, [0, 1, 2]);
  assert.deepEqual(f32, [1.5, null, 0.1]);
  const q16 = fieldValues({ header: { bits: 16, min: 0, max: 65534 }, arrays: { values: new Uint16Array([7, 65535]) } }, null, [0, 1]);
  assert.deepEqual(q16, [7, null]);
  assert.equal(selectionCsv([4, 9], "", null), "cell_index\n4\n9\n");
  assert.equal(selectionCsv(new Uint32Array([1]), "a,b", ["=x"]), "cell_index,\"a,b\"\n1,'=x\n");
});

test("main.js starts the site on the page", async () => {
  const { files } = siteFiles();
  document.body.innerHTML = PAGE;
  window.happyDOM.setURL("http://host.test/site/");
  globalThis.fetch = fetchFrom(files, "http://host.test/site/");
  Object.defineProperty(globalThis, "location", { value: window.location, configurable: true });
  Object.defineProperty(globalThis, "history", { value: window.history, configurable: true });
  await import("../site/main.js");
  await until(() => window.cellucidSite && window.cellucidSite.site.viewer, "the site");
  assert.equal(document.getElementById("title").textContent, "Key export");
  window.cellucidSite.site.viewer.destroy();
});
