"""``prepare()``: the reference exporter's signature, written safely, streaming and in parallel."""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..format.layouts import detect_format
from ..format.safe_io import parse_json, read_text_no_follow
from ..format.spec import FORMAT_NAME, SIDECAR_FILE
from .gc_pause import frozen_heap_during
from .genes import start_genes
from .graph import write_graph
from .identity import build_identity, build_sidecar, write_identity
from .inputs import ExportInputs, ExportSettings, validate_inputs
from .locking import ExportLock
from .obs import ObsWriter
from .points import write_points
from .progress import ExportResult, ProgressEvent, ProgressReporter
from .runner import ExistingExport, ExportRunner, inspect_existing, settings_fingerprint
from .swap import recover
from .vectors import write_vectors

__all__ = ["prepare"]


def default_n_workers() -> int:
    """The worker threads ``prepare(n_workers=None)`` uses: one per CPU (the estimate's time model uses it too)."""
    return max(1, os.cpu_count() or 1)


def _check_workers(n_workers: Any) -> int:
    if n_workers is None:
        return default_n_workers()
    if isinstance(n_workers, (bool, np.bool_)) or not isinstance(n_workers, (int, np.integer)) or int(n_workers) < 1:
        raise ValueError(f"n_workers={n_workers!r} is not supported: expected None (all CPUs) or an integer >= 1.")
    return int(n_workers)


def _read_json(path: Path) -> dict | None:
    try:
        value = parse_json(read_text_no_follow(path), path.name)  # a hostile file: no links, bounded nesting
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _existing_layout(out_dir: Path) -> str:
    """``"key"``, ``"index"`` or the format name of the export in ``out_dir`` (one without our sidecar)."""
    try:
        found = detect_format(out_dir)
    except (OSError, ValueError) as exc:
        return f"unreadable ({exc})"
    return found.naming if found.format == FORMAT_NAME else found.format


def _existing_settings_differences(out_dir: Path, settings: ExportSettings) -> list[str]:
    """Settings of the export already in ``out_dir`` that differ from ``settings``."""
    ours = settings.to_dict()
    sidecar = _read_json(out_dir / SIDECAR_FILE)
    if sidecar is not None and isinstance(sidecar.get("settings"), dict):
        if sidecar.get("settings_fingerprint") == settings_fingerprint(ours):
            return []
        theirs = sidecar["settings"]
        changed = [f"{k}: existing {theirs.get(k)!r}, requested {v!r}" for k, v in ours.items() if theirs.get(k) != v]
        return changed or ["settings fingerprint differs"]
    # An export without our sidecar (e.g. written by cellucid 0.0.9): compare what its manifests say.
    diffs: list[str] = []

    def compare(label: str, existing: Any, requested: Any) -> None:
        if existing != requested:
            diffs.append(f"{label}: existing {existing!r}, requested {requested!r}")

    obs = _read_json(out_dir / settings.obs_manifest_filename)
    if obs is not None:
        compare("compression", obs.get("compression") or None, settings.compression)
        schema = obs.get("_obsSchemas", {}).get("continuous")
        if schema is not None:
            compare("obs_continuous_quantization", schema.get("quantizationBits"), settings.obs_continuous_quantization)
    var = _read_json(out_dir / settings.var_manifest_filename)
    if var is not None:
        compare("compression (var)", var.get("compression") or None, settings.compression)
        compare("var_quantization", var.get("quantization"), settings.var_quantization)
    conn = _read_json(out_dir / settings.connectivity_manifest_filename)
    if conn is not None:
        compare("compression (connectivity)", conn.get("compression") or None, settings.compression)
    identity = _read_json(out_dir / "dataset_identity.json")
    if identity is not None and isinstance(identity.get("export_settings"), dict):
        es = identity["export_settings"]
        compare("compression (identity)", es.get("compression") or None, settings.compression)
        compare("var_quantization (identity)", es.get("var_quantization"), settings.var_quantization)
        compare(
            "obs_continuous_quantization (identity)",
            es.get("obs_continuous_quantization"),
            settings.obs_continuous_quantization,
        )
        compare("obs_categorical_dtype", es.get("obs_categorical_dtype"), settings.obs_categorical_dtype)
    if obs is not None or var is not None:
        compare("layout", _existing_layout(out_dir), settings.layout)
    return list(dict.fromkeys(diffs))


def _total_items(inputs: ExportInputs) -> int:
    n = 1 + len(inputs.embeddings) + len(inputs.obs_fields) + 1  # validate, points, obs + manifest
    if inputs.genes is not None:
        n += len(inputs.genes.ids) + 1
    if inputs.connectivity is not None:
        n += 2
    return n + len(inputs.vector_files) + 2  # vectors, identity, finalize


