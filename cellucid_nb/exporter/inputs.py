"""Validation and normalisation of every ``prepare()`` input, before any byte is written.

:func:`validate_inputs` turns the reference keyword arguments into one
:class:`ExportInputs`. Writers trust it and do no checking of their own. Every
error names the argument or key, what was received and what was expected.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from ..format import codecs
from ..format.layouts import LAYOUTS
from ..format.naming import check_no_collisions, safe_name, windows_reserved
from ..format.rules import obs_column_kind
from ..format.spec import CATEGORY_LIMITS, DATASETS_FILE, IDENTITY_FILE, SIDECAR_FILE, points_file
from ..format.suggest import closest
from .graph_source import BlockCSR
from .latent import LatentReader

__all__ = [
    "ExportSettings",
    "Embedding",
    "ObsField",
    "GeneSelection",
    "VectorFile",
    "VectorFieldInfo",
    "ExportInputs",
    "validate_inputs",
    "CREATED_AT_FORMAT",
]

CREATED_AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_EXPLICIT_VECTOR_KEY = re.compile(r"^(.*)_([123])d$")
#: Largest finite float32: payloads are float32, larger finite values would become +-inf.
F32_MAX = float(np.finfo(np.float32).max)
#: Longest suffix a payload file name gets after ``safe(key)`` (``.outliers.f32.gz``).
_LONGEST_SUFFIX = len(".outliers.f32.gz")
#: Characters the staging folder adds to out_dir's name (``.<name>.staging-<pid>-<random>``).
_STAGING_EXTRA = len("..staging-4194304-abcdefgh")


@dataclass(frozen=True)
class ExportSettings:
    """Everything that decides how bytes are encoded; two exports with equal settings can be merged."""

    compression: int | None
    var_quantization: int | None
    obs_continuous_quantization: int | None
    obs_categorical_dtype: str
    centroid_outlier_quantile: float | None
    centroid_min_points: int
    obs_manifest_filename: str
    obs_binary_dirname: str
    var_manifest_filename: str
    var_binary_dirname: str
    connectivity_manifest_filename: str
    connectivity_binary_dirname: str
    #: payload file names: "key" (safe(key), the default) or "index" (cellucid 0.9.1-0.9.2's index-named layout)
    layout: str = "key"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (stored in the sidecar and fingerprinted; ``layout`` only when not "key")."""
        out = dict(self.__dict__)
        if out["layout"] == "key":  # key-layout sidecars stay byte-identical to those written before layouts
            del out["layout"]
        return out


@dataclass
class Embedding:
    """One normalised embedding: ``coords`` fit [-1, 1], ``scale`` multiplies vectors."""

    dim: int
    coords: np.ndarray
    scale: float


@dataclass
class ObsField:
    """One obs column to export.

    ``series`` is the original column (continuous fields are converted by the
    writer); categorical fields carry their pandas codes (-1 = missing).
    """

    key: str
    kind: str  # "continuous" | "categorical"
    series: pd.Series | None = None
    codes: np.ndarray | None = None
    categories: list[str] = field(default_factory=list)
    codes_dtype: str = "uint8"


@dataclass
class GeneSelection:
    """Which expression columns to export, in export order."""

    matrix: Any
    ids: list[str]
    columns: np.ndarray
    var_gene_id_column: str


@dataclass
class VectorFile:
    """One vector payload: ``values`` already scaled, float32 ``(n_cells, dim)``."""

    field_id: str
    dim: int
    values: np.ndarray


@dataclass
class VectorFieldInfo:
    """Identity entry inputs for one vector field."""

    field_id: str
    label: str
    basis: str
    dims: list[int]


@dataclass
class ExportInputs:
    """Validated inputs of one export."""

    out_dir: Path
    settings: ExportSettings
    n_cells: int
    embeddings: dict[int, Embedding]
    latent: LatentReader  # read by row blocks (latent.py), never whole
    obs_fields: list[ObsField]
    genes: GeneSelection | None
    connectivity: sparse.csr_matrix | None
    vector_files: list[VectorFile]
    vector_fields: list[VectorFieldInfo]
    dataset_id: str
    dataset_name: str
    dataset_description: str
    source: dict[str, str] | None
    created_at: str
    category_colors: dict[str, list[str]]
    warnings: list[str] = field(default_factory=list)


def _warn(messages: list[str], message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=4)
    messages.append(message)


def _closest(name: str, choices: Sequence[str]) -> str:
    close = closest(name, choices)  # the one "did you mean" rule (format/suggest.py)
    return f" Did you mean {close!r}?" if close is not None else ""


def _type_name(obj: Any) -> str:
    return type(obj).__name__


