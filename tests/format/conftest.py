"""Shared fixtures of the format tests: hand-made exports and reference (cellucid 0.0.9) exports."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# The package is tested from the source tree (it need not be installed).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(FIXTURES))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from format_handmade import write_handmade_export  # noqa: E402


@pytest.fixture(scope="session")
def handmade_cache(tmp_path_factory) -> Callable[..., tuple[Path, dict]]:
    """Write each hand-made variant once per session; returns (path, raw data)."""
    cache: dict[tuple, tuple[Path, dict]] = {}

    def get(compression=None, bits=8, codes_dtype="uint8") -> tuple[Path, dict]:
        key = (compression, bits, codes_dtype)
        if key not in cache:
            out = tmp_path_factory.mktemp("handmade") / "export"
            cache[key] = (out, write_handmade_export(out, compression=compression, bits=bits, codes_dtype=codes_dtype))
        return cache[key]

    return get


@pytest.fixture
def good_export(handmade_cache, tmp_path) -> Callable[..., Path]:
    """Return a private copy of a valid hand-made export (safe to damage)."""

    def make(**options) -> Path:
        src, _ = handmade_cache(**options)
        dst = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(src, dst)
        return dst

    return make

