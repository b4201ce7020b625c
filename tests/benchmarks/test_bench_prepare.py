"""Tests of the benchmark harness (benchmarks/bench_prepare.py, run_all.py) at a tiny size."""

import json

import pytest

from benchmarks import bench_prepare, run_all


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    args = bench_prepare.build_parser().parse_args(
        ["--sizes", "2000x150", "--compression", "6", "--json", str(out / "r.json"), "--timeout", "300",
         "--work-dir", str(out / "work"), "--data-dir", str(out / "data")]
    )
    report = bench_prepare.run_benchmark(args)
    return report, out


def test_both_exporters_measured_in_their_own_process(tiny_report):
    report, out = tiny_report
    assert json.loads((out / "r.json").read_text())["results"] == json.loads(json.dumps(report["results"], default=str))
    (row,) = report["results"]
    for exporter in ("ours", "reference"):
        summary = row[exporter]
        assert "error" not in summary, summary
        assert summary["seconds"] > 0 and summary["peak_rss_mb"] >= summary["rss_before_export_mb"] > 0
        # 150 genes + obs + points + graph + vectors + manifests
        assert summary["files"] > 150 and summary["bytes"] > 0
    assert row["ours"]["n_problems"] == 0
    assert row["ours"]["files"] == row["ours"]["format_files"] + 1  # + the sidecar
    # speed-ups are rounded to 2 decimals
    assert row["speedup"] == pytest.approx(row["reference"]["seconds"] / row["ours"]["seconds"], rel=1e-2, abs=6e-3)
    assert "genes" in row["ours"]["phase_seconds"]
    # outputs are deleted after measuring
    assert not any((out / "work").iterdir())


def test_markdown_tables_hold_every_row(tiny_report):
    report, _ = tiny_report
    table = bench_prepare.markdown_table(report)
    assert table.count("\n") == 3 and "| 2kx150 | 6 |" in table
    phases = bench_prepare.phase_table(report)
    assert phases.splitlines()[0].startswith("| size | compression | validate |") and "| genes |" in phases
    text = run_all.markdown_report({"environment": report["environment"], "prepare": report, "others": []})
    assert "cellucid_nb vs cellucid 0.0.9" in text and "| 2kx150 | 6 |" in text


def test_compare_applies_the_issue_targets():
    ours = {"seconds": 3.0, "peak_rss_mb": 500.0, "bytes": 80, "format_bytes": 79, "phase_seconds": {"graph": 1.5}}
    ref = {"seconds": 36.0, "peak_rss_mb": 900.0, "bytes": 83}
    row = bench_prepare.compare("100kx5k", 6, ours, ref)
    assert row["speedup"] == 12.0
    assert row["checks"] == {"peak_rss_below_reference": True, "speedup_at_least_10x": True, "output_not_larger": True}
    slow = bench_prepare.compare("500kx2k", 6, {**ours, "seconds": 9.0, "phase_seconds": {"graph": 2.5}}, ref)
    assert slow["checks"]["speedup_at_least_10x"] is False and slow["checks"]["graph_under_2s"] is False
    failed = bench_prepare.compare("100kx5k", 6, {"error": "boom"}, ref)
    assert "speedup" not in failed


def test_compression_parsing():
    assert bench_prepare._parse_compression("none") is None
    assert bench_prepare._parse_compression("6") == 6
    with pytest.raises(ValueError, match="'12'"):
        bench_prepare._parse_compression("12")
