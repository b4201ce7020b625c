// WebGL2 renderer: one gl.POINTS draw call for all cells. Per-point data are the
// position (float32) and one colour attribute (uint8/uint16 code or quantized value);
// colours come from a LUT texture, so switching field uploads one small attribute + LUT.
// Optional kNN edges (gl.LINES over the same position buffer) and vector arrows.

const POINT_VS = `#version 300 es
precision highp float;
in vec3 a_pos;
in float a_val;
in float a_flag;
uniform mat4 u_mvp;
uniform float u_size;
uniform int u_mode;          // 0 categorical codes, 1 continuous codes, 2 uniform colour
uniform sampler2D u_catLut;  // 256 x k RGBA, texelFetch by code
uniform sampler2D u_contLut; // 256 x 1 RGBA, linear
uniform float u_qmax;
uniform float u_missing;
uniform vec4 u_missingColor;
uniform vec4 u_uniformColor;
uniform bool u_hideMissing;
uniform bool u_highlight;
uniform vec3 u_background;
out vec4 v_color;
void main() {
  vec4 c;
  if (u_mode == 0) {
    int code = int(a_val + 0.5);
    c = texelFetch(u_catLut, ivec2(code & 255, code >> 8), 0);
  } else if (u_mode == 1) {
    if (a_val > u_missing - 0.5) {
      c = u_hideMissing ? vec4(0.0) : u_missingColor;
    } else {
      float t = clamp(a_val / u_qmax, 0.0, 1.0);
      c = texture(u_contLut, vec2(t * (255.0 / 256.0) + 0.5 / 256.0, 0.5));
    }
  } else {
    c = u_uniformColor;
  }
  float size = u_size;
  gl_Position = u_mvp * vec4(a_pos, 1.0);
  if (u_highlight) {
    if (a_flag > 0.5) {
      size = u_size * 1.6 + 1.0;
      gl_Position.z -= 0.001 * gl_Position.w; // selected cells in front
    } else {
      c = vec4(mix(c.rgb, u_background, 0.8), c.a);
    }
  }
  if (c.a < 0.5) gl_Position = vec4(2.0, 2.0, 2.0, 1.0); // hidden: outside the clip volume
  gl_PointSize = size;
  v_color = vec4(c.rgb, 1.0);
}`;

const POINT_FS = `#version 300 es
precision mediump float;
in vec4 v_color;
uniform bool u_round;
out vec4 outColor;
void main() {
  if (u_round) {
    vec2 d = gl_PointCoord - 0.5;
    if (dot(d, d) > 0.25) discard;
  }
  outColor = v_color;
}`;

const LINE_VS = `#version 300 es
precision highp float;
in vec3 a_pos;
uniform mat4 u_mvp;
void main() { gl_Position = u_mvp * vec4(a_pos, 1.0); }`;

const LINE_FS = `#version 300 es
precision mediump float;
uniform vec4 u_color;
out vec4 outColor;
void main() { outColor = u_color; }`;

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
    const log = gl.getShaderInfoLog(shader);
    gl.deleteShader(shader);
    throw new Error(`shader compile failed: ${log}`);
  }
  return shader;
}

function link(gl, vs, fs) {
  const program = gl.createProgram();
  const v = compile(gl, gl.VERTEX_SHADER, vs), f = compile(gl, gl.FRAGMENT_SHADER, fs);
  gl.attachShader(program, v);
  gl.attachShader(program, f);
  gl.linkProgram(program);
  gl.deleteShader(v);
  gl.deleteShader(f);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(`program link failed: ${gl.getProgramInfoLog(program)}`);
  const uniforms = {};
  const nu = gl.getProgramParameter(program, gl.ACTIVE_UNIFORMS);
  for (let i = 0; i < nu; i++) {
    const info = gl.getActiveUniform(program, i);
    uniforms[info.name] = gl.getUniformLocation(program, info.name);
  }
  return { program, uniforms, attrib: (name) => gl.getAttribLocation(program, name) };
}

function glTypeOf(gl, arr) {
  if (arr instanceof Uint8Array) return gl.UNSIGNED_BYTE;
  if (arr instanceof Uint16Array) return gl.UNSIGNED_SHORT;
  if (arr instanceof Float32Array) return gl.FLOAT;
  if (arr instanceof Uint32Array) return gl.UNSIGNED_INT;
  throw new Error(`unsupported attribute array ${arr && arr.constructor.name}`);
}

