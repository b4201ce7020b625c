// The selected cells as CSV: the cell index and the value of the field shown.
import { dequantize } from "../viewer/decode.js";

/** Quote a CSV cell when it needs it; text that a spreadsheet would run as a formula gets a leading '. */
export function csvCell(value) {
  if (value === null || value === undefined) return "";
  let s = String(value);
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Values of one field for some cells, decoded (category names, numbers; "" when missing).
 * @param {{header: any, arrays: {values: any}}} reply  the transport's obs/gene answer
 * @param {any} fieldMeta  the meta entry of an obs field (null for genes)
 * @param {Uint32Array|number[]} indices
 * @returns {(string|number|null)[]}
 */
export function fieldValues(reply, fieldMeta, indices) {
  const values = reply.arrays.values;
  const h = reply.header;
  const out = new Array(indices.length);
  if (fieldMeta && fieldMeta.kind === "categorical") {
    const cats = fieldMeta.categories;
    for (let i = 0; i < indices.length; i++) { const c = values[indices[i]]; out[i] = c < cats.length ? cats[c] : null; }
    return out;
  }
  const quantized = h.bits === 8 || h.bits === 16;
  for (let i = 0; i < indices.length; i++) {
    const v = quantized ? dequantize(values[indices[i]], h.min, h.max, h.bits) : values[indices[i]];
    out[i] = Number.isFinite(v) ? Number(v.toPrecision(7)) : null;
  }
  return out;
}

/**
 * CSV text of a selection.
 * @param {Uint32Array|number[]} indices
 * @param {string} label   the field's name ("" when no field is shown)
 * @param {(string|number|null)[]|null} values
 */
export function selectionCsv(indices, label, values) {
  const lines = [label ? `cell_index,${csvCell(label)}` : "cell_index"];
  for (let i = 0; i < indices.length; i++) lines.push(values ? `${indices[i]},${csvCell(values[i])}` : String(indices[i]));
  return `${lines.join("\n")}\n`;
}
