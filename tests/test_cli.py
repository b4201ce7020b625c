"""The ``cellucid-nb`` command line: real runs on scanpy's pbmc68k_reduced."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cellucid_nb.cli import main
from cellucid_nb.format.reader import read_export


@pytest.fixture(scope="module")
def pbmc_h5ad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pbmc_data import pbmc68k_reduced

    path = tmp_path_factory.mktemp("cli") / "pbmc.h5ad"
    pbmc68k_reduced().write_h5ad(path)
    return path


def test_export_then_validate(pbmc_h5ad: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export"
    code = main(["export", str(pbmc_h5ad), str(out), "--genes", "CD3D,LYZ", "--quantization", "16", "--no-progress"])
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    reader = read_export(out)
    assert reader.genes == ["CD3D", "LYZ"]
    assert reader.var_manifest["quantization"] == 16
    assert reader.n_cells == 700

    assert main(["validate", str(out)]) == 0
    assert "valid" in capsys.readouterr().out


def test_validate_reports_damage(pbmc_h5ad: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export"
    assert main(["export", str(pbmc_h5ad), str(out), "--genes", "none", "--no-progress"]) == 0
    manifest = out / "obs_manifest.json"
    data = json.loads(manifest.read_text())
    data["unexpected"] = 1
    manifest.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["validate", str(out)]) == 1
    captured = capsys.readouterr()
    assert "unexpected" in captured.out
    assert "problem" in captured.err


def test_estimate_prints_a_table(pbmc_h5ad: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", str(pbmc_h5ad), "--genes", "top:10", "--compression", "none"]) == 0
    out = capsys.readouterr().out
    assert "points_2d.bin" in out
    assert out.count("\n") > 5
    total_line = [line for line in out.splitlines() if line.startswith("total ")]
    assert total_line and "files" in total_line[0] and "on disk" in total_line[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["estimate", "missing.h5ad"], "no such file"),
        (["export", "{h5ad}", "{out}", "--genes", "NOT_A_GENE"], "unknown gene id"),
        (["export", "{h5ad}", "{out}", "--embedding", "X_nope"], "not in obsm"),
        (["export", "{h5ad}", "{out}", "--obs", "louvian"], "louvian"),
        (["validate", "{out}"], "not a folder"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(
    argv: list[str], expected: str, pbmc_h5ad: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never_written"
    args = [a.format(h5ad=pbmc_h5ad, out=out) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def test_bad_option_value_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cellucid_nb", "estimate", "x.h5ad", "--quantization", "12"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 2
    assert "expected 8, 16 or none" in proc.stderr


def test_help_everywhere() -> None:
    for command in ([], ["export"], ["estimate"], ["validate"], ["serve"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0


def test_serve_answers_until_interrupted() -> None:
    import json as json_mod
    import signal
    import urllib.request

    root = Path(__file__).resolve().parents[1]
    export = root / "tests" / "fixtures" / "cellucid_0_0_9" / "gzip_q8"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cellucid_nb", "serve", str(export), "--port", "18765", "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=root,
    )
    try:
        line = proc.stdout.readline()  # "serving DIR at URL (Ctrl+C to stop)"
        assert line.startswith("serving "), (line, proc.stderr.read() if proc.poll() is not None else "")
        url = line.split(" at ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and "?token=" in url
        base, token = url.split("?token=")
        with urllib.request.urlopen(f"{base}_cellucid/health?token={token}", timeout=10) as response:
            assert response.status == 200
            assert json_mod.loads(response.read())
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
    assert code == 0


def test_overwrite_refusal_and_warnings_speak_the_cli(pbmc_h5ad: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export"
    assert main(["export", str(pbmc_h5ad), str(out), "--genes", "none", "--no-progress"]) == 0
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    # a file no export wrote is kept, and said so once, as a plain line (not a raw UserWarning)
    assert main(["export", str(pbmc_h5ad), str(out), "--genes", "none", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count("kept 1 file(s)") == 1 and err.startswith("warning: kept 1 file(s)")
    assert "UserWarning" not in err and ".py:" not in err
    # other settings without --force: refused in the CLI's own words
    assert main(["export", str(pbmc_h5ad), str(out), "--genes", "none", "--compression", "9", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Pass --force to replace it" in err and "force=True" not in err
    assert len(err.strip().splitlines()) == 1


class _RecordingBar:
    """Stands in for tqdm: records every total and position the CLI shows."""

    instances: list[_RecordingBar] = []

    def __init__(self, total: float = 0, **kwargs: object) -> None:
        self.total, self.n, self.leave = total, 0, True
        self.totals: list[float] = [total]
        self.positions: list[float] = []
        _RecordingBar.instances.append(self)

    def reset(self, total: float | None = None) -> None:
        self.totals.append(total if total is not None else self.total)
        self.total, self.n = self.totals[-1], 0

    def refresh(self) -> None:
        self.positions.append(self.n)

    def set_description(self, *args: object, **kwargs: object) -> None: ...

    def set_postfix_str(self, *args: object, **kwargs: object) -> None: ...

    def close(self) -> None:
        self.positions.append(self.n)


def test_progress_bar_total_never_changes(pbmc_h5ad: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", _RecordingBar)
    _RecordingBar.instances.clear()
    assert main(["export", str(pbmc_h5ad), str(tmp_path / "export"), "--genes", "top:50"]) == 0
    (bar,) = _RecordingBar.instances
    assert bar.totals == [100]  # known up front: no 1 -> 700 -> 701 -> 1025
    assert len(bar.positions) > 3
    assert bar.positions == sorted(bar.positions)  # never back from 100 % to 68 %
    assert bar.positions[-1] == 100


def test_ctrl_c_during_an_export_says_nothing_was_written(pbmc_h5ad: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import cellucid_nb.cli as cli

    def interrupt(self: object, event: object) -> None:
        if getattr(event, "phase", "") == "genes":
            raise KeyboardInterrupt  # what Ctrl+C raises in the main thread, mid-export

    monkeypatch.setattr(cli._ProgressBar, "update", interrupt)
    out = tmp_path / "export"
    assert main(["export", str(pbmc_h5ad), str(out), "--genes", "all"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"cellucid-nb export: cancelled (Ctrl+C); nothing was written ({out} was not created)"
    assert list(tmp_path.iterdir()) == []  # no staging folder left either


def test_publish_and_export_while_another_holds_the_lock_is_a_message_not_a_traceback(pbmc_h5ad, tmp_path, capsys):
    from cellucid_nb.exporter.locking import ExportLock

    fixture = Path(__file__).resolve().parent / "fixtures" / "cellucid_0_0_9" / "gzip_q8"
    for command in (["publish", str(fixture)], ["export", str(pbmc_h5ad)]):
        target = tmp_path / "out"
        with ExportLock(target):
            code = main([*command, str(target)])
        err = capsys.readouterr().err
        assert code == 2 and "another export is writing to" in err and "Traceback" not in err, err
        assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_export_opens_the_h5ad_with_open_h5ad_and_writes_the_in_memory_bytes(
        pbmc_h5ad: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import anndata
    import h5py

    import cellucid_nb.adata.exporting as exporting

    created = "2024-01-01T00:00:00Z"
    seen = []
    real_export = exporting.export

    def spy(adata, plan, out_dir, **kw):  # the CLI's export, with a fixed timestamp
        seen.append((adata, plan))
        return real_export(adata, plan, out_dir, created_at=created, **kw)

    monkeypatch.setattr(exporting, "export", spy)
    out, memory_out = tmp_path / "cli" / "pbmc", tmp_path / "memory" / "pbmc"  # same folder name: same dataset id
    assert main(["export", str(pbmc_h5ad), str(out), "--genes", "CD3D,LYZ", "--no-progress"]) == 0
    (adata, plan), = seen
    assert isinstance(adata.obsm["X_pca"], h5py.Dataset) and isinstance(adata.obsm["X_umap"], h5py.Dataset)
    assert hasattr(adata.obsp["connectivities"], "group")  # anndata's backed sparse dataset: left in the file
    assert adata.obs_names.dtype == "string[pyarrow]"

    real_export(anndata.read_h5ad(pbmc_h5ad), plan, memory_out, created_at=created)
    tree = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    expected = {str(p.relative_to(memory_out)): p.read_bytes() for p in memory_out.rglob("*") if p.is_file()}
    assert any(k.startswith("connectivity/") for k in tree) and tree == expected
