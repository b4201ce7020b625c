"""Writer of ``dataset_identity.json`` (keys of the reference exporter, see docs/FORMAT.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..format.spec import IDENTITY_FILE, IDENTITY_VERSION
from .inputs import ExportInputs
from .runner import ExportRunner, library_versions, settings_fingerprint

__all__ = ["build_identity", "build_sidecar", "write_identity"]


def _generator_version() -> str:
    from .._version import __version__

    return f"cellucid_nb {__version__}"


def build_sidecar(inputs: ExportInputs, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return cellucid_nb's sidecar document, without its file list.

    The runner adds ``files`` (sizes and checksums) when it finalizes; the size
    estimator builds the same document to know its length.

    Parameters
    ----------
    inputs
        Validated inputs.
    extra
        More top-level keys (``prepare(sidecar_extra=...)``), e.g. the plan.
    """
    from .._version import __version__

    settings = inputs.settings.to_dict()
    sidecar: dict[str, Any] = {
        "generator": "cellucid_nb",
        "version": __version__,
        "settings": settings,
        "settings_fingerprint": settings_fingerprint(settings),
        "category_colors": inputs.category_colors,
        "library_versions": library_versions(),
    }
    for key, value in (extra or {}).items():
        sidecar[str(key)] = value
    return sidecar


def _categorical_dtype(inputs: ExportInputs) -> str:
    """The identity's ``obs_categorical_dtype``: the setting, or in the index layout a concrete dtype.

    The index layout (cellucid 0.9.1-0.9.2) never says "auto": it names the widest codes dtype written.
    """
    dtype = inputs.settings.obs_categorical_dtype
    if dtype != "auto" or inputs.settings.layout == "key":
        return dtype
    widths = {f.codes_dtype for f in inputs.obs_fields if f.kind == "categorical"}
    return "uint16" if "uint16" in widths else "uint8"


def build_identity(
    inputs: ExportInputs,
    points: dict[str, str],
    connectivity: dict[str, Any] | None,
    vector_fields: dict[str, Any] | None,
) -> dict[str, Any]:
    """Return the identity document.

    Parameters
    ----------
    inputs
        Validated inputs.
    points
        ``{"<d>d": file}`` from the points writer.
    connectivity
        Connectivity manifest, or ``None``.
    vector_fields
        Identity entry from the vectors writer, or ``None``.
    """
    settings = inputs.settings
    dims = sorted(inputs.embeddings)
    obs_fields: list[dict[str, Any]] = []
    for field in inputs.obs_fields:
        if field.kind == "continuous":
            obs_fields.append({"key": field.key, "kind": "continuous"})
        else:
            obs_fields.append({"key": field.key, "kind": "category", "n_categories": len(field.categories)})
    n_categorical = sum(1 for f in inputs.obs_fields if f.kind == "categorical")
    identity: dict[str, Any] = {
        "version": IDENTITY_VERSION,
        "id": inputs.dataset_id,
        "name": inputs.dataset_name,
        "description": inputs.dataset_description,
        "created_at": inputs.created_at,
        "cellucid_data_version": _generator_version(),
        "stats": {
            "n_cells": inputs.n_cells,
            "n_genes": len(inputs.genes.ids) if inputs.genes is not None else 0,
            "n_obs_fields": len(inputs.obs_fields),
            "n_categorical_fields": n_categorical,
            "n_continuous_fields": len(inputs.obs_fields) - n_categorical,
            "has_connectivity": connectivity is not None,
            "n_edges": connectivity["n_edges"] if connectivity is not None else None,
        },
        "embeddings": {
            "available_dimensions": dims,
            "default_dimension": max(dims),
            "files": points,
        },
        "obs_fields": obs_fields,
        "export_settings": {
            "compression": settings.compression,
            "var_quantization": settings.var_quantization,
            "obs_continuous_quantization": settings.obs_continuous_quantization,
            "obs_categorical_dtype": _categorical_dtype(inputs),
        },
    }
    if inputs.source:
        identity["source"] = dict(inputs.source)
    if vector_fields:
        identity["vector_fields"] = vector_fields
    return identity


def write_identity(runner: ExportRunner, identity: dict[str, Any]) -> None:
    """Write ``dataset_identity.json`` (indented, as the reference does)."""
    runner.write_json(IDENTITY_FILE, identity, indent=2)
