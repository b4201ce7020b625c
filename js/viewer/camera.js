// Camera maths: the camera owns a view state and writes one column-major 4x4
// matrix (data -> clip space) that the renderer and the CPU picking both use.
// Exported data are normalised to [-1, 1], which sets the default framing.

export function mat4Identity() {
  const m = new Float32Array(16);
  m[0] = m[5] = m[10] = m[15] = 1;
  return m;
}

/** out = a * b (column-major). */
export function mat4Multiply(a, b) {
  const out = new Float32Array(16);
  for (let c = 0; c < 4; c++) {
    for (let r = 0; r < 4; r++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[k * 4 + r] * b[c * 4 + k];
      out[c * 4 + r] = s;
    }
  }
  return out;
}

export function mat4Perspective(fovy, aspect, near, far) {
  const f = 1 / Math.tan(fovy / 2);
  const m = new Float32Array(16);
  m[0] = f / aspect;
  m[5] = f;
  m[10] = (far + near) / (near - far);
  m[11] = -1;
  m[14] = (2 * far * near) / (near - far);
  return m;
}

function normalize(v) {
  const l = Math.hypot(v[0], v[1], v[2]) || 1;
  return [v[0] / l, v[1] / l, v[2] / l];
}
function cross(a, b) {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

export function mat4LookAt(eye, target, up) {
  const z = normalize([eye[0] - target[0], eye[1] - target[1], eye[2] - target[2]]);
  const x = normalize(cross(up, z));
  const y = cross(z, x);
  const m = new Float32Array(16);
  m[0] = x[0]; m[4] = x[1]; m[8] = x[2];
  m[1] = y[0]; m[5] = y[1]; m[9] = y[2];
  m[2] = z[0]; m[6] = z[1]; m[10] = z[2];
  m[12] = -(x[0] * eye[0] + x[1] * eye[1] + x[2] * eye[2]);
  m[13] = -(y[0] * eye[0] + y[1] * eye[1] + y[2] * eye[2]);
  m[14] = -(z[0] * eye[0] + z[1] * eye[1] + z[2] * eye[2]);
  m[15] = 1;
  return m;
}

/** Apply a column-major matrix to (x, y, z, 1) -> [x, y, z, w]. */
export function transformPoint(m, x, y, z) {
  return [
    m[0] * x + m[4] * y + m[8] * z + m[12],
    m[1] * x + m[5] * y + m[9] * z + m[13],
    m[2] * x + m[6] * y + m[10] * z + m[14],
    m[3] * x + m[7] * y + m[11] * z + m[15],
  ];
}

const FIT = 0.46; // half-extent of [-1, 1] data as a fraction of the smaller side
const FOVY = Math.PI / 4;
const DEFAULT_3D = { yaw: 0.6, pitch: 0.35, distance: 3.4 };

/**
 * A camera for 2D (pan + zoom) or 3D (orbit + pan + zoom) views.
 * @param {2|3} mode
 */
export function createCamera(mode = 2) {
  const cam = {
    mode,
    // 2D state
    cx: 0, cy: 0, scale: 1,
    // 3D state
    target: [0, 0, 0], yaw: DEFAULT_3D.yaw, pitch: DEFAULT_3D.pitch, distance: DEFAULT_3D.distance,
    version: 0, // bumps on every change, so cached projections know they are stale

    setMode(m) {
      if (m !== 2 && m !== 3) throw new Error(`camera mode must be 2 or 3, got ${m}`);
      cam.mode = m;
      cam.version++;
    },
    reset() {
      cam.cx = 0; cam.cy = 0; cam.scale = 1;
      cam.target = [0, 0, 0];
      Object.assign(cam, DEFAULT_3D);
      cam.version++;
    },
    /** Data units -> pixels in 2D. */
    pixelsPerUnit(w, h) {
      return cam.scale * FIT * Math.min(w, h) * 2;
    },
    eye() {
      const cp = Math.cos(cam.pitch);
      return [
        cam.target[0] + cam.distance * cp * Math.sin(cam.yaw),
        cam.target[1] + cam.distance * Math.sin(cam.pitch),
        cam.target[2] + cam.distance * cp * Math.cos(cam.yaw),
      ];
    },
    /** Data -> clip matrix for a viewport of w x h CSS pixels. */
    matrix(w, h) {
      if (cam.mode === 2) {
        const ppu = cam.pixelsPerUnit(w, h) / 2; // pixels per data unit
        const a = (2 * ppu) / w, b = (2 * ppu) / h;
        const m = mat4Identity();
        m[0] = a; m[5] = b; m[10] = 0.1;
        m[12] = -cam.cx * a; m[13] = -cam.cy * b;
        return m;
      }
      const near = Math.max(0.01, cam.distance - 4), far = cam.distance + 4;
      const proj = mat4Perspective(FOVY, w / Math.max(1, h), near, far);
      return mat4Multiply(proj, mat4LookAt(cam.eye(), cam.target, [0, 1, 0]));
    },
    /** Pan by a drag of (dx, dy) CSS pixels. */
    pan(dx, dy, w, h) {
      if (cam.mode === 2) {
        const ppu = cam.pixelsPerUnit(w, h) / 2;
        cam.cx -= dx / ppu;
        cam.cy += dy / ppu;
      } else {
        // move the target in the camera plane; one pixel ~ the size of a pixel at the target
        const worldPerPixel = (2 * cam.distance * Math.tan(FOVY / 2)) / Math.max(1, h);
        const z = normalize(cam.eye().map((e, i) => e - cam.target[i]));
        const x = normalize(cross([0, 1, 0], z));
        const y = cross(z, x);
        for (let i = 0; i < 3; i++) cam.target[i] += (-dx * x[i] + dy * y[i]) * worldPerPixel;
      }
      cam.version++;
    },
    /** Zoom by factor (> 1 zooms in) keeping the data point under (px, py) in place (2D). */
    zoom(factor, px, py, w, h) {
      if (!(factor > 0)) return;
      if (cam.mode === 2) {
        const before = cam.screenToData(px, py, w, h);
        cam.scale = Math.min(1e4, Math.max(0.05, cam.scale * factor));
        const after = cam.screenToData(px, py, w, h);
        cam.cx += before[0] - after[0];
        cam.cy += before[1] - after[1];
      } else {
        cam.distance = Math.min(50, Math.max(0.05, cam.distance / factor));
      }
      cam.version++;
    },
    /** Orbit by a drag of (dx, dy) CSS pixels (3D). */
    orbit(dx, dy) {
      cam.yaw -= dx * 0.008;
      cam.pitch = Math.min(1.55, Math.max(-1.55, cam.pitch + dy * 0.008));
      cam.version++;
    },
    /** CSS pixel -> data coordinates (2D only). */
    screenToData(px, py, w, h) {
      const ppu = cam.pixelsPerUnit(w, h) / 2;
      return [cam.cx + (px - w / 2) / ppu, cam.cy - (py - h / 2) / ppu];
    },
    getState() {
      return { mode: cam.mode, cx: cam.cx, cy: cam.cy, scale: cam.scale, target: [...cam.target], yaw: cam.yaw, pitch: cam.pitch, distance: cam.distance };
    },
  };
  return cam;
}

/** Clip -> CSS pixel coordinates. */
export function clipToScreen(clip, w, h) {
  const [x, y, , cw] = clip;
  return [((x / cw + 1) / 2) * w, ((1 - y / cw) / 2) * h];
}
