"""cellucid_nb ``prepare()`` against the reference ``cellucid.prepare`` (0.0.9).

For each size and compression level, both exporters write the same synthetic
data (``benchmarks.synthetic``) with 8-bit gene and obs quantization, each run
in a fresh subprocess so that its peak memory is its own:

- the inputs are generated once per size (in their own subprocess) and cached as
  ``.npy`` files in ``benchmarks/.data/``; a run loads them (no temporaries), so
  the data set never sets the peak of a run;
- after loading, the child resets the kernel's peak-RSS counter
  (``/proc/self/clear_refs``) and then times only the export call
  (``time.perf_counter``); it reports the RSS after loading, the peak during the
  export (``VmHWM``) and ``getrusage(RUSAGE_SELF).ru_maxrss``, the output bytes
  and file count, and for cellucid_nb the span of each phase from its progress
  events and the problems ``validate_export`` finds.

Usage::

    python -m benchmarks.bench_prepare --sizes 10kx2k,100kx5k --compression 6,none \
        --repeat 3 --json benchmarks/results/prepare.json

Sizes: 10kx2k, 100kx5k, 500kx2k, 50kx30k (or any ``<cells>x<genes>``).
The reference prints a lot and shows tqdm bars: both are silenced.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.synthetic import DATA_DIR, SIZES, cached_dataset_dir, load_dataset, parse_size, size_label

REPO_ROOT = Path(__file__).resolve().parent.parent
EXPORTERS = ("reference", "ours")
SIDECAR_NAME = "cellucid_nb.json"
QUANTIZATION_BITS = 8
#: Wall-clock limit of one child process (generation or one export), seconds.
DEFAULT_TIMEOUT = 1800.0
#: Targets of the issue: (size, compression) -> minimum speed-up over the reference.
SPEEDUP_TARGETS: dict[tuple[str, int | None], float] = {
    ("100kx5k", 6): 10.0,
    ("100kx5k", None): 5.0,
    ("50kx30k", 6): 6.0,
    ("500kx2k", 6): 10.0,
}
#: (size, compression) where our output must be no larger than the reference's.
SIZE_TARGETS = {("100kx5k", 6)}
#: (size, compression) -> maximum seconds of the graph phase.
GRAPH_TARGETS = {("500kx2k", 6): 2.0}
MB = 1e6
#: cellucid_nb's export phases in the order it runs them (its progress events name them).
# The order cellucid_nb reports its phases in (cellucid_nb.exporter.progress.PHASES).
PHASE_ORDER = ("validate", "points", "graph", "vectors", "obs", "genes", "identity", "finalize")


# --------------------------------------------------------------------------- child side


def _proc_status_kb(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), None if unavailable."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _write_kernel_setting(path: str, value: str) -> bool:
    """Write ``value`` to a /proc file; ``False`` where that is not allowed."""
    try:
        with open(path, "w", encoding="ascii") as handle:
            handle.write(value)
        return True
    except OSError:
        return False


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0)."""
    return _write_kernel_setting("/proc/self/clear_refs", "5")


def _start_from_clean_caches() -> bool:
    """Write back and drop the kernel's caches before the timed export (needs root).

    Without a journal (as on this VM's disk), ext4 skips every free inode that was
    deleted in the last ~30 s while its inode-table block is cached
    (``recently_deleted()``), scanning them one by one for each new file. The
    previous run's deleted output would thus slow the next exporter's file
    creation 10-30x (0.2-0.8 ms instead of 0.02-0.03 ms a file, measured here), and
    which exporter pays would depend on the run order. Dropping the caches gives
    both exporters the same start.
    """
    os.sync()
    return _write_kernel_setting("/proc/sys/vm/drop_caches", "3")


def _ru_maxrss_kb(who: int = resource.RUSAGE_SELF) -> int:
    return int(resource.getrusage(who).ru_maxrss)  # kB on Linux


def _folder_size(path: Path, exclude: frozenset[str] = frozenset()) -> tuple[int, int]:
    """(bytes, files) of all regular files under ``path``, except top-level names in ``exclude``."""
    n_bytes = n_files = 0
    for root, _dirs, files in os.walk(path):
        top = Path(root) == path
        for name in files:
            if top and name in exclude:
                continue
            n_bytes += os.stat(os.path.join(root, name)).st_size
            n_files += 1
    return n_bytes, n_files


