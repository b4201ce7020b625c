"""Small synthetic inputs and payload helpers for the exporter tests (imported by name)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from cellucid_nb.format import codecs

CREATED = "2024-01-02T03:04:05Z"


def make_kwargs(n: int = 300, n_genes: int = 12, seed: int = 0) -> dict:
    """prepare() keyword arguments for a small complete dataset."""
    rng = np.random.default_rng(seed)
    x = sparse.random(n, n_genes, density=0.2, format="csr", random_state=seed, dtype=np.float32)
    x.data = np.log1p(x.data * 10).astype(np.float32)
    obs = pd.DataFrame(
        {
            "score": rng.normal(size=n),
            "cluster": pd.Categorical(rng.choice(["a", "b", "c"], size=n)),
            "flag": rng.random(n) > 0.5,
            "batch": rng.choice(["x", "y"], size=n),
        }
    )
    var = pd.DataFrame({"symbol": [f"S{i}" for i in range(n_genes)]}, index=[f"G{i}" for i in range(n_genes)])
    knn = sparse.random(n, n, density=0.02, format="csr", random_state=seed + 1)
    return dict(
        latent_space=rng.normal(size=(n, 5)),
        obs=obs,
        var=var,
        gene_expression=x,
        connectivities=knn,
        X_umap_2d=rng.normal(size=(n, 2)) * 5 + 3,
        X_umap_3d=rng.normal(size=(n, 3)),
        vector_fields={"velocity_umap_2d": rng.normal(size=(n, 2))},
        compression=6,
        var_quantization=8,
        obs_continuous_quantization=8,
        created_at=CREATED,
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of a folder, by relative path, with its bytes."""
    out = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            out[path.relative_to(folder).as_posix()] = path.read_bytes()
    return out


def payload(path: Path, dtype: str) -> np.ndarray:
    """Read one payload (gzip decided by the suffix, as readers do)."""
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = codecs.gunzip_bytes(raw)
    return np.frombuffer(raw, dtype=dtype)


def siblings(folder: Path) -> list[str]:
    """Names beside ``folder`` (staging leftovers would show up here)."""
    return sorted(p.name for p in folder.parent.iterdir())
