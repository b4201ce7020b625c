// Gene id type-ahead, in the browser: the kernel sends every id once (one
// binary message) and each key stroke is answered here without a round trip.

/** Decode the `wizard:gene_ids` buffer (UTF-8 JSON list of strings). */
export function decodeGeneIds(buffer) {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer.buffer ? buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) : buffer);
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** Build a search index: ids plus their lower-case forms. */
export function createGeneIndex(ids) {
  return { ids, lower: ids.map((g) => g.toLowerCase()), set: new Set(ids) };
}

/**
 * Up to `limit` ids matching `query` (case-insensitive): exact match first,
 * then prefix matches (shortest first), then substring matches.
 */
export function searchGenes(index, query, limit = 20) {
  const q = String(query || "").trim().toLowerCase();
  if (!q) return [];
  const exact = [];
  const prefix = [];
  const inner = [];
  const { ids, lower } = index;
  for (let i = 0; i < lower.length; i += 1) {
    const pos = lower[i].indexOf(q);
    if (pos < 0) continue;
    if (lower[i].length === q.length) exact.push(i);
    else if (pos === 0) prefix.push(i);
    else if (inner.length < limit) inner.push(i);
  }
  prefix.sort((a, b) => lower[a].length - lower[b].length || (lower[a] < lower[b] ? -1 : 1));
  return [...exact, ...prefix, ...inner].slice(0, limit).map((i) => ids[i]);
}

/** Split a pasted list (commas, spaces, tabs, new lines, semicolons) into unique ids, in order. */
export function parseGeneList(text) {
  const seen = new Set();
  const out = [];
  for (const token of String(text || "").split(/[\s,;]+/)) {
    const id = token.trim().replace(/^["']|["']$/g, "");
    if (id && !seen.has(id)) {
      seen.add(id);
      out.push(id);
    }
  }
  return out;
}
