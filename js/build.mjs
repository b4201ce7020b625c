// Bundles the front-end into cellucid_nb/static/ so the wheel works offline:
// anywidget loads one ES module per widget, with no CDN imports at run time.
import * as esbuild from "esbuild";
import { existsSync } from "node:fs";
import path from "node:path";

// CELLUCID_BUILD_OUTDIR lets tests build elsewhere and compare with the committed bundle.
const outDir = process.env.CELLUCID_BUILD_OUTDIR || "cellucid_nb/static";

const entries = [
  ["js/viewer/widget.js", "viewer.js"],
  ["js/viewer/viewer.css", "viewer.css"],
  ["js/wizard/widget.js", "wizard.js"],
  ["js/wizard/wizard.css", "wizard.css"],
  ["js/standalone/main.js", "standalone.js"],
  // classic script: browsers refuse module scripts on pages opened from file://
  ["js/site/main.js", "site.js", "iife"],
];

const missing = entries.filter(([src]) => !existsSync(src)).map(([src]) => src);
if (missing.length && process.env.CELLUCID_ALLOW_MISSING !== "1") {
  console.error(`front-end sources missing: ${missing.join(", ")}`);
  process.exit(1);
}

for (const [src, out, format = "esm"] of entries) {
  if (!existsSync(src)) continue;
  await esbuild.build({
    entryPoints: [src],
    outfile: path.join(outDir, out),
    bundle: true,
    format: /** @type {"esm"|"iife"} */ (format),
    target: "es2020",
    minify: true,
    legalComments: "none",
    logLevel: "warning",
  });
}