# -- settings -------------------------------------------------------------------------------------
def _check_dirname(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or value in (".", "..") or "/" in value or "\\" in value:
        raise ValueError(f"{name}={value!r} is not a valid name: expected a non-empty file or folder name without path separators.")
    if windows_reserved(value):
        raise ValueError(f"{name}={value!r} is a device name Windows reserves (CON, PRN, AUX, NUL, COM1-COM9, "
                         "LPT1-LPT9): the export could not be copied to or opened on Windows; choose another name.")
    return value


def _check_quantile(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"centroid_outlier_quantile={value!r} ({_type_name(value)}) is not supported: expected a float in (0, 1) or None.")
    q = float(value)
    if not (math.isfinite(q) and 0.0 < q < 1.0):
        raise ValueError(f"centroid_outlier_quantile={value!r} is outside (0, 1): expected a float in (0, 1) or None.")
    return q


def _check_categorical_dtype(value: Any) -> str:
    if isinstance(value, str) and value in ("auto", "uint8", "uint16"):
        return value
    try:
        name = np.dtype(value).name if not isinstance(value, str) and value is not None else None
    except TypeError:
        name = None
    if name in ("uint8", "uint16"):
        return name
    raise ValueError(f"obs_categorical_dtype={value!r} is not supported: expected 'auto', 'uint8' or 'uint16'.")


def _check_settings(kw: Mapping[str, Any]) -> ExportSettings:
    min_points = kw["centroid_min_points"]
    if isinstance(min_points, (bool, np.bool_)) or not isinstance(min_points, (int, np.integer)) or int(min_points) < 1:
        raise ValueError(f"centroid_min_points={min_points!r} is not supported: expected an integer >= 1.")
    return ExportSettings(
        compression=codecs.check_compression(kw["compression"]),
        var_quantization=codecs.check_bits(kw["var_quantization"], "var_quantization"),
        obs_continuous_quantization=codecs.check_bits(kw["obs_continuous_quantization"], "obs_continuous_quantization"),
        obs_categorical_dtype=_check_categorical_dtype(kw["obs_categorical_dtype"]),
        centroid_outlier_quantile=_check_quantile(kw["centroid_outlier_quantile"]),
        centroid_min_points=int(min_points),
        obs_manifest_filename=_check_dirname(kw["obs_manifest_filename"], "obs_manifest_filename"),
        obs_binary_dirname=_check_dirname(kw["obs_binary_dirname"], "obs_binary_dirname"),
        var_manifest_filename=_check_dirname(kw["var_manifest_filename"], "var_manifest_filename"),
        var_binary_dirname=_check_dirname(kw["var_binary_dirname"], "var_binary_dirname"),
        connectivity_manifest_filename=_check_dirname(kw["connectivity_manifest_filename"], "connectivity_manifest_filename"),
        connectivity_binary_dirname=_check_dirname(kw["connectivity_binary_dirname"], "connectivity_binary_dirname"),
        layout=_check_layout(kw.get("layout", "key")),
    )


def _check_layout(value: Any) -> str:
    if isinstance(value, str) and value in LAYOUTS:
        return value
    raise ValueError(f"layout={value!r} is not supported: expected one of {sorted(LAYOUTS)} ('key': files named "
                     "after keys, as cellucid 0.0.9; 'index': index-named, as cellucid 0.9.1-0.9.2).")


# -- embeddings -----------------------------------------------------------------------------------
def _unmask(value: Any, name: str) -> Any:
    """The data of a masked array without masked values; refuse one with masked values."""
    if not isinstance(value, np.ma.MaskedArray):
        return value
    n_masked = int(np.ma.count_masked(value))
    if n_masked:
        raise ValueError(
            f"{name} is a masked array with {n_masked} masked value(s); expected plain values: the mask would be "
            "dropped and the hidden fill values exported. Fill them (e.g. .filled(np.nan) for missing values "
            "where they are allowed) or drop those cells."
        )
    return np.ma.getdata(value)


def overflow_count(arr: np.ndarray) -> tuple[int, float]:
    """Finite values of ``arr`` beyond float32's range: ``(count, largest |value|)``; ``(0, 0.0)`` if none."""
    if arr.dtype.kind != "f" or arr.dtype.itemsize <= 4 or arr.size == 0:
        return 0, 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        if -F32_MAX <= arr.min() and arr.max() <= F32_MAX:  # False with NaN: then look closer
            return 0, 0.0
        magnitude = np.abs(arr)
        big = np.isfinite(magnitude) & (magnitude > F32_MAX)
    n = int(big.sum())
    return n, (float(magnitude[big].max()) if n else 0.0)


def _refuse_overflow(arr: np.ndarray, name: str, what: str = "values") -> None:
    _raise_overflow(*overflow_count(arr), name, what)


def _raise_overflow(n: int, largest: float, name: str, what: str = "values") -> None:
    if n:
        raise ValueError(
            f"{name} has {n} finite {what} beyond float32's range (largest |value| {largest:.6g}); expected "
            f"|value| <= {F32_MAX:.6g}: they would overflow to infinity when stored as float32. Rescale them."
        )


def _dense_small(value: Any, name: str) -> np.ndarray:
    """Densify a small per-cell array (embedding, latent space, vector field)."""
    value = _unmask(value, name)
    if sparse.issparse(value):
        value = value.toarray()
    try:
        arr = np.asarray(value)
    except Exception as err:  # noqa: BLE001 - report what was received
        raise TypeError(f"{name} ({_type_name(value)}) cannot be converted to a numeric array: {err}") from err
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} has dtype {arr.dtype}, expected a numeric array.")
    return arr


#: Rows converted at a time where a per-cell array is turned into float32 through float64
#: (embeddings, vectors): a whole float64 copy would be 24 bytes a cell for a 3-D embedding.
_BLOCK_ROWS = 1 << 16


