// Colour and legend state: the field being drawn, which categories are hidden
// (click hides, isolate shows one only), the colour map; turns them into the
// renderer's colouring and the legend. The hidden-set rules are pure functions.
import { buildCategoricalLut, continuousPalette, DEFAULT_COLORMAP } from "../common/colors.js";
import { renderCategoricalLegend, renderColorbar } from "./ui.js";

/** Index of the "missing" legend entry in hidden sets. */
export const MISSING_ENTRY = -1;

/**
 * Hidden set after a click on entry i: hidden entries show again, shown ones hide.
 * @param {Set<number>} hidden
 * @param {number} i  category index, or MISSING_ENTRY
 * @returns {Set<number>}
 */
export function toggleEntry(hidden, i) {
  const next = new Set(hidden);
  if (next.has(i)) next.delete(i); else next.add(i);
  return next;
}

/**
 * Hidden set after isolating entry i: every other entry (and missing) hidden; isolating
 * the entry that is already the only one shown shows everything again.
 * @param {Set<number>} hidden
 * @param {number} i
 * @param {number} nCategories
 * @returns {Set<number>}
 */
export function isolateEntry(hidden, i, nCategories) {
  const all = [...Array(nCategories).keys(), MISSING_ENTRY];
  const onlyThis = hidden.size === all.length - 1 && !hidden.has(i);
  return onlyThis ? new Set() : new Set(all.filter((j) => j !== i));
}

/**
 * Per-cell visibility test for picking (undefined when every cell is visible).
 * @param {import("./fields.js").PreparedField|null} f
 * @param {Set<number>} hidden
 * @returns {((i: number) => boolean)|undefined}
 */
export function visibilityTest(f, hidden) {
  if (!f || f.kind !== "categorical" || hidden.size === 0) return undefined;
  const visible = new Uint8Array(f.missingCode + 1).fill(1);
  for (const i of hidden) visible[i >= 0 ? i : f.missingCode] = 0;
  const codes = f.codes;
  return (i) => visible[codes[i]] === 1;
}

/**
 * The renderer's colouring for a field.
 * @param {import("./fields.js").PreparedField|null} f
 * @param {Set<number>} hidden
 * @param {string} colormap
 */
export function coloringSpec(f, hidden, colormap) {
  if (!f) return { kind: "uniform" };
  if (f.kind === "categorical") {
    const shown = new Set([...hidden].filter((i) => i >= 0));
    const lut = buildCategoricalLut(f.colors, f.missingCode, shown, hidden.has(MISSING_ENTRY));
    // uint8 codes: 256-colour palette (fast path); uint16 codes: texture
    return f.missingCode === 255 ? { kind: "palette", colors: lut.data, scale: 1, missing: 255 } : { kind: "texture", lut };
  }
  // 8-bit values index the palette directly; 16-bit ones are scaled to its 255 steps
  return { kind: "palette", colors: continuousPalette(colormap), scale: 254 / f.qmax, missing: f.missing };
}

/**
 * @param {{legend: HTMLElement}} ui
 * @param {() => any} getRenderer  the renderer, or null when WebGL failed
 * @param {() => void} onChange    called after every visible change (redraw)
 * @param {string} [colormap]
 */
export function createColorState(ui, getRenderer, onChange, colormap = DEFAULT_COLORMAP) {
  const s = {
    /** @type {import("./fields.js").PreparedField|null} */
    field: null,
    /** @type {Set<number>} */
    hidden: new Set(),
    colormap,
  };

  function apply() {
    const renderer = getRenderer();
    const f = s.field;
    if (renderer) renderer.setColoring(coloringSpec(f, s.hidden, s.colormap));
    if (!f) ui.legend.replaceChildren();
    else if (f.kind === "categorical") {
      renderCategoricalLegend(ui.legend, f.label, { ...f, hidden: s.hidden }, {
        toggle: (i) => setHidden(toggleEntry(s.hidden, i)),
        isolate: (i) => setHidden(isolateEntry(s.hidden, i, f.categories.length)),
        showAll: () => setHidden(new Set()),
      });
    } else renderColorbar(ui.legend, f.label, f, s.colormap);
  }
  /** @param {Set<number>} hidden */
  function setHidden(hidden) {
    s.hidden = hidden;
    apply();
    onChange();
  }

  return {
    get field() { return s.field; },
    get hidden() { return s.hidden; },
    get colormap() { return s.colormap; },
    /** Draw `f` (null: one colour); a new field shows all its categories. */
    setField(f) {
      if (!f || !s.field || s.field.field !== f.field) s.hidden = new Set();
      s.field = f;
      const renderer = getRenderer();
      if (renderer) renderer.setValues(f ? f.codes : null);
      apply();
    },
    setColormap(name) {
      s.colormap = name;
      apply();
      onChange();
    },
    toggle: (i) => setHidden(toggleEntry(s.hidden, i)),
    isolate: (i) => setHidden(isolateEntry(s.hidden, i, s.field && s.field.categories ? s.field.categories.length : 0)),
    showAll: () => setHidden(new Set()),
    visibilityTest: () => visibilityTest(s.field, s.hidden),
    /** Is the category with this name shown (for its centroid label)? */
    isShown(category) {
      const f = s.field;
      const idx = f && f.categoryIndex ? f.categoryIndex.get(category) : undefined;
      return idx !== undefined && !s.hidden.has(idx);
    },
  };
}
