// Human-readable numbers for the estimate and the result.

export function formatBytes(n) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = Number(n);
  let i = 0;
  while (Math.abs(value) >= 1000 && i < units.length - 1) {
    value /= 1000;
    i += 1;
  }
  return `${i === 0 ? value.toFixed(0) : value.toFixed(value < 10 ? 2 : 1)} ${units[i]}`;
}

export function formatSeconds(s) {
  if (s === null || s === undefined || !Number.isFinite(Number(s))) return "–";
  const v = Number(s);
  if (v < 1) return `${Math.max(0, Math.round(v * 1000))} ms`;
  if (v < 60) return `${v.toFixed(v < 10 ? 1 : 0)} s`;
  const m = Math.floor(v / 60);
  const rest = Math.round(v - m * 60);
  if (m < 60) return `${m} min ${rest} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function formatCount(n) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en-US");
}

/** Sum estimate parts per group ("points", "obs", "genes", ...) for the bar chart, largest first. */
export function partsByGroup(parts) {
  const groups = new Map();
  for (const p of parts || []) {
    const key = p.part || p.name || "other";
    const g = groups.get(key) || { part: key, bytes: 0, files: 0, exact: true };
    g.bytes += Number(p.bytes) || 0;
    g.files += Number(p.files) || 0;
    g.exact = g.exact && p.exact !== false;
    groups.set(key, g);
  }
  return [...groups.values()].sort((a, b) => b.bytes - a.bytes);
}