def _phase_spans(events: list[tuple[str, float]]) -> dict[str, list[float]]:
    """``{phase: [first_elapsed, last_elapsed]}`` from (phase, elapsed) progress events."""
    spans: dict[str, list[float]] = {}
    for phase, elapsed in events:
        span = spans.setdefault(phase, [elapsed, elapsed])
        span[0] = min(span[0], elapsed)
        span[1] = max(span[1], elapsed)
    return {phase: [round(a, 4), round(b, 4)] for phase, (a, b) in spans.items()}


def _phase_durations(events: list[tuple[str, float]], total: float) -> dict[str, float]:
    """Seconds per phase, from each phase's first event to the next phase's first event.

    Progress events are throttled (~10/s), so durations are accurate to ~0.1 s.
    """
    starts: list[tuple[str, float]] = []
    for phase, elapsed in events:
        if not starts or starts[-1][0] != phase:
            starts.append((phase, elapsed))
    durations: dict[str, float] = {}
    for index, (phase, start) in enumerate(starts):
        end = starts[index + 1][1] if index + 1 < len(starts) else total
        durations[phase] = round(durations.get(phase, 0.0) + max(0.0, end - start), 4)
    return durations


def _run_reference(inputs: dict[str, Any], out_dir: Path, compression: int | None) -> dict[str, Any]:
    from cellucid.prepare_data import prepare as reference_prepare

    with open(os.devnull, "w", encoding="utf-8") as sink, contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        reference_prepare(
            **inputs,
            out_dir=out_dir,
            compression=compression,
            var_quantization=QUANTIZATION_BITS,
            obs_continuous_quantization=QUANTIZATION_BITS,
            force=True,
            dataset_name="synthetic",
        )
        seconds = time.perf_counter() - started
    return {"seconds": seconds}


def _run_ours(inputs: dict[str, Any], out_dir: Path, compression: int | None, n_workers: int | None) -> dict[str, Any]:
    from cellucid_nb.exporter.prepare import prepare as our_prepare

    events: list[tuple[str, float]] = []

    def on_progress(event: Any) -> None:
        events.append((str(event.phase), float(event.elapsed)))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        result = our_prepare(
            **inputs,
            out_dir=out_dir,
            compression=compression,
            var_quantization=QUANTIZATION_BITS,
            obs_continuous_quantization=QUANTIZATION_BITS,
            force=True,
            dataset_name="synthetic",
            created_at="2026-01-01T00:00:00Z",
            progress=on_progress,
            n_workers=n_workers,
        )
        seconds = time.perf_counter() - started
    summary: dict[str, Any] = {
        "seconds": seconds,
        "phase_spans": _phase_spans(events),
        "phase_seconds": _phase_durations(events, seconds),
        "n_progress_events": len(events),
        "warnings": sorted({str(w.message)[:200] for w in caught})[:10],
    }
    for name in ("n_bytes", "n_files", "seconds"):
        if hasattr(result, name):
            summary[f"result_{name}"] = getattr(result, name)
    return summary


