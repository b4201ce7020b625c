"""cellucid_nb: export AnnData to the Cellucid exports format and view it in Jupyter.

Public names are imported lazily so that ``import cellucid_nb`` stays fast and
the exporter never pulls in widget or server code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cellucid_nb._version import __version__

# public name -> module that defines it
_EXPORTS = {
    "prepare": "cellucid_nb.exporter.prepare",
    "ExportResult": "cellucid_nb.exporter.progress",
    "ProgressEvent": "cellucid_nb.exporter.progress",
    "ExportCancelled": "cellucid_nb.exporter.progress",
    "generate_datasets_manifest": "cellucid_nb.format.datasets",
    "read_export": "cellucid_nb.format.reader",
    "ExportReader": "cellucid_nb.format.reader",
    "validate_export": "cellucid_nb.format.validator",
    "Problem": "cellucid_nb.format.validator",
    "detect_format": "cellucid_nb.format.layouts",
    "FormatError": "cellucid_nb.format.layouts",
    "inspect": "cellucid_nb.adata.inspection",
    "DatasetSummary": "cellucid_nb.adata.inspection",
    "ExportPlan": "cellucid_nb.adata.plan",
    "estimate": "cellucid_nb.adata.estimation",
    "SizeEstimate": "cellucid_nb.adata.estimation",
    "export": "cellucid_nb.adata.exporting",
    "open_h5ad": "cellucid_nb.adata.open_file",
    "ProgressTracker": "cellucid_nb.adata.progress_tracking",
    "show": "cellucid_nb.widgets.viewer",
    "Viewer": "cellucid_nb.widgets.viewer",
    "wizard": "cellucid_nb.widgets.wizard",
    "ExportWizard": "cellucid_nb.widgets.wizard",
    "serve": "cellucid_nb.server",
    "publish": "cellucid_nb.publishing",
    "PublishResult": "cellucid_nb.publishing",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cellucid_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    # "import X as X": an explicit re-export (the names are loaded lazily by __getattr__)
    from cellucid_nb.adata.estimation import SizeEstimate as SizeEstimate
    from cellucid_nb.adata.estimation import estimate as estimate
    from cellucid_nb.adata.exporting import export as export
    from cellucid_nb.adata.inspection import DatasetSummary as DatasetSummary
    from cellucid_nb.adata.inspection import inspect as inspect
    from cellucid_nb.adata.open_file import open_h5ad as open_h5ad
    from cellucid_nb.adata.plan import ExportPlan as ExportPlan
    from cellucid_nb.adata.progress_tracking import ProgressTracker as ProgressTracker
    from cellucid_nb.exporter.prepare import prepare as prepare
    from cellucid_nb.exporter.progress import ExportCancelled as ExportCancelled
    from cellucid_nb.exporter.progress import ExportResult as ExportResult
    from cellucid_nb.exporter.progress import ProgressEvent as ProgressEvent
    from cellucid_nb.format.datasets import generate_datasets_manifest as generate_datasets_manifest
    from cellucid_nb.format.layouts import FormatError as FormatError
    from cellucid_nb.format.layouts import detect_format as detect_format
    from cellucid_nb.format.reader import ExportReader as ExportReader
    from cellucid_nb.format.reader import read_export as read_export
    from cellucid_nb.format.validator import Problem as Problem
    from cellucid_nb.format.validator import validate_export as validate_export
    from cellucid_nb.publishing import PublishResult as PublishResult
    from cellucid_nb.publishing import publish as publish
    from cellucid_nb.server import serve as serve
    from cellucid_nb.widgets.viewer import Viewer as Viewer
    from cellucid_nb.widgets.viewer import show as show
    from cellucid_nb.widgets.wizard import ExportWizard as ExportWizard
    from cellucid_nb.widgets.wizard import wizard as wizard
