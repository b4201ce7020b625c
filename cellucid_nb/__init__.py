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
    "show": "cellucid_nb.widgets.viewer",
    "Viewer": "cellucid_nb.widgets.viewer",
    "wizard": "cellucid_nb.widgets.wizard",
    "ExportWizard": "cellucid_nb.widgets.wizard",
    "serve": "cellucid_nb.server",
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
    from cellucid_nb.adata.estimation import SizeEstimate, estimate
    from cellucid_nb.adata.exporting import export
    from cellucid_nb.exporter.prepare import prepare
    from cellucid_nb.exporter.progress import ExportCancelled, ExportResult, ProgressEvent
    from cellucid_nb.format.datasets import generate_datasets_manifest
    from cellucid_nb.format.layouts import FormatError, detect_format
    from cellucid_nb.format.reader import ExportReader, read_export
    from cellucid_nb.format.validator import Problem, validate_export
    from cellucid_nb.adata.inspection import DatasetSummary, inspect
    from cellucid_nb.adata.plan import ExportPlan
    from cellucid_nb.server import serve
    from cellucid_nb.widgets.viewer import Viewer, show
    from cellucid_nb.widgets.wizard import ExportWizard, wizard
