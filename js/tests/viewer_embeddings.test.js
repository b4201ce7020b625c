// Embedding choice (embeddings.js and its wiring): a compact_v2 export with two 2D
// embeddings (X_umap, the default, and X_tsne) and one 3D one. The "Embedding" select
// shows only where a dimension has several; switching redraws with that embedding's
// points, labels and vectors; requests name non-default embeddings only; the controller,
// the host command, the start-up option and the anywidget trait all choose one.
import assert from "node:assert/strict";
import { test } from "node:test";
import { installDom, installObservers, manualFrames, setSize, settle } from "./helpers/dom.js";
import { fakeModel, fakeRenderer, fakeTransport, smallExport } from "./helpers/fakes.js";

installDom();
installObservers();
const E = await import("../viewer/embeddings.js");
const { createDataCache } = await import("../viewer/data_cache.js");
const { createProgressive, progressiveLoader } = await import("../viewer/progressive.js");
const { initialEmbedding } = await import("../viewer/startup.js");
const { render } = await import("../viewer/widget.js");

const TSNE = new Float32Array([0.9, 0.1, 0.7, 0.3, 0.5, 0.5, 0.3, 0.7, 0.1, 0.9, -0.9, -0.9]);
const TSNE_LABELS = [{ category: "T cells", position: [0.9, 0.1] }];

/** smallExport plus meta.embeddings and replies that depend on the embedding asked for. */
function multiExport() {
  const exp = smallExport();
  const emb = (id, dimension, isDefault) => ({ id, label: id.replace("X_", "").toUpperCase(), dimension, default: isDefault });
  exp.meta.embeddings = { 1: [emb("1d", 1, true)], 2: [emb("X_umap", 2, true), emb("X_tsne", 2, false)], 3: [emb("X_pca", 3, true)] };
  exp.meta.vectors.velocity.embeddings = ["X_pca", "X_umap"]; // not bound to X_tsne
  const louvain = exp.meta.obs.find((o) => o.key === "louvain");
  louvain.centroids_by_embedding = { X_tsne: TSNE_LABELS, X_umap: louvain.centroids[2] };
  const points = exp.replies.points;
  exp.replies.points = (args) => (args.embedding === "X_tsne" ? { header: { dim: 2 }, arrays: { points: TSNE } } : points(args));
  return exp;
}

async function mountMulti(options = {}) {
  const { mountViewer } = await import("../viewer/mount.js");
  const host = document.createElement("div");
  document.body.append(host);
  const transport = fakeTransport(multiExport());
  const renderer = fakeRenderer();
  const frames = manualFrames();
  const states = [];
  const v = mountViewer(host, transport, { createRenderer: () => renderer, frames, onStateChange: (s) => states.push({ ...s }), ...options });
  setSize(host.querySelector(".cnb-canvas"), 300, 200);
  setSize(host.querySelector(".cnb-stage"), 300, 200);
  await v.ready;
  const select = /** @type {HTMLSelectElement} */ (host.querySelector(".cnb-embedding"));
  const wrap = host.querySelector(".cnb-embedding-wrap");
  return { v, host, transport, renderer, frames, states, select, wrap };
}
const pointRequests = (t) => t.requests.filter((r) => r.kind === "points").map((r) => r.args);

// ---------------------------------------------------------------------------- pure rules

test("embeddings of a dimension, their dimension, and what a request names", () => {
  const { meta } = multiExport();
  assert.deepEqual(E.embeddingsOf(meta, 2).map((e) => e.id), ["X_umap", "X_tsne"]);
  assert.deepEqual(E.embeddingsOf({ dimensions: [2] }, 2), [], "a meta without embeddings lists none");
  assert.equal(E.dimensionOf(meta, "X_pca"), 3);
  assert.throws(() => E.dimensionOf(meta, "X_phate"), /embedding 'X_phate' is not in this export; embeddings: 1d, X_umap, X_tsne, X_pca/);
  assert.throws(() => E.dimensionOf({}, "X_umap"), /embeddings: none/);
  assert.equal(E.requestEmbedding(meta, 2, "X_tsne"), "X_tsne");
  assert.equal(E.requestEmbedding(meta, 2, "X_umap"), null, "the default is not named (same request as without ids)");
  assert.equal(E.requestEmbedding(meta, 2, null), null);
});

test("each dimension shows its default until a pick, which is remembered; '' forgets it", () => {
  const { meta } = multiExport();
  const choice = E.createEmbeddingChoice();
  assert.equal(choice.resolve(meta, 2), "X_umap");
  assert.equal(choice.resolve(meta, 2, "X_tsne"), "X_tsne");
  assert.equal(choice.resolve(meta, 3), "X_pca");
  assert.equal(choice.resolve(meta, 2), "X_tsne", "back in 2D: the pick");
  assert.equal(choice.resolve(meta, 2, ""), "X_umap");
  assert.throws(() => choice.resolve(meta, 3, "X_tsne"), /embedding 'X_tsne' is 2D, not 3D/);
  assert.equal(E.createEmbeddingChoice().resolve({ dimensions: [2] }, 2), null, "no ids: the backend's default");
});

