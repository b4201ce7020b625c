// The static site's page: find the exports (next to the page, at ?url=, or in a folder
// the user picks or drops when the browser does not fetch from file://), offer a dataset
// switcher, mount the viewer with the static transport, keep the view in the URL hash
// and download the selection as CSV.
import { mountViewer } from "../viewer/mount.js";
import { fieldValues, selectionCsv } from "./csv.js";
import { applyCamera, formatHash, parseHash } from "./hash_state.js";
import { safeRelPath } from "./paths.js";
import { createFileSource, createUrlSource, entriesFromDrop, entriesFromInput, rootFiles } from "./sources.js";
import { createStaticTransport } from "./transport.js";

export const FILE_URL_MESSAGE = "This browser does not let a page opened from a file read the files beside it. Choose the site folder (or an export folder) below, or drop it here: the files stay on this computer.";

/**
 * The datasets a datasets.json lists (default first), paths checked.
 * @param {any} manifest
 * @returns {{id: string, name: string, path: string}[]}
 */
export function datasetsFrom(manifest) {
  const entries = manifest && Array.isArray(manifest.datasets) ? manifest.datasets : null;
  if (!entries || !entries.length) throw new Error("datasets.json lists no dataset (expected {\"datasets\": [{id, path, name}, ...]})");
  const out = entries.map((e, i) => {
    if (!e || typeof e !== "object") throw new Error(`datasets.json entry ${i} is not an object`);
    const id = String(e.id ?? e.path ?? i);
    return { id, name: String(e.name || id), path: safeRelPath(String(e.path ?? e.id ?? ""), "datasets.json") };
  });
  const d = out.findIndex((e) => e.id === manifest.default);
  if (d > 0) out.unshift(...out.splice(d, 1));
  return out;
}

/**
 * Where the exports are: ?url=<base URL> (http or https only), else the page's folder.
 * @param {{href: string}} location
 * @returns {{base: string, remote: boolean}}
 */
export function startBase(location) {
  const url = new URL(location.href);
  const given = url.searchParams.get("url");
  if (given) {
    const base = new URL(given, url);
    if (base.protocol !== "http:" && base.protocol !== "https:") throw new Error(`?url= must be an http or https URL, got '${given}'`);
    if (!base.pathname.endsWith("/")) base.pathname = base.pathname.replace(/\/(index\.html|datasets\.json|dataset_identity\.json)$/, "") + "/";
    return { base: base.href, remote: true };
  }
  return { base: new URL("./", url).href, remote: false };
}

/**
 * The datasets of a source: its datasets.json, else the export itself.
 * @param {import("./sources.js").Source} source
 */
export async function listDatasets(source, exportFirst = false) {
  const asSite = async () => {
    const manifest = await source.readOptional("datasets.json");
    return manifest ? { datasets: datasetsFrom(JSON.parse(new TextDecoder().decode(manifest))), single: false } : null;
  };
  const asExport = async () => {
    const identity = await source.readOptional("dataset_identity.json");
    if (!identity) return null;
    const parsed = JSON.parse(new TextDecoder().decode(identity));
    const id = String(parsed.id || "dataset");
    return { datasets: [{ id, name: String(parsed.name || id), path: "" }], single: true };
  };
  // a base URL usually names an export, the page's folder a site: ask for the likely file first (one 404 less)
  const found = exportFirst ? (await asExport()) || (await asSite()) : (await asSite()) || (await asExport());
  if (!found) throw new Error(`${source.label} holds neither datasets.json nor dataset_identity.json`);
  return found;
}

