// WebGL2 renderer: one gl.POINTS draw call for all cells. Per-point data are the
// position (float32) and one colour attribute (uint8/uint16 code or quantized value);
// colours come from a LUT texture, so switching field uploads one small attribute + LUT.
// Optional kNN edges (gl.LINES over the same position buffer) and vector arrows.

import { LINE_FS, LINE_VS, POINT_FS, POINT_VS, glTypeOf, link } from "./gl_programs.js";

const PALETTE_BINDING = 0;

/**
 * @typedef {object} DrawOptions
 * @property {number} [pointSize]   CSS pixels
 * @property {number} [pixelRatio]  device pixels per CSS pixel
 * @property {number[]} [background] clear colour, 0..1 RGB
 * @property {boolean} [depth]       depth test (3D)
 * @property {boolean} [showEdges]
 * @property {boolean} [showArrows]
 * @property {boolean} [highlight]   draw highlight flags when set
 * @property {number[]} [edgeColor]  0..1 RGBA
 * @property {number[]} [arrowColor] 0..1 RGBA
 * @property {number} [count]       draw only the first `count` points (progressive loading, motion)
 * @property {number} [alpha]       point opacity in (0, 1]; below 1 blends premultiplied (density.js)
 */

/**
 * What the viewer needs from a renderer; createRenderer implements it with WebGL2 and the
 * unit tests with a recording fake (js/tests/helpers/fakes.js).
 * @typedef {object} Renderer
 * @property {(positions: Float32Array, comps: number) => void} setPositions  n * comps floats (comps 2 or 3)
 * @property {(n: number, comps: number) => void} [reservePositions]  room for n points, filled by updatePositions
 * @property {(start: number, positions: Float32Array) => void} [updatePositions]  points from index `start` on
 * @property {(start: number, values: Uint8Array|Uint16Array) => void} [updateValues]  values from index `start` on
 * @property {(values: Uint8Array|Uint16Array|null) => void} setValues  per-cell codes or quantized values; null: one colour
 * @property {(spec: {kind: "palette", colors: Uint8Array, scale?: number, missing?: number}|{kind: "texture", lut: {data: Uint8Array, width: number, height: number}}|{kind: "uniform", color?: number[]}) => void} setColoring
 * @property {(flags: Uint8Array|null) => void} setHighlight  1 = highlighted
 * @property {(pairs: Uint16Array|Uint32Array|null) => void} setEdges  index pairs
 * @property {(segments: Float32Array|null) => void} setArrows  6 floats per arrow
 * @property {(mvp: Float32Array, o: DrawOptions) => void} draw
 * @property {(comps: number, texture?: boolean, depth?: boolean) => void} warmUp  compile shaders early
 * @property {() => Uint8Array} finish  wait for the GPU
 * @property {() => void} destroy  free every GL object and the context
 * @property {() => object} stats
 */

/**
 * Create the renderer on a canvas.
 * @param {HTMLCanvasElement} canvas
 * @returns {Renderer & {gl: WebGL2RenderingContext}}
 * @throws if WebGL2 is not available
 */
