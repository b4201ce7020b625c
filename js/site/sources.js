// Where the site's files come from: HTTP (relative URLs, so any sub-path works, or a
// base URL given with ?url=), or File objects from a folder picker / drag-and-drop when
// the browser does not fetch from file://. Every source answers read(rel) with bytes.
import { joinPath, safeRelPath } from "./paths.js";

/**
 * @typedef {object} Source
 * @property {(rel: string) => Promise<Uint8Array>} read   bytes of a file (rejects when missing)
 * @property {(rel: string) => Promise<Uint8Array|null>} readOptional   null when the file does not exist
 * @property {(folder: string) => Source} sub   the source of a sub-folder
 * @property {string} label   where the files come from (for messages)
 */

export class MissingFileError extends Error {}

/**
 * Files over HTTP below `base` (a URL ending in "/").
 * @param {string} base
 * @param {{fetchImpl?: typeof fetch}} [options]
 * @returns {Source}
 */
export function createUrlSource(base, options = {}) {
  const fetchImpl = options.fetchImpl ?? globalThis.fetch.bind(globalThis);
  const parsed = new URL(base);
  // a query on the base (e.g. ?token=... of `cellucid-nb serve --allow-origin`) goes with every file
  const search = parsed.search;
  parsed.search = "";
  parsed.hash = "";
  const root = parsed.href.endsWith("/") ? parsed.href : `${parsed.href}/`;
  const encode = (rel, what) => safeRelPath(rel, what).split("/").map(encodeURIComponent).join("/");
  async function get(rel, optional) {
    const url = new URL(encode(rel, "the site") + search, root).href;
    let resp;
    try {
      resp = await fetchImpl(url, { credentials: "same-origin" });
    } catch (err) {
      throw new Error(`could not fetch ${url}: ${err.message}`);
    }
    if (resp.status === 404 && optional) return null;
    if (resp.status === 404) throw new MissingFileError(`${url} does not exist (404)`);
    if (!resp.ok) throw new Error(`${url}: the server answered ${resp.status}`);
    return new Uint8Array(await resp.arrayBuffer());
  }
  return {
    label: root,
    read: (rel) => get(rel, false),
    readOptional: (rel) => get(rel, true),
    sub: (folder) => createUrlSource(new URL(`${encode(folder, "datasets.json")}/${search}`, root).href, { fetchImpl }),
  };
}

/**
 * Files from the File API: `files` maps paths relative to the chosen folder to File/Blob.
 * @param {Map<string, Blob>} files
 * @param {string} [prefix]  sub-folder of `files` this source reads ("" or "a/")
 * @param {string} [label]
 * @returns {Source}
 */
export function createFileSource(files, prefix = "", label = "the chosen folder") {
  async function get(rel, optional) {
    const path = joinPath(prefix, safeRelPath(rel, "the export"));
    const file = files.get(path);
    if (!file) {
      if (optional) return null;
      throw new MissingFileError(`${path} is not in ${label}`);
    }
    return new Uint8Array(await file.arrayBuffer());
  }
  return {
    label,
    read: (rel) => get(rel, false),
    readOptional: (rel) => get(rel, true),
    sub: (folder) => createFileSource(files, joinPath(prefix, safeRelPath(folder, "datasets.json")) + "/", label),
  };
}

/**
 * Map the files of a folder input (webkitRelativePath "site/obs/x") to paths below the
 * folder holding datasets.json or dataset_identity.json (the shallowest one).
 * @param {Iterable<{file: Blob, path: string}>} entries
 * @returns {{files: Map<string, Blob>, kind: "site"|"export"}}
 */
export function rootFiles(entries) {
  const all = [...entries].map((e) => ({ file: e.file, path: e.path.replace(/^\/+/, "") }));
  /** @type {{prefix: string, depth: number, kind: "site"|"export"}|null} */
  let best = null;
  for (const { path } of all) {
    const m = /^(.*?)(datasets\.json|dataset_identity\.json)$/.exec(path);
    if (!m || (m[1] && !m[1].endsWith("/"))) continue;
    const depth = m[1].split("/").length;
    const kind = /** @type {"site"|"export"} */ (m[2] === "datasets.json" ? "site" : "export");
    if (!best || depth < best.depth || (depth === best.depth && kind === "site")) best = { prefix: m[1], depth, kind };
  }
  if (!best) throw new Error("the chosen folder holds neither datasets.json nor dataset_identity.json: choose the site folder or an export folder");
  const files = new Map();
  for (const { file, path } of all) if (path.startsWith(best.prefix)) files.set(path.slice(best.prefix.length), file);
  return { files, kind: best.kind };
}

/**
 * Files of an <input type=file webkitdirectory>.
 * @param {ArrayLike<File>} fileList
 */
export function entriesFromInput(fileList) {
  return Array.from(fileList, (file) => ({ file, path: /** @type {any} */ (file).webkitRelativePath || file.name }));
}

/**
 * Files of a drop: every file below the dropped folders (FileSystemEntry API).
 * @param {DataTransfer} dataTransfer
 * @returns {Promise<{file: Blob, path: string}[]>}
 */
export async function entriesFromDrop(dataTransfer) {
  const roots = [];
  for (const item of Array.from(dataTransfer.items || [])) {
    const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    if (entry) roots.push(entry);
  }
  if (!roots.length) return Array.from(dataTransfer.files || [], (file) => ({ file, path: file.name }));
  const out = [];
  async function walk(entry, prefix) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      out.push({ file, path: prefix + entry.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) { // readEntries answers in batches until it returns none
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  }
  for (const root of roots) await walk(root, "");
  return out;
}