/** Save text as a file through a temporary link. */
export function download(doc, name, text, type = "text/csv") {
  const a = doc.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = name;
  doc.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

/**
 * Run the site in a page (index.html's elements: #app, #title, #dataset, #selection,
 * #download, #notice, #notice-text, #folder).
 * @param {{document: Document, location: Location, history: History, window: any, fetchImpl?: typeof fetch, viewerOptions?: object}} env
 */
export function createSite(env) {
  const { document: doc, location, history } = env;
  const $ = (id) => doc.getElementById(id);
  const app = $("app"), title = $("title"), picker = /** @type {HTMLSelectElement} */ ($("dataset"));
  const selInfo = $("selection"), dlButton = $("download"), notice = $("notice"), noticeText = $("notice-text");
  const folderInput = /** @type {HTMLInputElement} */ ($("folder"));
  const site = { viewer: null, transport: null, dataset: null, datasets: [], source: null, ready: null, selection: new Uint32Array(0) };
  let hashTimer = null;

  function showNotice(text, withPicker) {
    noticeText.textContent = text;
    notice.hidden = false;
    folderInput.parentElement.hidden = !withPicker;
  }

  function writeHash() {
    if (!site.viewer || !site.viewer.meta) return;
    const st = site.viewer.state;
    const several = ((site.viewer.meta.embeddings || {})[String(st.dim)] || []).length > 1;
    const hash = formatHash({
      dataset: site.datasets.length > 1 ? site.dataset.id : "", field: st.colorField, dim: st.dim,
      embedding: several ? st.embedding || "" : "", camera: site.viewer.camera.getState(),
    });
    if (hash !== location.hash) history.replaceState(null, "", hash);
  }
  const scheduleHash = () => { clearTimeout(hashTimer); hashTimer = setTimeout(writeHash, 150); };

  function mount(ds, view) {
    if (site.viewer) site.viewer.destroy();
    if (site.transport) site.transport.destroy();
    site.dataset = ds;
    site.selection = new Uint32Array(0);
    selInfo.textContent = "";
    dlButton.hidden = true;
    title.textContent = ds.name;
    doc.title = `${ds.name} · Cellucid`;
    for (const o of Array.from(picker.options)) o.selected = o.value === ds.id;
    const transport = createStaticTransport(ds.path ? site.source.sub(ds.path) : site.source, { name: ds.name });
    const height = Math.max(300, (env.window.innerHeight || 800) - 110);
    const viewer = mountViewer(app, transport, {
      dimension: view.dim, colorField: view.field || "", embedding: view.embedding || undefined, height,
      ...(env.viewerOptions || {}),
      onStateChange: scheduleHash,
    });
    site.transport = transport;
    site.viewer = viewer;
    viewer.onSelect((idx) => {
      site.selection = idx;
      selInfo.textContent = idx.length ? `${idx.length.toLocaleString()} cells selected` : "";
      dlButton.hidden = !idx.length;
    });
    site.ready = viewer.ready.then(() => {
      if (view.camera && applyCamera(viewer.camera, view.camera)) viewer.resize();
      scheduleHash();
    });
    env.window.cellucidViewer = viewer;
    return site.ready;
  }

  /** CSV of the selection with the shown field's values. */
  async function selectionText() {
    const viewer = site.viewer;
    const field = viewer.state.colorField || "";
    const idx = site.selection;
    if (!field) return selectionCsv(idx, "", null);
    const isObs = field.startsWith("obs:");
    const name = field.slice(isObs ? 4 : 5);
    const reply = await site.transport.request(isObs ? "obs" : "gene", isObs ? { key: name } : { gene: name });
    const fm = isObs ? viewer.meta.obs.find((f) => f.key === name) : null;
    return selectionCsv(idx, name, fieldValues(reply, fm, idx));
  }

  async function open(source, exportFirst = false) {
    site.source = source;
    const { datasets } = await listDatasets(source, exportFirst);
    site.datasets = datasets;
    notice.hidden = true;
    picker.replaceChildren(...datasets.map((d) => {
      const o = doc.createElement("option");
      o.value = d.id;
      o.textContent = d.name;
      return o;
    }));
    picker.hidden = datasets.length < 2;
    const view = parseHash(location.hash);
    const ds = datasets.find((d) => d.id === view.dataset) || datasets[0];
    return mount(ds, !view.dataset || ds.id === view.dataset ? view : {});
  }

  async function openFiles(entries) {
    try {
      const { files } = rootFiles(entries);
      await open(createFileSource(files));
    } catch (err) {
      showNotice(`Could not open the chosen folder: ${err.message}`, true);
    }
  }

  picker.addEventListener("change", () => {
    const ds = site.datasets.find((d) => d.id === picker.value);
    if (ds) mount(ds, {});
  });
  dlButton.addEventListener("click", async () => {
    const text = await selectionText();
    download(doc, `${site.dataset.id}_selection.csv`, text);
  });
  app.addEventListener("pointerup", scheduleHash);
  app.addEventListener("wheel", scheduleHash, { passive: true });
  env.window.addEventListener("hashchange", () => {
    const view = parseHash(location.hash);
    if (!site.viewer) return;
    const ds = site.datasets.find((d) => d.id === view.dataset);
    if (ds && ds !== site.dataset) { mount(ds, view); return; }
    if (view.embedding && view.embedding !== site.viewer.state.embedding) site.viewer.setEmbedding(view.embedding);
    else if (view.dim && view.dim !== site.viewer.state.dim) site.viewer.setDimension(view.dim);
    if (view.field && view.field !== site.viewer.state.colorField) site.viewer.setColorField(view.field);
    if (view.camera && applyCamera(site.viewer.camera, view.camera)) site.viewer.resize();
  });
  folderInput.addEventListener("change", () => openFiles(entriesFromInput(folderInput.files)));
  notice.addEventListener("dragover", (ev) => { ev.preventDefault(); notice.classList.add("cnb-drag"); });
  notice.addEventListener("dragleave", () => notice.classList.remove("cnb-drag"));
  notice.addEventListener("drop", async (ev) => {
    ev.preventDefault();
    notice.classList.remove("cnb-drag");
    openFiles(await entriesFromDrop(ev.dataTransfer));
  });

  /** Start: ?url= or the page's folder; from file:// fall back to the folder picker. */
  async function start() {
    let where;
    try {
      where = startBase(location);
    } catch (err) {
      showNotice(err.message, false);
      return;
    }
    const source = createUrlSource(where.base, { fetchImpl: env.fetchImpl });
    try {
      await open(source, where.remote);
    } catch (err) {
      if (location.protocol === "file:" && !where.remote) showNotice(FILE_URL_MESSAGE, true);
      else showNotice(`Could not open the exports at ${where.base}: ${err.message}`, !where.remote);
    }
  }

  return { start, open, openFiles, selectionText, writeHash, site };
}