@frozen_heap_during
def prepare(
    latent_space: Any = None,
    obs: pd.DataFrame | None = None,
    var: pd.DataFrame | None = None,
    gene_expression: Any = None,
    var_gene_id_column: str = "index",
    gene_identifiers: Sequence[str] | None = None,
    connectivities: Any = None,
    out_dir: Path | str | None = None,
    obs_keys: Sequence[str] | None = None,
    centroid_outlier_quantile: float | None = 0.95,
    centroid_min_points: int = 10,
    obs_manifest_filename: str = "obs_manifest.json",
    obs_binary_dirname: str = "obs",
    var_manifest_filename: str = "var_manifest.json",
    var_binary_dirname: str = "var",
    connectivity_manifest_filename: str = "connectivity_manifest.json",
    connectivity_binary_dirname: str = "connectivity",
    force: bool = False,
    var_quantization: int | None = None,
    obs_continuous_quantization: int | None = None,
    obs_categorical_dtype: Literal["auto", "uint8", "uint16"] = "auto",
    compression: int | None = None,
    dataset_name: str | None = None,
    dataset_description: str | None = None,
    dataset_id: str | None = None,
    source_name: str | None = None,
    source_url: str | None = None,
    source_citation: str | None = None,
    X_umap_1d: Any = None,
    X_umap_2d: Any = None,
    X_umap_3d: Any = None,
    X_umap_4d: Any = None,
    vector_fields: Mapping[str, Any] | None = None,
    *,
    created_at: str | datetime | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    cancel: threading.Event | None = None,
    n_workers: int | None = None,
    category_colors: Mapping[str, Sequence[str]] | None = None,
    vector_basis: str = "umap",
    sidecar_extra: Mapping[str, Any] | None = None,
    layout: Literal["key", "index"] = "key",
) -> ExportResult:
    """Export arrays to a Cellucid exports folder (the ``compact_v1`` format).

    Same arguments and outputs as ``cellucid.prepare`` (0.0.9), with these
    differences: every input is validated before the first byte is written;
    the export is staged beside ``out_dir`` and moved into place only when
    complete; genes are streamed in column blocks and compressed in worker
    threads; quantization rounds to the nearest step; the kNN graph is
    written with float64 weights; a sidecar ``cellucid_nb.json`` records
    settings, colours and checksums.

    Parameters
    ----------
    latent_space
        ``(n_cells, n_dims)`` array (dense or sparse) for the outlier quantiles. Required.
        Read by row blocks, never whole: an h5py dataset, zarr array or Dask array
        (e.g. ``obsm['X_pca']`` left in its file) stays there.
    obs
        Cell metadata, one row per cell. Required.
    var
        Gene metadata; required with ``gene_expression``.
    gene_expression
        ``(n_cells, n_genes)``: numpy array, any scipy sparse matrix or array; never densified whole.
    var_gene_id_column
        ``"index"`` or the ``var`` column holding gene ids (unique strings).
    gene_identifiers
        Genes to export, in this order; unknown ids are skipped with a warning.
    connectivities
        ``(n_cells, n_cells)`` kNN weights (sparse or dense, >= 0, finite).
    out_dir
        Export folder; ``None`` means ``Path.cwd() / "exports"`` at call time. Refused: ``""``,
        the current folder (or a parent of it), a symbolic link, a file, a non-empty folder
        without an export. One export at a time per folder: another one fails at once
        (:class:`~cellucid_nb.exporter.locking.ExportBusyError`). Leftovers of an export that
        was killed are repaired first (with a warning).
    obs_keys
        obs columns to export (default: all).
    centroid_outlier_quantile
        Distance quantile kept when computing centroids, in (0, 1), or ``None`` for no centroids.
    centroid_min_points
        Minimum cells of a category for a centroid and outlier quantiles.
    obs_manifest_filename, obs_binary_dirname, var_manifest_filename, var_binary_dirname, connectivity_manifest_filename, connectivity_binary_dirname
        File and folder names.
    force
        Replace an existing export (only once the new one is complete). With
        ``False`` an existing export with the same settings is replaced too, reusing
        (hard-linking) its payloads whose bytes equal the new ones; one with other
        settings is an error. Either way only the files an export wrote (the
        sidecar's list) are replaced: the user's own files in ``out_dir`` are kept
        (with a warning naming them).
    var_quantization, obs_continuous_quantization
        ``None`` (float32), 8 or 16 bits.
    obs_categorical_dtype
        ``"auto"``, ``"uint8"`` or ``"uint16"`` category codes.
    compression
        ``None``/0 (no gzip) or a gzip level 1-9.
    dataset_name, dataset_description, dataset_id, source_name, source_url, source_citation
        Identity metadata.
    X_umap_1d, X_umap_2d, X_umap_3d
        Embeddings ``(n_cells, d)``; at least one is required.
    X_umap_4d
        Reserved: raises ``NotImplementedError``.
    vector_fields
        ``{"<field>_<d>d" | "<field>": (n_cells, d)}`` displacement vectors.
    created_at
        Timestamp for ``dataset_identity.json`` (default: now); fix it for reproducible bytes.
    progress
        Called with :class:`ProgressEvent` at most ~10 times a second (first and last always),
        from the calling thread.
    cancel
        Set it to stop the export within about a second; raises :class:`ExportCancelled`.
    n_workers
        Compression threads (default: ``os.cpu_count()``).
    category_colors
        ``{obs_key: ["#rrggbb", ...]}`` stored in the sidecar for the viewer.
    vector_basis
        Basis of vector fields whose id does not end in ``_umap``.
    sidecar_extra
        Extra JSON-safe keys for the sidecar.
    layout
        ``"key"`` (default): payloads named after their keys (``obs/<key>.values.u8``), as
        ``cellucid==0.0.9``. ``"index"``: index-named ``compact_v1`` (``obs/0.values.u8``, tuples
        starting with their index), as cellucid 0.9.1-0.9.2 and cellucid-r write it; same payload
        bytes and values.

    Returns
    -------
    ExportResult
    """
    started = time.perf_counter()
    reporter = ProgressReporter(progress, total=1)
    reporter.set_phase("validate")
    kw = dict(locals())
    inputs = validate_inputs(out_dir, kw)
    workers = _check_workers(n_workers)
    if sidecar_extra is not None and not isinstance(sidecar_extra, Mapping):
        raise TypeError(f"sidecar_extra is a {type(sidecar_extra).__name__}, expected a mapping of JSON-safe values.")
    settings = inputs.settings
    manifest_names = (
        settings.obs_manifest_filename,
        settings.var_manifest_filename,
        settings.connectivity_manifest_filename,
    )
    dir_names = (settings.obs_binary_dirname, settings.var_binary_dirname, settings.connectivity_binary_dirname)
    inputs.out_dir.parent.mkdir(parents=True, exist_ok=True)
    with ExportLock(inputs.out_dir):
        for message in recover(inputs.out_dir, manifest_names, dir_names):
            _warn_recovered(inputs.warnings, f"out_dir {str(inputs.out_dir)!r}: {message}")
        existing = inspect_existing(inputs.out_dir, manifest_names, dir_names)
        _check_existing(inputs, existing, bool(force))
        reporter.total = _total_items(inputs)
        reporter.advance(1)
        return _run(inputs, existing, bool(force), (manifest_names, dir_names), workers, reporter, cancel,
                    sidecar_extra, started)


