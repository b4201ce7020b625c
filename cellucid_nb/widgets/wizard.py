"""The export wizard: one anywidget that takes a beginner from AnnData to a viewable export.

The widget is only a face on the export flow (docs/DEVELOPING.md): it edits an
:class:`~cellucid_nb.adata.plan.ExportPlan`, shows :func:`~cellucid_nb.adata.estimation.estimate`
live, runs :func:`~cellucid_nb.adata.exporting.export` in a background thread
and, on success, serves the result to the viewer embedded below it.

Wire protocol (front-end: ``js/wizard/widget.js``)
--------------------------------------------------
Synced traits: ``summary``, ``plan`` (a dict on the wire, an ``ExportPlan`` in
Python), ``plan_error``, ``estimate`` (dict / ``SizeEstimate``; ``disk_bytes`` is
the size on disk), ``estimate_pending``, ``estimate_error``, ``status``,
``progress``, ``error``, ``message`` (one-line notice, e.g. what a cancel left),
``result`` (dict / ``ExportResult``; the last successful export, kept when a
later export fails or is cancelled), ``code``, ``out_dir``, ``overwrite``,
``gene_report``, ``source_note`` (which expression source genes come from, and why).

A plan edit from the browser that is invalid sets ``plan_error`` and leaves
``plan`` as it was, without sending it back: the page keeps showing the user's
choice beside the error, and the next valid edit (even back to the same plan)
clears it. Export refuses to start while ``plan_error`` is set.

Custom messages, front-end to Python (``type`` field):

- ``wizard:gene_ids`` → answered once with ``{type: "wizard:gene_ids", column,
  n}`` and one buffer: the UTF-8 JSON list of every gene id. Type-ahead then
  runs in the browser with no round trip per key stroke, and 30k ids never sit
  in a trait that would be re-sent on every change.
- ``wizard:genes`` ``{mode: "list"|"hvg"|"top"|"all"|"none", ids?, n?, by?}`` →
  the gene choice is resolved in a worker thread (the rules of
  :mod:`cellucid_nb.adata.gene_choice`), then ``plan`` and ``gene_report``
  change; a list with unknown ids is refused: ``gene_report`` gets ``error``,
  ``unknown``, ``n_unknown`` and ``suggestions`` ({id: closest known id}).
- ``wizard:preview`` ``{key, color, request_id}`` → ``{type: "wizard:preview",
  request_id, n, kind, ...}`` with buffers ``[float32 positions (n*2), codes]``.
- ``wizard:export``, ``wizard:cancel``.
- ``viewer:*`` → forwarded to the :class:`ViewerBackend` of the finished export.

Every piece of work (estimate, gene presets, preview, export) runs in a
background thread; errors land in a trait, never only in the kernel log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from cellucid_nb.widgets.wizard_errors import describe_error
from cellucid_nb.widgets.wizard_jobs import ExportJob, LatestOnlyWorker, ProgressTracker, Throttle, cancel_outcome
from cellucid_nb.widgets.wizard_preview import preview_payload

__all__ = ["ExportWizard", "wizard"]

logger = logging.getLogger(__name__)

_STATIC = Path(__file__).resolve().parent.parent / "static"
_STATUSES = ("idle", "running", "done", "error", "cancelled")
#: Progress updates sent to the front-end per second, at most.
PROGRESS_RATE = 10.0


# --------------------------------------------------------------------------- wire (de)serialisers


def _json_roundtrip(value: Any) -> Any:
    """Plain JSON types only (tuples -> lists, int keys -> str), as the comm would send them."""
    return json.loads(json.dumps(value, default=str))


def _plan_to_json(plan: Any, widget: Any) -> dict:
    return {} if plan is None else _json_roundtrip(plan.to_dict())


def _plan_from_json(data: Any, widget: ExportWizard) -> Any:
    # Edits from the browser: an invalid one keeps the last valid plan and says why.
    return widget._accept_plan_from_frontend(data)


def _to_dict_or_empty(value: Any, widget: Any) -> dict:
    return {} if value is None else _json_roundtrip(value.to_dict())


def _read_only(name: str) -> Callable[[Any, Any], Any]:
    """``from_json`` of a trait only Python writes: a browser edit keeps the Python value."""
    return lambda data, widget: getattr(widget, name)


_LAYOUT_CHOICES = [
    {"value": "key", "label": "Key-named (default)",
     "note": "Files named after fields and genes. Read by cellucid_nb and by the Cellucid app of cellucid 0.0.9."},
    {"value": "index", "label": "Index-named",
     "note": "Files numbered 0..N-1, as cellucid 0.9.1-0.9.2 and cellucid-r write them. Read by cellucid_nb and "
             "by the Cellucid app releases that read those exports."},
]


def _plan_class() -> Any:
    from cellucid_nb.adata.plan import ExportPlan

    return ExportPlan


def _open_adata(adata: Any) -> tuple[Any, Path | None]:
    """The AnnData to export and the file it came from: a path is opened with ``open_h5ad`` (large parts stay on disk)."""
    if isinstance(adata, (str, os.PathLike)):
        path = Path(adata).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"wizard({str(adata)!r}): no such file; expected an AnnData or the path of an .h5ad file")
        from cellucid_nb.adata.open_file import open_h5ad_for_export

        return open_h5ad_for_export(path), path  # X, obsm, obsp and layers stay in the file
    if not all(hasattr(adata, name) for name in ("n_obs", "obs", "obsm")):
        raise TypeError(
            f"wizard() got a {type(adata).__name__}; expected an AnnData (in memory or backed) "
            "or the path of an .h5ad file"
        )
    filename = getattr(adata, "filename", None) if getattr(adata, "isbacked", False) else None
    from cellucid_nb.adata.lazy_frames import eager_frames

    return eager_frames(adata), Path(filename) if filename else None  # read_lazy's obs/var as pandas


def _dataset_name(adata: Any, plan: Any, path: Path | None) -> str:
    """A name for the dataset's export folder: plan name, file name, uns title, else a hash of shape and cell names.

    Never a shared name: two datasets without names get different folders.
    """
    for name in (getattr(plan, "dataset_name", None), getattr(plan, "dataset_id", None),
                 path.stem if path is not None else None):
        if name:
            return str(name)
    uns = getattr(adata, "uns", {})
    title = uns.get("title") if hasattr(uns, "get") else None
    if isinstance(title, str) and title.strip():
        return title.strip()
    import pandas as pd

    digest = hashlib.sha1(f"{adata.n_obs}x{adata.n_vars}".encode())
    digest.update(pd.util.hash_pandas_object(pd.Index(adata.obs_names), index=False).to_numpy().tobytes())
    return f"dataset-{digest.hexdigest()[:8]}"


def _default_out_dir(name: str) -> str:
    from cellucid_nb.format.naming import safe_name

    return str(Path.cwd() / "exports" / safe_name(name))


class ExportWizard(anywidget.AnyWidget):
    """Walk through an export in one widget: choices, live estimate, export, viewer.

    Parameters
    ----------
    adata
        The AnnData to export (in memory or backed), or the path of an ``.h5ad``
        file (opened with ``open_h5ad``: expression, obsm, graphs and layers stay on disk).
    out_dir
        Output folder; default ``./exports/<dataset name>``: the plan's
        ``dataset_name``, else the file name, else ``uns["title"]``, else
        ``dataset-<hash of shape and cell names>`` (never one shared folder).
    plan
        Starting plan; default ``ExportPlan.from_anndata(adata)``.
    **plan_changes
        Changes applied to the starting plan (``ExportPlan.replace``).

    Attributes
    ----------
    plan : ExportPlan
        The current plan. Assign an ``ExportPlan`` or a dict (``plan.to_dict()``
        form); an invalid one raises here (from the browser it sets ``plan_error``).
    estimate : SizeEstimate or None
        The latest finished estimate (``estimate_pending`` says a newer one runs;
        :meth:`wait_estimate` waits for it).
    result : ExportResult or None
        The last export that finished (kept when a later one fails or is cancelled).
    viewer : ViewerBackend or None
        The viewer of the finished export shown below the wizard (``selected``,
        ``on_select``, ``highlight``, ``reset_view``).
    selected : numpy.ndarray
        Indices of the cells selected in that viewer (empty before an export).
    """

    _esm = _STATIC / "wizard.js"
    _css = _STATIC / "wizard.css"

    summary = traitlets.Dict().tag(sync=True)
    plan = traitlets.Any(None).tag(sync=True, to_json=_plan_to_json, from_json=_plan_from_json)
    plan_error = traitlets.Unicode("").tag(sync=True)
    estimate = traitlets.Any(None).tag(sync=True, to_json=_to_dict_or_empty, from_json=_read_only("estimate"))
    estimate_pending = traitlets.Bool(False).tag(sync=True)
    estimate_error = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Enum(_STATUSES, default_value="idle").tag(sync=True)
    progress = traitlets.Dict().tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    result = traitlets.Any(None).tag(sync=True, to_json=_to_dict_or_empty, from_json=_read_only("result"))
    code = traitlets.Unicode("").tag(sync=True)
    out_dir = traitlets.Unicode("").tag(sync=True)
    overwrite = traitlets.Bool(False).tag(sync=True)
    gene_report = traitlets.Dict().tag(sync=True)
    #: which expression source genes come from and why (e.g. raw: log-normalised, X: z-scores)
    source_note = traitlets.Unicode("").tag(sync=True)
    #: a one-line notice that is not an error, e.g. "Export cancelled: nothing was written ..."
    message = traitlets.Unicode("").tag(sync=True)
    #: the advanced "file layout" choice (plan.layout; a plan dict without "layout" means "key"): value, label, note
    layout_choices = traitlets.List(default_value=_LAYOUT_CHOICES).tag(sync=True)

    def __init__(self, adata: Any, out_dir: str | Path | None = None, plan: Any = None, **plan_changes: Any) -> None:
        from cellucid_nb.adata.inspection import inspect

        ExportPlan = _plan_class()
        opened_here = isinstance(adata, (str, os.PathLike))
        adata, path = _open_adata(adata)
        #: the AnnData of the h5ad file this wizard opened itself (closed with the wizard, after its export ends)
        self._own_file = adata if opened_here else None
        self._adata = adata
        self._summary_obj = inspect(adata)
        start = plan if plan is not None else ExportPlan.from_anndata(adata, summary=self._summary_obj)
        if isinstance(start, dict):
            start = ExportPlan.from_dict(start)
        if plan_changes:
            start = start.replace(**plan_changes)
        self._check_plan(start)
        self._estimates = LatestOnlyWorker("cellucid-wizard-estimate")
        self._tasks = LatestOnlyWorker("cellucid-wizard-task")
        self._previews = LatestOnlyWorker("cellucid-wizard-preview")
        self._job: ExportJob | None = None
        self._viewer_backend: Any = None
        self._gene_ids_cache: tuple[str, list[str]] | None = None
        self._report_genes: tuple[Any, Any] = (None, None)  # what gene_report describes
        # the source genes come from when the plan has none (expression_source=None): the default one
        from cellucid_nb.adata.gene_choice import default_expression_source

        self._last_source = start.expression_source or default_expression_source(self._summary_obj) or "X"
        super().__init__(
            summary=self._summary_obj.to_dict(),
            plan=start,
            out_dir=str(out_dir) if out_dir is not None else _default_out_dir(_dataset_name(adata, start, path)),
            source_note=self._source_note(start),
        )
        self.on_msg(self._on_custom_msg)
        self._request_estimate()

    # ------------------------------------------------------------------ plan

    def _check_plan(self, plan: Any) -> None:
        plan.check(self._adata)

    def _coerce_plan(self, value: Any) -> Any:
        ExportPlan = _plan_class()
        if isinstance(value, dict):
            if value.get("genes") is not None and len(value["genes"]) == 0:
                # an empty gene list from the page means "no genes", as the plan spells it
                value = {**value, "genes": None, "expression_source": None}
            value = ExportPlan.from_dict(value)
        if not isinstance(value, ExportPlan):
            raise traitlets.TraitError(f"plan must be an ExportPlan or its dict form, got {type(value).__name__}")
        self._check_plan(value)
        if value.expression_source is not None:
            self._last_source = value.expression_source
        return value

    @traitlets.validate("plan")
    def _validate_plan(self, proposal: Any) -> Any:
        try:
            return self._coerce_plan(proposal["value"])
        except traitlets.TraitError:
            raise
        except Exception as exc:  # from Python: the caller sees it at once
            raise traitlets.TraitError(f"invalid plan: {exc}") from exc

    def _accept_plan_from_frontend(self, data: Any) -> Any:
        """Validate a plan edited in the browser; keep the old one and set ``plan_error`` if invalid."""
        try:
            plan = self._coerce_plan(data)
        except Exception as exc:  # noqa: BLE001 - shown in the widget
            # Not sent back: the page keeps the user's choice beside the error, so that picking
            # the previous value again is a change that reaches Python and clears the error.
            self.plan_error = describe_error(exc)
            return self.plan
        self.plan_error = ""
        return plan

    def _source_note(self, plan: Any) -> str:
        from cellucid_nb.adata.gene_choice import expression_source_note

        return expression_source_note(self._summary_obj, plan.expression_source)

    @traitlets.observe("plan")
    def _on_plan_change(self, change: Any) -> None:
        self.plan_error = ""
        new = change["new"]
        if self.gene_report and self._report_genes != (new.expression_source, new.genes):
            self.gene_report = {}  # the genes changed since the report was made
        self.code = self._code_for(change["new"])
        self.source_note = self._source_note(new)
        self._request_estimate()

    @traitlets.observe("out_dir")
    def _on_out_dir_change(self, change: Any) -> None:
        self.code = self._code_for(self.plan)
        if getattr(self, "_estimates", None) is not None:
            self._request_estimate()

    def _code_for(self, plan: Any) -> str:
        if plan is None:
            return ""
        try:
            return plan.to_code(adata_name="adata", out_dir=self.out_dir or None)
        except Exception as exc:  # noqa: BLE001 - the code block is a convenience
            logger.debug("to_code failed", exc_info=True)
            return f"# could not write the code for this plan: {exc}"

    # ------------------------------------------------------------------ estimate

    def _request_estimate(self) -> None:
        from cellucid_nb.adata.estimation import estimate as estimate_fn

        plan = self.plan
        if plan is None:
            return
        self.estimate_pending = True
        adata, summary = self._adata, self._summary_obj
        # the output folder names the dataset (identity sizes) and sets the block size of "on disk"
        out_dir = self.out_dir or None

        def done(serial: int, value: Any, error: BaseException | None) -> None:
            if not self._estimates.is_latest(serial):
                return  # a newer request supersedes this one
            if error is not None:
                self.estimate_error = describe_error(error)
            else:
                self.estimate_error = ""
                self.estimate = value
            self.estimate_pending = False

        self._estimates.submit(lambda: estimate_fn(adata, plan, out_dir=out_dir, summary=summary), done)

    def wait_estimate(self, timeout: float | None = 30.0) -> Any:
        """Wait for the estimate of the current plan and return it (``SizeEstimate``).

        Raises
        ------
        TimeoutError
            If it is not ready within ``timeout`` seconds.
        RuntimeError
            If estimating failed (the message is also in ``estimate_error``).
        """
        if not self._estimates.wait_idle(timeout):
            raise TimeoutError(f"no estimate within {timeout} s")
        if self.estimate_error:
            raise RuntimeError(self.estimate_error)
        return self.estimate

    # ------------------------------------------------------------------ genes

    def _gene_source(self) -> tuple[str, str]:
        """(expression source, id column) genes are picked from; the last used source when the plan has none."""
        plan = self.plan
        return (plan.expression_source or self._last_source, plan.var_gene_id_column or "index")

    def gene_ids(self) -> list[str]:
        """All gene ids of the plan's expression source and id column (cached)."""
        from cellucid_nb.adata.gene_choice import gene_ids

        source, column = self._gene_source()
        cache_key = f"{source}|{column}"
        if self._gene_ids_cache is None or self._gene_ids_cache[0] != cache_key:
            self._gene_ids_cache = (cache_key, list(gene_ids(self._adata, source, column)))
        return self._gene_ids_cache[1]

    def choose_genes(self, mode: str, ids: list[str] | None = None, n: int | None = None,
                     by: str | None = None) -> dict:
        """Set the plan's genes: ``"list"`` (``ids``), ``"hvg"``, ``"top"`` (``n`` by ``by``), ``"all"``, ``"none"``.

        The rules are :mod:`cellucid_nb.adata.gene_choice`'s (the CLI and
        ``ExportPlan.with_genes`` use the same): ``"top"`` ranks by variance
        unless ``by="mean"``; a list with an unknown id is refused as a whole
        (``UnknownGenesError``, each id with a "did you mean"), and the plan is unchanged.

        Returns the report also put in ``gene_report``: ``{mode, n_genes,
        unknown, n_unknown}``. Runs in the calling thread (the browser's
        requests run it in a worker thread).
        """
        source, _ = self._gene_source()
        if mode == "list":
            ids = [str(g).strip() for g in (ids or []) if str(g).strip()]
        plan = self.plan.with_genes(self._adata, mode, ids=ids, n=n, by=by, source=source)
        self._report_genes = (plan.expression_source, plan.genes)
        self.plan = plan
        n_genes = 0 if plan.expression_source is None else len(self.gene_ids()) if plan.genes is None else len(plan.genes)
        report = {"mode": mode, "n_genes": n_genes, "unknown": [], "n_unknown": 0}
        self.gene_report = report
        return report

    # ------------------------------------------------------------------ export

    @property
    def running(self) -> bool:
        """True while an export runs."""
        return self._job is not None and self._job.running

    def export(self) -> None:
        """Start the export in a background thread (same as the Export button); returns at once.

        Raises
        ------
        RuntimeError
            While an export runs, or while ``plan_error`` says the page holds an invalid edit.
        """
        if self.running:
            raise RuntimeError("an export is already running; cancel() it or wait() for it")
        if self.plan_error:
            raise RuntimeError(f"the settings have a problem; fix it, then export again.\n{self.plan_error}")
        from cellucid_nb.adata.exporting import export as export_fn

        plan, adata = self.plan, self._adata
        out_dir = self.out_dir or _default_out_dir(_dataset_name(adata, plan, None))
        force = bool(self.overwrite)
        throttle = Throttle(PROGRESS_RATE)
        tracker = ProgressTracker()
        state = {"start": time.monotonic(), "out_dir": Path(out_dir), "existed": Path(out_dir).exists()}
        # The previous result and its viewer stay until this export succeeds (a refused or
        # cancelled export leaves the old one intact, so it stays on show).
        self.error = ""
        self.message = ""
        self.progress = {"phase": "start", "done": 0, "total": 0, "bytes": 0, "elapsed": 0.0, "eta": None, "fraction": 0.0}
        self.status = "running"

        def on_progress(event: Any) -> None:
            snap = tracker.update(event)
            if throttle.ready():
                self.progress = snap.to_dict()

        def work(progress: Callable[[Any], None], cancel: threading.Event) -> Any:
            return export_fn(adata, plan, out_dir, progress=progress, cancel=cancel, force=force)

        def finish(result: Any, error: BaseException | None) -> None:
            self._finish_export(result, error, state)

        self._job = ExportJob(work, on_progress, finish)
        self._job.start()

    def _finish_export(self, result: Any, error: BaseException | None, state: dict) -> None:
        from cellucid_nb.exporter.progress import ExportCancelled

        elapsed = time.monotonic() - state["start"]
        if error is None:
            self._close_viewer_backend()
            try:
                self._open_viewer_backend(result.path)
            except Exception as exc:  # noqa: BLE001 - the export itself is fine
                logger.warning("viewer backend for %s failed: %s", result.path, exc)
            self.progress = {**self.progress, "phase": "done", "fraction": 1.0, "eta": 0.0,
                             "elapsed": round(elapsed, 3), "bytes": int(getattr(result, "n_bytes", 0))}
            self.code = self._code_for(self.plan)
            self.result = result
            self.status = "done"
        elif isinstance(error, ExportCancelled):
            self.progress = {}
            self.error = ""
            self.message = _cancel_message(state["out_dir"], state["existed"])
            self.status = "cancelled"
        else:
            logger.debug("wizard export failed", exc_info=error)
            self.progress = {}  # no "checking inputs · 0 %" left beside the error
            self.error = describe_error(error)
            self.status = "error"

    def cancel(self) -> None:
        """Ask the running export to stop (it cleans up, then ``status`` becomes "cancelled")."""
        job = getattr(self, "_job", None)  # absent when __init__ failed before starting workers
        if job is not None:
            job.cancel()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the export ends and return its ``ExportResult``.

        Raises
        ------
        RuntimeError
            If no export was started.
        TimeoutError
            If it runs longer than ``timeout`` seconds.
        ExportCancelled, Exception
            The export's own error when it was cancelled or failed.
        """
        job = self._job
        if job is None:
            raise RuntimeError("no export was started: call export() first")
        if not job.wait(timeout):
            raise TimeoutError(f"the export still runs after {timeout} s")
        if job.error is not None:
            raise job.error
        return job.result

    # ------------------------------------------------------------------ viewer

    @property
    def viewer(self) -> Any:
        """The viewer of the last finished export (a ``ViewerBackend``), or ``None`` before one.

        It has ``selected``, ``on_select(callback)``, ``highlight(indices)``,
        ``reset_view()`` and ``reader`` (the ``ExportReader``), as :class:`~cellucid_nb.Viewer`.
        """
        return self._viewer_backend

    @property
    def selected(self) -> np.ndarray:
        """Indices (int64, sorted) of the cells selected in the wizard's viewer; empty before an export."""
        backend = self._viewer_backend
        return backend.selected if backend is not None else np.zeros(0, dtype=np.int64)

    def _open_viewer_backend(self, path: Any) -> None:
        from cellucid_nb.viewer_protocol import ViewerBackend

        self._viewer_backend = ViewerBackend(str(path), send=self._send_to_frontend)

    def _close_viewer_backend(self) -> None:
        backend, self._viewer_backend = getattr(self, "_viewer_backend", None), None
        close = getattr(backend, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001
                logger.debug("closing the viewer backend failed", exc_info=True)

    def _send_to_frontend(self, content: dict, buffers: list | None = None) -> None:
        self.send(content, buffers or None)

    # ------------------------------------------------------------------ messages

    def _on_custom_msg(self, widget: Any, content: Any, buffers: list) -> None:
        if not isinstance(content, dict):
            return
        kind = str(content.get("type", ""))
        try:
            if kind.startswith("viewer:"):
                if self._viewer_backend is not None:
                    self._viewer_backend.handle(content, buffers)
            elif kind == "wizard:gene_ids":
                ids = self.gene_ids()
                self.send(
                    {"type": "wizard:gene_ids", "n": len(ids), "column": getattr(self.plan, "var_gene_id_column", "index")},
                    [json.dumps(ids).encode("utf-8")],
                )
            elif kind == "wizard:genes":
                self._submit_gene_choice(content)
            elif kind == "wizard:preview":
                self._submit_preview(content)
            elif kind == "wizard:export":
                if "out_dir" in content:
                    self.out_dir = str(content["out_dir"])
                if self.plan_error:  # the page shows an edit Python refused: say so, change nothing else
                    self.error = f"Not exported: fix the setting first.\n{self.plan_error}"
                    return
                self.export()
            elif kind == "wizard:cancel":
                self.cancel()
        except Exception as exc:  # noqa: BLE001 - shown in the widget, not lost in the log
            self.error = describe_error(exc)
            if kind == "wizard:export" and not self.running:
                self.status = "error"

    def _submit_gene_choice(self, content: dict) -> None:
        mode = str(content.get("mode", "list"))
        self.gene_report = {"mode": mode, "pending": True}

        def job() -> dict:
            n, by = content.get("n"), content.get("by")
            return self.choose_genes(mode, ids=content.get("ids"), n=None if n in (None, "") else int(n),
                                     by=None if by in (None, "") else str(by))

        def done(serial: int, value: Any, error: BaseException | None) -> None:
            if error is not None:
                report: dict[str, Any] = {"mode": mode, "error": describe_error(error)}
                unknown = getattr(error, "unknown", None)
                if unknown:  # UnknownGenesError: the ids and the suggestions, for the page to offer
                    report.update(unknown=[str(u) for u in unknown[:100]], n_unknown=len(unknown),
                                  suggestions=dict(getattr(error, "suggestions", {})))
                self.gene_report = report

        self._tasks.submit(job, done)

    def _submit_preview(self, content: dict) -> None:
        request_id = content.get("request_id")
        key, color = str(content.get("key", "")), content.get("color") or None
        adata = self._adata

        def done(serial: int, value: Any, error: BaseException | None) -> None:
            if not self._previews.is_latest(serial):
                return
            if error is not None:
                self.send({"type": "wizard:preview", "request_id": request_id, "error": describe_error(error)})
                return
            meta, buffers = value
            self.send({"type": "wizard:preview", "request_id": request_id, **meta}, buffers)

        self._previews.submit(lambda: preview_payload(adata, key, color), done)

    def close(self) -> None:
        """Close the widget; a running export is cancelled (and the h5ad file it opened, closed)."""
        self.cancel()
        for name in ("_estimates", "_tasks", "_previews"):
            worker = getattr(self, name, None)
            if worker is not None:
                worker.close()
        self._close_viewer_backend()
        own = getattr(self, "_own_file", None)
        if own is not None:
            job = self._job
            if job is not None:
                job.wait(30)  # the cancelled export reads the file until it stops
            for name in ("_estimates", "_tasks", "_previews"):
                worker = getattr(self, name, None)
                if worker is not None:
                    worker.wait_idle(30)
            from cellucid_nb.adata.open_file import close_h5ad

            close_h5ad(own)  # anndata's handle and the one obsm/obsp/layers left in the file share
            self._own_file = None
        super().close()


def _cancel_message(out_dir: Path, existed: bool) -> str:
    """What a cancelled export left, in the wizard's words."""
    return {
        "kept": f"Export cancelled: nothing was written; {out_dir} is as it was.",
        "nothing": f"Export cancelled: nothing was written ({out_dir} was not created).",
        "leftover": f"Export cancelled, but {out_dir} exists: delete it or export again with \u201cOverwrite\u201d ticked.",
    }[cancel_outcome(out_dir, existed)]


def wizard(adata: Any, out_dir: str | Path | None = None, **plan_changes: Any) -> ExportWizard:
    """Open the export wizard on ``adata``.

    Parameters
    ----------
    adata
        The AnnData to export (in memory or backed), or the path of an ``.h5ad`` file
        (opened with ``open_h5ad``: expression, obsm, graphs and layers stay on disk).
    out_dir
        Output folder; default ``./exports/<dataset name>`` (see :class:`ExportWizard`).
    **plan_changes
        Changes to the default plan, e.g. ``compression=9, var_quantization=16``.

    Returns
    -------
    ExportWizard
        Display it (last expression of a cell); drive it from Python with
        ``wiz.plan``, ``wiz.export()``, ``wiz.wait()``, ``wiz.cancel()``; after an
        export, ``wiz.viewer`` and ``wiz.selected``.
    """
    return ExportWizard(adata, out_dir=out_dir, **plan_changes)
