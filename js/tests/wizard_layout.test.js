// The wizard's advanced "File layout" choice (Output section): options from the model's
// layout_choices, the plan's layout ("key" when absent), the chosen note below it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { installDom } from "./helpers/dom.js";
import { fakeModel } from "./helpers/fakes.js";

installDom();
const { createPlanDraft } = await import("../wizard/plan_draft.js");
const { outputSection } = await import("../wizard/sections.js");

const CHOICES = [
  { value: "key", label: "Key-named (default)", note: "Files named after fields and genes." },
  { value: "index", label: "Index-named", note: "Files numbered 0..N-1, as cellucid 0.9.2 writes them." },
];

function setup(plan = { dataset_name: "pbmc" }) {
  const model = fakeModel({ plan, out_dir: "exports/pbmc", overwrite: false, layout_choices: CHOICES });
  const draft = createPlanDraft(model, { timers: { set: () => 1, clear: () => {} } });
  const section = outputSection(draft, model);
  draft.onChange(section.update);
  section.update(draft.plan);
  document.body.append(section.el);
  const sel = /** @type {HTMLSelectElement} */ (section.el.querySelector("[data-testid=layout]"));
  const note = section.el.querySelector("[data-testid=layout-note]");
  return { model, draft, section, sel, note };
}

test("file layout sits in an Advanced fold of the Output section, labelled, options from layout_choices", () => {
  const { section, sel } = setup();
  const fold = sel.closest("details");
  assert.ok(fold && fold !== section.el, "inside its own fold, not the section itself");
  assert.equal(fold.querySelector("summary").textContent, "Advanced");
  assert.equal(fold.open, false, "advanced choices start folded");
  assert.equal(section.el.querySelector(`label[for="${sel.id}"]`).textContent, "File layout");
  assert.deepEqual([...sel.options].map((o) => [o.value, o.textContent]),
    [["key", "Key-named (default)"], ["index", "Index-named"]]);
  section.destroy();
});

test("a plan without layout shows the key layout and its note", () => {
  const { sel, note, section } = setup();
  assert.equal(sel.value, "key");
  assert.equal(note.textContent, "Files named after fields and genes.");
  section.destroy();
});

test("choosing a layout edits the plan through the draft and shows that choice's note", () => {
  const { model, draft, sel, note, section } = setup();
  sel.value = "index";
  sel.dispatchEvent(new Event("change", { bubbles: true }));
  assert.equal(draft.plan.layout, "index");
  assert.equal(draft.plan.dataset_name, "pbmc", "the rest of the plan is kept");
  assert.equal(note.textContent, "Files numbered 0..N-1, as cellucid 0.9.2 writes them.");
  assert.equal(model.state.plan.layout, undefined, "debounced: nothing sent yet");
  draft.flush();
  assert.equal(model.state.plan.layout, "index");
  section.destroy();
});

test("the kernel's plan wins: its layout is shown, an absent one is the key layout", () => {
  const { model, sel, note, section } = setup({ layout: "index" });
  assert.equal(sel.value, "index");
  model.remote("plan", { dataset_name: "pbmc", layout: "key" });
  assert.equal(sel.value, "key");
  model.remote("plan", { dataset_name: "pbmc", layout: "index" });
  assert.equal(note.textContent, "Files numbered 0..N-1, as cellucid 0.9.2 writes them.");
  model.remote("plan", { dataset_name: "pbmc" });
  assert.equal(sel.value, "key");
  assert.equal(note.textContent, "Files named after fields and genes.");
  section.destroy();
});

test("without layout_choices the select is empty and the note blank (no error)", () => {
  const model = fakeModel({ plan: {}, out_dir: "x", overwrite: false });
  const draft = createPlanDraft(model, { timers: { set: () => 1, clear: () => {} } });
  const section = outputSection(draft, model);
  section.update(draft.plan);
  assert.equal(section.el.querySelector("[data-testid=layout]").options.length, 0);
  assert.equal(section.el.querySelector("[data-testid=layout-note]").textContent, "");
  section.destroy();
});