export function createRenderer(canvas) {
  const gl = canvas.getContext("webgl2", { antialias: false, preserveDrawingBuffer: false, alpha: false, powerPreference: "high-performance" });
  if (!gl) throw new Error("WebGL2 is not available in this browser: the viewer needs it.");
  // Fixed attribute locations so one VAO serves every program variant.
  const LOC = { pos: 0, val: 1, flag: 2 };
  const programs = new Map(); // variant key -> {program, uniforms}
  function pointProgram(texture, highlight) {
    const key = `${texture ? "t" : "u"}${highlight ? "h" : ""}`;
    if (!programs.has(key)) {
      const defs = `#version 300 es\n${texture ? "#define LUT_TEXTURE\n" : ""}${highlight ? "#define HIGHLIGHT\n" : ""}`;
      const p = link(gl, defs + POINT_VS, POINT_FS, LOC);
      if (!texture) gl.uniformBlockBinding(p.program, gl.getUniformBlockIndex(p.program, "Palette"), PALETTE_BINDING);
      programs.set(key, p);
    }
    return programs.get(key);
  }
  const lines = link(gl, LINE_VS, LINE_FS, { a_pos: LOC.pos });

  const vao = gl.createVertexArray();
  const lineVao = gl.createVertexArray();
  const arrowVao = gl.createVertexArray();
  const buffers = { pos: gl.createBuffer(), val: gl.createBuffer(), flag: gl.createBuffer(), edges: gl.createBuffer(), arrows: gl.createBuffer(), palette: gl.createBuffer() };
  const catTexture = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D, catTexture);
  for (const [k, v] of [[gl.TEXTURE_MIN_FILTER, gl.NEAREST], [gl.TEXTURE_MAG_FILTER, gl.NEAREST], [gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE], [gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE]]) gl.texParameteri(gl.TEXTURE_2D, k, v);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, 1, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array([128, 128, 128, 255]));
  gl.bindBuffer(gl.UNIFORM_BUFFER, buffers.palette);
  gl.bufferData(gl.UNIFORM_BUFFER, 256 * 16, gl.DYNAMIC_DRAW);
  gl.bindBuffer(gl.UNIFORM_BUFFER, null);

  const state = { count: 0, comps: 2, hasVal: false, hasFlag: false, texture: false, scale: 1, missing: 255, edgeCount: 0, edgeType: 0, arrowCount: 0 };

  gl.bindVertexArray(vao);
  gl.vertexAttrib1f(LOC.val, 0);
  gl.vertexAttrib1f(LOC.flag, 0);
  gl.bindVertexArray(null);

  /** Upload 256 RGBA (0-255) colours to the palette uniform block. */
  function uploadPalette(rgba256) {
    const f = new Float32Array(256 * 4);
    for (let i = 0; i < 1024; i++) f[i] = rgba256[i] / 255;
    gl.bindBuffer(gl.UNIFORM_BUFFER, buffers.palette);
    gl.bufferSubData(gl.UNIFORM_BUFFER, 0, f);
    gl.bindBuffer(gl.UNIFORM_BUFFER, null);
  }

  /** Position buffer of n points: the data, or a byte size to fill later; both VAOs read it. */
  function uploadPositions(n, comps, dataOrBytes) {
    if (comps !== 2 && comps !== 3) throw new Error(`positions need 2 or 3 components, got ${comps}`);
    state.count = n;
    state.comps = comps;
    gl.bindBuffer(gl.ARRAY_BUFFER, buffers.pos);
    gl.bufferData(gl.ARRAY_BUFFER, dataOrBytes, gl.STATIC_DRAW);
    for (const v of [vao, lineVao]) {
      gl.bindVertexArray(v);
      gl.bindBuffer(gl.ARRAY_BUFFER, buffers.pos);
      gl.enableVertexAttribArray(LOC.pos);
      gl.vertexAttribPointer(LOC.pos, comps, gl.FLOAT, false, 0, 0);
    }
    gl.bindVertexArray(null);
  }

  const api = {
    gl,
    /** Positions: Float32Array of n * comps (comps 2 or 3). */
    setPositions(positions, comps) {
      uploadPositions(positions.length / comps, comps, positions);
    },
    /** Room for n points of `comps` components (zeros until updatePositions fills them). */
    reservePositions(n, comps) {
      uploadPositions(n, comps, n * comps * 4);
    },
    /** Overwrite points from index `start` on (a slice of n * comps floats). */
    updatePositions(start, positions) {
      gl.bindBuffer(gl.ARRAY_BUFFER, buffers.pos);
      gl.bufferSubData(gl.ARRAY_BUFFER, start * state.comps * 4, positions);
      gl.bindBuffer(gl.ARRAY_BUFFER, null);
    },
    /** Overwrite per-point values from index `start` on (same type as given to setValues). */
    updateValues(start, values) {
      gl.bindBuffer(gl.ARRAY_BUFFER, buffers.val);
      gl.bufferSubData(gl.ARRAY_BUFFER, start * values.BYTES_PER_ELEMENT, values);
      gl.bindBuffer(gl.ARRAY_BUFFER, null);
    },
    /** Per-point codes or quantized values (Uint8Array / Uint16Array), or null for one colour. */
    setValues(values) {
      gl.bindVertexArray(vao);
      if (!values) {
        state.hasVal = false;
        gl.disableVertexAttribArray(LOC.val);
        gl.vertexAttrib1f(LOC.val, 0);
      } else {
        state.hasVal = true;
        gl.bindBuffer(gl.ARRAY_BUFFER, buffers.val);
        gl.bufferData(gl.ARRAY_BUFFER, values, gl.STATIC_DRAW);
        gl.enableVertexAttribArray(LOC.val);
        gl.vertexAttribPointer(LOC.val, 1, glTypeOf(gl, values), false, 0, 0);
      }
      gl.bindVertexArray(null);
    },
    /**
     * How values become colours.
     * {kind: "palette", colors: Uint8Array(1024), scale, missing}: 256 colours, index = value * scale
     *   (values >= missing use entry 255);
     * {kind: "texture", lut: {data, width, height}}: one texel per uint16 category code;
     * {kind: "uniform", color: [r, g, b, a] 0-255}.
     */
    setColoring(spec) {
      if (spec.kind === "texture") {
        state.texture = true;
        gl.bindTexture(gl.TEXTURE_2D, catTexture);
        gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, spec.lut.width, spec.lut.height, 0, gl.RGBA, gl.UNSIGNED_BYTE, spec.lut.data);
        return;
      }
      state.texture = false;
      if (spec.kind === "palette") {
        state.scale = spec.scale ?? 1;
        state.missing = spec.missing ?? 255;
        uploadPalette(spec.colors);
      } else {
        const c = spec.color || [77, 115, 179, 255];
        const colors = new Uint8Array(1024);
        for (let i = 0; i < 256; i++) colors.set(c, i * 4);
        state.scale = 1;
        state.missing = 1e9;
        uploadPalette(colors);
      }
    },
    /** Highlight flags (Uint8Array, 1 = highlighted) or null for none. */
    setHighlight(flags) {
      gl.bindVertexArray(vao);
      if (!flags) {
        state.hasFlag = false;
        gl.disableVertexAttribArray(LOC.flag);
        gl.vertexAttrib1f(LOC.flag, 0);
      } else {
        state.hasFlag = true;
        gl.bindBuffer(gl.ARRAY_BUFFER, buffers.flag);
        gl.bufferData(gl.ARRAY_BUFFER, flags, gl.STATIC_DRAW);
        gl.enableVertexAttribArray(LOC.flag);
        gl.vertexAttribPointer(LOC.flag, 1, gl.UNSIGNED_BYTE, false, 0, 0);
      }
      gl.bindVertexArray(null);
    },
    /** Edge index pairs (Uint16Array / Uint32Array) into the current positions, or null. */
    setEdges(pairs) {
      gl.bindVertexArray(lineVao);
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, buffers.edges);
      gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, pairs || new Uint16Array(0), gl.STATIC_DRAW);
      gl.bindVertexArray(null);
      state.edgeCount = pairs ? pairs.length : 0;
      state.edgeType = pairs ? glTypeOf(gl, pairs) : 0;
    },
    /** Arrow segments: Float32Array of 6 floats per arrow (start xyz, end xyz), or null. */
    setArrows(segments) {
      gl.bindVertexArray(arrowVao);
      gl.bindBuffer(gl.ARRAY_BUFFER, buffers.arrows);
      gl.bufferData(gl.ARRAY_BUFFER, segments || new Float32Array(0), gl.STATIC_DRAW);
      gl.enableVertexAttribArray(LOC.pos);
      gl.vertexAttribPointer(LOC.pos, 3, gl.FLOAT, false, 0, 0);
      gl.bindVertexArray(null);
      state.arrowCount = segments ? segments.length / 3 : 0;
    },
    /**
     * Draw one frame.
     * @param {Float32Array} mvp
     * @param {DrawOptions} o
     */
    draw(mvp, o) {
      const dpr = o.pixelRatio || 1;
      gl.viewport(0, 0, canvas.width, canvas.height);
      const bg = o.background || [1, 1, 1];
      gl.clearColor(bg[0], bg[1], bg[2], 1);
      gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
      if (!state.count) return;
      if (o.showEdges && state.edgeCount) {
        gl.disable(gl.DEPTH_TEST);
        gl.enable(gl.BLEND);
        gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
        gl.useProgram(lines.program);
        gl.uniformMatrix4fv(lines.uniforms.u_mvp, false, mvp);
        gl.uniform4fv(lines.uniforms.u_color, o.edgeColor || [0.5, 0.5, 0.5, 0.25]);
        gl.bindVertexArray(lineVao);
        gl.drawElements(gl.LINES, state.edgeCount, state.edgeType, 0);
        gl.disable(gl.BLEND);
      }
      if (o.depth) { gl.enable(gl.DEPTH_TEST); gl.depthFunc(gl.LEQUAL); } else gl.disable(gl.DEPTH_TEST);
      const highlight = state.hasFlag && o.highlight !== false;
      const texture = state.texture && state.hasVal;
      const p = pointProgram(texture, highlight);
      const u = p.uniforms;
      const size = Math.max(1, (o.pointSize || 2) * dpr);
      gl.useProgram(p.program);
      gl.uniformMatrix4fv(u.u_mvp, false, mvp);
      gl.uniform1f(u.u_size, size);
      gl.uniform1i(u.u_round, size >= 3 ? 1 : 0);
      const alpha = o.alpha > 0 && o.alpha < 1 ? o.alpha : 1;
      gl.uniform1f(u.u_alpha, alpha);
      if (alpha < 1) {
        gl.enable(gl.BLEND);
        gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
        if (o.depth) gl.depthMask(false); // translucent points must not hide those drawn after them
      }
      if (texture) {
        gl.activeTexture(gl.TEXTURE0);
        gl.bindTexture(gl.TEXTURE_2D, catTexture);
        gl.uniform1i(u.u_catLut, 0);
      } else {
        gl.bindBufferBase(gl.UNIFORM_BUFFER, PALETTE_BINDING, buffers.palette);
        gl.uniform1f(u.u_scale, state.hasVal ? state.scale : 1);
        gl.uniform1f(u.u_missing, state.hasVal ? state.missing : 1e9);
      }
      if (highlight) {
        gl.uniform1f(u.u_highlightSize, size * 1.6 + 1);
        gl.uniform3fv(u.u_background, bg);
      }
      gl.bindVertexArray(vao);
      gl.drawArrays(gl.POINTS, 0, o.count >= 0 ? Math.min(o.count, state.count) : state.count);
      if (alpha < 1) { gl.disable(gl.BLEND); gl.depthMask(true); }
      if (o.showArrows && state.arrowCount) {
        gl.disable(gl.DEPTH_TEST);
        gl.useProgram(lines.program);
        gl.uniformMatrix4fv(lines.uniforms.u_mvp, false, mvp);
        gl.uniform4fv(lines.uniforms.u_color, o.arrowColor || [0.1, 0.1, 0.1, 0.9]);
        gl.bindVertexArray(arrowVao);
        gl.drawArrays(gl.LINES, 0, state.arrowCount);
      }
      gl.bindVertexArray(null);
    },
    /**
     * Compile the point program and draw one point with the formats to come (float positions
     * with `comps` components, uint8 values), so that the driver's shader compilation
     * happens while the data are still on their way.
     */
    warmUp(comps, texture = false, depth = false) {
      const saved = state.count;
      api.setPositions(new Float32Array(comps), comps);
      api.setValues(new Uint8Array(1));
      if (texture) api.setColoring({ kind: "texture", lut: { data: new Uint8Array(4), width: 1, height: 1 } });
      else api.setColoring({ kind: "uniform" });
      api.draw(new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]), { pointSize: 1, depth });
      api.finish();
      api.setValues(null);
      state.count = saved;
    },
    /** Block until the GPU finished (reads one pixel): used to time real frames. */
    finish() {
      const px = new Uint8Array(4);
      gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
      return px;
    },
    /** Free every GL object and drop the context (browsers allow only a few). */
    destroy() {
      for (const b of Object.values(buffers)) gl.deleteBuffer(b);
      gl.deleteTexture(catTexture);
      for (const v of [vao, lineVao, arrowVao]) gl.deleteVertexArray(v);
      for (const p of programs.values()) gl.deleteProgram(p.program);
      programs.clear();
      gl.deleteProgram(lines.program);
      const lose = gl.getExtension("WEBGL_lose_context");
      if (lose) lose.loseContext();
    },
    stats() {
      return { ...state, programs: [...programs.keys()] };
    },
  };
  return api;
}
