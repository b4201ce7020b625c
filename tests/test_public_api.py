"""The public names of ``cellucid_nb`` resolve to what the docs promise."""

from __future__ import annotations

import importlib
import subprocess
import sys

import cellucid_nb


def test_every_public_name_resolves() -> None:
    for name in cellucid_nb.__all__:
        assert getattr(cellucid_nb, name) is not None, name


def test_export_is_the_function_even_after_submodule_imports() -> None:
    # export() lives in the subpackage cellucid_nb.exporter; importing its modules must not shadow it.
    import cellucid_nb.exporter.runner as runner_module  # the dotted form works too

    assert runner_module.__name__ == "cellucid_nb.exporter.runner"
    importlib.import_module("cellucid_nb.exporter.prepare")
    importlib.import_module("cellucid_nb.adata.exporting")
    from cellucid_nb.adata.exporting import export

    assert cellucid_nb.export is export
    assert callable(cellucid_nb.export)


def test_import_is_light() -> None:
    # Importing the package must not pull in widgets, servers or AnnData.
    code = "import sys, cellucid_nb; print(sorted(m for m in ('anywidget','anndata','pandas','http.server') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_public_functions_stay_functions_after_every_submodule_is_loaded() -> None:
    # A submodule named like a public function would replace the function on import
    # (``import cellucid_nb.inspect`` used to turn ``cnb.inspect`` into a module).
    code = (
        "import importlib, pkgutil, cellucid_nb as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'cellucid_nb.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "bad = [n for n in c.__all__ if n != '__version__' and not callable(getattr(c, n))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
