// Export card: button, progress with phase and ETA, Cancel, errors, the result
// with its "copy as code" block, and the viewer embedded on the finished export.
import { h, setChildren } from "./dom.js";
import { formatBytes, formatCount, formatSeconds } from "./format.js";

const PHASE_LABELS = {
  start: "starting",
  load: "reading genes",
  validate: "checking inputs",
  points: "writing embeddings",
  obs: "writing cell metadata",
  genes: "writing genes",
  graph: "writing the kNN graph",
  vectors: "writing vector fields",
  identity: "writing the dataset identity",
  finalize: "finishing",
  done: "done",
  cancelled: "cancelled",
};

/** "phase · 42 % · about 3 s left" for the progress line. */
export function progressText(progress, status) {
  const p = progress || {};
  const pct = Math.round(100 * (Number(p.fraction) || 0));
  const phase = PHASE_LABELS[p.phase] || p.phase || "";
  if (status === "done") return `done · 100 %`;
  if (status === "cancelled") return "cancelled";
  const eta = p.eta === null || p.eta === undefined ? "" : ` · about ${formatSeconds(p.eta)} left`;
  return `${phase} · ${pct} %${eta}`;
}

/**
 * @param {object} model  the wizard's anywidget model
 * @param {{flushPlan: () => void, mountViewer: (el: HTMLElement) => {destroy: Function}}} hooks
 */
export function exportView(model, hooks) {
  const exportBtn = h("button", { type: "button", class: "cw-btn cw-btn-primary", "data-testid": "export-button",
    onclick: () => { hooks.flushPlan(); model.send({ type: "wizard:export", out_dir: model.get("out_dir") }); } }, "Export");
  const cancelBtn = h("button", { type: "button", class: "cw-btn", "data-testid": "cancel-button", onclick: () => model.send({ type: "wizard:cancel" }) }, "Cancel");
  const bar = h("progress", { class: "cw-progress", max: "1", value: "0", "aria-label": "Export progress", "data-testid": "progress" });
  const line = h("div", { class: "cw-progress-text", role: "status", "aria-live": "polite", "data-testid": "progress-text" });
  const planError = h("div", { class: "cw-error", role: "alert", hidden: true, "data-testid": "plan-error" });
  const error = h("div", { class: "cw-error", role: "alert", hidden: true, "data-testid": "export-error" });
  const result = h("div", { class: "cw-result", hidden: true, "data-testid": "result" });
  const viewerHost = h("div", { class: "cw-viewer-host", "data-testid": "viewer-host" });
  let viewer = null;
  let viewerPath = "";

  const el = h("section", { class: "cw-card cw-export", "aria-label": "Export" },
    h("div", { class: "cw-card-head" }, h("h3", {}, "Export")),
    h("div", { class: "cw-row" }, exportBtn, cancelBtn),
    bar, line, planError, error);

  function codeBlock(code) {
    const pre = h("pre", { class: "cw-code", tabindex: "0", "aria-label": "Equivalent prepare() call" }, code);
    const copy = h("button", { type: "button", class: "cw-btn cw-btn-small", onclick: async () => {
      try {
        await navigator.clipboard.writeText(code);
        copy.textContent = "Copied";
      } catch (_) {
        // clipboard refused (insecure context): select the text so Ctrl+C works
        const range = document.createRange();
        range.selectNodeContents(pre);
        const sel = getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        copy.textContent = "Selected: press Ctrl+C";
      }
      setTimeout(() => { copy.textContent = "Copy as code"; }, 2000);
    } }, "Copy as code");
    return h("div", { class: "cw-code-wrap" }, h("div", { class: "cw-row" }, h("span", { class: "cw-sublabel" }, "Same export from a script:"), copy), pre);
  }

  function render() {
    const status = model.get("status");
    const progress = model.get("progress") || {};
    const running = status === "running";
    exportBtn.disabled = running;
    exportBtn.textContent = status === "done" ? "Export again" : "Export";
    cancelBtn.disabled = !running;
    cancelBtn.hidden = !running;
    bar.hidden = status === "idle";
    bar.value = status === "done" ? 1 : Number(progress.fraction) || 0;
    bar.setAttribute("aria-valuetext", progressText(progress, status));
    line.textContent = status === "idle" ? "" : progressText(progress, status);
    const pe = model.get("plan_error");
    planError.hidden = !pe;
    planError.textContent = pe || "";
    const err = model.get("error");
    error.hidden = !err;
    error.textContent = err || "";
    const res = model.get("result") || {};
    if (status === "done" && res.path) {
      result.hidden = false;
      setChildren(result,
        h("div", { class: "cw-result-head" }, "✓ Exported ", h("strong", {}, formatBytes(res.n_bytes)), ` in ${formatCount(res.n_files)} files, ${formatSeconds(res.seconds)}`,
          (res.skipped || []).length ? ` (${formatCount(res.skipped.length)} existing files with the same settings kept; tick “Overwrite” to rewrite them)` : ""),
        h("div", { class: "cw-path" }, h("span", { class: "cw-sublabel" }, "Folder: "), h("code", { "data-testid": "result-path" }, res.path)),
        (res.warnings || []).length ? h("ul", { class: "cw-warnings" }, res.warnings.map((w) => h("li", { class: "cw-warn" }, "⚠ ", w))) : null,
        codeBlock(model.get("code")));
      if (viewerPath !== res.path) {
        viewer?.destroy();
        viewerPath = res.path;
        viewer = hooks.mountViewer(viewerHost);
        // the result and the viewer sit below every section: bring them on screen
        if (typeof result.scrollIntoView === "function") result.scrollIntoView({ behavior: "smooth", block: "start" });
      }
    } else {
      result.hidden = true;
      if (status === "running" && viewer) {
        viewer.destroy();
        viewer = null;
        viewerPath = "";
      }
    }
  }
  const events = ["change:status", "change:progress", "change:error", "change:result", "change:plan_error", "change:code"];
  for (const ev of events) model.on(ev, render);
  render();
  return {
    el,
    resultEl: result,
    viewerHost,
    destroy() {
      for (const ev of events) model.off(ev, render);
      viewer?.destroy();
      viewer = null;
    },
  };
}
