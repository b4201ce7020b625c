// Mount the viewer for a test: happy-dom host of 300 x 200 CSS pixels, fake transport
// and renderer, manual frames; returns the pieces a test inspects.
import { manualFrames, setSize } from "./dom.js";
import { fakeRenderer, fakeTransport, smallExport } from "./fakes.js";

/**
 * @param {object} [options]  mountViewer options
 * @param {{hold?: boolean}} [transportOptions]
 */
export async function mounted(options = {}, transportOptions = {}) {
  const { mountViewer } = await import("../../viewer/mount.js");
  const host = document.createElement("div");
  document.body.append(host);
  const transport = fakeTransport(smallExport(), transportOptions);
  const renderer = fakeRenderer();
  const frames = manualFrames();
  const states = [];
  const v = mountViewer(host, transport, {
    createRenderer: () => renderer, frames, onStateChange: (s) => states.push({ ...s }), ...options,
  });
  const canvas = host.querySelector(".cnb-canvas");
  setSize(canvas, 300, 200);
  setSize(host.querySelector(".cnb-stage"), 300, 200);
  if (!transportOptions.hold) await v.ready;
  return { host, transport, renderer, frames, states, v, canvas };
}
