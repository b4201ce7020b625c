// The wizard's plan rules, without DOM: how each control edits the plan (fields follow
// ExportPlan.to_dict()), what the section badges and hints say. The sections only wire
// these to their controls, so every rule here is unit-tested.

/** "" -> null (float32) for the quantization selects; else the number of bits. */
export const bitsValue = (v) => (v === "" ? null : Number(v));
/** null/undefined -> "" for a select's value. */
export const bitsLabel = (v) => (v === null || v === undefined ? "" : String(v));
export const blankToNull = (v) => (v === "" ? null : v);

/**
 * Options of the embedding select for one dimension.
 * @param {{embeddings?: {key: string, n_dims: number}[]}} summary
 * @param {number} dim
 */
export function embeddingOptions(summary, dim) {
  const candidates = (summary.embeddings || []).filter((e) => e.n_dims === dim);
  return [{ value: "", label: candidates.length ? "none" : "none available" }].concat(candidates.map((e) => ({ value: e.key, label: e.key })));
}

/** Choose (or clear, with "") the embedding of one dimension. */
export function setEmbedding(plan, dim, key) {
  plan.embeddings = { ...(plan.embeddings || {}) };
  if (key) plan.embeddings[dim] = key;
  else delete plan.embeddings[dim];
}

export function embeddingsBadge(plan) {
  return Object.keys(plan.embeddings || {}).map((d) => `${d}D`).join(" · ") || "none chosen";
}

/** Latent-space options: latents then embeddings, each key once. */
export function latentOptions(summary) {
  const seen = new Set();
  const options = [{ value: "", label: "same as the highest-dimensional embedding" }];
  for (const e of [...(summary.latents || []), ...(summary.embeddings || [])]) {
    if (seen.has(e.key)) continue;
    seen.add(e.key);
    options.push({ value: e.key, label: `${e.key} (${e.n_dims} dims)` });
  }
  return options;
}

/** What an obs column is, in a few words. */
export function obsDescription(col) {
  if (col.kind === "categorical") {
    if (col.n_categories === null || col.n_categories === undefined) return "categorical, many values";
    return `${col.n_categories} categor${col.n_categories === 1 ? "y" : "ies"}`;
  }
  const fmt = (v) => (v === null || v === undefined ? "?" : Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? Number(v).toExponential(2) : Number(v).toFixed(2));
  return `continuous ${fmt(col.min)} … ${fmt(col.max)}`;
}

/** Warnings shown beside an obs column. */
export function obsWarnings(col) {
  const warnings = [];
  if (col.identifier_like) warnings.push("looks like an identifier (one value per cell): useless as categories");
  if (col.n_missing) warnings.push(`${col.n_missing.toLocaleString("en-US")} missing`);
  if (col.n_categories > 254) warnings.push("more than 254 categories: 16-bit codes");
  return warnings;
}

/** Tick or untick one obs column; the plan keeps the summary's column order. */
export function setObsKey(plan, summary, key, on) {
  const keys = new Set(plan.obs_keys || []);
  if (on) keys.add(key);
  else keys.delete(key);
  plan.obs_keys = (summary.obs || []).map((c) => c.key).filter((k) => keys.has(k));
}

/** "Select all useful" (every column that is not identifier-like) or "Select none". */
export function setAllObs(plan, summary, on) {
  plan.obs_keys = on ? (summary.obs || []).filter((c) => !c.identifier_like).map((c) => c.key) : [];
}

/** Add a gene id to the chosen list (once); with no source yet, use `fallbackSource`. */
export function addGene(plan, id, fallbackSource) {
  if (!plan.expression_source) plan.expression_source = fallbackSource;
  const current = Array.isArray(plan.genes) ? plan.genes : [];
  plan.genes = current.includes(id) ? current : current.concat([id]);
}

export function removeGene(plan, id) {
  plan.genes = (plan.genes || []).filter((x) => x !== id);
}

/** Choose the expression source ("" = no genes). */
export function setExpressionSource(plan, source) {
  plan.expression_source = blankToNull(source);
  if (!source) plan.genes = null;
}

export function genesBadge(plan) {
  return !plan.expression_source ? "none" : plan.genes == null ? "all" : `${plan.genes.length}`;
}

/** The line above the chosen-gene chips. */
export function genesInfo(plan, summary) {
  if (!plan.expression_source) return "No gene expression will be exported. Add genes or pick a preset to export some.";
  const genes = plan.genes;
  if (genes === null || genes === undefined) {
    const src = (summary.expression || []).find((e) => e.name === plan.expression_source);
    return `All genes (${(src?.n_genes ?? summary.n_genes).toLocaleString("en-US")}).`;
  }
  return `${genes.length.toLocaleString("en-US")} gene${genes.length === 1 ? "" : "s"} chosen${genes.length > 60 ? " (first 60 shown)" : ""}.`;
}

/** What the kernel said about the last gene preset or list. */
export function geneReportText(r = {}) {
  if (r.pending) return "working…";
  if (r.error) return r.error;
  if (r.n_unknown) return `${r.n_genes} found; ${r.n_unknown} unknown id${r.n_unknown === 1 ? "" : "s"}: ${r.unknown.join(", ")}${r.n_unknown > r.unknown.length ? " …" : ""}`;
  if (r.mode) return `${r.n_genes} genes (${r.mode}).`;
  return "";
}

/** Tick or untick a vector field (exported under its own key). */
export function setVectorField(plan, key, on) {
  const vf = { ...(plan.vector_fields || {}) };
  if (on) vf[key] = key;
  else delete vf[key];
  plan.vector_fields = vf;
}

export function graphBadge(plan) {
  const n = Object.keys(plan.vector_fields || {}).length;
  return [plan.connectivities ? "graph" : null, n ? `${n} vector field(s)` : null].filter(Boolean).join(" · ") || "none";
}

export function storageBadge(plan) {
  const b = (v) => (v ? `${v}-bit` : "float32");
  return `genes ${b(plan.var_quantization)} · ${plan.compression ? `gzip ${plan.compression}` : "no gzip"}`;
}

/**
 * A list-box's highlighted entry, moved with the arrow keys (wraps around).
 * @param {number} active  current index (-1: none)
 * @param {number} delta
 * @param {number} n  entries
 */
export function moveActive(active, delta, n) {
  return n ? (active + delta + n) % n : -1;
}
