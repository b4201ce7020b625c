// Paths inside an export as its manifests write them, checked before anything is
// fetched: a hostile manifest must not make the page read another site or folder.

/**
 * The format's file-name rule (docs/FORMAT.md): runs of characters outside [A-Za-z0-9._-]
 * become "_", then leading and trailing "." and "_" are stripped; "" becomes "field".
 * @param {unknown} name
 */
export function safeName(name) {
  const out = String(name).replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+|[._]+$/g, "");
  return out || "field";
}

/**
 * Check a path relative to an export (or to the site) and return it normalised.
 * Refuses absolute paths, URLs, "..", backslashes, query or fragment characters.
 * @param {unknown} rel
 * @param {string} [what]  what names the path, for the error
 * @returns {string}
 */
export function safeRelPath(rel, what = "a manifest") {
  if (typeof rel !== "string" || !rel) throw new Error(`${what} names the path ${JSON.stringify(rel)}, expected a non-empty relative path`);
  const parts = rel.split("/").filter((p) => p !== "" && p !== ".");
  const bad = rel.startsWith("/") || /[\\?#%:]/.test(rel) || parts.some((p) => p === ".." || p.startsWith("."));
  if (bad || !parts.length) throw new Error(`${what} names the path '${rel}', which leaves the export (expected a relative path such as 'obs/x.values.u8')`);
  return parts.join("/");
}

/**
 * Join a folder ("" or "a/b/") and a relative path.
 * @param {string} folder
 * @param {string} rel
 */
export function joinPath(folder, rel) {
  if (!folder) return rel;
  return folder.endsWith("/") ? folder + rel : `${folder}/${rel}`;
}
