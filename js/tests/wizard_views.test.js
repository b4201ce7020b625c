// The wizard's views in happy-dom with a fake anywidget model: sections edit the plan,
// the gene box ranks with the shared search, the preview, estimate and export cards
// follow the model, and the whole widget renders and cleans up.
import assert from "node:assert/strict";
import { test } from "node:test";
import { installDom, settle } from "./helpers/dom.js";
import { fakeModel } from "./helpers/fakes.js";

installDom();
/** Canvas 2D double: records the fill colours of the preview's point groups. */
const fills = [];
window.HTMLCanvasElement.prototype.getContext = function (kind) {
  if (kind !== "2d") return null;
  return new Proxy({}, {
    get: (_t, prop) => (prop === "fillStyle" ? fills.at(-1) : () => {}),
    set: (_t, prop, value) => { if (prop === "fillStyle") fills.push(value); return true; },
  });
};
const { createPlanDraft } = await import("../wizard/plan_draft.js");
const sections = await import("../wizard/sections.js");
const { genesSection } = await import("../wizard/genes_section.js");
const { previewView } = await import("../wizard/preview_view.js");
const { estimateView } = await import("../wizard/estimate_view.js");
const { exportView } = await import("../wizard/export_view.js");
const widget = await import("../wizard/widget.js");
const edits = await import("../wizard/plan_edits.js");

const SUMMARY = {
  n_cells: 700, n_genes: 765, backed: false,
  embeddings: [{ key: "X_umap", n_dims: 2 }, { key: "X_pca3", n_dims: 3 }, { key: "X_draw", n_dims: 2 }],
  latents: [{ key: "X_pca", n_dims: 50 }],
  obs: [
    { key: "louvain", kind: "categorical", n_categories: 11 },
    { key: "cell_id", kind: "categorical", n_categories: null, identifier_like: true },
    { key: "n_counts", kind: "continuous", min: 1000, max: 9000.5, n_missing: 3 },
    { key: "big", kind: "categorical", n_categories: 300 },
  ],
  expression: [{ name: "X", value_hint: "log-normalised", storage: "dense", n_genes: 765 }, { name: "raw", value_hint: "counts", storage: "csr", n_genes: 13714 }],
  gene_id_columns: ["index", "gene_ids"],
  var_flags: { highly_variable: 200 },
  graphs: [{ key: "connectivities", mean_neighbors: 14.6 }],
  vector_fields: [{ key: "velocity_umap", n_dims: 2 }],
};
const PLAN = {
  embeddings: { 2: "X_umap" }, obs_keys: ["louvain"], obs_categorical_dtype: "auto", expression_source: "X", var_gene_id_column: "index",
  genes: null, var_quantization: 8, obs_continuous_quantization: 8, compression: 6, latent: null, connectivities: null, vector_fields: {},
  dataset_name: "pbmc", dataset_description: null, dataset_id: null, source_name: null, source_url: null, source_citation: null,
};

function setup(extra = {}) {
  const model = fakeModel({ plan: structuredClone(PLAN), summary: SUMMARY, out_dir: "exports/pbmc", overwrite: false, status: "idle", progress: {}, gene_report: {}, ...extra });
  const timers = { set: () => 1, clear: () => {} };
  const draft = createPlanDraft(model, { timers });
  return { model, draft };
}
const change = (el, value) => { if (value !== undefined) el.value = value; el.dispatchEvent(new Event("change", { bubbles: true })); };