def normalise_embedding(arr: np.ndarray) -> tuple[np.ndarray, float]:
    """Center the bounding box on 0 and scale the largest axis range to 2 (aspect kept).

    Computed in float64 with halves (``max/2 - min/2``), so coordinates of any
    finite magnitude (even a span of +-3e38, beyond float32) are normalised
    without overflow. The float64 arithmetic runs on blocks of rows (the same
    operations on every value, so the same result), never on a whole copy.

    Parameters
    ----------
    arr
        Finite ``(n, d)`` coordinates (any float or integer dtype).

    Returns
    -------
    coords, scale
        The normalised float32 coordinates and the scale factor applied.
    """
    arr = np.asarray(arr)
    out = np.empty(arr.shape, dtype=np.float32)
    if arr.shape[0] == 0:
        return out, 1.0
    # min/max of the stored values, then float64: the same as of the float64 values (rounding is monotonic).
    mins = np.asarray(arr.min(axis=0), dtype=np.float64)
    maxs = np.asarray(arr.max(axis=0), dtype=np.float64)
    half_range = float((maxs / 2 - mins / 2).max())
    if half_range < 0.5e-8:
        half_range = 0.5  # degenerate data: keep it at the origin
    center = mins / 2 + maxs / 2
    scale = 1.0 / half_range
    for start in range(0, arr.shape[0], _BLOCK_ROWS):
        block = np.asarray(arr[start : start + _BLOCK_ROWS], dtype=np.float64)
        out[start : start + _BLOCK_ROWS] = (block - center) * scale
    return out, scale


def _check_embeddings(kw: Mapping[str, Any]) -> tuple[dict[int, Embedding], int]:
    if kw["X_umap_4d"] is not None:
        raise NotImplementedError(
            "X_umap_4d was given, but 4D embeddings are reserved and not implemented yet: "
            "pass X_umap_1d, X_umap_2d or X_umap_3d."
        )
    raw = {d: kw[f"X_umap_{d}d"] for d in (1, 2, 3) if kw[f"X_umap_{d}d"] is not None}
    if not raw:
        raise ValueError(
            "At least one dimensional embedding must be provided: none of X_umap_1d, X_umap_2d, "
            "X_umap_3d was given (expected an array of shape (n_cells, d))."
        )
    n_cells: int | None = None
    first = ""
    out: dict[int, Embedding] = {}
    for dim, value in raw.items():
        name = f"X_umap_{dim}d"
        arr = _dense_small(value, name)
        if arr.ndim != 2 or arr.shape[1] != dim:
            raise ValueError(f"{name} has shape {arr.shape}, expected (n_cells, {dim}).")
        if n_cells is None:
            n_cells, first = arr.shape[0], name
        elif arr.shape[0] != n_cells:
            raise ValueError(
                f"All embeddings must have the same number of cells: {first} has {n_cells} rows, "
                f"but {name} has shape {arr.shape}."
            )
        if arr.shape[0] == 0:
            raise ValueError(f"{name} has shape {arr.shape}: zero cells; expected at least one cell, i.e. (n_cells >= 1, {dim}).")
        # NaN and infinities show in the column extremes (no per-cell temporary); counted on the error path only.
        if arr.dtype.kind == "f" and not (np.isfinite(arr.min(axis=0)).all() and np.isfinite(arr.max(axis=0)).all()):
            bad = int((~np.isfinite(arr)).any(axis=1).sum())
            raise ValueError(f"{name} contains NaN or Inf in {bad} row(s); expected finite coordinates for every cell.")
        coords, scale = normalise_embedding(arr)  # float64: finite values beyond float32's range are fine
        out[dim] = Embedding(dim, coords, scale)
    assert n_cells is not None
    return out, int(n_cells)


# -- latent space and obs ------------------------------------------------------------------------------
def _check_latent(value: Any, n_cells: int, messages: list[str]) -> LatentReader:
    """A reader of the latent space, validated in one pass over its row blocks (never read whole)."""
    if value is None:
        raise ValueError(
            "latent_space is required for outlier quantile calculation: got None, expected an array "
            "of shape (n_cells, n_dims) such as obsm['X_pca']."
        )
    if sparse.issparse(value):
        check_sparse_structure(value, "latent_space")
    reader = LatentReader.open(_unmask(value, "latent_space"), "latent_space")
    if len(reader.shape) != 2 or reader.shape[0] != n_cells:
        raise ValueError(f"latent_space has shape {reader.shape}, but embeddings have {n_cells} cells: expected ({n_cells}, n_dims).")
    n_over, largest, finite = 0, 0.0, True
    for start, stop in reader.ranges():
        rows = reader.raw(start, stop)
        n, big = overflow_count(rows)
        n_over, largest = n_over + n, max(largest, big)
        if finite and rows.dtype.kind == "f":
            finite = bool(np.isfinite(rows).all())
    _raise_overflow(n_over, largest, "latent_space")
    if not finite:
        _warn(messages, "latent_space contains NaN or Inf; outlier quantiles of the affected categories will be NaN.")
    return reader


def _unhashable(series: pd.Series) -> tuple[Any, Any] | None:
    """First ``(index label, value)`` of a column that cannot be a category (list, dict, array...)."""
    for label, value in series.items():  # error path only: the column already failed to convert
        try:
            hash(value)
        except TypeError:
            return label, value
    return None


def column_values(series: pd.Series, dtype: Any) -> np.ndarray:
    """A numeric obs column as a numpy array of ``dtype``, pandas' missing values as NaN.

    Through the column's array, not ``Series.to_numpy(na_value=...)``: that path looks up
    an attribute on the Series, which makes pandas build the *index*'s hash table, and
    for the Arrow string index of :func:`cellucid_nb.adata.open_file.open_h5ad` that is a
    Python string per cell (0.6 GB at 10M cells, kept by pandas' cache).
    """
    values = series.array
    if isinstance(series.dtype, np.dtype):
        return np.asarray(values, dtype=dtype)
    return np.asarray(values.to_numpy(dtype=dtype, na_value=np.nan))


