// GLSL sources of the renderer's programs and the helpers that compile and link them
// (split from renderer.js: the renderer keeps state and draw calls, this file the GPU programs).

// Variants are compiled on demand: LUT_TEXTURE (uint16 category codes: up to 65,535
// colours in a texture) or a 256-colour uniform block (everything else, the fast
// path: no texture fetch per vertex); HIGHLIGHT only while cells are highlighted.
export const POINT_VS = `
precision highp float;
in vec3 a_pos;
in float a_val;
uniform mat4 u_mvp;
uniform float u_size;
uniform float u_scale;    // value -> palette index (1 for codes, 254/65534 for 16-bit values)
uniform float u_missing;  // values >= this are missing (palette entry 255)
#ifdef LUT_TEXTURE
uniform sampler2D u_catLut;
#else
layout(std140) uniform Palette { vec4 u_colors[256]; };
#endif
#ifdef HIGHLIGHT
in float a_flag;
uniform float u_highlightSize;
uniform vec3 u_background;
#endif
out vec4 v_color;
void main() {
#ifdef LUT_TEXTURE
  int code = int(a_val + 0.5);
  vec4 c = texelFetch(u_catLut, ivec2(code & 255, code >> 8), 0);
#else
  vec4 c = u_colors[a_val >= u_missing ? 255 : int(a_val * u_scale + 0.5)];
#endif
  gl_Position = u_mvp * vec4(a_pos, 1.0);
  gl_PointSize = u_size;
#ifdef HIGHLIGHT
  if (a_flag > 0.5) {
    gl_PointSize = u_highlightSize;
    gl_Position.z -= 0.001 * gl_Position.w; // selected cells in front
  } else {
    c.rgb = mix(c.rgb, u_background, 0.8);
  }
#endif
  if (c.a < 0.5) gl_Position = vec4(2.0, 2.0, 2.0, 1.0); // hidden: outside the clip volume
  v_color = vec4(c.rgb, 1.0);
}`;

export const POINT_FS = `#version 300 es
precision mediump float;
in vec4 v_color;
uniform bool u_round;
uniform float u_alpha;  // density opacity (density.js): premultiplied, one alpha for all points
out vec4 outColor;
void main() {
  if (u_round) {
    vec2 d = gl_PointCoord - 0.5;
    if (dot(d, d) > 0.25) discard;
  }
  outColor = vec4(v_color.rgb * u_alpha, u_alpha);
}`;

export const LINE_VS = `#version 300 es
precision highp float;
in vec3 a_pos;
uniform mat4 u_mvp;
void main() { gl_Position = u_mvp * vec4(a_pos, 1.0); }`;

export const LINE_FS = `#version 300 es
precision mediump float;
uniform vec4 u_color;
out vec4 outColor;
void main() { outColor = u_color; }`;

export function compile(gl, type, source) {
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

export function link(gl, vs, fs, locations = {}) {
  const program = gl.createProgram();
  const v = compile(gl, gl.VERTEX_SHADER, vs), f = compile(gl, gl.FRAGMENT_SHADER, fs);
  gl.attachShader(program, v);
  gl.attachShader(program, f);
  for (const [name, loc] of Object.entries(locations)) gl.bindAttribLocation(program, loc, name.startsWith("a_") ? name : `a_${name}`);
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

export function glTypeOf(gl, arr) {
  if (arr instanceof Uint8Array) return gl.UNSIGNED_BYTE;
  if (arr instanceof Uint16Array) return gl.UNSIGNED_SHORT;
  if (arr instanceof Float32Array) return gl.FLOAT;
  if (arr instanceof Uint32Array) return gl.UNSIGNED_INT;
  throw new Error(`unsupported attribute array ${arr && arr.constructor.name}`);
}