test("plan rules: embeddings, obs columns, genes, vectors, badges", () => {
  const p = structuredClone(PLAN);
  edits.setEmbedding(p, 3, "X_pca3");
  edits.setEmbedding(p, 2, "");
  assert.deepEqual(p.embeddings, { 3: "X_pca3" });
  assert.equal(edits.embeddingsBadge(p), "3D");
  assert.equal(edits.embeddingsBadge({}), "none chosen");
  assert.deepEqual(edits.embeddingOptions(SUMMARY, 1), [{ value: "", label: "none available" }]);
  assert.deepEqual(edits.latentOptions(SUMMARY).map((o) => o.value), ["", "X_pca", "X_umap", "X_pca3", "X_draw"]);
  edits.setObsKey(p, SUMMARY, "n_counts", true);
  edits.setObsKey(p, SUMMARY, "big", true);
  edits.setObsKey(p, SUMMARY, "big", false);
  assert.deepEqual(p.obs_keys, ["louvain", "n_counts"], "summary order");
  edits.setAllObs(p, SUMMARY, true);
  assert.deepEqual(p.obs_keys, ["louvain", "n_counts", "big"], "identifier-like columns left out");
  edits.setAllObs(p, SUMMARY, false);
  assert.deepEqual(p.obs_keys, []);
  assert.equal(edits.obsDescription(SUMMARY.obs[0]), "11 categories");
  assert.equal(edits.obsDescription({ kind: "categorical", n_categories: 1 }), "1 category");
  assert.equal(edits.obsDescription(SUMMARY.obs[1]), "categorical, many values");
  assert.equal(edits.obsDescription(SUMMARY.obs[2]), "continuous 1.00e+3 … 9.00e+3");
  assert.equal(edits.obsDescription({ kind: "continuous", min: null, max: 0.5 }), "continuous ? … 0.50");
  assert.deepEqual(edits.obsWarnings(SUMMARY.obs[2]), ["3 missing"]);
  assert.equal(edits.obsWarnings(SUMMARY.obs[3])[0], "more than 254 categories: 16-bit codes");
  const g = { expression_source: null, genes: null };
  edits.addGene(g, "CD3E", "raw");
  edits.addGene(g, "CD3E", "raw");
  edits.addGene(g, "LYZ", "raw");
  assert.deepEqual(g, { expression_source: "raw", genes: ["CD3E", "LYZ"] });
  edits.removeGene(g, "CD3E");
  assert.deepEqual(g.genes, ["LYZ"]);
  assert.equal(edits.genesBadge(g), "1");
  assert.equal(edits.genesInfo(g, SUMMARY), "1 gene chosen.");
  assert.equal(edits.genesInfo({ expression_source: "raw", genes: null }, SUMMARY), "All genes (13,714).");
  assert.equal(edits.genesInfo({ expression_source: "raw", genes: Array(61).fill("x") }, SUMMARY), "61 genes chosen (first 60 shown).");
  edits.setExpressionSource(g, "");
  assert.deepEqual(g, { expression_source: null, genes: null });
  assert.equal(edits.genesBadge(g), "none");
  assert.equal(edits.genesBadge({ expression_source: "X", genes: null }), "all");
  assert.match(edits.genesInfo(g, SUMMARY), /^No gene expression/);
  assert.equal(edits.geneReportText({ pending: true }), "working…");
  assert.equal(edits.geneReportText({ error: "bad" }), "bad");
  assert.equal(edits.geneReportText({ n_genes: 2, n_unknown: 3, unknown: ["a", "b"] }), "2 found; 3 unknown ids: a, b …");
  assert.equal(edits.geneReportText({ n_genes: 2, n_unknown: 1, unknown: ["a"] }), "2 found; 1 unknown id: a");
  assert.equal(edits.geneReportText({ n_genes: 200, mode: "hvg" }), "200 genes (hvg).");
  assert.equal(edits.geneReportText(), "");
  edits.setVectorField(p, "v", true);
  assert.equal(edits.graphBadge({ ...p, connectivities: "c" }), "graph · 1 vector field(s)");
  edits.setVectorField(p, "v", false);
  assert.equal(edits.graphBadge(p), "none");
  assert.equal(edits.storageBadge({ var_quantization: null, compression: null }), "genes float32 · no gzip");
  assert.equal(edits.storageBadge({ var_quantization: 16, compression: 9 }), "genes 16-bit · gzip 9");
  assert.deepEqual([edits.bitsValue(""), edits.bitsValue("16"), edits.bitsLabel(null), edits.bitsLabel(8), edits.blankToNull("")], [null, 16, "", "8", null]);
  assert.deepEqual([edits.moveActive(0, -1, 3), edits.moveActive(2, 1, 3), edits.moveActive(0, 1, 0)], [2, 0, -1]);
});