def _categorical_field(key: str, series: pd.Series, dtype_setting: str) -> ObsField:
    try:
        cat = series if isinstance(series.dtype, pd.CategoricalDtype) else series.astype("category")
    except TypeError as err:
        bad = _unhashable(series)
        found = f"{type(bad[1]).__name__} values (e.g. {bad[1]!r:.60} at row {bad[0]!r})" if bad else f"values pandas cannot group ({err})"
        raise ValueError(
            f"obs[{key!r}] holds {found}; expected one scalar (string, number or bool) per cell. Convert the column "
            f"(e.g. obs[{key!r}].astype(str)) or leave it out with obs_keys."
        ) from None
    categories = [str(c) for c in cat.cat.categories]
    if len(set(categories)) != len(categories):
        dupes = pd.Index(categories)[pd.Index(categories).duplicated()].unique().tolist()
        raise ValueError(
            f"obs[{key!r}] has categories that are equal as text: {dupes[:5]}; expected categories "
            "whose str() values are unique."
        )
    n = len(categories)
    if dtype_setting == "auto":
        codes_dtype = "uint8" if n <= CATEGORY_LIMITS["uint8"][0] else "uint16"
    else:
        codes_dtype = dtype_setting
    limit = CATEGORY_LIMITS[codes_dtype][0]
    if n > limit:
        hint = " Use 'auto' or 'uint16'." if codes_dtype == "uint8" and n <= CATEGORY_LIMITS["uint16"][0] else ""
        raise ValueError(
            f"obs[{key!r}] has {n} categories, but {codes_dtype} codes hold at most {limit} "
            f"(obs_categorical_dtype={dtype_setting!r}).{hint}"
        )
    codes = np.asarray(cat.cat.codes.to_numpy())
    return ObsField(key=key, kind="categorical", codes=codes, categories=categories, codes_dtype=codes_dtype)


def _check_obs(obs: Any, obs_keys: Any, n_cells: int, settings: ExportSettings) -> list[ObsField]:
    if obs is None:
        raise ValueError("obs DataFrame is required: got None, expected a pandas DataFrame with one row per cell.")
    if not isinstance(obs, pd.DataFrame):
        raise TypeError(f"obs is a {_type_name(obs)}, expected a pandas DataFrame with one row per cell.")
    if len(obs) != n_cells:
        raise ValueError(f"obs has {len(obs)} rows (shape {obs.shape}), but embeddings have {n_cells} cells.")
    columns = list(obs.columns)
    bad_cols = [c for c in columns if not isinstance(c, str)]
    if obs_keys is None:
        keys = columns
        if bad_cols:
            raise ValueError(
                f"obs column keys must be strings: got {bad_cols[0]!r} ({_type_name(bad_cols[0])}); "
                "rename the columns (e.g. obs.columns = obs.columns.astype(str)) or pass obs_keys."
            )
    else:
        if isinstance(obs_keys, str):
            raise TypeError(f"obs_keys={obs_keys!r} is a string, expected a sequence of column names such as [{obs_keys!r}].")
        keys = list(obs_keys)
        for k in keys:
            if not isinstance(k, str):
                raise ValueError(f"obs_keys must be strings: got {k!r} ({_type_name(k)}).")
        missing = [k for k in keys if k not in obs.columns]
        if missing:
            str_cols = [c for c in columns if isinstance(c, str)]
            hint = _closest(missing[0], str_cols)
            raise KeyError(
                f"obs_keys contain columns not in obs: {missing}.{hint} Available columns: {str_cols}"
            )
        dupes = [k for i, k in enumerate(keys) if k in keys[:i]]
        if dupes:
            raise ValueError(f"obs_keys lists {dupes[0]!r} more than once; expected each column at most once.")
    check_no_collisions(keys, "obs", named_files=settings.layout == "key")
    fields: list[ObsField] = []
    for key in keys:
        series = obs[key]
        if isinstance(series, pd.DataFrame):
            raise ValueError(f"obs has several columns named {key!r}; expected unique column names.")
        if series.dtype.kind == "c":
            raise ValueError(
                f"obs[{key!r}] has complex dtype {series.dtype}; expected real numbers (the imaginary part would be "
                f"dropped): export e.g. np.abs(obs[{key!r}]) or its .real part as a column of its own."
            )
        if obs_column_kind(series) == "continuous":
            if series.dtype.kind == "f" and series.dtype.itemsize > 4:  # also pandas' nullable Float64
                wide = np.float64 if series.dtype.itemsize <= 8 else np.longdouble
                _refuse_overflow(column_values(series, wide), f"obs[{key!r}]")
            fields.append(ObsField(key=key, kind="continuous", series=series))
        else:
            fields.append(_categorical_field(key, series, settings.obs_categorical_dtype))
    return fields