/**
 * Create the renderer on a canvas.
 * @param {HTMLCanvasElement} canvas
 * @throws if WebGL2 is not available
 */
export function createRenderer(canvas) {
  const gl = canvas.getContext("webgl2", { antialias: false, preserveDrawingBuffer: false, alpha: false, powerPreference: "high-performance" });
  if (!gl) throw new Error("WebGL2 is not available in this browser: the viewer needs it.");
  const points = link(gl, POINT_VS, POINT_FS);
  const lines = link(gl, LINE_VS, LINE_FS);
  const loc = { pos: points.attrib("a_pos"), val: points.attrib("a_val"), flag: points.attrib("a_flag"), linePos: lines.attrib("a_pos") };

  const vao = gl.createVertexArray();
  const lineVao = gl.createVertexArray();
  const arrowVao = gl.createVertexArray();
  const buffers = { pos: gl.createBuffer(), val: gl.createBuffer(), flag: gl.createBuffer(), edges: gl.createBuffer(), arrows: gl.createBuffer() };
  const textures = { cat: gl.createTexture(), cont: gl.createTexture() };
  for (const [tex, filter] of [[textures.cat, gl.NEAREST], [textures.cont, gl.LINEAR]]) {
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, filter);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, filter);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, 1, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array([128, 128, 128, 255]));
  }

  const state = {
    count: 0, comps: 2, hasVal: false, hasFlag: false, mode: 2, qmax: 254, missing: 255,
    edgeCount: 0, edgeType: 0, arrowCount: 0,
  };

  gl.bindVertexArray(vao);
  gl.bindBuffer(gl.ARRAY_BUFFER, buffers.pos);
  gl.enableVertexAttribArray(loc.pos);
  gl.bindVertexArray(null);

  function uploadTexture(tex, lut) {
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, lut.width, lut.height, 0, gl.RGBA, gl.UNSIGNED_BYTE, lut.data);
  }

  const api = {
    gl,
    /** Positions: Float32Array of n * comps (comps 2 or 3). */
    setPositions(positions, comps) {
      if (comps !== 2 && comps !== 3) throw new Error(`positions need 2 or 3 components, got ${comps}`);
      state.count = positions.length / comps;
      state.comps = comps;
      gl.bindVertexArray(vao);
      gl.bindBuffer(gl.ARRAY_BUFFER, buffers.pos);
      gl.bufferData(gl.ARRAY_BUFFER, positions, gl.STATIC_DRAW);
      gl.vertexAttribPointer(loc.pos, comps, gl.FLOAT, false, 0, 0);
      gl.bindVertexArray(lineVao);
      gl.bindBuffer(gl.ARRAY_BUFFER, buffers.pos);
      gl.enableVertexAttribArray(loc.linePos);
      gl.vertexAttribPointer(loc.linePos, comps, gl.FLOAT, false, 0, 0);
      gl.bindVertexArray(null);
    },
    /** Per-point codes (uint8 / uint16) or null for a uniform colour. */
    setValues(values) {
      gl.bindVertexArray(vao);
      if (!values) {
        state.hasVal = false;
        if (loc.val >= 0) { gl.disableVertexAttribArray(loc.val); gl.vertexAttrib1f(loc.val, 0); }
      } else if (loc.val >= 0) {
        state.hasVal = true;
        gl.bindBuffer(gl.ARRAY_BUFFER, buffers.val);
        gl.bufferData(gl.ARRAY_BUFFER, values, gl.STATIC_DRAW);
        gl.enableVertexAttribArray(loc.val);
        gl.vertexAttribPointer(loc.val, 1, glTypeOf(gl, values), false, 0, 0);
      }
      gl.bindVertexArray(null);
    },
    /** Colour mode: {kind: "categorical", lut} | {kind: "continuous", lut, qmax, missing} | {kind: "uniform", color}. */
    setColoring(spec) {
      if (spec.kind === "categorical") {
        state.mode = 0;
        uploadTexture(textures.cat, spec.lut);
      } else if (spec.kind === "continuous") {
        state.mode = 1;
        state.qmax = spec.qmax;
        state.missing = spec.missing;
        state.hideMissing = !!spec.hideMissing;
        if (spec.lut) uploadTexture(textures.cont, spec.lut);
      } else {
        state.mode = 2;
        state.uniformColor = spec.color || [0.3, 0.45, 0.7, 1];
      }
    },
    /** Highlight flags (Uint8Array, 1 = highlighted) or null for none. */
    setHighlight(flags) {
      gl.bindVertexArray(vao);
      if (!flags) {
        state.hasFlag = false;
        if (loc.flag >= 0) { gl.disableVertexAttribArray(loc.flag); gl.vertexAttrib1f(loc.flag, 0); }
      } else if (loc.flag >= 0) {
        state.hasFlag = true;
        gl.bindBuffer(gl.ARRAY_BUFFER, buffers.flag);
        gl.bufferData(gl.ARRAY_BUFFER, flags, gl.STATIC_DRAW);
        gl.enableVertexAttribArray(loc.flag);
        gl.vertexAttribPointer(loc.flag, 1, gl.UNSIGNED_BYTE, false, 0, 0);
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
      gl.enableVertexAttribArray(loc.linePos);
      gl.vertexAttribPointer(loc.linePos, 3, gl.FLOAT, false, 0, 0);
      gl.bindVertexArray(null);
      state.arrowCount = segments ? segments.length / 3 : 0;
    },
    /**
     * Draw one frame.
     * @param {Float32Array} mvp
     * @param {{pointSize: number, background: number[], depth: boolean, showEdges: boolean, showArrows: boolean,
     *          highlight: boolean, missingColor: number[], edgeColor: number[], arrowColor: number[]}} o
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
      gl.useProgram(points.program);
      const u = points.uniforms;
      gl.uniformMatrix4fv(u.u_mvp, false, mvp);
      gl.uniform1f(u.u_size, Math.max(1, (o.pointSize || 2) * dpr));
      gl.uniform1i(u.u_mode, state.hasVal ? state.mode : 2);
      gl.uniform1f(u.u_qmax, state.qmax);
      gl.uniform1f(u.u_missing, state.missing);
      gl.uniform4fv(u.u_missingColor, o.missingColor || [0.67, 0.67, 0.67, 1]);
      gl.uniform4fv(u.u_uniformColor, state.uniformColor || [0.3, 0.45, 0.7, 1]);
      gl.uniform1i(u.u_hideMissing, state.hideMissing ? 1 : 0);
      gl.uniform1i(u.u_highlight, state.hasFlag && o.highlight !== false ? 1 : 0);
      gl.uniform3fv(u.u_background, bg);
      gl.uniform1i(u.u_round, (o.pointSize || 2) * dpr >= 3 ? 1 : 0);
      gl.activeTexture(gl.TEXTURE0);
      gl.bindTexture(gl.TEXTURE_2D, textures.cat);
      gl.uniform1i(u.u_catLut, 0);
      gl.activeTexture(gl.TEXTURE1);
      gl.bindTexture(gl.TEXTURE_2D, textures.cont);
      gl.uniform1i(u.u_contLut, 1);
      gl.bindVertexArray(vao);
      gl.drawArrays(gl.POINTS, 0, state.count);
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
    /** Block until the GPU finished (reads one pixel): used to time real frames. */
    finish() {
      const px = new Uint8Array(4);
      gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
      return px;
    },
    /** Free every GL object and drop the context (browsers allow only a few). */
    destroy() {
      for (const b of Object.values(buffers)) gl.deleteBuffer(b);
      for (const t of Object.values(textures)) gl.deleteTexture(t);
      for (const v of [vao, lineVao, arrowVao]) gl.deleteVertexArray(v);
      gl.deleteProgram(points.program);
      gl.deleteProgram(lines.program);
      const lose = gl.getExtension("WEBGL_lose_context");
      if (lose) lose.loseContext();
    },
    stats() {
      return { ...state };
    },
  };
  // Attribute defaults while nothing is uploaded.
  gl.bindVertexArray(vao);
  if (loc.val >= 0) gl.vertexAttrib1f(loc.val, 0);
  if (loc.flag >= 0) gl.vertexAttrib1f(loc.flag, 0);
  gl.bindVertexArray(null);
  return api;
}
