import { test } from "node:test";
import assert from "node:assert/strict";
import { createCamera, clipToScreen, mat4Multiply, mat4Identity, transformPoint } from "../viewer/camera.js";

const close = (a, b, eps = 1e-4) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test("2D default view fits [-1, 1] inside the viewport keeping aspect ratio", () => {
  const cam = createCamera(2);
  const m = cam.matrix(800, 400);
  const [sx, sy] = clipToScreen(transformPoint(m, 1, 1, 0), 800, 400);
  const [cx, cy] = clipToScreen(transformPoint(m, 0, 0, 0), 800, 400);
  close(cx, 400); close(cy, 200);
  close(sx - cx, cy - sy); // same pixels per unit on both axes
  assert.ok(sy > 0 && sy < 200, "top of data inside the view");
});

test("2D zoom keeps the data point under the cursor fixed", () => {
  const cam = createCamera(2);
  const before = cam.screenToData(600, 100, 800, 400);
  cam.zoom(3, 600, 100, 800, 400);
  const after = cam.screenToData(600, 100, 800, 400);
  close(before[0], after[0]); close(before[1], after[1]);
  assert.equal(cam.scale, 3);
});

test("2D pan moves data with the mouse", () => {
  const cam = createCamera(2);
  const m0 = cam.matrix(500, 500);
  const p0 = clipToScreen(transformPoint(m0, 0.2, 0.3, 0), 500, 500);
  cam.pan(40, -25, 500, 500);
  const p1 = clipToScreen(transformPoint(cam.matrix(500, 500), 0.2, 0.3, 0), 500, 500);
  close(p1[0] - p0[0], 40); close(p1[1] - p0[1], -25);
});

test("3D camera looks at its target; orbit moves the eye but not the target's pixel", () => {
  const cam = createCamera(3);
  const [x, y] = clipToScreen(transformPoint(cam.matrix(600, 400), 0, 0, 0), 600, 400);
  close(x, 300); close(y, 200);
  const eye0 = cam.eye();
  cam.orbit(100, 30);
  const eye1 = cam.eye();
  assert.ok(Math.hypot(eye1[0] - eye0[0], eye1[1] - eye0[1], eye1[2] - eye0[2]) > 0.5);
  const [x2, y2] = clipToScreen(transformPoint(cam.matrix(600, 400), 0, 0, 0), 600, 400);
  close(x2, 300); close(y2, 200);
  close(Math.hypot(...eye1), cam.distance);
  // every unit-cube corner is in front of the camera and inside the view
  for (const c of [[-1, -1, -1], [1, 1, 1], [1, -1, 1], [-1, 1, -1]]) {
    const clip = transformPoint(cam.matrix(600, 400), ...c);
    assert.ok(clip[3] > 0);
    assert.ok(Math.abs(clip[0] / clip[3]) <= 1 && Math.abs(clip[1] / clip[3]) <= 1);
  }
});

test("3D zoom brings the camera closer; reset restores the default", () => {
  const cam = createCamera(3);
  const d0 = cam.distance;
  cam.zoom(2, 0, 0, 100, 100);
  close(cam.distance, d0 / 2);
  cam.pan(10, 10, 100, 100);
  cam.reset();
  close(cam.distance, d0);
  assert.deepEqual(cam.target, [0, 0, 0]);
});

test("mat4Multiply with identity is a no-op", () => {
  const cam = createCamera(3);
  const m = cam.matrix(300, 200);
  assert.deepEqual(Array.from(mat4Multiply(mat4Identity(), m)), Array.from(m));
});
