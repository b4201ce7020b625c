// Gene search box over all exported genes (names only; values load on demand when picked).
import { h } from "./ui.js";

/**
 * Genes matching a query: prefix matches first, then substring matches, case-insensitive.
 * @param {string[]} genes
 * @param {string} query
 * @param {number} [limit=30]
 */
export function geneMatches(genes, query, limit = 30) {
  if (!query) return genes.slice(0, limit);
  const lq = query.toLowerCase(), starts = [], contains = [];
  for (const g of genes) {
    const lg = g.toLowerCase();
    if (lg.startsWith(lq)) { starts.push(g); if (starts.length >= limit) break; }
    else if (contains.length < limit && lg.includes(lq)) contains.push(g);
  }
  return starts.concat(contains).slice(0, limit);
}

/** The gene for Enter: exact, then case-insensitive, then the first match (or undefined). */
export function pickGene(genes, query) {
  const q = query.trim();
  return genes.find((g) => g === q) || genes.find((g) => g.toLowerCase() === q.toLowerCase()) || geneMatches(genes, q, 1)[0];
}

/**
 * Wire the search input and its suggestion list.
 * @param {{gene: HTMLInputElement, geneList: HTMLElement}} ui
 * @param {() => string[]} getGenes
 * @param {(gene: string) => void} onPick
 * @param {(target, type, fn) => void} listen
 */
export function attachGeneSearch(ui, getGenes, onPick, listen) {
  const hide = () => ui.geneList.classList.remove("cnb-visible");
  const show = () => {
    const matches = geneMatches(getGenes(), ui.gene.value.trim());
    ui.geneList.replaceChildren(...matches.map((g) => h("div", { class: "cnb-gene-item", role: "option", "data-gene": g, text: g })));
    ui.geneList.classList.toggle("cnb-visible", matches.length > 0);
  };
  listen(ui.gene, "input", show);
  listen(ui.gene, "focus", show);
  listen(ui.gene, "blur", () => setTimeout(hide, 150));
  listen(ui.gene, "keydown", (ev) => {
    if (ev.key !== "Enter") return;
    const gene = pickGene(getGenes(), ui.gene.value);
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
