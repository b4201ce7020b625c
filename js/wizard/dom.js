// Tiny DOM helpers: the wizard builds its UI from plain elements (no framework).

let counter = 0;

/** A page-unique id for label/aria wiring (several wizards can share a page). */
export function uid(prefix = "cw") {
  counter += 1;
  return `${prefix}-${counter}-${Math.random().toString(36).slice(2, 7)}`;
}

/**
 * Create an element: h("button", {class: "x", onclick: fn, "aria-label": "y"}, "text", child).
 * Keys starting with "on" become listeners; `dataset`/`style` objects are merged;
 * boolean attributes (disabled, checked, hidden, ...) are set as properties.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else if (key === "value") el.value = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace all children of `el`. */
export function setChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled control: <div class="cw-field"><label for=id>text</label>control</div>. */
export function field(labelText, control, hint) {
  const id = control.id || uid("cw-ctl");
  control.id = id;
  const parts = [h("label", { for: id }, labelText), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("div", { class: "cw-hint", id: hintId }, hint));
  }
  return h("div", { class: "cw-field" }, parts);
}

/** A <select> with options [{value, label}] (value "" allowed); `selected` is a value. */
export function select(options, selected, onchange, props = {}) {
  const el = h("select", { ...props, onchange: (e) => onchange(e.target.value) });
  for (const opt of options) {
    const o = h("option", { value: opt.value }, opt.label ?? opt.value);
    if (String(opt.value) === String(selected ?? "")) o.selected = true;
    el.append(o);
  }
  return el;
}
