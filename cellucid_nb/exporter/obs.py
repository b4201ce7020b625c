"""Writer of the cell metadata: ``obs/`` payloads and ``obs_manifest.json``.

One worker task per field (:class:`ObsWriter`); the manifest lists the fields
in input order once all of them are done.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..format import codecs
from ..format.layouts import LAYOUTS
from ..format.spec import CATEGORY_LIMITS, FORMAT_NAME
from .centroids import category_centroids, centroid_grouping
from .inputs import ExportInputs, ObsField, column_values
from .outliers import latent_distances, rank_quantiles
from .writer_runner import WriterRunner

__all__ = ["ObsWriter", "write_obs", "continuous_values"]


def continuous_values(field: ObsField) -> np.ndarray:
    """The float32 values of a continuous obs field (pandas NA -> NaN)."""
    assert field.series is not None
    return column_values(field.series, np.float32)


def _encode_continuous(values: np.ndarray, bits: int | None) -> tuple[np.ndarray, float | None, float | None]:
    if bits is None:
        return values.astype("<f4", copy=False), None, None
    lo, hi = codecs.value_range(values)
    return codecs.quantize(values, lo, hi, bits), lo, hi


def _codes_payload(field: ObsField) -> np.ndarray:
    assert field.codes is not None
    missing = CATEGORY_LIMITS[field.codes_dtype][1]
    dtype = np.uint8 if field.codes_dtype == "uint8" else np.dtype("<u2")
    return np.where(field.codes >= 0, field.codes, missing).astype(dtype)


def _categorical_entry(runner: WriterRunner, inputs: ExportInputs, field: ObsField, folder: str, index: int) -> list:
    """Worker task: codes and centroids per dimension of one categorical field.

    Returns the manifest tuple without the layout's index and without the
    outliers' quantization range (:func:`_outliers_task` computes it).
    """
    settings = inputs.settings
    name = LAYOUTS[settings.layout].stem(field.key, index)
    codes_ext = "u8" if field.codes_dtype == "uint8" else "u16"
    runner.write_array(f"{folder}/{name}.codes.{codes_ext}", _codes_payload(field), items=0)
    assert field.codes is not None  # categorical fields always carry codes (_codes_payload checked it too)
    centroids: dict[str, list] = {}
    quantile = settings.centroid_outlier_quantile
    # pandas codes (int8 / int16), never widened per cell; their cells grouped once for every embedding
    grouping = None if quantile is None else centroid_grouping(field.codes, len(field.categories), settings.centroid_min_points)
    for dim in sorted(inputs.embeddings):
        if quantile is None:
            centroids[str(dim)] = []
        else:
            centroids[str(dim)] = category_centroids(
                inputs.embeddings[dim].coords, field.codes, field.categories, quantile, settings.centroid_min_points,
                grouping,
            )
    missing = CATEGORY_LIMITS[field.codes_dtype][1]
    return [field.key, field.categories, field.codes_dtype, missing, centroids]


def _outliers_task(
    runner: WriterRunner, inputs: ExportInputs, fields: list[tuple[int, ObsField]], folder: str
) -> dict[int, tuple[float | None, float | None]]:
    """Worker task: latent outlier quantiles of every categorical field, the latent space read twice in all.

    Writes one outliers payload per field (ranked one field at a time) and
    returns each field's quantization range by index.
    """
    settings = inputs.settings
    bits = settings.obs_continuous_quantization
    spec = codecs.QuantSpec(bits)
    layout = LAYOUTS[settings.layout]
    pairs = [(f.codes, len(f.categories)) for _, f in fields if f.codes is not None]
    distances = latent_distances(inputs.latent, pairs, settings.centroid_min_points, runner.cancelled)
    ranges: dict[int, tuple[float | None, float | None]] = {}
    for (index, field), dist in zip(fields, distances, strict=True):
        if runner.cancelled():  # the distances may be incomplete: the export ends without them
            break
        payload, lo, hi = _encode_continuous(rank_quantiles(dist), bits)
        runner.write_array(f"{folder}/{layout.stem(field.key, index)}.outliers.{spec.ext}", payload)
        ranges[index] = (lo, hi)
    return ranges


def _continuous_entry(runner: WriterRunner, inputs: ExportInputs, field: ObsField, folder: str, index: int) -> list:
    """Worker task: the payload of one continuous field."""
    bits = inputs.settings.obs_continuous_quantization
    spec = codecs.QuantSpec(bits)
    layout = LAYOUTS[inputs.settings.layout]
    payload, lo, hi = _encode_continuous(continuous_values(field), bits)
    runner.write_array(f"{folder}/{layout.stem(field.key, index)}.values.{spec.ext}", payload)
    return layout.entry(index, [field.key] if bits is None else [field.key, lo, hi])


class ObsWriter:
    """Writes ``obs/``: one worker task per field; :meth:`finish` writes the manifest.

    Categorical fields cost the most (centroids per embedding dimension and
    latent-space outliers), so they run in the worker threads, started before
    the genes, while the exporting thread goes on. The outliers of all
    categorical fields are one more task, started first: it reads the latent
    space by row blocks twice in all, however many fields there are.

    Parameters
    ----------
    runner
        The export runner (or the estimator's recording runner).
    inputs
        Validated inputs.
    """

    def __init__(self, runner: WriterRunner, inputs: ExportInputs) -> None:
        self._runner = runner
        self._inputs = inputs
        folder = inputs.settings.obs_binary_dirname
        if inputs.obs_fields:
            runner.mkdir(folder)
        categorical = [(index, field) for index, field in enumerate(inputs.obs_fields) if field.kind != "continuous"]
        # First, as it takes longest: one task reads the latent space for every categorical field.
        self._outliers = runner.spawn(_outliers_task, runner, inputs, categorical, folder) if categorical else None
        self._tasks = [
            (
                field.kind,
                index,  # index layout: continuous and categorical fields share one index space, in input order
                runner.spawn(
                    _continuous_entry if field.kind == "continuous" else _categorical_entry, runner, inputs, field, folder,
                    index,
                ),
            )
            for index, field in enumerate(inputs.obs_fields)
        ]

    def finish(self) -> dict[str, Any]:
        """Wait for every field, then write ``obs_manifest.json`` and return it."""
        runner, inputs = self._runner, self._inputs
        settings = inputs.settings
        futures = [future for _, _, future in self._tasks]
        runner.wait(futures if self._outliers is None else [self._outliers, *futures])
        ranges = self._outliers.result() if self._outliers is not None else {}
        layout = LAYOUTS[settings.layout]
        continuous = [future.result() for kind, _, future in self._tasks if kind == "continuous"]
        categorical = [
            layout.entry(index, future.result() + ([] if settings.obs_continuous_quantization is None else list(ranges[index])))
            for kind, index, future in self._tasks
            if kind != "continuous"
        ]
        spec = codecs.QuantSpec(settings.obs_continuous_quantization)
        folder, suffix = settings.obs_binary_dirname, runner.suffix
        name = LAYOUTS[settings.layout].placeholder
        schemas: dict[str, dict] = {}
        if continuous:
            schemas["continuous"] = {
                "pathPattern": f"{folder}/{name}.values.{spec.ext}{suffix}",
                **spec.schema_fields(),
            }
        if categorical:
            schemas["categorical"] = {
                "codesPathPattern": f"{folder}/{name}.codes.{{ext}}{suffix}",
                "outlierPathPattern": f"{folder}/{name}.outliers.{spec.ext}{suffix}",
                "outlierExt": spec.ext,
                "outlierDtype": spec.dtype_name,
                "outlierQuantized": spec.quantized,
            }
        manifest = {
            "_format": FORMAT_NAME,
            "n_points": inputs.n_cells,
            "centroid_outlier_quantile": settings.centroid_outlier_quantile,
            "latent_key": "latent_space",
            "compression": settings.compression,
            "_obsSchemas": schemas,
            "_continuousFields": continuous,
            "_categoricalFields": categorical,
        }
        runner.write_json(settings.obs_manifest_filename, manifest)
        return manifest


def write_obs(runner: WriterRunner, inputs: ExportInputs) -> dict[str, Any]:
    """Write every obs payload and ``obs_manifest.json``; wait for the end.

    Returns
    -------
    dict
        The manifest that was written.
    """
    return ObsWriter(runner, inputs).finish()
