// Category labels drawn as HTML at the projected centroids (the export's centroidsByDim).

const MAX_LABELS = 80;

/**
 * @param {HTMLElement} container  absolutely positioned over the canvas
 * @returns {{update(centroids: object[]|null, dim: number, isShown: (category: string) => boolean,
 *            mvp: Float32Array, w: number, h: number): void}}
 */
export function createLabelLayer(container) {
  const pool = [];
  return {
    update(centroids, dim, isShown, mvp, w, h) {
      let used = 0;
      if (centroids && centroids.length <= MAX_LABELS) {
        for (const c of centroids) {
          if (!isShown(String(c.category))) continue;
          const p = c.position || [];
          const x = p[0] || 0, y = dim === 1 ? 0 : p[1] || 0, z = dim === 3 ? p[2] || 0 : 0;
          const cw = mvp[3] * x + mvp[7] * y + mvp[11] * z + mvp[15];
          if (cw <= 1e-6) continue; // behind the camera
          const sx = ((mvp[0] * x + mvp[4] * y + mvp[8] * z + mvp[12]) / cw + 1) * 0.5 * w;
          const sy = (1 - (mvp[1] * x + mvp[5] * y + mvp[9] * z + mvp[13]) / cw) * 0.5 * h;
          if (sx < -50 || sy < -20 || sx > w + 50 || sy > h + 20) continue;
          let label = pool[used];
          if (!label) {
            label = document.createElement("div");
            label.className = "cnb-label";
            pool.push(label);
            container.append(label);
          }
          label.textContent = String(c.category);
          label.style.transform = `translate(${sx.toFixed(1)}px, ${sy.toFixed(1)}px) translate(-50%, -50%)`;
          label.style.display = "";
          used++;
        }
      }
      for (let i = used; i < pool.length; i++) pool[i].style.display = "none";
    },
  };
}
