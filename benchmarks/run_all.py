"""Run every benchmark and write ``benchmarks/results/latest.{json,md}``.

``python -m benchmarks.run_all`` runs:

1. ``bench_prepare`` (cellucid_nb vs ``cellucid==0.0.9``; each export in its own
   subprocess) at all four sizes, compression 6 and none, 8-bit quantization;
2. each other benchmark script present in ``benchmarks/`` (``bench_estimate.py``,
   ``bench_backed_export.py``, ``bench_viewer.py``), each as
   ``python -m benchmarks.<name>`` in a subprocess with a time limit (``bench_atlas``: 2M x 2k
   backed vs in memory vs Dask, see its docstring); if its
   ``--help`` mentions ``--json``, it is asked to write
   ``benchmarks/results/<name>.json``, which is then included; its printed output
   is kept either way.

The folder ``benchmarks/results/`` is git-ignored; paste the tables into notes.
Options: ``--sizes``, ``--compression``, ``--repeat``, ``--skip-reference``,
``--only prepare,bench_viewer``, ``--quick`` (10kx2k only), ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import bench_prepare
from benchmarks.synthetic import SIZES

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
#: Benchmarks written by other engineers, run when their file exists.
OTHER_BENCHMARKS = ("bench_estimate", "bench_backed_export", "bench_atlas", "bench_viewer")
OUTPUT_TAIL_CHARS = 6000


def run_other(name: str, timeout: float, results_dir: Path) -> dict[str, Any]:
    """Run ``benchmarks/<name>.py`` in a subprocess; collect its output and JSON (if any)."""
    script = BENCH_DIR / f"{name}.py"
    if not script.exists():
        return {"name": name, "status": "absent"}
    module = f"benchmarks.{name}"
    code, help_text, _err, _seconds = bench_prepare._run_subprocess([sys.executable, "-m", module, "--help"], 120)
    command = [sys.executable, "-m", module]
    json_path = results_dir / f"{name}.json"
    takes_json = code == 0 and "--json" in help_text
    if takes_json:
        json_path.unlink(missing_ok=True)
        command += ["--json", str(json_path)]
    bench_prepare._log(f"[{name}] running: {' '.join(command[1:])} (limit {timeout:.0f} s)")
    code, stdout, stderr, seconds = bench_prepare._run_subprocess(command, timeout)
    record: dict[str, Any] = {
        "name": name,
        "command": " ".join(["python"] + command[1:]),
        "status": "ok" if code == 0 else ("timeout" if code is None else f"exit code {code}"),
        "seconds": round(seconds, 2),
        "stdout_tail": stdout[-OUTPUT_TAIL_CHARS:],
        "stderr_tail": stderr[-OUTPUT_TAIL_CHARS:] if code != 0 else stderr[-1500:],
    }
    if takes_json and json_path.exists():
        try:
            record["json"] = json.loads(json_path.read_text())
        except json.JSONDecodeError as error:
            record["json_error"] = f"{json_path.name} is not valid JSON: {error}"
    bench_prepare._log(f"[{name}] {record['status']} in {seconds:.1f} s")
    return record


def markdown_report(report: dict[str, Any]) -> str:
    """``latest.md``: the prepare table, phases, then each other benchmark's output."""
    environment = report["environment"]
    lines = [
        "# Benchmark results",
        "",
        f"Run {environment['utc']} on {environment['cpu_count']} CPUs (load average at start "
        f"{environment['load_average_at_start']}), Python {environment['python']}, numpy {environment['numpy']}, "
        f"commit {environment.get('git_commit')}, reference cellucid {environment.get('cellucid')}.",
        "",
    ]
    prepare = report.get("prepare")
    if prepare:
        settings = prepare["settings"]
        lines += [
            "## prepare(): cellucid_nb vs cellucid 0.0.9",
            "",
            f"Synthetic data (benchmarks/synthetic.py, seed {settings['seed']}), {settings['var_quantization']}-bit genes "
            f"and obs, median of {settings['repeat']} run(s), each export in a fresh process. "
            "Peak RSS = peak resident memory during the export (inputs included); MB = 10^6 bytes.",
            "",
            bench_prepare.markdown_table(prepare),
        ]
        phases = bench_prepare.phase_table(prepare)
        if phases:
            lines += [
                "cellucid_nb seconds per phase (from progress events, ±0.1 s; a phase lasts until the next one "
                "starts). Obs fields and genes are written by worker threads from the start while the calling "
                "thread writes points, graph and vectors, so `obs` and `genes` are only the waits for them at "
                "the end. Graph part = a separate export of only points + kNN graph, cellucid_nb / reference:",
                "",
                phases,
            ]
        problems = [
            f"- {row['size']} c={row['compression']}: {row['ours'].get('n_problems')} validator problems: "
            f"{row['ours'].get('problems')}"
            for row in prepare["results"]
            if (row.get("ours") or {}).get("n_problems")
        ]
        if problems:
            lines += ["Validator problems in cellucid_nb's output:", "", *problems, ""]
    for other in report.get("others", []):
        if other.get("status") == "absent":
            continue
        lines += [f"## {other['name']} ({other['status']}, {other.get('seconds', 0):.0f} s)", ""]
        output = other.get("stdout_tail", "").strip() or other.get("stderr_tail", "").strip()
        if output:
            lines += ["```", output[-OUTPUT_TAIL_CHARS:], "```", ""]
        if other.get("status") != "ok" and other.get("stderr_tail"):
            lines += ["stderr (tail):", "", "```", other["stderr_tail"][-2000:], "```", ""]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(SIZES), help="sizes for bench_prepare (default: all four)")
    parser.add_argument("--compression", default="6,none", help="gzip levels for bench_prepare")
    parser.add_argument("--repeat", type=int, default=1, help="runs per exporter and setting (median)")
    parser.add_argument("--skip-reference", action="store_true", help="do not run cellucid 0.0.9")
    parser.add_argument("--quick", action="store_true", help="bench_prepare at 10kx2k only")
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of: prepare,{','.join(OTHER_BENCHMARKS)} (default: all)"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per subprocess")
    parser.add_argument("--results-dir", default=str(RESULTS_DIR), help="where latest.json / latest.md go")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    selected = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = selected - {"prepare", *OTHER_BENCHMARKS}
    if unknown:
        raise SystemExit(f"--only names {sorted(unknown)}, expected some of: prepare, {', '.join(OTHER_BENCHMARKS)}")
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report: dict[str, Any] = {"environment": bench_prepare.environment_info(), "others": []}
    if not selected or "prepare" in selected:
        prepare_args = bench_prepare.build_parser().parse_args(
            [
                "--sizes", "10kx2k" if args.quick else args.sizes,
                "--compression", args.compression,
                "--repeat", str(args.repeat),
                "--timeout", str(args.timeout),
                "--json", str(results_dir / "prepare.json"),
                *(["--skip-reference"] if args.skip_reference else []),
            ]
        )
        report["prepare"] = bench_prepare.run_benchmark(prepare_args)
        _write(results_dir, report)
    for name in OTHER_BENCHMARKS:
        if selected and name not in selected:
            continue
        report["others"].append(run_other(name, args.timeout, results_dir))
        _write(results_dir, report)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    _write(results_dir, report)
    print((results_dir / "latest.md").read_text())
    return 0


def _write(results_dir: Path, report: dict[str, Any]) -> None:
    """Write both files now, so an interrupted run still leaves what it measured."""
    bench_prepare._write_json(results_dir / "latest.json", report)
    (results_dir / "latest.md").write_text(markdown_report(report))


if __name__ == "__main__":
    sys.exit(main())
