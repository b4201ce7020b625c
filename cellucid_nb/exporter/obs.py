"""Writer of the cell metadata: ``obs/`` payloads and ``obs_manifest.json``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..format import codecs
from ..format.naming import safe_name
from ..format.spec import CATEGORY_LIMITS, FORMAT_NAME
from .centroids import category_centroids, latent_outlier_quantiles
from .inputs import ExportInputs, ObsField
from .runner import ExportRunner

__all__ = ["write_obs", "continuous_values"]


def continuous_values(field: ObsField) -> np.ndarray:
    """The float32 values of a continuous obs field (pandas NA -> NaN)."""
    assert field.series is not None
    return field.series.to_numpy(dtype=np.float32, na_value=np.nan)


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


def write_obs(runner: ExportRunner, inputs: ExportInputs) -> dict[str, Any]:
    """Queue every obs payload, then write ``obs_manifest.json``.

    Returns
    -------
    dict
        The manifest that was written.
    """
    settings = inputs.settings
    bits = settings.obs_continuous_quantization
    spec = codecs.QuantSpec(bits)
    folder = settings.obs_binary_dirname
    suffix = runner.suffix
    continuous: list[list] = []
    categorical: list[list] = []
    if inputs.obs_fields:
        runner.mkdir(folder)
    for field in inputs.obs_fields:
        runner.check()
        name = safe_name(field.key)
        if field.kind == "continuous":
            payload, lo, hi = _encode_continuous(continuous_values(field), bits)
            runner.write_array(f"{folder}/{name}.values.{spec.ext}", payload)
            continuous.append([field.key] if bits is None else [field.key, lo, hi])
            continue
        codes_ext = "u8" if field.codes_dtype == "uint8" else "u16"
        runner.write_array(f"{folder}/{name}.codes.{codes_ext}", _codes_payload(field), items=0)
        codes = field.codes.astype(np.int64, copy=False)
        centroids: dict[str, list] = {}
        for dim in sorted(inputs.embeddings):
            if settings.centroid_outlier_quantile is None:
                centroids[str(dim)] = []
            else:
                centroids[str(dim)] = category_centroids(
                    inputs.embeddings[dim].coords,
                    codes,
                    field.categories,
                    settings.centroid_outlier_quantile,
                    settings.centroid_min_points,
                )
        outliers = latent_outlier_quantiles(inputs.latent, codes, len(field.categories), settings.centroid_min_points)
        payload, lo, hi = _encode_continuous(outliers, bits)
        runner.write_array(f"{folder}/{name}.outliers.{spec.ext}", payload)
        missing = CATEGORY_LIMITS[field.codes_dtype][1]
        entry = [field.key, field.categories, field.codes_dtype, missing, centroids]
        if bits is not None:
            entry += [lo, hi]
        categorical.append(entry)
    schemas: dict[str, dict] = {}
    if continuous:
        schemas["continuous"] = {
            "pathPattern": f"{folder}/{{key}}.values.{spec.ext}{suffix}",
            **spec.schema_fields(),
        }
    if categorical:
        schemas["categorical"] = {
            "codesPathPattern": f"{folder}/{{key}}.codes.{{ext}}{suffix}",
            "outlierPathPattern": f"{folder}/{{key}}.outliers.{spec.ext}{suffix}",
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