class _InlineExecutor:
    """Stand-in for ThreadPoolExecutor that runs each task at submit, for cProfile."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from concurrent.futures import Future

        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 - delivered through the future
            future.set_exception(error)
        return future

    def map(self, fn: Any, *iterables: Any, timeout: float | None = None, chunksize: int = 1) -> Any:
        return iter([fn(*args) for args in zip(*iterables, strict=False)])  # Executor.map stops at the shortest

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        pass


def _profile_ours(inputs: dict[str, Any], out_dir: Path, compression: int | None, report_path: Path) -> dict[str, Any]:
    """Run cellucid_nb's export serially (worker threads inlined) under cProfile.

    cProfile sees only the thread it runs in, so the runner's thread pool is
    replaced by :class:`_InlineExecutor`; the time is therefore single-threaded
    and not a benchmark number. The top functions go to ``report_path``.
    """
    import cProfile
    import io
    import pstats

    from cellucid_nb.exporter import runner

    inlined = hasattr(runner, "ThreadPoolExecutor")
    if inlined:
        runner.ThreadPoolExecutor = _InlineExecutor  # type: ignore[attr-defined, misc]
    profiler = cProfile.Profile()
    profiler.enable()
    measured = _run_ours(inputs, out_dir, compression, n_workers=1)
    profiler.disable()
    text = io.StringIO()
    header = (f"cProfile of cellucid_nb prepare(), serial (worker threads inlined: {inlined}), "
              f"{measured['seconds']:.2f} s under the profiler\nphases: {measured.get('phase_seconds')}\n")
    text.write(header)
    for order in ("tottime", "cumulative"):
        text.write(f"\n===== sorted by {order} =====\n")
        pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(order).print_stats(35)
    report_path.write_text(text.getvalue())
    measured["profile"] = str(report_path)
    return measured


def _graph_part(exporter: str, inputs: dict[str, Any], out_dir: Path, compression: int | None) -> float | None:
    """Seconds of an export holding only the 2D points and the kNN graph (the "graph part").

    Measured after the main export, so that the work this exporter queues to
    threads and overlaps with later phases is counted; points add ~0.1 s.
    """
    if inputs.get("connectivities") is None:
        return None
    kwargs = {
        "latent_space": inputs["latent_space"],
        "obs": inputs["obs"].iloc[:, :0],
        "X_umap_2d": inputs["X_umap_2d"],
        "connectivities": inputs["connectivities"],
        "out_dir": out_dir,
        "compression": compression,
        "force": True,
    }
    if exporter == "reference":
        from cellucid.prepare_data import prepare as export_fn
    else:
        from cellucid_nb.exporter.prepare import prepare as export_fn
    with open(os.devnull, "w", encoding="utf-8") as sink, contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        export_fn(**kwargs)
        seconds = time.perf_counter() - started
    shutil.rmtree(out_dir, ignore_errors=True)
    return round(seconds, 4)


def _validate(out_dir: Path) -> dict[str, Any]:
    """Problems found by ``validate_export`` (if the validator exists yet)."""
    try:
        from cellucid_nb.format.validator import validate_export
    except ImportError as error:
        return {"validated": False, "reason": f"validator not importable: {error}"}
    started = time.perf_counter()
    try:
        problems = validate_export(out_dir)
    except Exception as error:  # report, do not lose the timing of the run
        return {"validated": False, "reason": f"validate_export raised {type(error).__name__}: {error}"}
    return {
        "validated": True,
        "n_problems": len(problems),
        "problems": [str(problem)[:300] for problem in problems[:10]],
        "validate_seconds": round(time.perf_counter() - started, 3),
    }


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    """One export in this (fresh) process; returns the measurements."""
    compression = _parse_compression(args.compression)
    n_cells, n_genes = parse_size(args.size)
    # Import the exporter first: its import is neither export time nor export memory.
    import_started = time.perf_counter()
    importlib.import_module("cellucid.prepare_data" if args.exporter == "reference" else "cellucid_nb.exporter.prepare")
    import_seconds = time.perf_counter() - import_started
    started = time.perf_counter()
    inputs = load_dataset(Path(args.dataset_dir))
    load_seconds = time.perf_counter() - started
    gc.collect()
    caches_dropped = _start_from_clean_caches() if not args.keep_caches else False
    rss_before_kb = _proc_status_kb("VmRSS")
    maxrss_before_kb = _ru_maxrss_kb()
    peak_reset = _reset_peak_rss()
    out_dir = Path(args.out_dir)
    cpu_before = os.times()
    if args.exporter == "reference":
        measured = _run_reference(inputs, out_dir, compression)
    elif args.profile:
        measured = _profile_ours(inputs, out_dir, compression, Path(args.profile))
    else:
        measured = _run_ours(inputs, out_dir, compression, args.n_workers)
    cpu_after = os.times()
    peak_kb = _proc_status_kb("VmHWM")
    maxrss_kb = _ru_maxrss_kb()
    children_maxrss_kb = _ru_maxrss_kb(resource.RUSAGE_CHILDREN)
    n_bytes, n_files = _folder_size(out_dir)
    format_bytes, format_files = _folder_size(out_dir, exclude=frozenset({SIDECAR_NAME}))
    record: dict[str, Any] = {
        "exporter": args.exporter,
        "size": size_label(n_cells, n_genes),
        "n_cells": n_cells,
        "n_genes": n_genes,
        "compression": compression,
        "quantization": QUANTIZATION_BITS,
        "import_seconds": round(import_seconds, 3),
        "caches_dropped": caches_dropped,
        "load_seconds": round(load_seconds, 3),
        "cpu_seconds": round((cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system), 3),
        "cpu_user_seconds": round(cpu_after.user - cpu_before.user, 3),
        "cpu_system_seconds": round(cpu_after.system - cpu_before.system, 3),
        "rss_before_export_mb": _kb_to_mb(rss_before_kb),
        "peak_rss_mb": _kb_to_mb(peak_kb if peak_reset and peak_kb is not None else maxrss_kb),
        "peak_rss_source": "VmHWM after reset" if peak_reset and peak_kb is not None else "ru_maxrss",
        "ru_maxrss_mb": _kb_to_mb(maxrss_kb),
        "ru_maxrss_before_export_mb": _kb_to_mb(maxrss_before_kb),
        "children_ru_maxrss_mb": _kb_to_mb(children_maxrss_kb),
        "bytes": n_bytes,
        "files": n_files,
        "format_bytes": format_bytes,
        "format_files": format_files,
        **measured,
    }
    record["seconds"] = round(record["seconds"], 4)
    record["export_rss_increment_mb"] = round(record["peak_rss_mb"] - (record["rss_before_export_mb"] or 0.0), 1)
    if args.exporter == "ours" and not args.no_validate:
        record.update(_validate(out_dir))
    if not args.no_graph_part and not args.profile:
        graph_dir = out_dir.with_name(out_dir.name + "_graph_only")
        record["graph_part_seconds"] = _graph_part(args.exporter, inputs, graph_dir, compression)
    return record


def _kb_to_mb(value_kb: int | None) -> float | None:
    return None if value_kb is None else round(value_kb * 1024 / MB, 1)


# --------------------------------------------------------------------------- parent side


def _parse_compression(text: str | int | None) -> int | None:
    if text is None:
        return None
    text = str(text).strip().lower()
    if text in ("none", "0", ""):
        return None
    level = int(text)
    if not 1 <= level <= 9:
        raise ValueError(f"compression {text!r}, expected 'none' or 1-9")
    return level


def _compression_label(level: int | None) -> str:
    return "none" if level is None else str(level)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("TQDM_DISABLE", "1")  # the reference's progress bars; stderr is silenced anyway
    return env


def _run_subprocess(command: list[str], timeout: float) -> tuple[int | None, str, str, float]:
    """Run ``command`` from the repo root; returns (returncode or None on timeout, stdout, stderr, seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)  # only the group this call started
        stdout, stderr = process.communicate()
        code = None
    return code, stdout, stderr, time.perf_counter() - started


