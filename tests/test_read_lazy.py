"""AnnData from ``anndata.experimental.read_lazy`` (xarray-backed obs/var, Dask arrays): same plan, estimate and bytes."""

from __future__ import annotations

from pathlib import Path

import anndata
import pandas as pd
import pytest
from pbmc_data import pbmc68k_reduced

from cellucid_nb.adata.estimation import estimate
from cellucid_nb.adata.exporting import export
from cellucid_nb.adata.inspection import inspect
from cellucid_nb.adata.lazy_frames import eager_frames, is_lazy
from cellucid_nb.adata.plan import ExportPlan

CREATED = "2026-01-01T00:00:00Z"


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
def test_read_lazy_anndata_exports_the_in_memory_bytes(tmp_path, fmt):
    memory = pbmc68k_reduced()
    path = tmp_path / f"pbmc.{fmt}"
    memory.write_h5ad(path) if fmt == "h5ad" else memory.write_zarr(path)
    lazy = anndata.experimental.read_lazy(path)
    assert is_lazy(lazy) and not isinstance(lazy.obs, pd.DataFrame)
    assert eager_frames(lazy) is eager_frames(lazy)  # the frames are read once per lazy AnnData

    assert inspect(lazy).to_dict()["obs"] == inspect(memory).to_dict()["obs"]
    plan = ExportPlan.from_anndata(lazy)
    assert plan == ExportPlan.from_anndata(memory)
    plan = plan.replace(genes=("CD3D", "LYZ", "NKG7", "MS4A1"))  # from raw, pbmc68k's default source
    assert estimate(lazy, plan, created_at=CREATED).parts == estimate(memory, plan, created_at=CREATED).parts
    export(lazy, plan, tmp_path / "lazy" / "out", created_at=CREATED)
    export(memory, plan, tmp_path / "memory" / "out", created_at=CREATED)
    got, expected = _tree(tmp_path / "lazy" / "out"), _tree(tmp_path / "memory" / "out")
    assert any(k.startswith("connectivity/") for k in got) and any(k.startswith("var/") for k in got)
    assert got == expected


def test_wizard_opens_a_read_lazy_anndata(tmp_path):
    from cellucid_nb.widgets.wizard import ExportWizard

    path = tmp_path / "pbmc.h5ad"
    pbmc68k_reduced().write_h5ad(path)
    lazy = anndata.experimental.read_lazy(path)
    w = ExportWizard(lazy, out_dir=tmp_path / "exports")
    assert w._adata is eager_frames(lazy) and isinstance(w._adata.obs, pd.DataFrame)
    assert "louvain" in [c["key"] for c in w.summary["obs"]]
