// Test doubles of the viewer's collaborators: a transport that answers the viewer's
// requests from in-memory arrays (optionally held back to test reply order), and a
// renderer that records what it is given.

/**
 * A small export: 6 cells in 2D and 3D, one categorical and one continuous obs field,
 * two genes, edges and a vector field.
 */
export function smallExport() {
  const p2 = new Float32Array([-0.8, -0.8, -0.4, -0.4, 0, 0, 0.4, 0.4, 0.8, 0.8, 0.8, -0.8]);
  const p3 = new Float32Array([-0.8, -0.8, 0, -0.4, -0.4, 0.1, 0, 0, 0.2, 0.4, 0.4, 0.3, 0.8, 0.8, 0.4, 0.8, -0.8, 0.5]);
  const meta = {
    name: "small", n_cells: 6, dimensions: [1, 2, 3], default_dimension: 2, has_edges: true,
    vectors: { velocity: { label: "velocity", dims: [2, 3] } },
    genes: ["CD33", "CD3E", "LYZ"],
    obs: [
      { key: "score", kind: "continuous" },
      { key: "louvain", kind: "categorical", categories: ["T cells", "B cells", "NK"], colors: null, missing_code: 255,
        centroids: { 2: [{ category: "T cells", position: [-0.6, -0.6] }, { category: "B cells", position: [0.2, 0.2] }, { category: "NK", position: [0.8, 0] }] } },
      { key: "wide", kind: "categorical", categories: ["a", "b"], missing_code: 65535 },
    ],
  };
  const replies = {
    points: ({ dim }) => ({ header: { dim }, arrays: { points: dim === 1 ? new Float32Array([-1, -0.5, 0, 0.2, 0.5, 1]) : dim === 2 ? p2 : p3 } }),
    obs: ({ key }) => key === "louvain"
      ? { header: {}, arrays: { values: new Uint8Array([0, 0, 1, 1, 2, 255]) } }
      : key === "wide" ? { header: {}, arrays: { values: new Uint16Array([0, 1, 0, 1, 65535, 0]) } }
        : { header: { bits: 8, min: 0, max: 10 }, arrays: { values: new Uint8Array([0, 50, 100, 150, 254, 255]) } },
    gene: ({ gene }) => ({ header: { bits: 8, min: 0, max: 5, gene }, arrays: { values: new Uint8Array([0, 10, 20, 30, 40, 50]) } }),
    edges: () => ({ header: {}, arrays: { pairs: new Uint32Array([0, 1, 1, 2]) } }),
    vectors: ({ dim }) => ({ header: {}, arrays: { vectors: new Float32Array(6 * dim).fill(0.1) } }),
  };
  return { meta, replies };
}

/**
 * A transport answering from `exp`. With `hold: true`, replies wait until the test
 * calls `release(i)` (or `releaseAll()`), in any order.
 */
export function fakeTransport(exp = smallExport(), { hold = false } = {}) {
  const commandListeners = new Set();
  const t = {
    requests: [],
    selections: [],
    events: [],
    /** @type {{kind: string, args: any, resolve: Function, reject: Function}[]} */
    held: [],
    destroyed: false,
    request(kind, args = {}) {
      t.requests.push({ kind, args });
      const answer = () => {
        if (kind === "meta") return { header: exp.meta, arrays: {} };
        const fn = exp.replies[kind];
        if (!fn) throw new Error(`fake transport: no reply for '${kind}'`);
        return fn(args);
      };
      if (!hold || kind === "meta") return Promise.resolve().then(answer);
      return new Promise((resolve, reject) => t.held.push({ kind, args, resolve: () => resolve(answer()), reject }));
    },
    /** Answer the held request whose kind and args match (first match). */
    release(kind, match = () => true) {
      const i = t.held.findIndex((r) => r.kind === kind && match(r.args));
      if (i < 0) throw new Error(`fake transport: no held '${kind}' request matches`);
      const [r] = t.held.splice(i, 1);
      r.resolve();
    },
    releaseAll() { for (const r of t.held.splice(0)) r.resolve(); },
    onCommand(cb) { commandListeners.add(cb); return () => commandListeners.delete(cb); },
    command(name, args = {}, buffers = []) { for (const cb of commandListeners) cb(name, args, buffers); },
    get nCommandListeners() { return commandListeners.size; },
    sendSelection(idx) { t.selections.push(Array.from(idx)); },
    sendEvent(name, payload) { t.events.push([name, payload]); },
    destroy() { t.destroyed = true; },
  };
  return t;
}

/** A renderer that records its calls (implements renderer.js's interface). */
export function fakeRenderer() {
  const r = {
    calls: [],
    positions: null, comps: 0, values: null, coloring: null, highlight: null, edges: null, arrows: null,
    draws: [], destroyed: false,
    setPositions(p, c) { r.calls.push("setPositions"); r.positions = p; r.comps = c; },
    setValues(v) { r.calls.push("setValues"); r.values = v; },
    setColoring(spec) { r.calls.push("setColoring"); r.coloring = spec; },
    setHighlight(f) { r.calls.push("setHighlight"); r.highlight = f; },
    setEdges(p) { r.calls.push("setEdges"); r.edges = p; },
    setArrows(s) { r.calls.push("setArrows"); r.arrows = s; },
    draw(mvp, o) { r.calls.push("draw"); r.draws.push({ mvp, ...o }); },
    warmUp(comps, texture, depth) { r.calls.push(`warmUp:${comps}:${texture}:${depth}`); },
    finish() { r.calls.push("finish"); return new Uint8Array(4); },
    destroy() { r.calls.push("destroy"); r.destroyed = true; },
    stats() { return { count: r.positions ? r.positions.length / r.comps : 0, edgeCount: r.edges ? r.edges.length : 0 }; },
  };
  return r;
}

/**
 * A fake anywidget model: traits in `state`, change events, custom messages both ways.
 * `sent` records what the front-end sent; `deliver` plays a message from Python.
 */
export function fakeModel(state = {}) {
  const listeners = new Map();
  const emit = (ev, ...args) => { for (const cb of [...(listeners.get(ev) || [])]) cb(...args); };
  const model = {
    state: { ...state },
    saves: 0,
    /** @type {[string, any][]} */
    sets: [],
    /** @type {{content: any, buffers: any[]}[]} */
    sent: [],
    get: (k) => model.state[k],
    set(k, v) {
      model.state[k] = v;
      model.sets.push([k, JSON.parse(JSON.stringify(v ?? null))]);
      emit(`change:${k}`);
    },
    save_changes() { model.saves += 1; },
    send(content, _callbacks, buffers) { model.sent.push({ content, buffers: buffers || [] }); },
    on(ev, cb) { if (!listeners.has(ev)) listeners.set(ev, new Set()); listeners.get(ev).add(cb); },
    off(ev, cb) { listeners.get(ev)?.delete(cb); },
    /** A trait change made in Python. */
    remote(k, v) { model.state[k] = v; emit(`change:${k}`); },
    /** A custom message from Python. */
    deliver(content, buffers = []) { emit("msg:custom", content, buffers); },
    listenerCount: () => [...listeners.values()].reduce((n, s) => n + s.size, 0),
  };
  return model;
}
