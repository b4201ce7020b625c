"""A fast look at what an AnnData holds, as far as an export is concerned.

:func:`inspect` never makes a full pass over an expression matrix: shapes,
dtypes and stored-value counts come from metadata, and value hints from a few
hundred leading rows. It works on a backed AnnData (``read_h5ad(path,
backed="r")``) without loading ``X``, and looks at ``obsm`` through ``shape`` and
``dtype`` only (arrays that :func:`~cellucid_nb.adata.open_file.open_h5ad` leaves
in the file are never read).
"""

from __future__ import annotations

import html
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from cellucid_nb.adata.lazy_frames import eager_frames
from cellucid_nb.format.rules import obs_column_kind

__all__ = [
    "DatasetSummary",
    "EmbeddingInfo",
    "ObsColumnInfo",
    "ExpressionSourceInfo",
    "GraphInfo",
    "VectorFieldInfo",
    "inspect",
    "expression_matrix",
    "expression_var",
    "obs_column_kind",
]

#: A categorical column is identifier-like when it has at least this many
#: distinct values and they cover at least ``_ID_SHARE`` of the cells.
_ID_MIN_UNIQUE = 50
_ID_SHARE = 0.5
#: Categories reported per column in the summary (counts cover all of them).
_MAX_LISTED_CATEGORIES = 200
#: Rows read from an expression source to guess what its values are.
_SAMPLE_ROWS = 256
#: Object columns longer than this are first checked for identifiers on a sample.
_OBJECT_SAMPLE = 20_000

_VECTOR_KEY = re.compile(r"^(?!X_)(?P<field>.+?)(?:_(?P<dim>[123])d)?$")
_VECTOR_HINTS = ("velocity", "T_fwd", "T_bwd", "drift", "displacement")
_EMBEDDING_PREFIXES = ("X_umap", "X_tsne", "X_draw_graph", "X_phate", "X_fa", "X_fle", "X_trimap", "X_pacmap")
_LATENT_ORDER = ("X_pca", "X_scvi", "X_scanvi", "X_harmony", "X_pca_harmony", "X_scvi_batch", "X_totalvi")


@dataclass
class EmbeddingInfo:
    """An ``obsm`` array usable as an embedding (1-3 numeric columns) or latent space."""

    key: str
    n_dims: int
    dtype: str
    kind: str  # "umap" | "tsne" | "draw_graph" | "other" | "latent"


@dataclass
class ObsColumnInfo:
    """One ``obs`` column as the exporter will see it."""

    key: str
    kind: str  # "categorical" | "continuous"
    dtype: str
    n_missing: int
    n_categories: int | None = None
    categories: list[str] | None = None  # first _MAX_LISTED_CATEGORIES only
    counts: list[int] | None = None  # aligned with ``categories``
    identifier_like: bool = False
    n_unique: int | None = None
    min: float | None = None
    max: float | None = None
    has_colors: bool = False


@dataclass
class ExpressionSourceInfo:
    """One place expression can come from: ``X``, ``layers/<name>`` or ``raw``."""

    name: str
    n_cells: int
    n_genes: int
    dtype: str
    storage: str  # "dense" | "csr" | "csc" | "other"
    backed: bool
    nnz: int | None
    density: float | None
    value_hint: str  # "counts" | "log-normalized" | "scaled" | "other" | "empty" | "unknown"
    same_genes_as_var: bool = True


@dataclass
class GraphInfo:
    """A square ``obsp`` matrix usable as kNN connectivities."""

    key: str
    nnz: int | None
    mean_neighbors: float | None
    sparse: bool


@dataclass
class VectorFieldInfo:
    """An ``obsm`` array that looks like a per-cell displacement (velocity) field."""

    key: str
    field: str
    n_dims: int
    explicit_dim: bool  # key ends in "_<d>d"


