// The static site's transport: the viewer's Transport interface (js/viewer/transport.js)
// answered in the browser from the export's files, with no server behind it.
import { openExport } from "./export_model.js";

/**
 * @param {import("./sources.js").Source} source  the export folder
 * @param {{name?: string}} [options]
 * @returns {import("../viewer/transport.js").Transport & {kind: string, onSelection: (cb: (idx: Uint32Array) => void) => () => void, opened: Promise<any>}}
 */
export function createStaticTransport(source, options = {}) {
  const opened = openExport(source, options);
  opened.catch(() => {}); // reported through the first request
  const selectionListeners = new Set();
  let destroyed = false;
  return {
    kind: "static",
    opened,
    async request(kind, args = {}) {
      if (destroyed) throw new Error("viewer transport was destroyed");
      const model = await opened;
      return model.request(kind, args);
    },
    /** No host sends commands to a static page. */
    onCommand() {
      return () => {};
    },
    /** Selections stay in the page (the CSV download reads them). */
    sendSelection(indices) {
      for (const listener of selectionListeners) listener(indices);
    },
    onSelection(listener) {
      selectionListeners.add(listener);
      return () => selectionListeners.delete(listener);
    },
    sendEvent() {},
    destroy() {
      destroyed = true;
      selectionListeners.clear();
    },
  };
}