test("labels follow the embedding; vector fields only over the embeddings they are bound to", () => {
  const { meta } = multiExport();
  const f = { kind: "categorical", field: "obs:louvain", centroids: meta.obs[1].centroids };
  assert.deepEqual(E.centroidsFor(meta, f, 2, "X_tsne"), TSNE_LABELS);
  assert.equal(E.centroidsFor(meta, f, 2, "X_umap"), meta.obs[1].centroids[2]);
  assert.deepEqual(E.centroidsFor(meta, f, 3, "X_pca"), [], "no centroids for that embedding: none drawn");
  assert.equal(E.centroidsFor(meta, f, 2, null), meta.obs[1].centroids[2], "without ids: per dimension");
  assert.equal(E.centroidsFor(meta, { kind: "continuous", field: "obs:score" }, 2, "X_tsne"), null);
  assert.equal(E.centroidsFor(meta, null, 2, "X_tsne"), null);
  assert.ok(E.vectorsBound(meta.vectors.velocity, "X_umap"));
  assert.ok(!E.vectorsBound(meta.vectors.velocity, "X_tsne"));
  assert.ok(E.vectorsBound({ dims: [2] }, "X_tsne"), "an older meta binds every embedding");
});

test("start-up embedding: it sets the dimension; an unknown one is an error and the default stays", () => {
  const { meta } = multiExport();
  assert.deepEqual(initialEmbedding(meta, { embedding: "X_tsne" }, 3), { dim: 2, embedding: "X_tsne", error: null });
  assert.deepEqual(initialEmbedding(meta, {}, 3), { dim: 3, embedding: null, error: null });
  const bad = initialEmbedding(meta, { embedding: "tsne" }, 3);
  assert.equal(bad.dim, 3);
  assert.match(bad.error.message, /embedding 'tsne' is not in this export; embeddings: 1d, X_umap, X_tsne, X_pca/);
});

// ---------------------------------------------------------------------------- loading

test("the data cache keeps each embedding apart and names only non-default ones", async () => {
  const transport = fakeTransport(multiExport());
  const data = createDataCache(transport, { timings: {} });
  const umap = await data.points(2);
  const tsne = await data.points(2, "X_tsne");
  assert.deepEqual(Array.from(tsne.positions), Array.from(TSNE));
  assert.notDeepEqual(Array.from(umap.positions), Array.from(TSNE));
  await data.points(2, "X_tsne"); // cached
  await data.vectors("velocity", 3, "X_pca");
  await data.vectors("velocity", 3);
  assert.deepEqual(transport.requests.map((r) => r.args), [
    { dim: 2 }, { dim: 2, embedding: "X_tsne" }, { field: "velocity", dim: 3, embedding: "X_pca" }, { field: "velocity", dim: 3 },
  ]);
});

test("progressive streams name the embedding and restart when it changes", async () => {
  const exp = multiExport();
  exp.replies.points = ({ dim, start, stop }) => ({ header: { dim }, arrays: { points: new Float32Array((stop - start) * dim) } });
  exp.replies.vectors = ({ dim, stop }) => ({ header: {}, arrays: { vectors: new Float32Array(stop * dim) } });
  const transport = fakeTransport(exp);
  const prog = createProgressive(transport, { timings: {} }, { firstFrameCells: 2, chunkCells: 2 });
  prog.enable({ ...exp.meta, order: { kind: "feistel-lowbias32", seed: 1, rounds: 4 } });
  const loader = progressiveLoader(prog, createDataCache(transport, { timings: {} }));
  const a = await loader.points(2, "X_tsne");
  assert.equal(await loader.points(2, "X_tsne"), a, "same embedding: same stream");
  await a.done;
  const b = await loader.points(2, null);
  assert.notEqual(b, a);
  await b.done;
  await loader.vectors("velocity", 2, "X_umap");
  const pts = pointRequests(transport);
  assert.deepEqual(pts.slice(0, 3).map((r) => [r.embedding, r.start, r.stop, r.order]),
    [["X_tsne", 0, 2, "permuted"], ["X_tsne", 2, 4, "permuted"], ["X_tsne", 4, 6, "permuted"]]);
  assert.ok(pts.slice(3).every((r) => !("embedding" in r)), "the default embedding is not named");
  assert.deepEqual(transport.requests.at(-1).args, { field: "velocity", dim: 2, embedding: "X_umap", order: "permuted", start: 0, stop: 6 });
});

// ---------------------------------------------------------------------------- the viewer

