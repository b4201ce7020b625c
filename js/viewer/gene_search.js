// The viewer's gene box over all exported genes (names only; values load on demand when
// picked). Ranking and Enter come from the shared search in common/gene_search.js.
import { createGeneIndex, pickGene, searchGenes } from "../common/gene_search.js";
import { h } from "./ui.js";

export const MAX_SUGGESTIONS = 30;

/**
 * Wire the search input and its suggestion list.
 * @param {{gene: HTMLInputElement, geneList: HTMLElement}} ui
 * @param {() => string[]} getGenes
 * @param {(gene: string) => void} onPick
 * @param {(target: EventTarget, type: string, fn: (ev: any) => void) => void} listen
 */
export function attachGeneSearch(ui, getGenes, onPick, listen) {
  let index = createGeneIndex([]);
  const current = () => {
    const genes = getGenes();
    if (index.ids !== genes) index = createGeneIndex(genes);
    return index;
  };
  const hide = () => ui.geneList.classList.remove("cnb-visible");
  const show = () => {
    const idx = current(); // an empty box lists the first genes
    const matches = ui.gene.value.trim() ? searchGenes(idx, ui.gene.value, MAX_SUGGESTIONS) : idx.ids.slice(0, MAX_SUGGESTIONS);
    ui.geneList.replaceChildren(...matches.map((g) => h("div", { class: "cnb-gene-item", role: "option", "data-gene": g, text: g })));
    ui.geneList.classList.toggle("cnb-visible", matches.length > 0);
  };
  listen(ui.gene, "input", show);
  listen(ui.gene, "focus", show);
  listen(ui.gene, "blur", () => setTimeout(hide, 150));
  listen(ui.gene, "keydown", (ev) => {
    if (ev.key === "Escape") { hide(); return; }
    if (ev.key !== "Enter") return;
    const gene = pickGene(current(), ui.gene.value);
    if (gene) { hide(); onPick(gene); }
  });
  listen(ui.geneList, "mousedown", (ev) => {
    const item = ev.target.closest(".cnb-gene-item");
    if (!item) return;
    ev.preventDefault(); // keep focus: the blur handler would hide the list first
    hide();
    onPick(item.dataset.gene);
  });
}