# -- genes --------------------------------------------------------------------------------------------------
def check_sparse_structure(matrix: Any, name: str) -> None:
    """Refuse a sparse matrix whose index arrays point outside its shape (vectorised, nothing copied).

    Parameters
    ----------
    matrix
        A scipy sparse matrix or array.
    name
        Argument name for the message.
    """
    shape = tuple(int(n) for n in matrix.shape)
    fmt = matrix.format
    if fmt in ("csr", "csc"):
        major, minor = (shape[0], shape[1]) if fmt == "csr" else (shape[1], shape[0])
        indptr, indices = np.asarray(matrix.indptr), np.asarray(matrix.indices)
        what = "row" if fmt == "csr" else "column"
        if indptr.shape != (major + 1,) or indptr[0] != 0 or int(indptr[-1]) > min(indices.size, np.asarray(matrix.data).size):
            raise ValueError(
                f"{name} ({fmt.upper()}, shape {shape}) has a malformed indptr (length {indptr.size}, first "
                f"{indptr[:1].tolist()}, last {indptr[-1:].tolist()}); expected {major + 1} non-decreasing offsets "
                f"from 0 to nnz={indices.size}."
            )
        if major and (np.diff(indptr) < 0).any():
            raise ValueError(f"{name} ({fmt.upper()}, shape {shape}) has a decreasing indptr; expected non-decreasing {what} offsets.")
        used = indices[: int(indptr[-1])]
        if used.size and (int(used.min()) < 0 or int(used.max()) >= minor):
            other = "column" if fmt == "csr" else "row"
            bad = int(used.max()) if int(used.max()) >= minor else int(used.min())
            raise ValueError(
                f"{name} ({fmt.upper()}, shape {shape}) has {other} index {bad} out of range; expected "
                f"{other} indices in [0, {minor})."
            )
    elif fmt == "coo":
        for axis, idx in (("row", matrix.row), ("column", matrix.col)):
            limit = shape[0] if axis == "row" else shape[1]
            idx = np.asarray(idx)
            if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= limit):
                raise ValueError(
                    f"{name} (COO, shape {shape}) has {axis} index {int(idx.max()) if int(idx.max()) >= limit else int(idx.min())} "
                    f"out of range; expected {axis} indices in [0, {limit})."
                )


def _expression_matrix(value: Any) -> Any:
    """Return a matrix with ``shape`` and 2-D slicing, never densifying a sparse one."""
    value = _unmask(value, "gene_expression")
    if sparse.issparse(value):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"gene_expression has dtype {value.dtype}, expected a numeric matrix.")
        check_sparse_structure(value, "gene_expression")
        if value.format in ("csr", "csc", "coo"):  # the compiled sweeps read .data directly: check it here
            _refuse_overflow(np.asarray(value.data), "gene_expression", "values")
        return value
    if isinstance(value, np.ndarray) or not (hasattr(value, "shape") and hasattr(value, "__getitem__")):
        value = np.asarray(value)
    dtype = getattr(value, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind not in "biuf":
        raise TypeError(f"gene_expression has dtype {dtype}, expected a numeric matrix.")
    return value


def _gene_ids(var: pd.DataFrame, column: Any) -> tuple[list, str]:
    if column is None or column == "index":
        return list(var.index), "index"
    if not isinstance(column, str):
        raise ValueError(f"var_gene_id_column={column!r} is not supported: expected 'index' or a var column name.")
    if column not in var.columns:
        raise KeyError(
            f"var_gene_id_column {column!r} not found in var.{_closest(column, [str(c) for c in var.columns])} "
            f"Available columns: {list(var.columns)}"
        )
    return list(var[column]), column


def _check_genes(
    matrix: Any, var: Any, column: Any, identifiers: Any, n_cells: int, messages: list[str], named_files: bool = True
) -> GeneSelection | None:
    if matrix is None:
        return None
    if var is None:
        raise ValueError("var DataFrame must be provided when gene_expression is given: got var=None.")
    if not isinstance(var, pd.DataFrame):
        raise TypeError(f"var is a {_type_name(var)}, expected a pandas DataFrame with one row per gene.")
    matrix = _expression_matrix(matrix)
    shape = tuple(matrix.shape)
    if len(shape) != 2:
        raise ValueError(f"gene_expression has shape {shape}, expected (n_cells, n_genes) = ({n_cells}, n_genes).")
    if shape[0] != n_cells:
        raise ValueError(f"gene_expression has shape {shape}, but embeddings have {n_cells} cells: expected ({n_cells}, n_genes).")
    if len(var) != shape[1]:
        raise ValueError(f"var has {len(var)} rows, but gene_expression has shape {shape}: expected {shape[1]} rows in var.")
    ids, id_column = _gene_ids(var, column)
    bad = next((g for g in ids if not isinstance(g, str)), None)
    if bad is not None:
        raise ValueError(
            f"gene identifiers (var {'index' if id_column == 'index' else repr(id_column)}) must be strings: "
            f"got {bad!r} ({_type_name(bad)}); convert them, e.g. var.index = var.index.astype(str)."
        )
    index = pd.Index(ids)
    if index.has_duplicates:
        dupes = index[index.duplicated()].unique().tolist()
        raise ValueError(
            f"gene identifiers must be unique: {len(dupes)} duplicated, e.g. {dupes[:5]} "
            f"(var_gene_id_column={id_column!r}); deduplicate them (e.g. var_names_make_unique())."
        )
    if identifiers is None:
        columns = np.arange(len(ids), dtype=np.int64)
        chosen = ids
    else:
        if isinstance(identifiers, str):
            raise TypeError(f"gene_identifiers={identifiers!r} is a string, expected a sequence of gene ids such as [{identifiers!r}].")
        requested = list(identifiers)
        if not requested:
            raise ValueError(
                "gene_identifiers is empty: expected at least one gene id, or None for every gene "
                "(leave gene_expression=None to export no genes)."
            )
        unique = list(dict.fromkeys(requested))
        if len(unique) != len(requested):
            _warn(messages, f"gene_identifiers lists {len(requested) - len(unique)} gene(s) more than once; each is exported once.")
        positions = index.get_indexer(pd.Index(unique, dtype=object))
        missing = [g for g, p in zip(unique, positions, strict=True) if p < 0]
        if len(missing) == len(unique):
            raise ValueError(
                f"none of the {len(unique)} gene_identifiers exist in var "
                f"(var_gene_id_column={id_column!r}): e.g. {missing[:5]}.{_closest(str(missing[0]), ids) if missing else ''}"
            )
        if missing:
            _warn(messages, f"{len(missing)} gene identifier(s) not found in var and skipped: {missing[:20]}")
        columns = positions[positions >= 0].astype(np.int64)
        chosen = [unique[i] for i in np.flatnonzero(positions >= 0)]
    check_no_collisions(chosen, "gene", named_files=named_files)
    return GeneSelection(matrix=matrix, ids=list(chosen), columns=columns, var_gene_id_column=id_column)


# -- connectivity ------------------------------------------------------------------------------------------
def _check_connectivity(value: Any, n_cells: int) -> sparse.csr_matrix | None:
    if value is None:
        return None
    if isinstance(value, BlockCSR):  # read from its file by row blocks (graph_source.py)
        if value.shape != (n_cells, n_cells):
            raise ValueError(f"connectivities has shape {value.shape}, expected ({n_cells}, {n_cells}) (n_cells x n_cells).")
        value.validate("connectivities")
        return value  # type: ignore[return-value]
    value = _unmask(value, "connectivities")
    if sparse.issparse(value):
        check_sparse_structure(value, "connectivities")
        mat = value
    else:
        try:
            arr = np.asarray(value)
        except Exception as err:  # noqa: BLE001
            raise TypeError(f"connectivities ({_type_name(value)}) cannot be converted to a matrix: {err}") from err
        if arr.ndim != 2:
            raise ValueError(f"connectivities has shape {arr.shape}, expected ({n_cells}, {n_cells}).")
        mat = arr
    if tuple(mat.shape) != (n_cells, n_cells):
        raise ValueError(f"connectivities has shape {tuple(mat.shape)}, expected ({n_cells}, {n_cells}) (n_cells x n_cells).")
    if mat.dtype.kind not in "biuf":
        raise TypeError(f"connectivities has dtype {mat.dtype}, expected numeric weights.")
    csr = sparse.csr_matrix(mat)
    data = csr.data
    if data.size and not np.isfinite(data).all():
        raise ValueError(f"connectivities has {int((~np.isfinite(data)).sum())} NaN/Inf weight(s); expected finite weights >= 0.")
    if data.size and (data < 0).any():
        raise ValueError(f"connectivities has {int((data < 0).sum())} negative weight(s) (min {float(data.min())}); expected weights >= 0.")
    return csr


# -- vector fields --------------------------------------------------------------------------------------------
def vector_label(field_id: str) -> str:
    """Display label of a vector field: ``velocity_umap`` -> ``"Velocity (UMAP)"``."""
    base = field_id[:-5] if field_id.endswith("_umap") else field_id
    base = base.replace("_", " ").strip()
    titled = (base[:1].upper() + base[1:]) if base else field_id
    return f"{titled} (UMAP)" if field_id.endswith("_umap") else titled


def _vector_array(value: Any, name: str, n_cells: int) -> np.ndarray:
    arr = _dense_small(value, f"vector_fields[{name!r}]")
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"vector_fields[{name!r}] has shape {arr.shape}, expected (n_cells, 1|2|3) or (n_cells,).")
    if arr.shape[1] not in (1, 2, 3):
        raise ValueError(f"vector_fields[{name!r}] has shape {arr.shape}: expected 1/2/3 components, i.e. ({n_cells}, 1|2|3).")
    if arr.shape[0] != n_cells:
        raise ValueError(f"vector_fields[{name!r}] has shape {arr.shape}, but embeddings have {n_cells} cells.")
    return arr


