// The plan as the user edits it: a local draft that re-renders at once and
// reaches the kernel debounced (one trait update, hence one estimate, per pause).

export const PLAN_DEBOUNCE_MS = 250;

const clone = (value) => JSON.parse(JSON.stringify(value ?? {}));

/**
 * @param {object} model  anywidget model (get/set/save_changes/on/off)
 * @param {{delayMs?: number, onChange?: (plan: object) => void, timers?: {set: Function, clear: Function}}} [options]
 */
export function createPlanDraft(model, options = {}) {
  const delayMs = options.delayMs ?? PLAN_DEBOUNCE_MS;
  const timers = options.timers ?? { set: (fn, ms) => setTimeout(fn, ms), clear: (t) => clearTimeout(t) };
  const listeners = new Set(options.onChange ? [options.onChange] : []);
  let draft = clone(model.get("plan"));
  let timer = null;
  let dirty = false;

  const notify = () => {
    for (const cb of listeners) cb(draft);
  };

  function push() {
    if (timer !== null) timers.clear(timer);
    timer = null;
    if (!dirty) return;
    dirty = false;
    model.set("plan", clone(draft));
    model.save_changes();
  }

  function onRemote() {
    // Python validated, normalised or rejected the plan: show what it holds,
    // unless the user already changed something newer that is still waiting.
    if (dirty) return;
    draft = clone(model.get("plan"));
    notify();
  }
  model.on("change:plan", onRemote);

  return {
    get plan() {
      return draft;
    },
    get pending() {
      return dirty;
    },
    /** Apply `mutate(draft)`; push after `delayMs` of quiet (at once with {immediate: true}). */
    edit(mutate, { immediate = false } = {}) {
      mutate(draft);
      dirty = true;
      notify();
      if (timer !== null) timers.clear(timer);
      timer = null;
      if (immediate) push();
      else timer = timers.set(push, delayMs);
    },
    flush: push,
    onChange(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    destroy() {
      if (timer !== null) timers.clear(timer);
      model.off("change:plan", onRemote);
      listeners.clear();
    },
  };
}
