"""Writer of vector fields: ``vectors/<field>_<d>d.bin[.gz]`` and their identity entry."""

from __future__ import annotations

from typing import Any

from ..format.layouts import LAYOUTS
from .inputs import ExportInputs
from .writer_runner import WriterRunner

__all__ = ["write_vectors"]


def write_vectors(runner: WriterRunner, inputs: ExportInputs) -> dict[str, Any] | None:
    """Queue every vector payload; return ``dataset_identity.json["vector_fields"]`` or ``None``."""
    if not inputs.vector_files:
        return None
    runner.mkdir("vectors")
    layout = LAYOUTS[inputs.settings.layout]
    # index layout: a field's index is its position among the sorted field ids (as cellucid 0.9.2 numbers them)
    index = {fid: i for i, fid in enumerate(sorted({vec.field_id for vec in inputs.vector_files}))}
    paths: dict[tuple[str, int], str] = {}
    for vec in inputs.vector_files:
        runner.check()
        name = f"vectors/{layout.stem(vec.field_id, index[vec.field_id])}_{vec.dim}d.bin"
        paths[(vec.field_id, vec.dim)] = runner.write_array(name, vec.values.astype("<f4", copy=False))
    fields = {}
    for info in inputs.vector_fields:
        fields[info.field_id] = {
            "label": info.label,
            "basis": info.basis,
            "available_dimensions": info.dims,
            "default_dimension": max(info.dims),
            "files": {f"{d}d": paths[(info.field_id, d)] for d in info.dims},
        }
    default = "velocity_umap" if "velocity_umap" in fields else sorted(fields)[0]
    return {"default_field": default, "fields": fields}
