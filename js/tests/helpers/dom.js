// A browser-like global scope for unit tests: happy-dom's window installed as the
// globals the front-end uses (document, HTMLElement, getComputedStyle, ...), plus
// manual animation frames and observers that a test triggers itself.
import { Window } from "happy-dom";

/** Install happy-dom's globals; returns the window. Call once per test file. */
export function installDom() {
  const window = new Window({ width: 1024, height: 768 });
  const names = ["window", "document", "Node", "HTMLElement", "HTMLInputElement", "HTMLSelectElement", "HTMLCanvasElement", "Element", "Event", "KeyboardEvent", "MouseEvent", "PointerEvent", "WheelEvent", "CustomEvent", "getComputedStyle", "getSelection", "navigator", "DOMParser"];
  for (const name of names) {
    const value = name === "window" ? window : window[name];
    Object.defineProperty(globalThis, name, { value: typeof value === "function" && /^[a-z]/.test(name) ? value.bind(window) : value, configurable: true, writable: true });
  }
  globalThis.requestAnimationFrame = (fn) => setTimeout(fn, 0);
  globalThis.cancelAnimationFrame = (id) => clearTimeout(id);
  return window;
}

/** Animation frames that run only when the test says so. */
export function manualFrames() {
  const pending = new Map();
  let next = 1;
  return {
    request(fn) { const id = next++; pending.set(id, fn); return id; },
    cancel(id) { pending.delete(id); },
    /** Run the frames requested so far (and any they request, up to 10 rounds). */
    run() {
      for (let round = 0; round < 10 && pending.size; round++) {
        const fns = [...pending.values()];
        pending.clear();
        for (const fn of fns) fn();
      }
    },
    get size() { return pending.size; },
  };
}

/** Observers (Resize / Mutation) that record what they observe and fire on demand. */
export function installObservers() {
  const made = { resize: [], mutation: [] };
  class FakeObserver {
    constructor(cb) { this.cb = cb; this.targets = []; this.disconnected = false; }
    observe(target) { this.targets.push(target); }
    disconnect() { this.disconnected = true; this.targets = []; }
    fire() { if (!this.disconnected) this.cb([], this); }
  }
  globalThis.ResizeObserver = class extends FakeObserver { constructor(cb) { super(cb); made.resize.push(this); } };
  globalThis.MutationObserver = class extends FakeObserver { constructor(cb) { super(cb); made.mutation.push(this); } };
  return made;
}

/** Give an element a layout size (happy-dom does no layout). */
export function setSize(el, width, height) {
  Object.defineProperty(el, "clientWidth", { value: width, configurable: true });
  Object.defineProperty(el, "clientHeight", { value: height, configurable: true });
  el.getBoundingClientRect = () => ({ left: 0, top: 0, right: width, bottom: height, width, height, x: 0, y: 0, toJSON() {} });
}

/** Let pending promise callbacks run. */
export async function settle(rounds = 20) {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}