@dataclass
class DatasetSummary:
    """What an AnnData holds, from the exporter's point of view.

    Built by :func:`inspect`. ``to_dict()`` is JSON-safe; in a notebook the
    summary renders as HTML tables.
    """

    n_cells: int
    n_genes: int
    backed: bool
    embeddings: list[EmbeddingInfo] = field(default_factory=list)
    latents: list[EmbeddingInfo] = field(default_factory=list)
    obs: list[ObsColumnInfo] = field(default_factory=list)
    expression: list[ExpressionSourceInfo] = field(default_factory=list)
    gene_id_columns: list[str] = field(default_factory=list)
    var_flags: dict[str, int] = field(default_factory=dict)
    graphs: list[GraphInfo] = field(default_factory=list)
    vector_fields: list[VectorFieldInfo] = field(default_factory=list)
    category_colors: dict[str, int] = field(default_factory=dict)

    def obs_column(self, key: str) -> ObsColumnInfo:
        """Return the info of obs column ``key`` (KeyError if absent)."""
        for col in self.obs:
            if col.key == key:
                return col
        raise KeyError(f"obs column {key!r} not found; available: {[c.key for c in self.obs]}")

    def expression_source(self, name: str) -> ExpressionSourceInfo:
        """Return the info of expression source ``name`` (KeyError if absent)."""
        for src in self.expression:
            if src.name == name:
                return src
        raise KeyError(f"expression source {name!r} not found; available: {[s.name for s in self.expression]}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (plain lists, ints, floats, strings, None)."""
        return _json_safe(asdict(self))

    def _repr_html_(self) -> str:
        parts = [
            f"<div><b>AnnData summary</b>: {self.n_cells:,} cells × {self.n_genes:,} genes"
            f"{' (backed)' if self.backed else ''}</div>"
        ]
        parts.append(_html_table(
            "Embeddings and latent spaces",
            ["key", "dims", "kind", "dtype"],
            [[e.key, e.n_dims, e.kind, e.dtype] for e in self.embeddings + self.latents],
        ))
        parts.append(_html_table(
            "obs columns",
            ["key", "kind", "dtype", "categories", "missing", "note"],
            [
                [
                    c.key, c.kind, c.dtype,
                    "" if c.n_categories is None else c.n_categories,
                    c.n_missing,
                    "identifier-like" if c.identifier_like else ("colours" if c.has_colors else ""),
                ]
                for c in self.obs
            ],
        ))
        parts.append(_html_table(
            "Expression sources",
            ["source", "shape", "storage", "dtype", "density", "values"],
            [
                [
                    s.name, f"{s.n_cells:,} × {s.n_genes:,}", s.storage + (" (backed)" if s.backed else ""),
                    s.dtype, "" if s.density is None else f"{s.density:.1%}", s.value_hint,
                ]
                for s in self.expression
            ],
        ))
        other = [
            ["gene id columns", ", ".join(self.gene_id_columns)],
            ["var flags", ", ".join(f"{k} ({v:,})" for k, v in self.var_flags.items())],
            ["kNN graphs", ", ".join(g.key for g in self.graphs)],
            ["vector fields", ", ".join(f"{v.key} ({v.n_dims}D)" for v in self.vector_fields)],
            ["category colours", ", ".join(self.category_colors)],
        ]
        parts.append(_html_table("Other", ["what", "found"], other))
        return "\n".join(parts)


def _html_table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in rows
    ) or f"<tr><td colspan={len(header)}><i>none</i></td></tr>"
    return f"<details open><summary>{html.escape(title)}</summary><table><tr>{head}</tr>{body}</table></details>"


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if np.isfinite(v) else None
    return value


# --------------------------------------------------------------------------- helpers


def _is_identifier_like(n_unique: int, n_present: int) -> bool:
    return n_unique >= _ID_MIN_UNIQUE and n_unique >= _ID_SHARE * max(n_present, 1)


