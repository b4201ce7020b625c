"""open_h5ad: a backed AnnData whose kNN graph stays in the file, exported with the same bytes."""

from __future__ import annotations

import os
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from cellucid_nb.adata.exporting import export, prepare_kwargs
from cellucid_nb.adata.open_file import open_h5ad
from cellucid_nb.adata.plan import ExportPlan
from cellucid_nb.exporter import graph_blocks
from cellucid_nb.exporter.graph_source import BlockCSR

CREATED = "2026-01-01T00:00:00Z"


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def h5ad(tmp_path) -> Path:
    n, g = 3000, 40
    rng = np.random.default_rng(0)
    x = sparse.random(n, g, density=0.1, format="csr", random_state=0, dtype=np.float32)
    rows = np.repeat(np.arange(n), 8)
    knn = sparse.csr_matrix((rng.random(rows.size).astype(np.float32), (rows, rng.integers(0, n, rows.size))),
                            shape=(n, n))
    knn = (knn + knn.T).tocsr()
    obs = pd.DataFrame({"cluster": pd.Categorical(rng.choice(list("abc"), n)), "score": rng.normal(size=n)},
                       index=[f"c{i}" for i in range(n)])
    a = anndata.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(g)]),
                        obsm={"X_pca": rng.normal(size=(n, 10)).astype(np.float32),
                              "X_umap": rng.normal(size=(n, 2)).astype(np.float32)},
                        obsp={"connectivities": knn, "distances": knn * 2})
    path = tmp_path / "a.h5ad"
    a.write_h5ad(path)
    return path


def test_graph_read_from_file_same_bytes(h5ad, tmp_path, monkeypatch):
    monkeypatch.setattr(graph_blocks, "BLOCK_ENTRIES", 5000)  # several blocks
    lazy = open_h5ad(h5ad)
    assert lazy.isbacked and not sparse.issparse(lazy.obsp["connectivities"])  # left in the file
    plan = ExportPlan.from_anndata(lazy).replace(genes=None, compression=6, var_quantization=8)
    assert plan.connectivities == "connectivities"
    assert isinstance(prepare_kwargs(lazy, plan)["connectivities"], BlockCSR)
    export(lazy, plan, tmp_path / "lazy" / "out", created_at=CREATED)
    memory = anndata.read_h5ad(h5ad)
    export(memory, plan, tmp_path / "memory" / "out", created_at=CREATED)
    got, expected = _tree(tmp_path / "lazy" / "out"), _tree(tmp_path / "memory" / "out")
    assert got.keys() == expected.keys() and any(k.startswith("connectivity/") for k in got)
    assert got == expected


def test_open_h5ad_refuses_files_without_encoding(tmp_path):
    import h5py

    path = tmp_path / "old.h5ad"
    with h5py.File(path, "w") as f:
        f.create_group("obs")
    with pytest.raises(ValueError, match="no anndata encoding metadata"):
        open_h5ad(path)
    os.remove(path)  # the file was closed: it can go
