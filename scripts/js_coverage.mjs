// Line coverage of every front-end source file under js/ (tests and the build script
// aside), with node's built-in test coverage. A file that no test imports counts as
// 0 % of its lines (node's own summary leaves such files out). Prints one row per file
// and the total; exits non-zero when a test fails or the total is below the threshold.
//
//   node scripts/js_coverage.mjs [--min 80]
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const SOURCE_DIR = "js";
const EXCLUDED = [/^js\/tests\//, /^js\/build\.mjs$/];

/** @param {string[]} argv */
function minimumFrom(argv) {
  const i = argv.indexOf("--min");
  if (i < 0) return 80;
  const value = Number(argv[i + 1]);
  if (!Number.isFinite(value) || value < 0 || value > 100) {
    throw new Error(`--min expects a percentage between 0 and 100, got '${argv[i + 1]}'`);
  }
  return value;
}

/** Front-end source files, relative to the repository root, sorted. */
export function sourceFiles(dir = SOURCE_DIR) {
  /** @type {string[]} */
  const out = [];
  for (const name of readdirSync(path.join(ROOT, dir))) {
    const rel = `${dir}/${name}`;
    if (statSync(path.join(ROOT, rel)).isDirectory()) out.push(...sourceFiles(rel));
    else if (/\.(m?js)$/.test(name) && !EXCLUDED.some((re) => re.test(rel))) out.push(rel);
  }
  return out.sort();
}

/**
 * Lines found / hit per file from an lcov report.
 * @param {string} text
 * @returns {Map<string, {found: number, hit: number}>}
 */
export function parseLcov(text) {
  const files = new Map();
  let current = null;
  for (const line of text.split("\n")) {
    if (line.startsWith("SF:")) {
      current = path.relative(ROOT, path.resolve(ROOT, line.slice(3))).split(path.sep).join("/");
      files.set(current, { found: 0, hit: 0 });
    } else if (line.startsWith("DA:") && current) {
      const count = Number(line.slice(3).split(",")[1]);
      const entry = files.get(current);
      entry.found += 1;
      if (count > 0) entry.hit += 1;
    }
  }
  return files;
}

function lineCount(rel) {
  const text = readFileSync(path.join(ROOT, rel), "utf8");
  return text.endsWith("\n") ? text.split("\n").length - 1 : text.split("\n").length;
}

function main() {
  const minimum = minimumFrom(process.argv.slice(2));
  const dir = mkdtempSync(path.join(tmpdir(), "cnb-jscov-"));
  const lcovPath = path.join(dir, "lcov.info");
  try {
    const run = spawnSync(process.execPath, [
      "--test", "--experimental-test-coverage",
      "--test-reporter=dot", "--test-reporter-destination=stdout",
      "--test-reporter=lcov", `--test-reporter-destination=${lcovPath}`,
      "js/tests/",
    ], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
    if (run.status !== 0) {
      console.error(`js coverage: the tests failed (exit status ${run.status}); no figure computed`);
      process.exit(run.status || 1);
    }
    const measured = parseLcov(readFileSync(lcovPath, "utf8"));
    let found = 0, hit = 0;
    const rows = [];
    for (const rel of sourceFiles()) {
      const m = measured.get(rel) || { found: lineCount(rel), hit: 0 };
      found += m.found;
      hit += m.hit;
      rows.push(`${(m.found ? (100 * m.hit) / m.found : 100).toFixed(1).padStart(6)} %  ${String(m.hit).padStart(5)} / ${String(m.found).padEnd(5)} ${rel}${measured.has(rel) ? "" : "  (no test imports it)"}`);
    }
    const total = found ? (100 * hit) / found : 100;
    console.log(["", "JS line coverage per file (all sources under js/, tests and js/build.mjs aside):", ...rows].join("\n"));
    console.log(`\nJS line coverage: ${total.toFixed(1)} % (${hit} of ${found} lines), minimum ${minimum} %`);
    if (total < minimum) {
      console.error(`js coverage ${total.toFixed(1)} % is below the minimum of ${minimum} %`);
      process.exit(1);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) main();
