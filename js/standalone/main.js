// Standalone viewer page served by `cellucid-nb serve`: the same viewer as in Jupyter,
// with data over HTTP from /_cellucid/api/<dataset>/... (same requests as the comm).
// The server answers only requests carrying its token: the page URL has it (?token=),
// and every fetch sends it in the X-Cellucid-Token header.
import { mountViewer } from "../viewer/mount.js";
import { createHttpTransport } from "../viewer/transport.js";

/**
 * A fetch that sends the page's token with every request.
 * @param {string|null} token
 * @param {typeof fetch} [fetchImpl]
 * @returns {typeof fetch}
 */
export function fetchWithToken(token, fetchImpl = globalThis.fetch.bind(globalThis)) {
  return (input, init = {}) => {
    if (!token) return fetchImpl(input, init);
    const headers = new Headers(init.headers || {});
    headers.set("X-Cellucid-Token", token);
    return fetchImpl(input, { ...init, headers });
  };
}

async function main() {
  const app = document.getElementById("app");
  const title = document.getElementById("title");
  const picker = /** @type {HTMLSelectElement} */ (document.getElementById("dataset"));
  const selInfo = document.getElementById("selection");
  const params = new URLSearchParams(location.search);
  const fetchT = fetchWithToken(params.get("token"));
  let datasets = [];
  try {
    const resp = await fetchT("/_cellucid/datasets");
    if (!resp.ok) throw new Error(`server answered ${resp.status}${resp.status === 403 ? ": open the URL printed by 'cellucid-nb serve' (it carries the token)" : ""}`);
    datasets = (await resp.json()).datasets || [];
  } catch (err) {
    app.textContent = `Could not list datasets: ${err.message}`;
    return;
  }
  if (!datasets.length) {
    app.textContent = "This server has no dataset.";
    return;
  }
  const wanted = params.get("dataset");
  const ds = datasets.find((d) => d.id === wanted) || datasets[0];
  document.title = `${ds.name} · Cellucid viewer`;
  title.textContent = ds.name;
  picker.replaceChildren(...datasets.map((d) => {
    const o = document.createElement("option");
    o.value = d.id;
    o.textContent = d.name;
    o.selected = d.id === ds.id;
    return o;
  }));
  picker.hidden = datasets.length < 2;
  picker.addEventListener("change", () => {
    params.set("dataset", picker.value);
    location.search = params.toString();
  });
  const transport = createHttpTransport(`/_cellucid/api/${encodeURIComponent(ds.id)}`, { fetchImpl: fetchT });
  const height = Math.max(300, window.innerHeight - 110);
  const viewer = mountViewer(app, transport, {
    dimension: Number(params.get("dim")) || undefined,
    colorField: params.get("color") || "",
    height,
    // optional tuning from the URL: ?opacity=0.3, ?first=<cells in the first frame>, ?chunk=<cells per slice>
    opacity: Number(params.get("opacity")) || 0,
    firstFrameCells: Number(params.get("first")) || undefined,
    chunkCells: Number(params.get("chunk")) || undefined,
  });
  viewer.onSelect((idx) => {
    selInfo.textContent = idx.length ? `${idx.length.toLocaleString()} cells selected` : "";
  });
  window.addEventListener("resize", () => viewer.setHeight(Math.max(300, window.innerHeight - 110)));
  /** @type {any} */ (window).cellucidViewer = viewer;
}

main();
