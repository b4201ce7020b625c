// Bundles the front-end into cellucid_nb/static/ so the wheel works offline:
// anywidget loads one ES module per widget, with no CDN imports at run time.
import * as esbuild from "esbuild";
import { existsSync } from "node:fs";

const entries = [
  ["js/viewer/widget.js", "cellucid_nb/static/viewer.js"],
  ["js/viewer/viewer.css", "cellucid_nb/static/viewer.css"],
  ["js/wizard/widget.js", "cellucid_nb/static/wizard.js"],
  ["js/wizard/wizard.css", "cellucid_nb/static/wizard.css"],
  ["js/standalone/main.js", "cellucid_nb/static/standalone.js"],
];

const missing = entries.filter(([src]) => !existsSync(src)).map(([src]) => src);
if (missing.length && process.env.CELLUCID_ALLOW_MISSING !== "1") {
  console.error(`front-end sources missing: ${missing.join(", ")}`);
  process.exit(1);
}

for (const [src, out] of entries) {
  if (!existsSync(src)) continue;
  await esbuild.build({
    entryPoints: [src],
    outfile: out,
    bundle: true,
    format: "esm",
    target: "es2020",
    minify: true,
    legalComments: "none",
    logLevel: "warning",
  });
}