test("choice sections edit the draft and show its state", () => {
  const { model, draft } = setup();
  let previews = 0;
  const parts = [
    sections.embeddingsSection(SUMMARY, draft, () => { previews += 1; }),
    sections.latentSection(SUMMARY, draft),
    sections.obsSection(SUMMARY, draft),
    sections.graphSection(SUMMARY, draft),
    sections.storageSection(draft),
    sections.outputSection(draft, model),
  ];
  const root = document.createElement("div");
  root.append(...parts.map((p) => p.el));
  document.body.append(root);
  const update = (plan) => parts.forEach((p) => p.update(plan));
  draft.onChange(update);
  update(draft.plan);
  const q = (sel) => root.querySelector(sel);
  change(q("[data-testid=embedding-3d]"), "X_pca3");
  assert.deepEqual(draft.plan.embeddings, { 2: "X_umap", 3: "X_pca3" });
  assert.equal(parts[0].el.querySelector(".cw-badge").textContent, "2D · 3D");
  assert.ok(q("[data-testid=embedding-1d]").disabled, "no 1D candidates");
  assert.ok(previews >= 2);
  change(q("[data-testid=latent]"), "X_pca");
  assert.equal(draft.plan.latent, "X_pca");
  const box = root.querySelector("input[data-key=n_counts]");
  box.checked = true;
  change(box);
  assert.deepEqual(draft.plan.obs_keys, ["louvain", "n_counts"]);
  assert.equal(parts[2].el.querySelector(".cw-badge").textContent, "2 of 4");
  assert.match(parts[2].el.textContent, /looks like an identifier/);
  [...parts[2].el.querySelectorAll("button")].find((b) => b.textContent === "Select none").click();
  assert.deepEqual(draft.plan.obs_keys, []);
  [...parts[2].el.querySelectorAll("button")].find((b) => b.textContent === "Select all useful").click();
  assert.deepEqual(draft.plan.obs_keys, ["louvain", "n_counts", "big"]);
  change(parts[2].el.querySelector("select"), "uint16");
  assert.equal(draft.plan.obs_categorical_dtype, "uint16");
  change(parts[3].el.querySelector("select"), "connectivities");
  const vbox = parts[3].el.querySelector("input[type=checkbox]");
  vbox.checked = true;
  change(vbox);
  assert.deepEqual(draft.plan.vector_fields, { velocity_umap: "velocity_umap" });
  assert.equal(parts[3].el.querySelector(".cw-badge").textContent, "graph · 1 vector field(s)");
  change(q("[data-testid=var-quantization]"), "");
  change(q("[data-testid=obs-quantization]"), "16");
  change(q("[data-testid=compression]"), "");
  assert.deepEqual([draft.plan.var_quantization, draft.plan.obs_continuous_quantization, draft.plan.compression], [null, 16, null]);
  assert.equal(parts[4].el.querySelector(".cw-badge").textContent, "genes float32 · no gzip");
  // output: folder and overwrite are traits; metadata goes into the plan
  change(q("[data-testid=out-dir]"), "exports/other");
  assert.equal(model.state.out_dir, "exports/other");
  const over = parts[5].el.querySelector("input[type=checkbox]");
  over.checked = true;
  change(over);
  assert.equal(model.state.overwrite, true);
  model.remote("overwrite", false);
  assert.equal(over.checked, false);
  model.remote("out_dir", "exports/x");
  assert.equal(q("[data-testid=out-dir]").value, "exports/x");
  const name = parts[5].el.querySelector("input.cw-text:not([data-testid])");
  name.value = "New name";
  name.dispatchEvent(new Event("input"));
  assert.equal(draft.plan.dataset_name, "New name");
  name.value = "  ";
  name.dispatchEvent(new Event("input"));
  assert.equal(draft.plan.dataset_name, null);
  const before = model.listenerCount();
  parts[5].destroy();
  assert.equal(model.listenerCount(), before - 2);
  root.remove();
});

