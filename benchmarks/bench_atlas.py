"""Atlas scale: bounded-memory export of a backed h5ad vs the same data in memory, and on Dask.

Run: ``python -m benchmarks.bench_atlas --size 2Mx2k --runs memory,backed,dask --memory-limit 1GB``

The h5ad (and zarr) files come from ``benchmarks.atlas_data`` (streamed, cached in
``benchmarks/.data/``). Each run is a fresh child process; only the export call
is timed, and the child's peak RSS during the export (``VmHWM`` after resetting it through
``/proc/self/clear_refs`` right before the call; inputs included) is reported with the RSS
the opened AnnData had before the export:

- ``memory``: ``read_h5ad(path)`` (everything in memory), then ``export``;
- ``backed``: ``read_h5ad(path, backed="r")``, then ``export(..., memory_limit=...)``
  (the issue's target: peak <= 1.5 GB, time <= 1.3x ``memory``); also the time of
  ``ExportPlan.from_anndata`` (what the wizard waits for) and of ``estimate()``
  with its error against the real size;
- ``lazy``: ``cellucid_nb.adata.open_file.open_h5ad(path)`` (backed, with the kNN graphs,
  layers and dense obsm left in the file, obs names as Arrow strings: the graph and the
  latent space are read by row blocks), then as ``backed``;
- ``dask``: the file opened as ``lazy`` opens it, with ``LocalCluster(n_workers=2, processes=True,
  threads_per_worker=1)``; reported: time, the client's peak and the sum of the
  workers' peaks (``ru_maxrss`` read on each worker at the end);

All runs export all genes, gzip 6, 8-bit, with the same ``created_at`` and out_dir
name, and every output is compared byte for byte with the first one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, os, resource, sys, time, warnings
warnings.simplefilter("ignore")
import anndata
from cellucid_nb.adata.exporting import export
from cellucid_nb.adata.plan import ExportPlan
run, path, out, limit = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
created = "2026-01-01T00:00:00Z"
info = {"run": run}
t = time.perf_counter()
if run == "memory":
    adata = anndata.read_h5ad(path)
elif run in ("lazy", "dask"):
    from cellucid_nb.adata.open_file import open_h5ad
    adata = open_h5ad(path)
else:
    adata = anndata.read_h5ad(path, backed="r")
info["open_s"] = time.perf_counter() - t
t = time.perf_counter()
plan = ExportPlan.from_anndata(adata).replace(genes=None, compression=6, var_quantization=8)
info["plan_s"] = time.perf_counter() - t
if run in ("backed", "lazy"):
    from cellucid_nb.adata.estimation import estimate
    t = time.perf_counter()
    info["estimate_bytes"] = estimate(adata, plan, out_dir=out).total_bytes
    info["estimate_s"] = time.perf_counter() - t
def reset_peak():
    # The peak RSS counter starts again here (estimate() and the data loading are not the export).
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False
def peak_rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
info["rss_before"] = int(open("/proc/self/statm").read().split()[1]) * 4096
info["peak_reset"] = reset_peak()
phases = {}
def progress(event):
    phases.setdefault(event.phase, round(event.elapsed, 2))
client = cluster = None
if run == "dask":
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
t = time.perf_counter()
result = export(adata, plan, out, created_at=created, progress=progress,
                memory_limit=None if limit == "auto" else limit, client=client)
info["seconds"] = time.perf_counter() - t
info["bytes"], info["files"], info["phases"] = result.n_bytes, result.n_files, phases
info["peak_rss"] = peak_rss()
if client is not None:
    peaks = client.run(lambda: __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss * 1024)
    info["worker_rss_now"] = sorted(client.run(lambda: int(open("/proc/self/statm").read().split()[1]) * 4096).values())
    info["worker_peaks"] = sorted(peaks.values())
    client.close(); cluster.close()
print(json.dumps(info))
"""


def _same_tree(a: Path, b: Path) -> tuple[bool, str]:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    if files_a != files_b:
        return False, f"file lists differ ({len(files_a)} vs {len(files_b)})"
    for rel in files_a:
        if (a / rel).read_bytes() != (b / rel).read_bytes():
            return False, f"{rel} differs"
    return True, f"{len(files_a)} files identical"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="2Mx2k")
    parser.add_argument("--runs", default="memory,backed,dask")
    parser.add_argument("--memory-limit", default="1GB", help="budget of the backed and dask runs ('auto': default)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from benchmarks.atlas_data import write_atlas_cached
    from benchmarks.synthetic import DATA_DIR, parse_size

    n_cells, n_genes = parse_size(args.size)
    path = write_atlas_cached(n_cells, n_genes)
    work = DATA_DIR / "bench_atlas_out"
    shutil.rmtree(work, ignore_errors=True)
    results = []
    first = None
    for run in args.runs.split(","):
        out = work / run / "export"
        out.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([sys.executable, "-c", CHILD, run, str(path), str(out), args.memory_limit],
                              capture_output=True, text=True)
        if proc.returncode:
            print(f"{run}: failed\n{proc.stderr[-3000:]}", flush=True)
            results.append({"run": run, "error": proc.stderr[-3000:]})
            continue
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        if first is None:
            first = out
            info["identical"] = "reference"
        else:
            ok, why = _same_tree(first, out)
            info["identical"] = why if ok else f"NOT identical: {why}"
        results.append(info)
        line = (f"{args.size} {run}: {info['seconds']:.1f} s, peak RSS {info['peak_rss'] / 1e9:.2f} GB "
                f"(AnnData before the export {info['rss_before'] / 1e9:.2f} GB), "
                f"{info['bytes'] / 1e6:.1f} MB in {info['files']} files, plan {info['plan_s']:.2f} s; {info['identical']}")
        if "estimate_s" in info:
            error = info["estimate_bytes"] / info["bytes"] - 1
            line += f"; estimate {info['estimate_s']:.2f} s, {100 * error:+.1f} %"
        if "worker_peaks" in info:
            line += f"; workers' peak RSS sum {sum(info['worker_peaks']) / 1e9:.2f} GB"
        print(line, flush=True)
        if out != first:  # keep only the reference output for the comparisons
            shutil.rmtree(out.parent, ignore_errors=True)
    base = next((r for r in results if r.get("run") == "memory" and "seconds" in r), None)
    for r in results:
        if base is not None and r is not base and "seconds" in r:
            r["time_vs_memory"] = r["seconds"] / base["seconds"]
            print(f"{r['run']}: {r['time_vs_memory']:.2f}x the in-memory time", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"size": args.size, "memory_limit": args.memory_limit,
                                               "results": results}, indent=1))


if __name__ == "__main__":
    main()
