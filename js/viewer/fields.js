// Colour field strings ("obs:<key>", "gene:<id>", "" for the export's default) and the
// preparation of a loaded payload into what the renderer and the legend need. Pure.
import { categoryColors } from "../common/colors.js";
import { categoryCounts, continuousForDisplay } from "./decode.js";

/**
 * @typedef {object} PreparedField
 * @property {"categorical"|"continuous"} kind
 * @property {string} field   the field string, e.g. "obs:louvain"
 * @property {string} label   the key or gene id
 * @property {Uint8Array|Uint16Array} codes  per-cell category codes or quantized values
 * @property {string[]} [categories]
 * @property {number[][]} [colors]   RGBA per category
 * @property {Uint32Array} [counts]  cells per category, then the missing count
 * @property {number} [missingCode]  255 or 65535 (categorical)
 * @property {Object<string, {category: string, position: number[]}[]>} [centroids] by dimension
 * @property {Map<string, number>} [categoryIndex]
 * @property {number} [missing]  missing code (continuous)
 * @property {number} [qmax]     largest value code (continuous)
 * @property {number} [min]
 * @property {number} [max]
 * @property {number} [nMissing]
 */

/** Point size in CSS pixels that suits n cells. */
export function autoPointSize(n) {
  if (n > 500000) return 1.5;
  if (n > 100000) return 2;
  if (n > 20000) return 3;
  if (n > 2000) return 4;
  return 6;
}

/**
 * Is `field` one this export can show?
 * @param {{obs: {key: string}[], genes: string[]}} meta
 * @param {string} field
 */
export function isValidField(meta, field) {
  if (field.startsWith("obs:")) return meta.obs.some((o) => o.key === field.slice(4));
  if (field.startsWith("gene:")) return meta.genes.includes(field.slice(5));
  return false;
}

/**
 * The field shown when none is asked for: the first categorical obs field, else the
 * first obs field, else the first gene, else "" (one colour).
 * @param {{obs: {key: string, kind: string}[], genes: string[]}|null} meta
 */
export function defaultField(meta) {
  if (!meta) return "";
  const any = meta.obs.find((f) => f.kind === "categorical") || meta.obs[0];
  if (any) return `obs:${any.key}`;
  return meta.genes.length ? `gene:${meta.genes[0]}` : "";
}

/** Number of cells whose code is the missing code. */
export function countMissing(codes, missing) {
  let n = 0;
  for (let i = 0; i < codes.length; i++) if (codes[i] === missing) n++;
  return n;
}

/**
 * Turn a loaded obs or gene payload into a prepared field.
 * @param {string} field
 * @param {object|null} fm  the meta entry of an obs field (null for genes)
 * @param {{header: object, arrays: Object<string, any>}} reply
 * @returns {PreparedField}
 */
export function prepareField(field, fm, reply) {
  const { header, arrays } = reply;
  const label = field.replace(/^(obs|gene):/, "");
  if (fm && fm.kind === "categorical") {
    const n = fm.categories.length;
    return {
      kind: "categorical", field, label, codes: arrays.values, categories: fm.categories, colors: categoryColors(n, fm.colors),
      counts: categoryCounts(arrays.values, n), missingCode: fm.missing_code ?? (arrays.values instanceof Uint8Array ? 255 : 65535),
      centroids: fm.centroids || {}, categoryIndex: new Map(fm.categories.map((c, i) => [String(c), i])),
    };
  }
  const shown = continuousForDisplay(arrays.values, { bits: header.bits, min: header.min, max: header.max });
  return { kind: "continuous", field, label, ...shown, nMissing: countMissing(shown.codes, shown.missing) };
}