def ensure_dataset(label: str, seed: int, timeout: float, data_dir: str | None = None) -> tuple[Path, float]:
    """Generate (in a subprocess, so this process stays small) and cache one size's inputs."""
    command = [sys.executable, "-m", "benchmarks.bench_prepare", "--generate", label, "--seed", str(seed)]
    if data_dir:
        command += ["--data-dir", str(data_dir)]
    code, stdout, stderr, seconds = _run_subprocess(command, timeout)
    if code != 0:
        raise RuntimeError(f"generating {label} failed (exit {code}):\n{stderr[-3000:]}")
    folder = Path(stdout.strip().splitlines()[-1])
    return folder, seconds


#: Seconds after which ext4 no longer treats a deleted inode as recently deleted (30 s + 5 s
#: while its block is dirty; see _start_from_clean_caches).
RECENT_DELETE_SECONDS = 36.0
#: Outputs are kept (and deleted at the end) while this much disk space stays free.
TRASH_MIN_FREE_BYTES = 8 * 2**30


class Trash:
    """Deletes the benchmark's outputs only at the end of the run.

    Deleting thousands of files just before the next timed export would slow that
    export's own file creation on a disk without a journal (``recently_deleted()``
    in ext4). Outputs are renamed into ``folder`` and deleted by :meth:`empty`;
    when disk space runs short, they are deleted at once and the next run waits
    until :data:`RECENT_DELETE_SECONDS` have passed.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._count = 0
        self._deleted_at: float | None = None

    def discard(self, path: Path) -> None:
        """Move ``path`` out of the way (or delete it when space is short)."""
        if not path.exists():
            return
        if shutil.disk_usage(path.parent).free >= TRASH_MIN_FREE_BYTES:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._count += 1
            os.replace(path, self.folder / f"{self._count}_{path.name}")
            return
        shutil.rmtree(path, ignore_errors=True)
        self._deleted_at = time.monotonic()

    def wait_until_settled(self) -> None:
        """Sleep until files deleted at once no longer slow file creation."""
        if self._deleted_at is not None:
            remaining = RECENT_DELETE_SECONDS - (time.monotonic() - self._deleted_at)
            if remaining > 0:
                time.sleep(remaining)
            self._deleted_at = None

    def empty(self) -> None:
        """Delete everything discarded so far."""
        shutil.rmtree(self.folder, ignore_errors=True)


def probe_file_creation(folder: Path, n_files: int = 500, size: int = 4096, trash: Trash | None = None) -> float:
    """Milliseconds to create, write and close one small file in ``folder`` (machine noise indicator)."""
    probe = Path(tempfile.mkdtemp(prefix=".probe_", dir=folder))
    payload = b"\0" * size
    started = time.perf_counter()
    for index in range(n_files):
        handle = os.open(probe / f"{index}.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(handle, payload)
        os.close(handle)
    seconds = time.perf_counter() - started
    if trash is None:
        shutil.rmtree(probe, ignore_errors=True)
    else:
        trash.discard(probe)
    return round(seconds / n_files * 1e3, 3)


def run_one(
    exporter: str, label: str, compression: int | None, dataset_dir: Path, work_dir: Path, args: argparse.Namespace,
    run_index: int, trash: Trash | None = None,
) -> dict[str, Any]:
    """One export in a fresh subprocess; its output is discarded unless ``--keep-output``."""
    out_dir = work_dir / f"{label}_c{_compression_label(compression)}_{exporter}_{run_index}"
    trash = trash or Trash(work_dir / ".trash")
    trash.discard(out_dir)
    trash.wait_until_settled()
    result_file = work_dir / f"{out_dir.name}.json"
    command = [
        sys.executable, "-m", "benchmarks.bench_prepare", "--child",
        "--exporter", exporter, "--size", label, "--compression", _compression_label(compression),
        "--dataset-dir", str(dataset_dir), "--out-dir", str(out_dir), "--result", str(result_file),
    ]
    if args.n_workers is not None:
        command += ["--n-workers", str(args.n_workers)]
    if args.no_validate:
        command.append("--no-validate")
    if args.no_graph_part:
        command.append("--no-graph-part")
    if args.keep_caches:
        command.append("--keep-caches")
    if args.profile and exporter == "ours":
        profile_path = Path(args.profile)
        profile_path = profile_path.with_name(f"{profile_path.stem}_{label}_c{_compression_label(compression)}{profile_path.suffix}")
        command += ["--profile", str(profile_path)]
    os.sync()  # start with no dirty pages or pending discards of the previous run
    code, _stdout, stderr, seconds = _run_subprocess(command, args.timeout)
    if code == 0 and result_file.exists():
        record = json.loads(result_file.read_text())
    else:
        reason = f"timed out after {args.timeout:.0f} s" if code is None else f"exit code {code}"
        record = {
            "exporter": exporter, "size": label, "compression": compression,
            "error": f"{reason}: {stderr.strip()[-2000:]}",
        }
    record["process_seconds"] = round(seconds, 2)
    record["run"] = run_index
    result_file.unlink(missing_ok=True)
    if not args.keep_output:
        trash.discard(out_dir)
        trash.discard(out_dir.with_name(out_dir.name + "_graph_only"))
    return record


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over repeats of one (exporter, size, compression)."""
    good = [run for run in runs if "error" not in run]
    if not good:
        return {"error": runs[-1].get("error", "no successful run") if runs else "not run"}
    summary = {
        "seconds": statistics.median(run["seconds"] for run in good),
        "seconds_all": [run["seconds"] for run in good],
        "peak_rss_mb": statistics.median(run["peak_rss_mb"] for run in good),
        "rss_before_export_mb": statistics.median(run["rss_before_export_mb"] or 0.0 for run in good),
        "ru_maxrss_mb": statistics.median(run["ru_maxrss_mb"] for run in good),
        "cpu_seconds": statistics.median(run["cpu_seconds"] for run in good),
        "graph_part_seconds": _median_or_none(run.get("graph_part_seconds") for run in good),
        "bytes": good[-1]["bytes"],
        "files": good[-1]["files"],
        "format_bytes": good[-1]["format_bytes"],
        "format_files": good[-1]["format_files"],
        "n_runs": len(good),
        "n_failed": len(runs) - len(good),
    }
    if "phase_seconds" in good[-1]:
        phases = sorted({phase for run in good for phase in run.get("phase_seconds", {})})
        summary["phase_seconds"] = {
            phase: statistics.median(run.get("phase_seconds", {}).get(phase, 0.0) for run in good) for phase in phases
        }
        summary["phase_spans"] = good[-1].get("phase_spans", {})
    for key in ("validated", "n_problems", "problems", "reason", "warnings"):
        if key in good[-1]:
            summary[key] = good[-1][key]
    return summary