def _inspect_obs_column(key: str, series: pd.Series, n_cells: int, colors: dict[str, int]) -> ObsColumnInfo:
    kind = obs_column_kind(series)
    info = ObsColumnInfo(key=str(key), kind=kind, dtype=str(series.dtype), n_missing=0)
    info.has_colors = str(key) in colors
    if kind == "continuous":
        values = series.to_numpy()
        if values.dtype.kind == "f":
            finite = np.isfinite(values)
            info.n_missing = int(values.size - np.count_nonzero(finite))
            if info.n_missing < values.size:
                info.min = float(np.min(values, where=finite, initial=np.inf))
                info.max = float(np.max(values, where=finite, initial=-np.inf))
        elif values.size:
            info.min, info.max = float(values.min()), float(values.max())
        return info

    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = [str(c) for c in series.cat.categories]
        codes = series.cat.codes.to_numpy()
    else:
        # Strings/objects: a sample tells barcodes apart before paying for a full factorize.
        if len(series) > _OBJECT_SAMPLE:
            step = len(series) // _OBJECT_SAMPLE
            sample = series.iloc[::step]
            n_sample_unique = int(sample.nunique(dropna=True))
            if _is_identifier_like(n_sample_unique, int(sample.notna().sum())):
                info.identifier_like = True
                info.n_missing = int(series.isna().sum())
                info.n_unique = None
                return info
        codes, uniques = pd.factorize(series, sort=True)
        cats = [str(c) for c in uniques]
    counts = np.bincount(codes[codes >= 0], minlength=len(cats)) if len(cats) else np.zeros(0, np.int64)
    info.n_missing = int(np.count_nonzero(codes < 0))
    info.n_categories = len(cats)
    info.n_unique = int(np.count_nonzero(counts))
    info.identifier_like = _is_identifier_like(info.n_unique, n_cells - info.n_missing)
    info.categories = cats[:_MAX_LISTED_CATEGORIES]
    info.counts = [int(c) for c in counts[:_MAX_LISTED_CATEGORIES]]
    return info


def _numeric_2d_columns(value: Any) -> tuple[int, str] | None:
    """Return (n_columns, dtype) for a numeric 2-D obsm value, else None."""
    if isinstance(value, pd.DataFrame):
        if not all(pd.api.types.is_numeric_dtype(t) for t in value.dtypes):
            return None
        return value.shape[1], str(np.result_type(*value.dtypes)) if value.shape[1] else "float64"
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is None or dtype is None or len(shape) != 2:
        return None
    if np.dtype(dtype).kind not in "fiu":
        return None
    return int(shape[1]), str(np.dtype(dtype))


def _embedding_kind(key: str) -> str:
    low = key.lower()
    for kind in ("umap", "tsne", "draw_graph"):
        if low.startswith(f"x_{kind}"):
            return kind
    return "other"


def _vector_field(key: str, n_dims: int) -> VectorFieldInfo | None:
    if key.startswith("X_"):
        return None
    match = _VECTOR_KEY.match(key)
    if match is None:
        return None
    name = match.group("field")
    looks_vector = name.endswith("_umap") or any(h.lower() in key.lower() for h in _VECTOR_HINTS)
    if not looks_vector:
        return None
    explicit = match.group("dim") is not None
    if explicit and int(match.group("dim")) != n_dims:
        return None
    return VectorFieldInfo(key=key, field=name, n_dims=n_dims, explicit_dim=explicit)


def expression_matrix(adata: Any, source: str) -> Any:
    """Return the matrix behind an expression source name (not loaded if backed).

    Parameters
    ----------
    adata
        An AnnData (in memory or backed).
    source
        ``"X"``, ``"layers/<name>"`` or ``"raw"``.
    """
    if source == "X":
        if adata.X is None:
            raise KeyError("expression_source='X' but adata.X is None; expected a matrix")
        return adata.X
    if source == "raw":
        if adata.raw is None:
            raise KeyError("expression_source='raw' but adata.raw is None; expected a raw AnnData")
        return adata.raw.X
    if source.startswith("layers/"):
        name = source[len("layers/"):]
        if name not in adata.layers:
            raise KeyError(f"expression_source={source!r}: layer {name!r} not in adata.layers {list(adata.layers)}")
        return adata.layers[name]
    raise ValueError(f"expression_source={source!r} is not supported: expected 'X', 'layers/<name>' or 'raw'")


def expression_var(adata: Any, source: str) -> pd.DataFrame:
    """Return the ``var`` table that names the columns of an expression source."""
    return adata.raw.var if source == "raw" else adata.var