test("the Embedding select shows only where a dimension has several, and switching redraws", async () => {
  const { v, transport, renderer, frames, states, select, wrap, host } = await mountMulti();
  assert.equal(v.state.dim, 2);
  assert.equal(v.state.embedding, "X_umap");
  assert.ok(!wrap.classList.contains("cnb-absent"), "2D has two embeddings: the select is shown");
  assert.match(wrap.textContent, /^Embedding/);
  assert.deepEqual([...select.options].map((o) => [o.value, o.textContent]), [["X_umap", "UMAP"], ["X_tsne", "TSNE"]]);
  assert.equal(select.value, "X_umap");
  assert.ok(wrap.compareDocumentPosition(host.querySelector(".cnb-dims")) & Node.DOCUMENT_POSITION_PRECEDING, "next to the dimension control");
  frames.run();
  const shown = () => [...host.querySelectorAll(".cnb-label")].filter((l) => l.style.display !== "none").map((l) => l.textContent);
  assert.equal(shown().length, 3, "UMAP: three centroid labels");
  const before = renderer.draws.length;
  select.value = "X_tsne";
  select.dispatchEvent(new Event("change"));
  await settle();
  assert.deepEqual(pointRequests(transport).at(-1), { dim: 2, embedding: "X_tsne" });
  assert.deepEqual(Array.from(renderer.positions), Array.from(TSNE), "the new embedding's points are on the GPU");
  assert.equal(v.state.embedding, "X_tsne");
  assert.deepEqual(states.at(-1), { ...states.at(-1), dimension: 2, embedding: "X_tsne" });
  frames.run();
  assert.ok(renderer.draws.length > before, "redrawn");
  assert.deepEqual(shown(), ["T cells"], "labels at the t-SNE centroids");
  await v.setDimension(3);
  assert.ok(wrap.classList.contains("cnb-absent"), "3D has one embedding: hidden");
  assert.equal(v.state.embedding, "X_pca");
  await v.setDimension(2);
  assert.equal(v.state.embedding, "X_tsne", "the 2D pick is remembered");
  assert.equal(select.value, "X_tsne");
  v.destroy();
});

test("controller.setEmbedding switches dimension when needed; an unknown id shows an error naming the known ones", async () => {
  const { v, host, transport, states } = await mountMulti({ dimension: 3 });
  assert.equal(v.state.dim, 3);
  await v.setEmbedding("X_tsne");
  assert.equal(v.state.dim, 2);
  assert.equal(v.state.embedding, "X_tsne");
  assert.deepEqual([states.at(-1).dimension, states.at(-1).embedding], [2, "X_tsne"]);
  await v.setEmbedding("");
  assert.equal(v.state.embedding, "X_umap", "'' is the dimension's default");
  const n = transport.requests.length;
  await v.setEmbedding("X_phate");
  assert.match(host.querySelector(".cnb-error").textContent, /embedding 'X_phate' is not in this export; embeddings: 1d, X_umap, X_tsne, X_pca/);
  assert.equal(transport.requests.length, n, "nothing requested");
  assert.equal(v.state.embedding, "X_umap", "the view stays");
  transport.command("set_embedding", { embedding: "X_pca" });
  await settle();
  assert.deepEqual([v.state.dim, v.state.embedding], [3, "X_pca"]);
  v.destroy();
});

test("vectors follow the embedding and are not drawn over one they are not bound to", async () => {
  const { v, transport, renderer } = await mountMulti({ showVectors: true });
  await v.setShowVectors(true);
  assert.ok(renderer.arrows, "X_umap: bound");
  await v.setEmbedding("X_tsne");
  assert.equal(renderer.arrows, null, "X_tsne: no arrows");
  await v.setEmbedding("X_pca");
  await settle();
  assert.ok(renderer.arrows);
  const vec = transport.requests.filter((r) => r.kind === "vectors").map((r) => r.args);
  assert.deepEqual(vec, [{ field: "velocity", dim: 2 }, { field: "velocity", dim: 3 }], "defaults are not named; none for X_tsne");
  v.destroy();
});

test("start-up with an embedding shows it (and its dimension) from the first request", async () => {
  const { v, transport, states, select } = await mountMulti({ embedding: "X_tsne", dimension: 3 });
  assert.deepEqual(pointRequests(transport), [{ dim: 2, embedding: "X_tsne" }], "one points request, for that embedding");
  assert.deepEqual([v.state.dim, v.state.embedding, select.value], [2, "X_tsne", "X_tsne"]);
  assert.deepEqual(states.map((s) => s.embedding), ["X_tsne"], "reported once, at the end of the start-up");
  v.destroy();
});

test("anywidget: the embedding trait chooses, the viewer's choice is written back", async () => {
  const model = fakeModel({ dimension: 3, embedding: "", color_field: "", point_size: 0, show_edges: false, show_vectors: false, height: 400, timeout_ms: 1000 });
  const transport = fakeTransport(multiExport());
  const el = document.createElement("div");
  document.body.append(el);
  let controller = null;
  const { mountViewer } = await import("../viewer/mount.js");
  const cleanup = render({ model, el }, {
    createTransport: () => transport,
    mount: (host, t, options) => (controller = mountViewer(host, t, { ...options, createRenderer: fakeRenderer, frames: manualFrames() })),
  });
  await controller.ready;
  await settle();
  assert.equal(model.state.embedding, "X_pca", "the embedding shown is reported");
  model.remote("embedding", "X_tsne");
  await settle();
  assert.deepEqual([controller.state.dim, controller.state.embedding], [2, "X_tsne"]);
  assert.deepEqual([model.state.dimension, model.state.embedding], [2, "X_tsne"]);
  const sets = model.sets.length;
  await settle();
  assert.equal(model.sets.length, sets, "no echo loop");
  cleanup();
});
