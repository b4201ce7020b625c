"""Writer of the embeddings: ``points_<d>d.bin[.gz]`` (already normalised by inputs)."""

from __future__ import annotations

from .inputs import ExportInputs
from .writer_runner import WriterRunner

__all__ = ["write_points"]


def write_points(runner: WriterRunner, inputs: ExportInputs) -> dict[str, str]:
    """Queue one float32 ``(n_cells, d)`` payload per embedding.

    Returns
    -------
    dict
        ``{"<d>d": relative file name}`` in dimension order.
    """
    files = {}
    for dim in sorted(inputs.embeddings):
        coords = inputs.embeddings[dim].coords
        files[f"{dim}d"] = runner.write_array(f"points_{dim}d.bin", coords.astype("<f4", copy=False))
    return files