def _storage(matrix: Any) -> str:
    if isinstance(matrix, np.ndarray) or _is_h5_dataset(matrix):
        return "dense"
    fmt = getattr(matrix, "format", None) or getattr(matrix, "format_str", None)
    if fmt in ("csr", "csc"):
        return fmt
    if sparse.issparse(matrix):
        return str(matrix.format)
    return "other"


def _is_h5_dataset(obj: Any) -> bool:
    return type(obj).__module__.startswith("h5py")


def _nnz(matrix: Any) -> int | None:
    if sparse.issparse(matrix):
        return int(matrix.nnz)
    group = getattr(matrix, "group", None)  # anndata's backed sparse dataset
    if group is not None and "data" in group:
        return int(group["data"].shape[0])
    return None


def read_rows(matrix: Any, start: int, stop: int) -> Any:
    """Read rows ``start:stop`` of an in-memory or backed matrix (sparse stays sparse)."""
    if sparse.issparse(matrix) and matrix.format not in ("csr", "csc"):
        matrix = matrix.tocsr()
    block = matrix[start:stop]
    if hasattr(block, "compute"):  # a Dask array (lazy AnnData): only these rows are computed
        block = block.compute()
    if not sparse.issparse(block):
        block = np.asarray(block)
    return block


def _centred_per_gene(block: Any) -> bool:
    """Whether sampled rows look like z-scores: per-gene means near 0 next to the spread (median |mean| / sd < 0.5).

    Scaled data (``sc.pp.scale``) is centred per gene; data with a few negative values
    (imputation noise, log ratios) is not.
    """
    if sparse.issparse(block):
        mean = np.asarray(block.mean(axis=0), dtype=np.float64).ravel()
        sq = np.asarray(block.multiply(block).mean(axis=0), dtype=np.float64).ravel()
    else:
        dense = np.where(np.isfinite(block), block, 0.0).astype(np.float64, copy=False)
        mean, sq = dense.mean(axis=0), (dense * dense).mean(axis=0)
    sd = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    varying = sd > 0
    if not varying.any():
        return False
    return bool(np.median(np.abs(mean[varying]) / sd[varying]) < 0.5)


def _value_hint(matrix: Any, n_rows: int) -> str:
    if n_rows == 0:
        return "empty"
    try:
        if _storage(matrix) == "csc" and not sparse.issparse(matrix):
            return "unknown"  # row slices of a backed CSC read every column
        block = read_rows(matrix, 0, min(n_rows, _SAMPLE_ROWS))
    except Exception:  # noqa: BLE001 - a hint must never break inspect()
        return "unknown"
    values = block.data if sparse.issparse(block) else np.asarray(block).ravel()
    values = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if values.size == 0:
        return "empty"
    if values.min() < 0:
        return "scaled" if _centred_per_gene(block) else "other"
    integral = values.dtype.kind in "iu" or bool(np.all(values == np.round(values)))
    if integral:
        return "counts"
    if values.max() < 50:
        return "log-normalized"
    return "other"


def _expression_info(adata: Any, name: str) -> ExpressionSourceInfo:
    matrix = expression_matrix(adata, name)
    n, g = (int(s) for s in matrix.shape)
    nnz = _nnz(matrix)
    storage = _storage(matrix)
    backed = not (isinstance(matrix, np.ndarray) or sparse.issparse(matrix))
    same = True
    if name == "raw":
        same = bool(adata.raw.var_names.equals(adata.var_names))
    return ExpressionSourceInfo(
        name=name,
        n_cells=n,
        n_genes=g,
        dtype=str(np.dtype(matrix.dtype)),
        storage=storage,
        backed=backed,
        nnz=nnz,
        density=None if nnz is None or n * g == 0 else nnz / (n * g),
        value_hint=_value_hint(matrix, n),
        same_genes_as_var=same,
    )


def _graph_info(key: str, matrix: Any, n_cells: int) -> GraphInfo | None:
    shape = getattr(matrix, "shape", None)
    if shape is None or tuple(shape) != (n_cells, n_cells):
        return None
    nnz = _nnz(matrix)
    is_sparse = nnz is not None
    return GraphInfo(
        key=key,
        nnz=nnz,
        mean_neighbors=None if nnz is None or n_cells == 0 else nnz / n_cells,
        sparse=is_sparse,
    )