test("genes: Enter adds the first ranked id (CD3 -> CD3E, not CD33); arrows, chips, presets, list", async () => {
  const { model, draft } = setup();
  const part = genesSection(SUMMARY, draft, model);
  document.body.append(part.el);
  draft.onChange((p) => part.update(p));
  part.update(draft.plan);
  const search = part.el.querySelector("[data-testid=gene-search]");
  search.dispatchEvent(new Event("focus"));
  assert.deepEqual(model.sent.map((m) => m.content.type), ["wizard:gene_ids"], "ids asked for once");
  search.value = "CD3";
  search.dispatchEvent(new Event("input"));
  assert.match(part.el.textContent, /loading gene ids/);
  const ids = ["LYZ", "CD3E", "CD33", "CD3D", "ACD3"];
  model.deliver({ type: "wizard:gene_ids", column: "index" }, [new TextEncoder().encode(JSON.stringify(ids))]);
  const list = () => [...part.el.querySelectorAll(".cw-suggestions li")].map((li) => li.textContent);
  assert.deepEqual(list(), ["CD3E", "CD33", "CD3D", "ACD3"]);
  assert.match(part.el.textContent, /5 gene ids \(index\)/);
  search.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
  assert.deepEqual(draft.plan.genes, ["CD3E"]);
  assert.equal(search.value, "");
  search.value = "cd3";
  search.dispatchEvent(new Event("input"));
  search.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown" }));
  search.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown" }));
  search.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowUp" }));
  assert.equal(part.el.querySelector(".cw-suggestions .cw-active").textContent, "CD33");
  search.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
  assert.deepEqual(draft.plan.genes, ["CD3E", "CD33"]);
  search.value = "lyz";
  search.dispatchEvent(new Event("input"));
  part.el.querySelector(".cw-suggestions li").dispatchEvent(new MouseEvent("mousedown"));
  assert.deepEqual(draft.plan.genes, ["CD3E", "CD33", "LYZ"]);
  search.value = "zz";
  search.dispatchEvent(new Event("input"));
  search.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape" }));
  assert.deepEqual(list(), []);
  assert.equal(part.el.querySelectorAll(".cw-chip").length, 3);
  assert.equal(part.el.querySelector(".cw-badge").textContent, "3");
  part.el.querySelector(".cw-chip-x[aria-label='Remove CD33']").click();
  assert.deepEqual(draft.plan.genes, ["CD3E", "LYZ"]);
  const button = (text) => [...part.el.querySelectorAll("button")].find((b) => b.textContent.startsWith(text));
  button("Highly variable").click();
  button("Top").click();
  part.el.querySelector("textarea").value = "CD3E, NKG7\nCD3E";
  button("Use this list").click();
  assert.deepEqual(model.sent.slice(1).map((m) => m.content), [
    { type: "wizard:genes", mode: "hvg" },
    { type: "wizard:genes", mode: "top", n: 200, by: "variance" },
    { type: "wizard:genes", mode: "list", ids: ["CD3E", "NKG7"] },
  ]);
  model.remote("gene_report", { n_genes: 1, n_unknown: 1, unknown: ["NKG7"] });
  assert.match(part.el.textContent, /1 found; 1 unknown id: NKG7/);
  // another source: other ids, asked for again
  change(part.el.querySelector("[data-testid=expression-source]"), "raw");
  assert.equal(draft.plan.expression_source, "raw");
  change(part.el.querySelectorAll("select")[1], "gene_ids");
  assert.equal(draft.plan.var_gene_id_column, "gene_ids");
  assert.equal(draft.plan.genes, null);
  search.dispatchEvent(new Event("focus"));
  assert.equal(model.sent.filter((m) => m.content.type === "wizard:gene_ids").length, 2);
  change(part.el.querySelector("[data-testid=expression-source]"), "");
  assert.match(part.el.textContent, /No gene expression will be exported/);
  search.dispatchEvent(new Event("blur"));
  await new Promise((r) => setTimeout(r, 160));
  const before = model.listenerCount();
  part.destroy();
  assert.equal(model.listenerCount(), before - 2);
});