def _scaled_vectors(dense: np.ndarray, scale: float, name: str) -> np.ndarray:
    """Vectors scaled like their embedding (in float64), as float32; refuse NaN, Inf and overflow.

    Decision (issue 11): NaN / Inf vectors are refused, not replaced. A cell
    without a velocity has no arrow to draw; storing 0 would show "no motion"
    where the data says "unknown", and NaN would reach the viewer's GPU
    buffers. The message says how to get zero arrows if that is what is meant.
    """
    key = f"vector_fields[{name!r}]"
    if dense.dtype.kind == "f" and dense.size and not (
            np.isfinite(dense.min(axis=0)).all() and np.isfinite(dense.max(axis=0)).all()):
        bad = int((~np.isfinite(dense)).any(axis=1).sum())
        raise ValueError(
            f"{key} contains NaN or Inf in {bad} row(s); expected finite displacements for every cell "
            f"(use np.nan_to_num({key}) if cells without a vector should get no arrow)."
        )
    # A new array (the caller's vectors are never scaled in place), scaled in float64 by blocks of rows.
    out = np.empty(dense.shape, dtype=np.float32)
    n_big, largest = 0, 0.0
    for start in range(0, dense.shape[0], _BLOCK_ROWS):
        scaled = np.multiply(dense[start : start + _BLOCK_ROWS], scale, dtype=np.float64)
        n, big = overflow_count(scaled)
        n_big, largest = n_big + n, max(largest, big)
        if not n_big:
            out[start : start + _BLOCK_ROWS] = scaled
    _raise_overflow(n_big, largest, key, "displacements (after scaling like the embedding)")
    return out


