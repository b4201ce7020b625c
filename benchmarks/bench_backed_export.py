"""Peak memory of ``export()`` on a backed 500k-cell AnnData (must stay under 2 GiB).

Run: ``.venv/bin/python -m benchmarks.bench_backed_export [--size 500kx2k] [--genes all|hvg]``

The h5ad is written once by ``benchmarks.synthetic.write_h5ad_cached`` (outside
the measurement); the export then runs in a fresh child process whose peak RSS
(``ru_maxrss``) is reported:
``size genes seconds load_s bytes files peak_rss_GiB`` (``load_s``: reading the
chosen genes from the h5ad, before the exporter starts).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time, warnings
import anndata
from cellucid_nb.adata.exporting import export
from cellucid_nb.adata.plan import ExportPlan
path, out, genes = sys.argv[1], sys.argv[2], sys.argv[3]
adata = anndata.read_h5ad(path, backed="r")
plan = ExportPlan.from_anndata(adata)
if genes == "all":
    plan = plan.replace(genes=None)
marks = {}
def progress(event):
    marks.setdefault(event.phase, event.elapsed)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    result = export(adata, plan, out, progress=progress)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": result.seconds, "bytes": result.n_bytes, "files": result.n_files, "peak": peak,
                  "load": marks.get("validate", 0.0)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="500kx2k")
    parser.add_argument("--genes", default="all", choices=["all", "hvg"])
    args = parser.parse_args()
    from benchmarks.synthetic import parse_size, write_h5ad_cached

    n, g = parse_size(args.size)
    path = write_h5ad_cached(n, g)
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), f"{tmp}/export", args.genes],
            check=True, capture_output=True, text=True,
        )
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    gib = stats["peak"] / 2**30
    print(f"{args.size} genes={args.genes} seconds={stats['seconds']:.1f} load_s={stats['load']:.1f} bytes={stats['bytes']:,} "
          f"files={stats['files']:,} peak_rss_GiB={gib:.2f} ({'OK' if gib < 2 else 'OVER'} 2 GiB)", flush=True)


if __name__ == "__main__":
    main()
