"""A tiny export written by hand, following docs/FORMAT.md to the letter.

Independent of ``cellucid_nb.exporter`` so that reader and validator tests do not
depend on the exporter; it uses only the format's codecs and names.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cellucid_nb.format import spec
from cellucid_nb.format.codecs import QUANT_MAX, gzip_bytes, quantize, value_range
from cellucid_nb.format.naming import safe_name

CATEGORIES = ["B cell", "NK", "T cell"]


def normalise(points: np.ndarray) -> np.ndarray:
    """Center the bounding box and scale the largest axis range to [-1, 1]."""
    lo, hi = points.min(0), points.max(0)
    span = float((hi - lo).max()) or 1.0
    return ((points - (lo + hi) / 2) * (2.0 / span)).astype(np.float32)


def make_data(n: int = 50, seed: int = 0) -> dict:
    """Return the raw arrays the hand-made export stores."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 3, n)
    codes[1] = -1
    score = rng.normal(2.0, 1.0, n)
    score[2] = np.nan
    genes = {"CD3E": rng.gamma(1.0, 1.0, n) * (rng.random(n) < 0.5), "HLA-A/B": rng.normal(0, 1, n),
             "gene 3": np.zeros(n)}
    src = np.repeat(np.arange(n - 1), 1)
    dst = src + 1
    extra_src, extra_dst = np.arange(0, n - 5, 5), np.arange(0, n - 5, 5) + 5
    pairs = np.unique(np.stack([np.r_[src, extra_src], np.r_[dst, extra_dst]], 1), axis=0)
    return {
        "points": {2: rng.normal(size=(n, 2)) * [5, 1] + 2, 3: rng.normal(size=(n, 3))},
        "codes": codes,
        "score": score,
        "outliers": np.where(codes >= 0, rng.uniform(0.01, 1.0, n), np.nan).astype(np.float32),
        "genes": genes,
        "src": pairs[:, 0],
        "dst": pairs[:, 1],
        "weights": rng.uniform(0.1, 1.0, len(pairs)),
        "velocity": {2: rng.normal(size=(n, 2)), 3: rng.normal(size=(n, 3))},
    }


