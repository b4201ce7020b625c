// Gene id type-ahead, in the browser: the kernel sends every id once (one
// binary message) and each key stroke is answered here without a round trip, with the
// search shared with the viewer (common/gene_search.js).
export { createGeneIndex, pickGene, searchGenes } from "../common/gene_search.js";

/** Decode the `wizard:gene_ids` buffer (UTF-8 JSON list of strings). */
export function decodeGeneIds(buffer) {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer.buffer ? buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) : buffer);
  return JSON.parse(new TextDecoder().decode(bytes));
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