def _gene_id_columns(var: pd.DataFrame) -> list[str]:
    columns = ["index"]
    for name in var.columns:
        col = var[name]
        dtype = col.dtype
        is_text = isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
        if is_text and col.notna().all() and col.is_unique:
            columns.append(str(name))
    return columns


def _var_flags(var: pd.DataFrame) -> dict[str, int]:
    return {str(name): int(var[name].sum()) for name in var.columns if pd.api.types.is_bool_dtype(var[name].dtype)}


def _category_colors(adata: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for key in adata.uns.keys():
        if isinstance(key, str) and key.endswith("_colors") and key[: -len("_colors")] in adata.obs.columns:
            value = adata.uns[key]
            try:
                found[key[: -len("_colors")]] = len(value)
            except TypeError:
                continue
    return found


# --------------------------------------------------------------------------- main


def inspect(adata: Any) -> DatasetSummary:
    """Summarise what an AnnData can export, without touching the expression values.

    Parameters
    ----------
    adata
        An :class:`anndata.AnnData`, in memory or backed (``backed="r"``).

    Returns
    -------
    DatasetSummary
        Embedding and latent candidates (``obsm``), obs columns (kind, categories
        and counts, missing values, identifier-like flag), expression sources
        (``X``, each layer, ``raw``) with shape, storage, density and a value hint
        from the first few hundred rows, gene id columns and boolean flags of
        ``var``, kNN graphs (``obsp``), vector fields (``obsm``) and category
        colours (``uns["<key>_colors"]``).
    """
    adata = eager_frames(adata)  # read_lazy's obs/var as pandas (adata/lazy_frames.py)
    n_cells, n_genes = int(adata.n_obs), int(adata.n_vars)
    summary = DatasetSummary(n_cells=n_cells, n_genes=n_genes, backed=bool(getattr(adata, "isbacked", False)))
    summary.category_colors = _category_colors(adata)

    for key in adata.obsm.keys():
        value = adata.obsm[key]
        cols = _numeric_2d_columns(value)
        if cols is None:
            continue
        n_dims, dtype = cols
        key = str(key)
        vector = _vector_field(key, n_dims) if 1 <= n_dims <= 3 else None
        if vector is not None:
            summary.vector_fields.append(vector)
        elif 1 <= n_dims <= 3:
            summary.embeddings.append(EmbeddingInfo(key, n_dims, dtype, _embedding_kind(key)))
            if n_dims >= 2 and _embedding_kind(key) == "other" and not key.startswith(_EMBEDDING_PREFIXES):
                # A low-dimensional array that is not a known embedding may also be a latent space.
                summary.latents.append(EmbeddingInfo(key, n_dims, dtype, "latent"))
        else:
            summary.latents.append(EmbeddingInfo(key, n_dims, dtype, "latent"))
    summary.embeddings.sort(key=_embedding_rank)
    summary.latents.sort(key=lambda e: (_LATENT_ORDER.index(e.key) if e.key in _LATENT_ORDER else len(_LATENT_ORDER), e.key))

    for key in adata.obs.columns:
        summary.obs.append(_inspect_obs_column(key, adata.obs[key], n_cells, summary.category_colors))

    sources = []
    if adata.X is not None:
        sources.append("X")
    sources += [f"layers/{name}" for name in adata.layers.keys()]
    if adata.raw is not None:
        sources.append("raw")
    summary.expression = [_expression_info(adata, name) for name in sources]

    summary.gene_id_columns = _gene_id_columns(adata.var)
    summary.var_flags = _var_flags(adata.var)

    for key in adata.obsp.keys():
        info = _graph_info(str(key), adata.obsp[key], n_cells)
        if info is not None:
            summary.graphs.append(info)
    summary.graphs.sort(key=lambda g: (g.key != "connectivities", g.key))
    return summary


def _embedding_rank(e: EmbeddingInfo) -> tuple[int, str]:
    order = {"umap": 0, "tsne": 1, "draw_graph": 2, "other": 3}
    return order[e.kind], e.key
