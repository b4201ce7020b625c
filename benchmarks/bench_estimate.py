"""Accuracy and speed of ``estimate()`` against real exports.

Run: ``.venv/bin/python -m benchmarks.bench_estimate [--sizes 10kx2k,100kx5k] [--quick]``

Prints one line per (data set, compression, quantization):
``dataset comp bits estimate_bytes real_bytes error_% estimate_ms export_s``
and finally the estimate time on an in-memory 1M x 30k CSR (generation excluded),
which must stay under 300 ms.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from benchmarks.synthetic import make_anndata, parse_size
from cellucid_nb.adata.estimation import estimate
from cellucid_nb.adata.exporting import export
from cellucid_nb.adata.inspection import inspect
from cellucid_nb.adata.plan import ExportPlan

GRID = [(None, None), (None, 8), (1, 8), (6, None), (6, 8), (6, 16), (9, 8)]


def million_by_30k(seed: int = 0):
    """An in-memory AnnData of 1M cells x 30k genes, sparse CSR built directly (24 values per cell)."""
    import anndata

    rng = np.random.default_rng(seed)
    n, g, per_row = 1_000_000, 30_000, 24
    indptr = np.arange(0, n * per_row + 1, per_row, dtype=np.int64)
    indices = rng.integers(0, g, n * per_row, dtype=np.int32)
    indices.reshape(n, per_row).sort(axis=1)
    x = sparse.csr_matrix((rng.gamma(2.0, 1.0, n * per_row).astype(np.float32), indices, indptr), shape=(n, g))
    obs = pd.DataFrame({
        "cluster": pd.Categorical.from_codes(rng.integers(0, 30, n), [f"c{i}" for i in range(30)]),
        "total_counts": rng.random(n).astype(np.float32),
    })
    adata = anndata.AnnData(X=x, obs=obs)
    adata.obsm["X_umap"] = rng.normal(size=(n, 2)).astype(np.float32)
    adata.obsm["X_pca"] = rng.normal(size=(n, 10)).astype(np.float32)
    return adata


def accuracy(label: str, adata, grid) -> None:
    import scanpy as sc  # noqa: F401 - keeps the import cost out of the timings

    base = ExportPlan.from_anndata(adata).replace(genes=None)
    for comp, bits in grid:
        plan = base.replace(compression=comp, var_quantization=bits, obs_continuous_quantization=bits)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "export"
            start = time.perf_counter()
            est = estimate(adata, plan, out_dir=out)
            est_ms = (time.perf_counter() - start) * 1000
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = export(adata, plan, out)
        error = (est.total_bytes / result.n_bytes - 1) * 100
        print(f"{label:>14} comp={comp!s:>4} bits={bits!s:>4} est={est.total_bytes:>12,} real={result.n_bytes:>12,} "
              f"err={error:+6.2f}% est_ms={est_ms:7.1f} export_s={result.seconds:6.2f} est_s={est.seconds:6.2f}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10kx2k,100kx5k")
    parser.add_argument("--quick", action="store_true", help="only pbmc68k and the 1M x 30k timing")
    args = parser.parse_args()
    import scanpy as sc

    accuracy("pbmc68k", sc.datasets.pbmc68k_reduced(), GRID)
    if not args.quick:
        for size in args.sizes.split(","):
            n, g = parse_size(size)
            accuracy(size, make_anndata(n, g), GRID)
    adata = million_by_30k()
    plan = ExportPlan.from_anndata(adata)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        est = estimate(adata, plan)
        times.append(time.perf_counter() - start)
    print(f"1Mx30k estimate: best {min(times) * 1000:.0f} ms (limit 300 ms), "
          f"{est.n_files:,} files, {est.total_bytes / 1e9:.2f} GB estimated", flush=True)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        inspect(adata)
        times.append(time.perf_counter() - start)
    print(f"1Mx30k inspect: best {min(times) * 1000:.0f} ms (limit 1000 ms)", flush=True)


if __name__ == "__main__":
    main()