def write_handmade_export(out: Path, n: int = 50, compression: int | None = None, bits: int | None = None,
                          codes_dtype: str = "uint8", seed: int = 0) -> dict:
    """Write a complete, valid export to ``out`` and return the raw data it holds.

    Parameters
    ----------
    out
        Folder to create.
    n
        Number of cells.
    compression
        ``None`` or a gzip level.
    bits
        Quantization of continuous obs, outliers and genes (``None`` = float32).
    codes_dtype
        ``"uint8"`` or ``"uint16"``.
    seed
        Random seed of the data.
    """
    data = make_data(n, seed)
    out = Path(out)
    for sub in ("obs", "var", "connectivity", "vectors"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    gz = ".gz" if compression else ""

    def put(rel: str, array: np.ndarray) -> None:
        raw = np.ascontiguousarray(array).tobytes()
        (out / rel).write_bytes(gzip_bytes(raw, compression) if compression else raw)

    def encode(values: np.ndarray) -> tuple[np.ndarray, list]:
        if bits is None:
            return values.astype(np.float32), []
        lo, hi = value_range(values)
        return quantize(values, lo, hi, bits), [lo, hi]

    ext = {None: "f32", 8: "u8", 16: "u16"}[bits]
    dtype = {None: "float32", 8: "uint8", 16: "uint16"}[bits]
    value_schema = {"ext": ext, "dtype": dtype, "quantized": bits is not None}
    if bits:
        value_schema["quantizationBits"] = bits

    points = {d: normalise(p) for d, p in data["points"].items()}
    for d, p in points.items():
        put(spec.points_file(d, compression), p)

    # obs: one continuous, one categorical field
    score, score_range = encode(data["score"])
    put(f"obs/score.values.{ext}{gz}", score)
    missing = spec.CATEGORY_LIMITS[codes_dtype][1]
    codes = np.where(data["codes"] >= 0, data["codes"], missing).astype(codes_dtype)
    codes_ext = {"uint8": "u8", "uint16": "u16"}[codes_dtype]
    put(f"obs/{safe_name('cell type')}.codes.{codes_ext}{gz}", codes)
    outliers, outlier_range = encode(data["outliers"])
    put(f"obs/{safe_name('cell type')}.outliers.{ext}{gz}", outliers)
    centroids = {
        str(d): [
            {"category": c, "position": points[d][data["codes"] == i].mean(0).tolist(),
             "n_points": int((data["codes"] == i).sum())}
            for i, c in enumerate(CATEGORIES)
        ]
        for d in points
    }
    obs_manifest = {
        "_format": spec.FORMAT_NAME,
        "n_points": n,
        "centroid_outlier_quantile": 0.95,
        "latent_key": "latent_space",
        "compression": compression,
        "_obsSchemas": {
            "continuous": {"pathPattern": f"obs/{{key}}.values.{ext}{gz}", **value_schema},
            "categorical": {"codesPathPattern": f"obs/{{key}}.codes.{{ext}}{gz}",
                            "outlierPathPattern": f"obs/{{key}}.outliers.{ext}{gz}", "outlierExt": ext,
                            "outlierDtype": dtype, "outlierQuantized": bits is not None},
        },
        "_continuousFields": [["score", *score_range]],
        "_categoricalFields": [["cell type", CATEGORIES, codes_dtype, missing, centroids, *outlier_range]],
    }
    (out / "obs_manifest.json").write_text(json.dumps(obs_manifest))

    fields = []
    for gene, values in data["genes"].items():
        stored, rng_ = encode(values)
        put(f"var/{safe_name(gene)}.values.{ext}{gz}", stored)
        fields.append([gene, *rng_])
    var_manifest = {"_format": spec.FORMAT_NAME, "n_points": n, "var_gene_id_column": "index",
                    "compression": compression, "quantization": bits,
                    "_varSchema": {"kind": "continuous", "pathPattern": f"var/{{key}}.values.{ext}{gz}", **value_schema},
                    "fields": fields}
    (out / "var_manifest.json").write_text(json.dumps(var_manifest))

    put(f"connectivity/edges.src.bin{gz}", data["src"].astype(np.uint16))
    put(f"connectivity/edges.dst.bin{gz}", data["dst"].astype(np.uint16))
    put(f"connectivity/edges.weights.f64.bin{gz}", data["weights"].astype(np.float64))
    degree = np.bincount(data["src"], minlength=n) + np.bincount(data["dst"], minlength=n)
    conn = {"format": "edge_pairs", "n_cells": n, "n_edges": len(data["src"]), "max_neighbors": int(degree.max()),
            "index_bytes": 2, "index_dtype": "uint16", "sourcesPath": f"connectivity/edges.src.bin{gz}",
            "destinationsPath": f"connectivity/edges.dst.bin{gz}",
            "weightsPath": f"connectivity/edges.weights.f64.bin{gz}", "weight_bytes": 8, "weight_dtype": "float64",
            "compression": compression}
    (out / "connectivity_manifest.json").write_text(json.dumps(conn))

    files = {}
    for d, vec in data["velocity"].items():
        rel = f"vectors/velocity_umap_{d}d.bin{gz}"
        put(rel, vec.astype(np.float32))
        files[f"{d}d"] = rel
    identity = {
        "version": 2, "id": "handmade", "name": "handmade", "description": "", "created_at": "2024-01-01T00:00:00Z",
        "cellucid_data_version": "test",
        "stats": {"n_cells": n, "n_genes": len(fields), "n_obs_fields": 2, "n_categorical_fields": 1,
                  "n_continuous_fields": 1, "has_connectivity": True, "n_edges": len(data["src"])},
        "embeddings": {"available_dimensions": sorted(points), "default_dimension": max(points),
                       "files": {f"{d}d": spec.points_file(d, compression) for d in points}},
        "obs_fields": [{"key": "score", "kind": "continuous"},
                       {"key": "cell type", "kind": "category", "n_categories": 3}],
        "export_settings": {"compression": compression, "var_quantization": bits,
                            "obs_continuous_quantization": bits, "obs_categorical_dtype": codes_dtype},
        "vector_fields": {"default_field": "velocity_umap", "fields": {"velocity_umap": {
            "label": "Velocity (UMAP)", "basis": "umap", "available_dimensions": [2, 3], "default_dimension": 3,
            "files": files}}},
    }
    (out / spec.IDENTITY_FILE).write_text(json.dumps(identity, indent=2))
    data["points_normalised"] = points
    data["quant_max"] = QUANT_MAX.get(bits)
    return data


def edit_json(path: Path, change) -> None:
    """Load a JSON file, let ``change`` mutate it in place, write it back."""
    data = json.loads(Path(path).read_text())
    change(data)
    Path(path).write_text(json.dumps(data))
