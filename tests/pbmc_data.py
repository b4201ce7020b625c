"""Small real data for tests: scanpy's bundled pbmc68k_reduced, read without importing scanpy.

``sc.datasets.pbmc68k_reduced()`` only reads this file; importing scanpy to get there costs
seconds per test process, so the tests read the h5ad that scanpy's wheel ships directly.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import anndata


def pbmc68k_path() -> Path:
    """Path of ``10x_pbmc68k_reduced.h5ad`` inside the installed scanpy package (700 cells)."""
    spec = importlib.util.find_spec("scanpy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scanpy is not installed: the tests read the pbmc68k_reduced file its wheel ships")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "10x_pbmc68k_reduced.h5ad"


def pbmc68k_reduced() -> anndata.AnnData:
    """The same AnnData as ``scanpy.datasets.pbmc68k_reduced()``."""
    with warnings.catch_warnings():  # the bundled file is in an older anndata layout
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message=".*without encoding metadata")  # OldFormatWarning
        return anndata.read_h5ad(pbmc68k_path())
