// The wizard's Genes section: expression source and id column, presets (sent to the
// kernel), a type-ahead over every gene id (the shared search: exact, prefix, substring;
// Enter adds the first ranked id), a pasted list, and the chosen genes as chips.
import { field, h, select, setChildren, uid } from "./dom.js";
import { createGeneIndex, decodeGeneIds, parseGeneList, pickGene, searchGenes } from "./gene_search.js";
import { addGene as addGeneTo, geneReportText, genesBadge, genesInfo, moveActive as nextActive, removeGene, setExpressionSource } from "./plan_edits.js";
import { section } from "./sections.js";

export const MAX_SUGGESTIONS = 12;

export function genesSection(summary, draft, model) {
  let index = null;
  let requested = false;
  let waiting = [];
  // where genes come from when the plan has none ("No genes" sets expression_source to null)
  let lastSource = draft.plan.expression_source || (summary.expression || [])[0]?.name || "X";
  const status = h("div", { class: "cw-hint", role: "status", "aria-live": "polite" });

  function withIndex(cb) {
    if (index) return cb(index);
    waiting.push(cb);
    if (!requested) {
      requested = true;
      status.textContent = "loading gene ids…";
      model.send({ type: "wizard:gene_ids" });
    }
    return undefined;
  }
  function onMsg(msg, buffers) {
    if (!msg || msg.type !== "wizard:gene_ids") return;
    index = createGeneIndex(decodeGeneIds(buffers[0]));
    status.textContent = `${index.ids.length.toLocaleString("en-US")} gene ids (${msg.column})`;
    const cbs = waiting;
    waiting = [];
    for (const cb of cbs) cb(index);
  }
  model.on("msg:custom", onMsg);

  // source and id column
  const sources = (summary.expression || []).map((e) => ({ value: e.name, label: `${e.name} (${e.value_hint}, ${e.storage})` }));
  const sourceSel = select([{ value: "", label: "no gene expression" }].concat(sources), draft.plan.expression_source ?? "", (v) => {
    index = null;
    requested = false;
    draft.edit((p) => setExpressionSource(p, v));
  }, { "data-testid": "expression-source" });
  const idColSel = select((summary.gene_id_columns || ["index"]).map((c) => ({ value: c, label: c === "index" ? "var index" : c })), draft.plan.var_gene_id_column, (v) => {
    index = null;
    requested = false;
    draft.edit((p) => { p.var_gene_id_column = v; p.genes = null; });
  });

  // presets
  const presetRow = h("div", { class: "cw-row", role: "group", "aria-label": "Gene presets" });
  const preset = (label, content, props = {}) => h("button", { type: "button", class: "cw-btn cw-btn-small", onclick: () => model.send({ type: "wizard:genes", ...content() }), ...props }, label);
  const hvgCount = summary.var_flags?.highly_variable;
  const topN = h("input", { type: "number", min: "1", step: "1", value: "200", class: "cw-num", "aria-label": "Number of top genes" });
  const topBy = select([{ value: "variance", label: "by variance" }, { value: "mean", label: "by mean" }], "variance", () => {}, { "aria-label": "Rank top genes by" });
  presetRow.append(...[
    hvgCount ? preset(`Highly variable (${hvgCount})`, () => ({ mode: "hvg" })) : null,
    preset("All genes", () => ({ mode: "all" })),
    preset("No genes", () => ({ mode: "none" })),
    h("span", { class: "cw-sep" }),
    preset("Top", () => ({ mode: "top", n: Number(topN.value) || 100, by: topBy.value })),
    topN,
    topBy,
  ].filter(Boolean));

  // type-ahead search
  const listId = uid("cw-genes-found");
  const search = h("input", {
    type: "search", class: "cw-text", placeholder: "Search gene ids…", autocomplete: "off",
    role: "combobox", "aria-expanded": "false", "aria-controls": listId, "aria-autocomplete": "list",
    "data-testid": "gene-search",
  });
  const found = h("ul", { class: "cw-suggestions", id: listId, role: "listbox", "aria-label": "Matching genes" });
  let active = -1;
  let matches = [];
  function addGene(id) {
    draft.edit((p) => addGeneTo(p, id, lastSource));
    search.value = "";
    renderMatches([]);
    search.focus();
  }
  function renderMatches(list) {
    matches = list;
    active = list.length ? 0 : -1;
    search.setAttribute("aria-expanded", list.length ? "true" : "false");
    setChildren(found, list.map((g, i) => h("li", {
      role: "option", id: `${listId}-${i}`, "aria-selected": i === active ? "true" : "false", class: i === active ? "cw-active" : "",
      onmousedown: (e) => { e.preventDefault(); addGene(g); },
    }, g)));
    if (active >= 0) search.setAttribute("aria-activedescendant", `${listId}-${active}`);
    else search.removeAttribute("aria-activedescendant");
  }
  function moveActive(delta) {
    if (!matches.length) return;
    active = nextActive(active, delta, matches.length);
    [...found.children].forEach((li, i) => {
      li.classList.toggle("cw-active", i === active);
      li.setAttribute("aria-selected", i === active ? "true" : "false");
    });
    search.setAttribute("aria-activedescendant", `${listId}-${active}`);
  }
  search.addEventListener("focus", () => withIndex(() => {}));
  search.addEventListener("input", () => withIndex((idx) => renderMatches(searchGenes(idx, search.value, MAX_SUGGESTIONS))));
  search.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") { e.preventDefault(); moveActive(1); }
    else if (e.key === "ArrowUp") { e.preventDefault(); moveActive(-1); }
    else if (e.key === "Enter") {
      e.preventDefault();
      // the highlighted entry (the first ranked one unless the arrows moved it)
      const id = active >= 0 && matches[active] ? matches[active] : index ? pickGene(index, search.value) : undefined;
      if (id) addGene(id);
    } else if (e.key === "Escape") renderMatches([]);
  });
  search.addEventListener("blur", () => setTimeout(() => renderMatches([]), 150));

  // paste a list
  const paste = h("textarea", { class: "cw-text", rows: "2", placeholder: "CD3E, MS4A1, NKG7 …" });
  const pasteBtn = h("button", { type: "button", class: "cw-btn cw-btn-small", onclick: () => model.send({ type: "wizard:genes", mode: "list", ids: parseGeneList(paste.value) }) }, "Use this list");
  const report = h("div", { class: "cw-hint", role: "status", "aria-live": "polite" });

  // chosen genes
  const chips = h("ul", { class: "cw-chips", role: "list", "aria-label": "Chosen genes" });
  const chosenInfo = h("div", { class: "cw-hint" });

  const body = h("div", {},
    h("div", { class: "cw-grid2" }, field("Expression source", sourceSel), field("Gene id column", idColSel)),
    presetRow,
    h("div", { class: "cw-combo" }, field("Add genes by id", search), found),
    status,
    field("Or paste a list", paste),
    h("div", { class: "cw-row" }, pasteBtn),
    report,
    chosenInfo,
    chips);
  const s = section("Genes", body);

  function renderChips(plan) {
    chosenInfo.textContent = genesInfo(plan, summary);
    const genes = plan.expression_source && Array.isArray(plan.genes) ? plan.genes : [];
    setChildren(chips, genes.slice(0, 60).map((g) => h("li", { class: "cw-chip" }, g,
      h("button", { type: "button", class: "cw-chip-x", "aria-label": `Remove ${g}`, onclick: () => draft.edit((p) => removeGene(p, g)) }, "×"))));
  }
  function renderReport() {
    report.textContent = geneReportText(model.get("gene_report") || {});
  }
  model.on("change:gene_report", renderReport);
  renderReport();

  return {
    el: s.el,
    update(plan) {
      if (plan.expression_source && plan.expression_source !== lastSource) {
        lastSource = plan.expression_source;
        index = null; // other source, other ids
        requested = false;
      }
      sourceSel.value = plan.expression_source ?? "";
      idColSel.value = plan.var_gene_id_column;
      idColSel.disabled = !plan.expression_source;
      renderChips(plan);
      s.badgeEl.textContent = genesBadge(plan);
    },
    destroy() {
      model.off("change:gene_report", renderReport);
      model.off("msg:custom", onMsg);
    },
  };
}

