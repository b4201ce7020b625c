// The one gene search of the front-end, used by the wizard's "Add genes" box and the
// viewer's gene box. Ranking, case-insensitive: exact matches, then prefix matches,
// then substring matches; within each group the genes keep their order in the list
// (stable), so "CD3" lists CD3E before CD33 when the export lists it first. Enter picks
// the first ranked gene.

/**
 * @typedef {{ids: string[], lower: string[], set: Set<string>}} GeneIndex
 */

/**
 * A search index: ids plus their lower-case forms (built once per gene list).
 * @param {string[]} ids
 * @returns {GeneIndex}
 */
export function createGeneIndex(ids) {
  return { ids, lower: ids.map((g) => String(g).toLowerCase()), set: new Set(ids) };
}

/**
 * Up to `limit` ids matching `query`, ranked: exact (case-sensitive exact first), prefix, substring.
 * A blank query matches nothing.
 * @param {GeneIndex} index
 * @param {string} query
 * @param {number} [limit=20]
 * @returns {string[]}
 */
export function searchGenes(index, query, limit = 20) {
  const raw = String(query ?? "").trim();
  const q = raw.toLowerCase();
  if (!q) return [];
  const exact = [], prefix = [], inner = [];
  const { ids, lower } = index;
  for (let i = 0; i < lower.length; i += 1) {
    const pos = lower[i].indexOf(q);
    if (pos < 0) continue;
    if (lower[i].length === q.length) {
      if (ids[i] === raw) exact.unshift(i); else exact.push(i);
    } else if (pos === 0) {
      if (prefix.length < limit) prefix.push(i);
    } else if (inner.length < limit) inner.push(i);
  }
  return [...exact, ...prefix, ...inner].slice(0, limit).map((i) => ids[i]);
}

/**
 * The gene Enter picks: the first ranked match, or undefined when nothing matches.
 * @param {GeneIndex} index
 * @param {string} query
 * @returns {string|undefined}
 */
export function pickGene(index, query) {
  return searchGenes(index, query, 1)[0];
}
