// A WebGL2 context double: every call is recorded, constants are distinct numbers,
// and created objects (buffers, textures, vertex arrays, shaders, programs) are
// tracked until deleted, so a test can check that destroy() frees them all.

/**
 * @param {{failCompile?: boolean, failLink?: boolean}} [options]
 */
export function fakeGl(options = {}) {
  const live = new Set();
  const calls = [];
  const constants = new Map();
  let nextId = 1;
  let lost = false;
  const make = (kind) => { const o = { kind, id: nextId++ }; live.add(o); return o; };
  const free = (o) => { if (o) live.delete(o); };
  const impl = {
    createBuffer: () => make("buffer"),
    createTexture: () => make("texture"),
    createVertexArray: () => make("vao"),
    createShader: () => make("shader"),
    createProgram: () => make("program"),
    deleteBuffer: free, deleteTexture: free, deleteVertexArray: free, deleteShader: free, deleteProgram: free,
    getShaderParameter: () => !options.failCompile,
    getShaderInfoLog: () => "ERROR: 0:1: fake",
    getProgramParameter: (_p, pname) => (pname === gl.ACTIVE_UNIFORMS ? 3 : !options.failLink),
    getProgramInfoLog: () => "fake link error",
    getActiveUniform: (_p, i) => ({ name: ["u_mvp", "u_size", "u_scale"][i] }),
    getUniformLocation: (_p, name) => ({ name }),
    getAttribLocation: () => 0,
    getUniformBlockIndex: () => 0,
    getExtension: (name) => (name === "WEBGL_lose_context" ? { loseContext() { lost = true; } } : null),
    readPixels: (_x, _y, _w, _h, _f, _t, px) => { px[0] = 7; },
  };
  const gl = new Proxy({}, {
    get(_t, prop) {
      if (prop === "live") return live;
      if (prop === "calls") return calls;
      if (prop === "lost") return lost;
      if (typeof prop !== "string") return undefined;
      if (/^[A-Z0-9_]+$/.test(prop)) {
        if (!constants.has(prop)) constants.set(prop, 0x1000 + constants.size);
        return constants.get(prop);
      }
      return (...args) => {
        calls.push([prop, args]);
        return impl[prop] ? impl[prop](...args) : undefined;
      };
    },
  });
  return gl;
}

/** A canvas double whose getContext("webgl2") answers `gl` (null: no WebGL2). */
export function fakeCanvas(gl, width = 300, height = 200) {
  return { width, height, clientWidth: width, clientHeight: height, getContext: (kind) => (kind === "webgl2" ? gl : null) };
}