def _median_or_none(values: Any) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def compare(label: str, compression: int | None, ours: dict[str, Any] | None, ref: dict[str, Any] | None) -> dict[str, Any]:
    """Ratios of one row and the issue's targets for it (None where not measurable)."""
    row: dict[str, Any] = {"size": label, "compression": compression}
    ours_ok = ours is not None and "error" not in ours
    ref_ok = ref is not None and "error" not in ref
    if ours_ok and ref_ok:
        row["speedup"] = round(ref["seconds"] / max(ours["seconds"], 1e-9), 2)
        row["rss_ratio"] = round(ours["peak_rss_mb"] / max(ref["peak_rss_mb"], 1e-9), 3)
        row["bytes_ratio"] = round(ours["bytes"] / max(ref["bytes"], 1), 4)
        row["format_bytes_ratio"] = round(ours["format_bytes"] / max(ref["bytes"], 1), 4)
        checks: dict[str, bool] = {"peak_rss_below_reference": ours["peak_rss_mb"] < ref["peak_rss_mb"]}
        target = SPEEDUP_TARGETS.get((label, compression))
        if target is not None:
            checks[f"speedup_at_least_{target:g}x"] = row["speedup"] >= target
        if (label, compression) in SIZE_TARGETS:
            checks["output_not_larger"] = ours["bytes"] <= ref["bytes"]
        row["checks"] = checks
    if ours_ok and ref_ok and ours.get("graph_part_seconds") and ref.get("graph_part_seconds"):
        row["graph_part_speedup"] = round(ref["graph_part_seconds"] / ours["graph_part_seconds"], 2)
    graph_limit = GRAPH_TARGETS.get((label, compression))
    if graph_limit is not None and ours_ok:
        # The isolated points + graph export; the phase span undercounts queued compression.
        graph_seconds = ours.get("graph_part_seconds")
        if graph_seconds is None:
            graph_seconds = ours.get("phase_seconds", {}).get("graph")
        row["graph_seconds"] = graph_seconds
        if graph_seconds is not None:
            row.setdefault("checks", {})[f"graph_under_{graph_limit:g}s"] = graph_seconds < graph_limit
    return row