def _check_vectors(
    value: Any, embeddings: dict[int, Embedding], n_cells: int, basis: str, messages: list[str]
) -> tuple[list[VectorFile], list[VectorFieldInfo]]:
    if value is None or (isinstance(value, Mapping) and not value):
        return [], []
    if not isinstance(value, Mapping):
        raise TypeError(f"vector_fields is a {_type_name(value)}, expected a dict[str, array].")
    grouped: dict[str, dict[int, tuple[str, np.ndarray]]] = {}
    explicit: dict[str, set[int]] = {}
    implicit: list[tuple[str, np.ndarray]] = []
    for name, arr in value.items():
        if not isinstance(name, str):
            raise ValueError(f"vector_fields keys must be strings: got {name!r} ({_type_name(name)}).")
        if arr is None:
            continue
        dense = _vector_array(arr, name, n_cells)
        match = _EXPLICIT_VECTOR_KEY.match(name)
        if match:
            field_id, dim = match.group(1), int(match.group(2))
            if dense.shape[1] != dim:
                raise ValueError(f"vector_fields[{name!r}] is declared {dim}D but has shape {dense.shape}: expected ({n_cells}, {dim}).")
            explicit.setdefault(field_id, set()).add(dim)
            grouped.setdefault(field_id, {})[dim] = (name, dense)
        else:
            implicit.append((name, dense))
    for name, dense in implicit:
        dim = dense.shape[1]
        if dim in explicit.get(name, set()):
            continue  # the explicit key wins
        grouped.setdefault(name, {})[dim] = (name, dense)
    for field_id in grouped:
        if safe_name(field_id) != field_id:
            raise ValueError(
                f"vector field id {field_id!r} contains unsupported characters: expected a safe id such as "
                f"{safe_name(field_id)!r} (only A-Z a-z 0-9 . _ -)."
            )
    check_no_collisions(list(grouped), "vector field")
    files: list[VectorFile] = []
    infos: list[VectorFieldInfo] = []
    for field_id, by_dim in grouped.items():
        dims = []
        for dim in sorted(by_dim):
            name, dense = by_dim[dim]
            if dim not in embeddings:
                _warn(messages, f"vector field {field_id!r} {dim}D skipped: no X_umap_{dim}d embedding was given.")
                continue
            files.append(VectorFile(field_id, dim, _scaled_vectors(dense, embeddings[dim].scale, name)))
            dims.append(dim)
        if dims:
            field_basis = "umap" if field_id.endswith("_umap") else basis
            infos.append(VectorFieldInfo(field_id, vector_label(field_id), field_basis, dims))
    return files, infos


# -- identity -------------------------------------------------------------------------------------------------
def _check_created_at(value: Any) -> str:
    if value is None:
        return datetime.now(timezone.utc).strftime(CREATED_AT_FORMAT)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value.strftime(CREATED_AT_FORMAT)
    if isinstance(value, str):
        try:
            datetime.strptime(value, CREATED_AT_FORMAT)
        except ValueError:
            raise ValueError(f"created_at={value!r} is not a UTC timestamp like '2024-01-31T12:00:00Z'.") from None
        return value
    raise TypeError(f"created_at is a {_type_name(value)}, expected None, a datetime or a string like '2024-01-31T12:00:00Z'.")


def _opt_str(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} is a {_type_name(value)}, expected a string or None.")
    return value


def _check_colors(value: Any, obs_fields: list[ObsField]) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"category_colors is a {_type_name(value)}, expected a mapping obs key -> list of colours.")
    by_key = {f.key: f for f in obs_fields if f.kind == "categorical"}
    out: dict[str, list[str]] = {}
    for key, colours in value.items():
        if key not in by_key:
            raise KeyError(f"category_colors[{key!r}] names no exported categorical obs field.{_closest(str(key), list(by_key))}")
        colours = [str(c) for c in colours]
        if len(colours) < len(by_key[key].categories):
            raise ValueError(
                f"category_colors[{key!r}] has {len(colours)} colours, expected {len(by_key[key].categories)} (one per category)."
            )
        out[key] = colours[: len(by_key[key].categories)]
    return out


def check_out_dir(out_dir: Any) -> Path:
    """Return ``out_dir`` as an absolute path; refuse an empty path, a link, a file or the current folder.

    Symbolic links are refused rather than followed: a replace renames
    ``out_dir``, which would turn the link into a folder and leave the export it
    pointed to behind it (decision, issue 11).

    Parameters
    ----------
    out_dir
        ``None`` means ``Path.cwd() / "exports"``.
    """
    if out_dir is None:
        return Path.cwd() / "exports"
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir is a {_type_name(out_dir)}, expected a path (str or pathlib.Path) or None.")
    text = os.fspath(out_dir)
    if isinstance(text, bytes) or not text.strip():
        raise ValueError(
            f"out_dir={out_dir!r} is empty: expected a folder path such as 'exports' (an empty path would "
            "export into the current folder, among your own files)."
        )
    path = Path(os.path.abspath(os.path.expanduser(text)))  # "~/exports" is the home folder's, not a folder "~"
    cwd = Path(os.path.abspath(os.getcwd()))
    if not path.name or path == cwd or path in cwd.parents:
        raise ValueError(
            f"out_dir={str(out_dir)!r} is the current folder or one of its parents ({str(path)!r}); expected a "
            "dedicated export folder such as 'exports' (a replace renames out_dir)."
        )
    if os.path.islink(path):
        raise ValueError(
            f"out_dir={str(out_dir)!r} is a symbolic link (to {os.readlink(path)!r}); expected a real folder or a new "
            f"path: pass the link's target, e.g. out_dir={str(path.resolve())!r}."
        )
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"out_dir={str(out_dir)!r} exists and is not a folder; expected a folder or a new path.")
    if os.path.ismount(path):
        # a replace renames out_dir, and a mount point cannot be renamed (EBUSY after staging)
        raise ValueError(
            f"out_dir={str(out_dir)!r} is a mount point; expected a folder inside it, e.g. "
            f"out_dir={str(path / 'export')!r} (a replace renames out_dir, which a mount point does not allow)."
        )
    ancestor = path.parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not os.path.isdir(ancestor):
        raise NotADirectoryError(
            f"out_dir={str(out_dir)!r} lies inside {str(ancestor)!r}, which is a file, not a folder; expected a "
            "path whose existing parents are folders."
        )
    return path