def _warn_recovered(messages: list[str], message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=4)
    messages.append(message)


def _check_existing(inputs: ExportInputs, existing: ExistingExport, force: bool) -> None:
    """Refuse an out_dir whose content the export must not touch (nothing is written yet)."""
    settings = inputs.settings
    if existing.mode == "export" and not force:
        diffs = _existing_settings_differences(inputs.out_dir, settings)
        if diffs:
            raise ValueError(
                f"out_dir {str(inputs.out_dir)!r} already holds an export made with different settings "
                f"({'; '.join(diffs)}). Use force=True to replace it, or choose another out_dir."
            )
    if existing.mode == "other":
        # Not an export: nothing in it is ours, and an export must not be mixed into it.
        raise ValueError(
            f"out_dir {str(inputs.out_dir)!r} is not empty and holds no Cellucid export "
            f"(e.g. {sorted(existing.files)[:3]}); expected a new or empty folder or an earlier export"
            + ("; force=True would delete those files" if force else "")
            + ". Choose another out_dir."
        )


def _run(inputs: ExportInputs, existing: ExistingExport, force: bool, layout: tuple, workers: int,
         reporter: ProgressReporter, cancel: threading.Event | None, sidecar_extra: Any, started: float) -> ExportResult:
    """Write the export (the lock of out_dir is held)."""
    with ExportRunner(
        inputs.out_dir,
        compression=inputs.settings.compression,
        n_workers=workers,
        reporter=reporter,
        cancel=cancel,
        existing=existing,
        force=force,
        layout=layout,
    ) as runner:
        reporter.set_phase("points")
        # Obs fields, then genes, go to the worker threads first; this thread writes
        # the other parts meanwhile (compressing them itself), then waits for them.
        obs = ObsWriter(runner, inputs)
        genes = start_genes(runner, inputs)
        runner.inline = genes is not None or bool(inputs.obs_fields)
        points = write_points(runner, inputs)
        reporter.set_phase("graph")
        connectivity = write_graph(runner, inputs)
        reporter.set_phase("vectors")
        vectors = write_vectors(runner, inputs)
        reporter.set_phase("obs")
        obs.finish()
        reporter.set_phase("genes")
        if genes is not None:
            genes.finish()
        runner.drain()
        reporter.set_phase("identity")
        write_identity(runner, build_identity(inputs, points, connectivity, vectors))
        reporter.set_phase("finalize")
        return runner.finalize(build_sidecar(inputs, sidecar_extra), started, inputs.warnings)