test("preview: asks for the chosen embedding, draws, shows the legend, ignores stale replies", () => {
  const { model, draft } = setup();
  const view = previewView(model, SUMMARY, draft);
  document.body.append(view.el);
  view.update(draft.plan);
  const req = model.sent.at(-1).content;
  assert.deepEqual(req, { type: "wizard:preview", key: "X_umap", color: "louvain", request_id: 1 });
  const positions = new Float32Array([0, 0, 0.5, 0.5, -0.5, 0.2]);
  const codes = new Uint16Array([0, 1, 65535]);
  model.deliver({ type: "wizard:preview", request_id: 0, n: 3 }, []); // stale: ignored
  model.deliver({ type: "wizard:preview", request_id: 1, n: 3, n_cells: 700, kind: "categorical", categories: ["T", "B"], colors: null }, [positions, codes]);
  assert.match(view.el.textContent, /3 of 700 cells/);
  assert.deepEqual(fills.slice(-3), ["rgba(31, 119, 180, 1)", "rgba(255, 127, 14, 1)", "#aaaaaa"], "drawn in the viewer's colours");
  const swatches = [...view.el.querySelectorAll(".cw-swatch")].map((s) => s.style.background);
  assert.deepEqual(swatches, ["rgba(31, 119, 180, 1)", "rgba(255, 127, 14, 1)"], "scanpy's colours, as in the viewer");
  const [keySel, colorSel] = view.el.querySelectorAll("select");
  change(colorSel, "n_counts");
  model.deliver({ type: "wizard:preview", request_id: 2, n: 3, n_cells: 700, kind: "continuous", min: 1, max: 9 }, [positions, new Uint8Array([0, 127, 255])]);
  assert.match(view.el.querySelector(".cw-legend").textContent, /1\.00\s+9\.00/);
  model.deliver({ type: "wizard:preview", request_id: 2, error: "no such key" });
  assert.match(view.el.textContent, /no such key/);
  model.deliver({ type: "wizard:preview", request_id: 2, n: 5, n_cells: 700, kind: "none" }, [positions]);
  assert.match(view.el.textContent, /preview failed: .*coordinates for 5 cells/);
  view.update({ ...draft.plan, embeddings: { 2: "X_umap", 3: "X_pca3" } });
  assert.equal(keySel.value, "X_umap", "the chosen 2D embedding stays");
  view.update({ ...draft.plan, embeddings: {} });
  assert.match(view.el.textContent, /Choose an embedding/);
  view.destroy();
  assert.equal(model.listenerCount(), 1, "only the draft's listener is left");
});

test("estimate: total, parts, warnings, pending and errors", () => {
  const model = fakeModel({ estimate: {}, estimate_pending: true, estimate_error: "" });
  const view = estimateView(model);
  assert.equal(view.el.querySelector("[data-testid=estimate-total]").textContent, "…");
  model.remote("estimate_pending", false);
  assert.equal(view.el.querySelector("[data-testid=estimate-total]").textContent, "–");
  model.remote("estimate", { total_bytes: 2_500_000, n_files: 40, seconds: 2.5, warnings: ["big"], parts: [
    { part: "genes", bytes: 2_000_000, exact: false }, { part: "obs", bytes: 500_000 }] });
  assert.equal(view.el.querySelector("[data-testid=estimate-total]").textContent, "2.50 MB");
  assert.match(view.el.textContent, /40 files · about 2\.5 s to export/);
  assert.equal(view.el.querySelector(".cw-bars").getAttribute("aria-label"), "Size per part: Genes 2.00 MB, Cell metadata 500.0 kB");
  assert.match(view.el.textContent, /≈2\.00 MB/);
  assert.match(view.el.querySelector(".cw-warnings").textContent, /big/);
  // the size on disk (files rounded up to file-system blocks) beside the byte count
  model.remote("estimate", { total_bytes: 2_500_000, disk_bytes: 2_654_208, n_files: 40, seconds: 2.5, warnings: [], parts: [] });
  assert.match(view.el.textContent, /40 files \(2\.65 MB on disk\) · about 2\.5 s to export/);
  model.remote("estimate_error", "plan refused");
  assert.equal(view.el.querySelector(".cw-error").hidden, false);
  view.destroy();
  assert.equal(model.listenerCount(), 0);
});

