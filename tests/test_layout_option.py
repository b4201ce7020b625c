"""The index-named layout as an option: ExportPlan(layout=...), export(), the CLI and the wizard's choice."""

from __future__ import annotations

from pathlib import Path

import pytest
from pbmc_data import pbmc68k_reduced

from cellucid_nb.adata.exporting import export
from cellucid_nb.adata.plan import ExportPlan, PlanError
from cellucid_nb.cli import main
from cellucid_nb.format.reader import read_export
from cellucid_nb.format.validator import validate_export


@pytest.fixture(scope="module")
def adata():
    return pbmc68k_reduced()[:120].copy()


def test_plan_carries_the_layout() -> None:
    plan = ExportPlan(embeddings={2: "X_umap"})
    assert plan.layout == "key" and "layout" not in plan.to_dict()  # plans from before layouts keep their JSON
    index = plan.replace(layout="index")
    assert index.to_dict()["layout"] == "index"
    assert ExportPlan.from_json(index.to_json()) == index
    assert "    layout='index',\n" in index.to_code() and "layout=" not in plan.to_code()
    with pytest.raises(PlanError, match=r"layout='by_key': expected one of \('key', 'index'\)"):
        plan.replace(layout="by_key")


def test_export_of_an_anndata_in_the_index_layout(adata, tmp_path: Path) -> None:
    plan = ExportPlan.from_anndata(adata).replace(layout="index", genes=("CD3D", "LYZ", "NKG7"))
    export(adata, plan, tmp_path / "idx", created_at="2026-01-01T00:00:00Z", n_workers=1)
    reader = read_export(tmp_path / "idx")
    assert reader.layout.naming == "index" and reader.genes == ["CD3D", "LYZ", "NKG7"]
    assert sorted(p.name for p in (tmp_path / "idx" / "var").iterdir()) == \
        ["0.values.u8.gz", "1.values.u8.gz", "2.values.u8.gz"]
    assert validate_export(tmp_path / "idx") == []


def test_cli_export_layout_index(adata, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h5ad = tmp_path / "small.h5ad"
    adata.write_h5ad(h5ad)
    out = tmp_path / "out"
    assert main(["export", str(h5ad), str(out), "--genes", "CD3D,LYZ", "--layout", "index", "--no-progress"]) == 0
    assert read_export(out).layout.naming == "index"
    capsys.readouterr()
    assert main(["validate", str(out)]) == 0
    assert f"{out}: format compact_v1 (index-named)\n" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["export", str(h5ad), str(tmp_path / "never"), "--layout", "numbered"])
    assert not (tmp_path / "never").exists()


def test_wizard_offers_the_layout_choice() -> None:
    from cellucid_nb.widgets.wizard import ExportWizard

    choices = ExportWizard.class_traits()["layout_choices"].default()
    assert [c["value"] for c in choices] == ["key", "index"]
    assert all(c["label"] and "cellucid" in c["note"] for c in choices)


def test_estimate_of_the_index_layout_matches_its_export(adata, tmp_path: Path) -> None:
    from cellucid_nb.adata.estimation import estimate

    plan = ExportPlan.from_anndata(adata).replace(layout="index")
    est = estimate(adata, plan)
    result = export(adata, plan, tmp_path / "est", created_at="2026-01-01T00:00:00Z", n_workers=1)
    assert est.exact
    assert abs(est.total_bytes - result.n_bytes) <= 0.001 * result.n_bytes, (est.total_bytes, result.n_bytes)


def test_index_layout_takes_keys_the_key_layout_cannot_name_files_after(adata, tmp_path: Path) -> None:
    # Files are named by number: keys equal but for case, or a Windows device name, are fine there.
    data = adata.copy()
    data.obs["Louvain"] = data.obs["louvain"].astype(str).str.upper().astype("category")
    data.obs["con"] = data.obs["n_genes"]
    plan = ExportPlan.from_anndata(data).replace(genes=("CD3D", "LYZ"), obs_keys=("louvain", "Louvain", "con"))
    with pytest.raises(ValueError, match=r"obs key 'con' would name a file 'con'\.\*, a device name Windows reserves"):
        export(data, plan, tmp_path / "by_key", created_at="2026-01-01T00:00:00Z", n_workers=1)
    assert not (tmp_path / "by_key").exists()
    export(data, plan.replace(layout="index"), tmp_path / "idx", created_at="2026-01-01T00:00:00Z", n_workers=1)
    reader = read_export(tmp_path / "idx")
    assert sorted(reader.obs_keys) == ["Louvain", "con", "louvain"]
    assert list(reader.obs_column("Louvain").astype(str)) == list(data.obs["Louvain"].astype(str))
    assert list(reader.obs_column("louvain").astype(str)) == list(data.obs["louvain"].astype(str))
    assert validate_export(tmp_path / "idx") == []
