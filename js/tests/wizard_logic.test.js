// Unit tests of the wizard's front-end logic (no DOM): plan draft debounce with a
// fake anywidget model, gene type-ahead, preview decoding, number formatting.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createPlanDraft } from "../wizard/plan_draft.js";
import { createGeneIndex, decodeGeneIds, parseGeneList, searchGenes } from "../wizard/gene_search.js";
import { categoryColors, continuousColor, decodePreview } from "../wizard/preview.js";
import { formatBytes, formatSeconds, partsByGroup } from "../wizard/format.js";
import { progressText } from "../wizard/export_view.js";
import { fakeModel } from "./helpers/fakes.js";

function manualTimers() {
  const pending = new Map();
  let next = 1;
  return {
    set: (fn) => { const id = next++; pending.set(id, fn); return id; },
    clear: (id) => pending.delete(id),
    runAll: () => { const fns = [...pending.values()]; pending.clear(); fns.forEach((f) => f()); },
    get size() { return pending.size; },
  };
}

test("plan edits are debounced into one trait update", () => {
  const model = fakeModel({ plan: { obs_keys: ["a", "b", "c"], compression: 6 } });
  const timers = manualTimers();
  const seen = [];
  const draft = createPlanDraft(model, { timers, onChange: (p) => seen.push(p.obs_keys.length) });
  draft.edit((p) => { p.obs_keys = ["a", "b"]; });
  draft.edit((p) => { p.obs_keys = ["a"]; });
  draft.edit((p) => { p.compression = 9; });
  assert.equal(model.sets.length, 0, "nothing sent before the pause");
  assert.deepEqual(seen, [2, 1, 1], "the UI sees each edit at once");
  assert.equal(timers.size, 1);
  timers.runAll();
  assert.equal(model.sets.length, 1);
  assert.deepEqual(model.sets[0][1], { obs_keys: ["a"], compression: 9 });
  assert.equal(model.saves, 1);
  draft.edit((p) => { p.compression = 1; }, { immediate: true });
  assert.equal(model.sets.length, 2);
  assert.equal(model.state.plan.compression, 1);
});

test("a plan from Python replaces the draft unless a newer edit waits", () => {
  const model = fakeModel({ plan: { compression: 6 } });
  const timers = manualTimers();
  const draft = createPlanDraft(model, { timers });
  model.remote("plan", { compression: 3 });
  assert.equal(draft.plan.compression, 3);
  draft.edit((p) => { p.compression = 9; });
  model.remote("plan", { compression: 3 }); // e.g. the echo of an older state
  assert.equal(draft.plan.compression, 9, "the user's pending edit wins");
  draft.flush();
  assert.equal(model.state.plan.compression, 9);
  draft.destroy();
  assert.equal(model.listenerCount(), 0, "destroy removes its listeners");
});

test("gene search ranks exact, then prefix, then substring matches", () => {
  const ids = ["CD3E", "CD3", "ACD3X", "CD34", "MS4A1", "cd3d"];
  const idx = createGeneIndex(ids);
  assert.deepEqual(searchGenes(idx, "cd3"), ["CD3", "CD3E", "CD34", "cd3d", "ACD3X"]); // prefixes keep the list order (shared search)
  assert.deepEqual(searchGenes(idx, "ms4"), ["MS4A1"]);
  assert.deepEqual(searchGenes(idx, "  "), []);
  assert.equal(searchGenes(idx, "c", 2).length, 2);
  const many = createGeneIndex(Array.from({ length: 30000 }, (_, i) => `GENE${i}`));
  const t0 = performance.now();
  const hits = searchGenes(many, "gene2999", 10);
  assert.ok(performance.now() - t0 < 50, "30k ids searched per key stroke in < 50 ms");
  assert.equal(hits[0], "GENE2999");
});

test("gene id buffer and pasted lists decode", () => {
  const buf = new TextEncoder().encode(JSON.stringify(["A", "Bé", "C"]));
  assert.deepEqual(decodeGeneIds(new DataView(buf.buffer)), ["A", "Bé", "C"]);
  assert.deepEqual(decodeGeneIds(buf.buffer), ["A", "Bé", "C"]);
  assert.deepEqual(parseGeneList("CD3E, MS4A1\nNKG7;CD3E\t'LYZ'"), ["CD3E", "MS4A1", "NKG7", "LYZ"]);
});

test("preview messages decode into typed arrays and are size-checked", () => {
  const pos = new Float32Array([0, 0, 1, -1, -1, 1]);
  const codes = new Uint16Array([0, 1, 65535]);
  const p = decodePreview({ n: 3, kind: "categorical", categories: ["a", "b"] }, [new DataView(pos.buffer), new DataView(codes.buffer)]);
  assert.equal(p.positions[2], 1);
  assert.equal(p.codes[2], 65535);
  assert.throws(() => decodePreview({ n: 4, kind: "none" }, [pos.buffer]), /coordinates/);
  assert.deepEqual(categoryColors({ categories: ["a", "b"], colors: ["#111111", "#222222"] }), ["rgba(17, 17, 17, 1)", "rgba(34, 34, 34, 1)"]);
  assert.equal(categoryColors({ categories: ["a", "b"], colors: null }).length, 2);
  assert.equal(continuousColor(255), "#aaaaaa");
  assert.equal(continuousColor(0), "rgb(68,1,84)");
  assert.equal(continuousColor(254), "rgb(253,231,37)");
});

test("sizes, times and progress read well", () => {
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(1_500_000), "1.50 MB");
  assert.equal(formatBytes(null), "–");
  assert.equal(formatSeconds(0.25), "250 ms");
  assert.equal(formatSeconds(75), "1 min 15 s");
  const g = partsByGroup([
    { part: "obs", name: "a", bytes: 10, files: 1, exact: true },
    { part: "genes", name: "g", bytes: 100, files: 5, exact: false },
    { part: "obs", name: "b", bytes: 5, files: 1, exact: true },
  ]);
  assert.deepEqual(g.map((x) => [x.part, x.bytes, x.files, x.exact]), [["genes", 100, 5, false], ["obs", 15, 2, true]]);
  assert.equal(progressText({ phase: "genes", fraction: 0.423, eta: 3 }, "running"), "writing genes · 42 % · about 3.0 s left");
  assert.equal(progressText({ phase: "finalize", fraction: 0.999 }, "done"), "done · 100 %");
});