test("export: progress, errors, result scrolled into view with the viewer, cancel", async () => {
  const model = fakeModel({ status: "idle", progress: {}, error: "", plan_error: "", result: {}, code: "cnb.prepare(...)", out_dir: "exports/pbmc" });
  let flushed = 0, mounted = 0, destroyed = 0;
  const view = exportView(model, { flushPlan: () => { flushed += 1; }, mountViewer: () => { mounted += 1; return { destroy() { destroyed += 1; } }; } });
  document.body.append(view.el, view.resultEl, view.viewerHost);
  let scrolled = 0;
  view.resultEl.scrollIntoView = () => { scrolled += 1; };
  view.el.querySelector("[data-testid=export-button]").click();
  assert.equal(flushed, 1);
  assert.deepEqual(model.sent.at(-1).content, { type: "wizard:export", out_dir: "exports/pbmc" });
  model.remote("status", "running");
  model.remote("progress", { phase: "genes", fraction: 0.5, eta: 2 });
  assert.equal(view.el.querySelector("[data-testid=progress-text]").textContent, "writing genes · 50 % · about 2.0 s left");
  assert.ok(view.el.querySelector("[data-testid=export-button]").disabled);
  view.el.querySelector("[data-testid=cancel-button]").click();
  assert.deepEqual(model.sent.at(-1).content, { type: "wizard:cancel" });
  model.remote("result", { path: "/tmp/exp", n_bytes: 1000, n_files: 3, seconds: 1.5, skipped: ["a"], warnings: ["careful"] });
  model.remote("status", "done");
  assert.equal(view.resultEl.hidden, false);
  assert.match(view.resultEl.textContent, /✓ Exported 1\.00 kB in 3 files, 1\.5 s \(1 existing files/);
  assert.equal(view.resultEl.querySelector("[data-testid=result-path]").textContent, "/tmp/exp");
  assert.equal(mounted, 1);
  assert.equal(scrolled, 1, "result and viewer brought into view once");
  model.remote("progress", { phase: "done", fraction: 1 });
  assert.equal(scrolled, 1);
  Object.defineProperty(globalThis.navigator, "clipboard", { value: { writeText: async () => {} }, configurable: true });
  const copy = [...view.resultEl.querySelectorAll("button")].find((b) => b.textContent === "Copy as code");
  copy.click();
  await settle();
  assert.equal(copy.textContent, "Copied");
  Object.defineProperty(globalThis.navigator, "clipboard", { value: { writeText: async () => { throw new Error("denied"); } }, configurable: true });
  copy.click();
  await settle();
  assert.equal(copy.textContent, "Selected: press Ctrl+C");
  model.remote("error", "Export refused: settings changed");
  assert.equal(view.el.querySelector("[data-testid=export-error]").hidden, false);
  model.remote("plan_error", "bad plan");
  assert.equal(view.el.querySelector("[data-testid=plan-error]").textContent, "bad plan");
  model.remote("status", "running");
  assert.equal(destroyed, 1, "a new export drops the old viewer");
  model.remote("status", "cancelled");
  assert.equal(view.el.querySelector("[data-testid=progress-text]").textContent, "cancelled");
  view.destroy();
  assert.equal(model.listenerCount(), 0);
});

test("the whole wizard renders, summarises the data and cleans up", () => {
  assert.equal(widget.summaryLine(SUMMARY), "700 cells × 765 genes · 3 embeddings · 4 obs columns · 2 expression sources · kNN graph: connectivities · 1 vector field · 200 highly variable genes");
  assert.equal(widget.summaryLine({ n_cells: 1, n_genes: 1, backed: true, embeddings: [{}], obs: [{}], expression: [{}] }), "1 cells × 1 genes (backed) · 1 embedding · 1 obs column · 1 expression source");
  const model = fakeModel({ plan: structuredClone(PLAN), summary: SUMMARY, out_dir: "exports/pbmc", overwrite: false, gene_report: {}, status: "idle", progress: {}, error: "", plan_error: "", result: {}, code: "", estimate: {}, estimate_pending: false, estimate_error: "" });
  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = widget.default.render({ model, el });
  assert.ok(el.querySelector(".cellucid-wizard .cw-main .cw-choices"));
  assert.equal(el.querySelectorAll(".cw-section").length, 7);
  assert.equal(el.querySelector("[data-testid=summary]").textContent, widget.summaryLine(SUMMARY));
  change(el.querySelector("[data-testid=compression]"), "9");
  cleanup();
  assert.equal(model.state.plan.compression, 9, "the pending edit is flushed on close");
  assert.equal(el.children.length, 0);
  assert.equal(model.listenerCount(), 0, "every model listener removed");
});

test("preview choices: highest dimension listed first, 2D shown by default, the current one kept", async () => {
  const { previewKeys, chooseKey, defaultColorKey } = await import("../wizard/preview_view.js");
  const keys = previewKeys({ embeddings: { 2: "X_umap", 3: "X_pca3", 1: "X_line" } });
  assert.deepEqual(keys.map((k) => k.label), ["X_pca3 (3D)", "X_umap (2D)", "X_line (1D)"]);
  assert.equal(chooseKey(keys, ""), "X_umap");
  assert.equal(chooseKey(keys, "X_pca3"), "X_pca3");
  assert.equal(chooseKey(previewKeys({ embeddings: { 3: "X_pca3" } }), "X_umap"), "X_pca3");
  assert.equal(chooseKey([], "X"), "");
  assert.equal(defaultColorKey(SUMMARY), "louvain");
  assert.equal(defaultColorKey({ obs: [SUMMARY.obs[1], SUMMARY.obs[3]] }), "", "identifier-like and > 60 categories skipped");
});