def name_max(path: Path) -> int:
    """Longest file name (bytes) the file system of ``path`` (or its nearest existing parent) allows."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _check_name_lengths(out: Path, settings: ExportSettings, obs_fields: list, genes: Any, vectors: list) -> None:
    limit = name_max(out)

    def check(kind: str, key: str, file_name: str) -> None:
        size = len(file_name.encode("utf-8"))
        if size > limit:
            raise ValueError(
                f"{kind} {key!r:.80} gives the file name {file_name[:60]!r}... of {size} bytes; expected at most "
                f"{limit} bytes (the file system's name limit): shorten it."
            )

    check("out_dir name", out.name, out.name + "x" * (_STAGING_EXTRA - 1))
    for setting in ("obs_manifest_filename", "var_manifest_filename", "connectivity_manifest_filename",
                    "obs_binary_dirname", "var_binary_dirname", "connectivity_binary_dirname"):
        check(setting, getattr(settings, setting), getattr(settings, setting))
    for vec in vectors:
        check("vector field id", vec.field_id, f"{vec.field_id}_{vec.dim}d.bin.gz")
    if settings.layout != "key":
        return  # obs and gene payloads are named by index: their keys never become file names
    for f in obs_fields:
        check("obs key", f.key, safe_name(f.key) + ".x" * (_LONGEST_SUFFIX // 2))
    if genes is not None:
        longest = max(genes.ids, key=lambda g: len(safe_name(g).encode("utf-8")), default=None)
        if longest is not None:
            check("gene id", longest, safe_name(longest) + ".x" * (_LONGEST_SUFFIX // 2))


def _check_layout_names(settings: ExportSettings) -> None:
    """Refuse manifest / folder names that collide with each other or with the export's own files."""
    reserved = {IDENTITY_FILE: "the identity file", SIDECAR_FILE: "the sidecar", DATASETS_FILE: "the datasets list",
                "vectors": "the vector fields folder"}
    for dim in (1, 2, 3):
        for compression in (None, 1):
            reserved[points_file(dim, compression)] = f"the {dim}D embedding file"
    seen: dict[str, str] = {k.casefold(): v for k, v in reserved.items()}
    for setting in ("obs_manifest_filename", "obs_binary_dirname", "var_manifest_filename", "var_binary_dirname",
                    "connectivity_manifest_filename", "connectivity_binary_dirname"):
        value = getattr(settings, setting)
        folded = value.casefold()
        if folded in seen:
            raise ValueError(
                f"{setting}={value!r} collides with {seen[folded]} (names are compared ignoring case); expected "
                "a name that no other file or folder of the export uses."
            )
        seen[folded] = f"{setting}={value!r}"


def validate_inputs(out_dir: Any, kw: Mapping[str, Any]) -> ExportInputs:
    """Check and normalise every ``prepare()`` argument; nothing is written.

    Parameters
    ----------
    out_dir
        Target folder (``None`` means ``Path.cwd() / "exports"``).
    kw
        The keyword arguments of ``prepare()`` (reference names).

    Returns
    -------
    ExportInputs
    """
    messages: list[str] = []
    out = check_out_dir(out_dir)
    force = kw["force"]
    if not isinstance(force, (bool, np.bool_)) and not (isinstance(force, (int, np.integer)) and force in (0, 1)):
        raise TypeError(f"force={force!r} is a {_type_name(force)}, expected True or False.")
    settings = _check_settings(kw)
    _check_layout_names(settings)
    basis = kw["vector_basis"]
    if not isinstance(basis, str) or not basis:
        raise ValueError(f"vector_basis={basis!r} is not supported: expected a non-empty string such as 'umap'.")
    embeddings, n_cells = _check_embeddings(kw)
    latent = _check_latent(kw["latent_space"], n_cells, messages)
    obs_fields = _check_obs(kw["obs"], kw["obs_keys"], n_cells, settings)
    genes = _check_genes(
        kw["gene_expression"], kw["var"], kw["var_gene_id_column"], kw["gene_identifiers"], n_cells, messages,
        named_files=settings.layout == "key",
    )
    connectivity = _check_connectivity(kw["connectivities"], n_cells)
    vector_files, vector_infos = _check_vectors(kw["vector_fields"], embeddings, n_cells, basis, messages)
    _check_name_lengths(out, settings, obs_fields, genes, vector_files)
    name = _opt_str(kw["dataset_name"], "dataset_name")
    dataset_id = _opt_str(kw["dataset_id"], "dataset_id")
    folder_name = out.name
    if dataset_id is None:
        dataset_id = safe_name(name) if name else safe_name(folder_name)
    source = {
        k: v
        for k, v in (
            ("name", _opt_str(kw["source_name"], "source_name")),
            ("url", _opt_str(kw["source_url"], "source_url")),
            ("citation", _opt_str(kw["source_citation"], "source_citation")),
        )
        if v
    }
    return ExportInputs(
        out_dir=out,
        settings=settings,
        n_cells=n_cells,
        embeddings=embeddings,
        latent=latent,
        obs_fields=obs_fields,
        genes=genes,
        connectivity=connectivity,
        vector_files=vector_files,
        vector_fields=vector_infos,
        dataset_id=dataset_id,
        dataset_name=name if name is not None else folder_name,
        dataset_description=_opt_str(kw["dataset_description"], "dataset_description") or "",
        source=source or None,
        created_at=_check_created_at(kw["created_at"]),
        category_colors=_check_colors(kw["category_colors"], obs_fields),
        warnings=messages,
    )