def environment_info() -> dict[str, Any]:
    """Machine and library facts stored with the results."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    from importlib import metadata

    for package in ("numpy", "scipy", "pandas", "cellucid"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = None
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Every (size, compression, exporter, repeat) in fresh subprocesses; the JSON-ready report."""
    labels = [size_label(*parse_size(label)) for label in args.sizes.split(",") if label.strip()]
    levels = [_parse_compression(level) for level in args.compression.split(",")]
    exporters = [e for e in EXPORTERS if not (e == "reference" and args.skip_reference) and not (e == "ours" and args.skip_ours)]
    work_dir = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bench_prepare_", dir=_ensure(DATA_DIR)))
    work_dir.mkdir(parents=True, exist_ok=True)
    trash = Trash(work_dir / ".trash")
    report: dict[str, Any] = {
        "benchmark": "prepare",
        "environment": environment_info(),
        "settings": {
            "sizes": labels, "compression": levels, "exporters": exporters, "repeat": args.repeat,
            "var_quantization": QUANTIZATION_BITS, "obs_continuous_quantization": QUANTIZATION_BITS,
            "seed": args.seed, "n_workers": args.n_workers,
        },
        "generation_seconds": {},
        "note": "outputs are deleted at the end of the run and kernel caches dropped before each export",
        "file_create_ms": {},
        "runs": [],
        "results": [],
    }
    for label in labels:
        dataset_dir, seconds = ensure_dataset(label, args.seed, args.timeout, args.data_dir)
        report["generation_seconds"][label] = round(seconds, 2)
        os.sync()
        report["file_create_ms"][label] = probe_file_creation(work_dir, trash=trash)
        _log(f"[{label}] inputs ready in {seconds:.1f} s ({dataset_dir.name}); "
             f"creating a small file takes {report['file_create_ms'][label]} ms here now")
        for compression in levels:
            runs: dict[str, list[dict[str, Any]]] = {exporter: [] for exporter in exporters}
            for repeat in range(args.repeat):
                # Alternate the order so that drifting machine load hits both exporters alike.
                order = exporters if repeat % 2 == 0 else exporters[::-1]
                for exporter in order:
                    record = run_one(exporter, label, compression, dataset_dir, work_dir, args, repeat, trash)
                    runs[exporter].append(record)
                    report["runs"].append(record)
                    _log(_describe_run(record))
            summaries = {exporter: summarise(runs[exporter]) for exporter in exporters}
            row = compare(label, compression, summaries.get("ours"), summaries.get("reference"))
            row["ours"] = summaries.get("ours")
            row["reference"] = summaries.get("reference")
            report["results"].append(row)
            _log(_describe_row(row))
            if args.json:  # keep partial results if a later size fails or is interrupted
                _write_json(Path(args.json), report)
    trash.empty()
    if not args.work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
    return report


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(partial, path)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _describe_run(record: dict[str, Any]) -> str:
    head = f"  {record['exporter']:>9} {record['size']} c={_compression_label(record['compression'])} run {record.get('run')}"
    if "error" in record:
        return f"{head}: FAILED {record['error'][:500]}"
    text = (f"{head}: {record['seconds']:.2f} s, peak {record['peak_rss_mb']:.0f} MB "
            f"(before export {record['rss_before_export_mb']:.0f} MB), {record['bytes'] / MB:.1f} MB in {record['files']} files")
    if "n_problems" in record:
        text += f", validator: {record['n_problems']} problems"
    return text


