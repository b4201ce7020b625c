"""AnnData from ``anndata.experimental.read_lazy``: its ``obs``/``var`` as pandas, the rest left lazy.

``read_lazy`` gives ``obs`` and ``var`` as xarray-backed ``Dataset2D`` objects, while every
rule of the AnnData side (column kinds, categories, colours, the exporter's validation) reads
pandas columns. :func:`eager_frames` reads those two frames into pandas once (per-cell
columns: the size ``read_h5ad(backed="r")`` reads too) and keeps ``X``, ``layers``,
``obsm`` and ``obsp`` as the Dask arrays ``read_lazy`` made: the exporter reads them by row
chunks (``X``, layers, the latent space) or computes them (embeddings, the kNN graph).
The result is cached per lazy AnnData, so ``inspect``, the plan, ``estimate`` and
``export`` of the same object read the frames once.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = ["eager_frames", "is_lazy"]

_CACHE: dict[int, tuple[weakref.ref, Any]] = {}


def _computed(value: Any) -> Any:
    """``uns`` with its Dask arrays computed (colours, parameters: small), nested mappings included."""
    if isinstance(value, Mapping):
        return {k: _computed(v) for k, v in value.items()}
    if hasattr(value, "compute") and hasattr(value, "dask"):
        return value.compute(scheduler="synchronous")
    return value


def is_lazy(adata: Any) -> bool:
    """Whether ``adata.obs`` is not a pandas DataFrame but has ``to_memory`` (``read_lazy``'s ``Dataset2D``)."""
    obs = getattr(adata, "obs", None)
    return obs is not None and not isinstance(obs, pd.DataFrame) and hasattr(obs, "to_memory")


def eager_frames(adata: Any) -> Any:
    """``adata`` itself, or for a ``read_lazy`` AnnData an AnnData with pandas ``obs``/``var`` and the same arrays."""
    if not is_lazy(adata):
        return adata
    for key in [k for k, (ref, _) in _CACHE.items() if ref() is None]:
        del _CACHE[key]
    hit = _CACHE.get(id(adata))
    if hit is not None and hit[0]() is adata:
        return hit[1]
    import anndata

    raw = None
    if getattr(adata, "raw", None) is not None:
        raw = {"X": adata.raw.X, "var": adata.raw.var.to_memory()}
    eager = anndata.AnnData(
        X=adata.X, obs=adata.obs.to_memory(), var=adata.var.to_memory(), uns=_computed(adata.uns),
        obsm=dict(adata.obsm), obsp=dict(adata.obsp), layers=dict(adata.layers), raw=raw,
    )
    _CACHE[id(adata)] = (weakref.ref(adata), eager)
    return eager
