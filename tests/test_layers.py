"""Data flows one way: a module never imports from a layer above its own.

The layers (docs/DEVELOPING.md), bottom first. Imports inside functions count
too: a lazy import upward is still an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cellucid_nb"

# (module prefix, layer, unit): a module may import its own unit and any lower layer.
LAYERS = [
    ("cellucid_nb._version", 0, "version"),
    ("cellucid_nb.format", 1, "format"),
    ("cellucid_nb.exporter", 2, "exporter"),
    ("cellucid_nb.adata", 3, "adata"),
    ("cellucid_nb.viewer_protocol", 4, "viewer_protocol"),
    ("cellucid_nb.viewer_order", 4, "viewer_protocol"),
    ("cellucid_nb.widgets", 5, "widgets"),
    ("cellucid_nb.server", 5, "server"),
    ("cellucid_nb.publish", 5, "publish"),
    ("cellucid_nb.publishing", 5, "publish"),  # publish(); the package name must not shadow the function
    ("cellucid_nb.cli", 6, "cli"),
    ("cellucid_nb.__main__", 6, "cli"),
]


def layer_of(module: str) -> tuple[int, str] | None:
    """The (layer, unit) of a cellucid_nb module; the package root is above everything."""
    if module == "cellucid_nb":
        return (99, "root")
    for prefix, layer, unit in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return (layer, unit)
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every cellucid_nb import in a file, relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "cellucid_nb"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "cellucid_nb":
                continue
            # "from cellucid_nb.adata import plan" imports the submodule cellucid_nb.adata.plan
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                is_module = (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() or (
                    PACKAGE.parent / sub.replace(".", "/")
                ).is_dir()
                found.append((node.lineno, sub if is_module else target))
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    unknown = [module_name(p) for p in SOURCES if layer_of(module_name(p)) is None]
    assert unknown == [], f"modules outside every layer (add them to LAYERS and docs/DEVELOPING.md): {unknown}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_upward_import(path: Path):
    source = layer_of(module_name(path))
    assert source is not None
    upward = []
    for line, target in imported_modules(path):
        dest = layer_of(target)
        assert dest is not None, f"{path}:{line} imports {target}, which is in no layer"
        if dest[1] == source[1]:
            continue
        if dest[0] >= source[0]:
            upward.append(f"line {line}: {target} (layer {dest[0]} {dest[1]}) from layer {source[0]} {source[1]}")
    assert upward == [], f"{module_name(path)} imports upward or sideways: {upward}"


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rule itself: a format module importing the exporter is reported."""
    fake_pkg = tmp_path / "cellucid_nb"
    (fake_pkg / "format").mkdir(parents=True)
    (fake_pkg / "exporter").mkdir()
    for p in (fake_pkg / "__init__.py", fake_pkg / "format" / "__init__.py", fake_pkg / "exporter" / "__init__.py"):
        p.write_text("")
    (fake_pkg / "exporter" / "runner.py").write_text("")
    bad = fake_pkg / "format" / "reader.py"
    bad.write_text("def f():\n    from ..exporter import runner\n")
    real = PACKAGE
    globals()["PACKAGE"] = fake_pkg
    try:
        assert imported_modules(bad) == [(2, "cellucid_nb.exporter.runner")]
        with pytest.raises(AssertionError, match="imports upward"):
            test_no_upward_import(bad)
    finally:
        globals()["PACKAGE"] = real