def _describe_row(row: dict[str, Any]) -> str:
    parts = [f"=> {row['size']} c={_compression_label(row['compression'])}"]
    for key in ("speedup", "rss_ratio", "bytes_ratio", "graph_seconds"):
        if key in row:
            parts.append(f"{key}={row[key]}")
    if "checks" in row:
        parts.append("checks: " + ", ".join(f"{name}={'ok' if ok else 'MISSED'}" for name, ok in row["checks"].items()))
    return " ".join(parts)


def markdown_table(report: dict[str, Any]) -> str:
    """The results as a Markdown table (one row per size x compression)."""
    lines = [
        "| size | compression | ours s | ref s | speed-up | CPU s (ours / ref) | our peak RSS MB | ref peak RSS MB "
        "| our MB / ref MB | files (ours / ref) | targets |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in report["results"]:
        ours, ref = row.get("ours") or {}, row.get("reference") or {}

        def cell(summary: dict[str, Any], key: str, fmt: str) -> str:
            if "error" in summary:
                return "failed"
            return format(summary[key], fmt) if key in summary else "–"

        size_cell = "–"
        if "bytes" in ours or "bytes" in ref:
            size_cell = f"{ours['bytes'] / MB:.1f}" if "bytes" in ours else "–"
            size_cell += " / " + (f"{ref['bytes'] / MB:.1f}" if "bytes" in ref else "–")
        files_cell = f"{ours.get('files', '–')} / {ref.get('files', '–')}"
        checks = row.get("checks", {})
        checks_cell = ", ".join(f"{name} {'✓' if ok else '✗'}" for name, ok in checks.items()) or "–"
        speedup = f"{row['speedup']:.1f}×" if "speedup" in row else "–"
        cpu_cell = f"{cell(ours, 'cpu_seconds', '.1f')} / {cell(ref, 'cpu_seconds', '.1f')}"
        lines.append(
            f"| {row['size']} | {_compression_label(row['compression'])} | {cell(ours, 'seconds', '.2f')} | "
            f"{cell(ref, 'seconds', '.2f')} | {speedup} | {cpu_cell} | {cell(ours, 'peak_rss_mb', '.0f')} | "
            f"{cell(ref, 'peak_rss_mb', '.0f')} | {size_cell} | {files_cell} | {checks_cell} |"
        )
    return "\n".join(lines) + "\n"


def phase_table(report: dict[str, Any]) -> str:
    """cellucid_nb's seconds per phase (from progress events) and the graph part, per size x compression.

    A phase lasts until the next phase's first event: work queued to threads
    overlaps later phases, and the last phase before ``identity`` includes the
    wait for all queued files. The graph part is a separate points + graph export.
    """
    rows = [row for row in report["results"] if (row.get("ours") or {}).get("phase_seconds")]
    if not rows:
        return ""
    seen = {phase for row in rows for phase in row["ours"]["phase_seconds"]}
    phases = [phase for phase in PHASE_ORDER if phase in seen] + sorted(seen - set(PHASE_ORDER))
    lines = [
        "| size | compression | " + " | ".join(phases) + " | graph part s (ours / ref) |",
        "| --- | --- |" + " ---: |" * (len(phases) + 1),
    ]
    for row in rows:
        seconds = row["ours"]["phase_seconds"]
        graph_ours = row["ours"].get("graph_part_seconds")
        graph_ref = (row.get("reference") or {}).get("graph_part_seconds")
        graph_cell = " / ".join("–" if value is None else f"{value:.2f}" for value in (graph_ours, graph_ref))
        lines.append(
            f"| {row['size']} | {_compression_label(row['compression'])} | "
            + " | ".join(f"{seconds[p]:.2f}" if p in seconds else "–" for p in phases) + f" | {graph_cell} |"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10kx2k", help=f"comma-separated sizes, e.g. {','.join(SIZES)}")
    parser.add_argument("--compression", default="6,none", help="comma-separated gzip levels; 'none' = no compression")
    parser.add_argument("--repeat", type=int, default=1, help="runs per exporter and setting (median reported)")
    parser.add_argument("--skip-reference", action="store_true", help="run cellucid_nb only")
    parser.add_argument("--skip-ours", action="store_true", help="run the reference only")
    parser.add_argument("--json", help="write the full report (all runs and summaries) to this JSON file")
    parser.add_argument("--markdown", help="write the results table to this Markdown file")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per child process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", help="cache of generated inputs (default: benchmarks/.data)")
    parser.add_argument("--n-workers", type=int, default=None, help="cellucid_nb's n_workers (default: its own)")
    parser.add_argument("--work-dir", help="where exports are written (default: a temporary folder in benchmarks/.data)")
    parser.add_argument("--keep-output", action="store_true", help="keep the exports (default: delete after measuring)")
    parser.add_argument("--no-validate", action="store_true", help="skip validate_export on cellucid_nb's output")
    parser.add_argument(
        "--keep-caches", action="store_true",
        help="do not sync and drop the kernel caches before each timed export (see _start_from_clean_caches)",
    )
    parser.add_argument(
        "--no-graph-part", action="store_true", help="skip the points + graph only export timed after each run"
    )
    parser.add_argument(
        "--profile",
        help="profile cellucid_nb with cProfile (serial: worker threads inlined) and write the top functions to "
        "this text file (one per size/compression, suffixed); its timings are not benchmark numbers",
    )
    # internal: one export / one generation per process
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    parser.add_argument("--exporter", choices=EXPORTERS, help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--dataset-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.generate:
        folder = cached_dataset_dir(*parse_size(args.generate), seed=args.seed, cache_dir=args.data_dir)
        print(folder)
        return 0
    if args.child:
        record = run_child(args)
        Path(args.result).write_text(json.dumps(record, default=str))
        return 0
    if args.repeat < 1:
        raise SystemExit(f"--repeat {args.repeat}, expected >= 1")
    report = run_benchmark(args)
    if args.json:
        _write_json(Path(args.json), report)
    table = markdown_table(report)
    phases = phase_table(report)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(table + ("\ncellucid_nb seconds per phase:\n\n" + phases if phases else ""))
    print(table)
    if phases:
        print("cellucid_nb seconds per phase (from progress events):\n")
        print(phases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
