"""The gene-choice rules: the one place the wizard, the CLI and ``ExportPlan`` get them from.

Modes (:data:`GENE_MODES`), resolved by :func:`choose_genes`:

- ``"list"``: the ids given, in order, duplicates dropped. Every id must be known:
  unknown ids are refused (:class:`UnknownGenesError`, with a "did you mean"
  suggestion per id), never skipped;
- ``"hvg"``: the genes flagged in ``var["highly_variable"]`` (var order);
- ``"top"``: the ``n`` genes ranked by :data:`DEFAULT_TOP_BY` (``"variance"``;
  ``"mean"`` on request) over the chosen expression source, best first;
- ``"all"``: every gene of the source (``ExportPlan.genes = None``);
- ``"none"``: no genes (``ExportPlan.expression_source = None``).

The default expression source (:func:`default_expression_source`) prefers
log-normalised values (``X`` when it holds them, else ``raw``, else a log layer)
over scaled ones (z-scores), judged on a few leading rows by
:func:`~cellucid_nb.adata.inspection.inspect`.

Every helper returns gene identifiers as strings (from ``var.index`` or a ``var``
column), ready for ``ExportPlan.genes``. Statistics are vectorised over row
blocks of the expression matrix (in memory or backed) and never densify it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from cellucid_nb.adata.inspection import DatasetSummary, expression_matrix, expression_var, read_rows
from cellucid_nb.format.suggest import closest

__all__ = [
    "GENE_MODES",
    "TOP_BY",
    "DEFAULT_TOP_BY",
    "DEFAULT_TOP_N",
    "UnknownGenesError",
    "choose_genes",
    "check_known",
    "parse_gene_spec",
    "default_expression_source",
    "expression_source_note",
    "gene_ids",
    "genes_by_list",
    "highly_variable",
    "top_genes",
    "all_genes",
    "column_stats",
]

#: The gene choices every front end offers.
GENE_MODES = ("list", "hvg", "top", "all", "none")
#: Rankings of ``"top"``; the first is the default everywhere (wizard, CLI, Python).
TOP_BY = ("variance", "mean")
DEFAULT_TOP_BY = TOP_BY[0]
DEFAULT_TOP_N = 100
#: Unknown ids listed (with suggestions) in an error message.
_LISTED_UNKNOWN = 10
#: Layer names that hold log-normalised values by convention (lower-case).
_LOG_LAYERS = ("log1p", "lognorm", "log_norm", "logcounts", "log_counts", "lognormalized", "log_normalized")

#: Rows per block when scanning a matrix (bounded memory for backed and dense data).
_ROW_BLOCK = 50_000


def gene_ids(adata: Any, source: str = "X", id_column: str = "index") -> pd.Index:
    """Return the gene identifiers of an expression source as a string Index.

    Parameters
    ----------
    adata
        AnnData (in memory or backed).
    source
        ``"X"``, ``"layers/<name>"`` or ``"raw"`` (``raw`` has its own ``var``).
    id_column
        ``"index"`` for ``var.index`` or a column of ``var``.
    """
    var = expression_var(adata, source)
    if id_column == "index":
        return pd.Index(var.index.astype(str))
    if id_column not in var.columns:
        raise KeyError(
            f"var_gene_id_column={id_column!r} is not a column of the {source!r} var; "
            f"expected 'index' or one of {list(var.columns)}"
        )
    return pd.Index(var[id_column].astype(str))


def genes_by_list(
    adata: Any, ids: Iterable[object], source: str = "X", id_column: str = "index"
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split a requested gene list into known and unknown identifiers.

    Parameters
    ----------
    adata
        AnnData.
    ids
        Requested identifiers, in the order wanted; duplicates are dropped.
    source, id_column
        As in :func:`gene_ids`.

    Returns
    -------
    (found, unknown)
        Both in request order.
    """
    known = set(gene_ids(adata, source, id_column))
    found: list[str] = []
    unknown: list[str] = []
    seen: set[str] = set()
    for gene in ids:
        gene = str(gene)
        if gene in seen:
            continue
        seen.add(gene)
        (found if gene in known else unknown).append(gene)
    return tuple(found), tuple(unknown)


def highly_variable(
    adata: Any, source: str = "X", id_column: str = "index", flag: str = "highly_variable"
) -> tuple[str, ...]:
    """Return the genes flagged in ``adata.var[flag]`` (var order), as ids of ``source``.

    For ``source="raw"`` the flag is read from ``adata.var`` and kept to the
    genes that ``raw`` also holds.

    Parameters
    ----------
    adata
        AnnData.
    source, id_column
        As in :func:`gene_ids`.
    flag
        Boolean ``var`` column.
    """
    if flag not in adata.var.columns:
        raise KeyError(f"var has no column {flag!r}; expected a boolean flag column, var has {list(adata.var.columns)}")
    mask = adata.var[flag].fillna(False).to_numpy().astype(bool)
    if source == "raw":
        var_ids = gene_ids_of_var(adata.var, id_column)[mask]
        raw_ids = gene_ids(adata, "raw", id_column)
        return tuple(var_ids[var_ids.isin(raw_ids)])
    return tuple(gene_ids(adata, source, id_column)[mask])


def gene_ids_of_var(var: pd.DataFrame, id_column: str) -> pd.Index:
    """Return identifiers of a ``var`` table (``"index"`` or a column) as strings."""
    return pd.Index((var.index if id_column == "index" else var[id_column]).astype(str))


def all_genes(adata: Any, source: str = "X", id_column: str = "index") -> tuple[str, ...]:
    """Return every gene id of ``source`` in matrix order."""
    return tuple(gene_ids(adata, source, id_column))


def column_stats(matrix: Any, row_block: int = _ROW_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Column means and variances over all rows, reading ``row_block`` rows at a time.

    Non-finite values count as 0. Sparse blocks are reduced with ``np.bincount``
    over their stored values (no densifying).

    Parameters
    ----------
    matrix
        Dense array, scipy sparse matrix/array, h5py dataset or anndata backed
        sparse dataset, shape (n_cells, n_genes).
    row_block
        Rows per block.

    Returns
    -------
    (mean, variance)
        float64 arrays of length n_genes (population variance).
    """
    n, g = (int(s) for s in matrix.shape)
    total = np.zeros(g, dtype=np.float64)
    total_sq = np.zeros(g, dtype=np.float64)
    if sparse.issparse(matrix) and matrix.format == "csc":
        # CSC in memory: per-column sums straight from the stored values.
        data = np.where(np.isfinite(matrix.data), matrix.data, 0).astype(np.float64, copy=False)
        counts = np.diff(matrix.indptr)
        cols = np.repeat(np.arange(g), counts)
        # float64 already (weighted counts); astype without a copy tells the numpy stubs so
        total = np.bincount(cols, weights=data, minlength=g).astype(np.float64, copy=False)
        total_sq = np.bincount(cols, weights=data * data, minlength=g).astype(np.float64, copy=False)
    else:
        for start in range(0, n, row_block):
            block = read_rows(matrix, start, min(n, start + row_block))
            if sparse.issparse(block):
                block = block.tocsr() if block.format != "csr" else block
                data = block.data.astype(np.float64)
                data[~np.isfinite(data)] = 0
                total += np.bincount(block.indices, weights=data, minlength=g)
                total_sq += np.bincount(block.indices, weights=data * data, minlength=g)
            else:
                values = np.asarray(block, dtype=np.float64)
                values = np.where(np.isfinite(values), values, 0.0)
                total += values.sum(axis=0)
                total_sq += np.einsum("ij,ij->j", values, values)
    mean = total / max(n, 1)
    variance = np.maximum(total_sq / max(n, 1) - mean * mean, 0.0)
    return mean, variance


def top_genes(
    adata: Any, n: int, by: str = DEFAULT_TOP_BY, source: str = "X", id_column: str = "index"
) -> tuple[str, ...]:
    """Return the ``n`` genes with the highest variance (default) or mean, best first.

    Parameters
    ----------
    adata
        AnnData (in memory or backed; backed matrices are read in row blocks).
    n
        Number of genes (capped at the number available).
    by
        ``"variance"`` (default) or ``"mean"``.
    source, id_column
        As in :func:`gene_ids`.
    """
    if by not in TOP_BY:
        raise ValueError(f"top_genes(by={by!r}) is not supported: expected one of {TOP_BY}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"top_genes(n={n!r}): expected a non-negative integer")
    ids = gene_ids(adata, source, id_column)
    mean, variance = column_stats(expression_matrix(adata, source))
    score = mean if by == "mean" else variance
    # Stable sort on -score: ties keep var order, so results are reproducible.
    order = np.argsort(-score, kind="stable")[: int(n)]
    return tuple(ids[order])


# ----------------------------------------------------------------------------- the rules


class UnknownGenesError(ValueError):
    """Requested gene ids that the expression source does not hold (nothing was changed).

    Attributes
    ----------
    unknown
        Every unknown id, in request order.
    suggestions
        ``{unknown id: closest known id}`` for the listed ids that have one.
    """

    def __init__(self, unknown: tuple[str, ...], suggestions: dict[str, str], source: str, id_column: str) -> None:
        self.unknown = unknown
        self.suggestions = suggestions
        self.source = source
        self.id_column = id_column
        listed = ", ".join(
            f"{u!r}" + (f" (did you mean {suggestions[u]!r}?)" if u in suggestions else "")
            for u in unknown[:_LISTED_UNKNOWN]
        )
        more = f" and {len(unknown) - _LISTED_UNKNOWN} more" if len(unknown) > _LISTED_UNKNOWN else ""
        column = "var index" if id_column == "index" else f"var column {id_column!r}"
        super().__init__(
            f"unknown gene id(s): {len(unknown)} of the genes asked for are not in the {source!r} "
            f"expression source ({column}): {listed}{more}. Expected ids as the {column} spells them; "
            "nothing was changed."
        )


def check_known(adata: Any, ids: Iterable[object], source: str = "X", id_column: str = "index") -> tuple[str, ...]:
    """Return ``ids`` as strings (request order, duplicates dropped) if every one is known.

    Parameters
    ----------
    adata
        AnnData.
    ids
        Requested gene ids.
    source, id_column
        As in :func:`gene_ids`.

    Raises
    ------
    UnknownGenesError
        Naming each unknown id with the closest known one (case-insensitive
        match, then prefix, then spelling).
    """
    found, unknown = genes_by_list(adata, ids, source, id_column)
    if unknown:
        known = list(gene_ids(adata, source, id_column))
        lowered = [k.lower() for k in known]
        suggestions = {}
        for u in unknown[:_LISTED_UNKNOWN]:
            match = closest(u, known, lowered)
            if match is not None:
                suggestions[u] = match
        raise UnknownGenesError(unknown, suggestions, source, id_column)
    return found


def choose_genes(
    adata: Any,
    mode: str,
    *,
    ids: Iterable[object] | None = None,
    n: int = DEFAULT_TOP_N,
    by: str = DEFAULT_TOP_BY,
    source: str = "X",
    id_column: str = "index",
) -> tuple[str, ...] | None:
    """Resolve one gene choice (see the module docstring for the rules).

    Parameters
    ----------
    adata
        AnnData (in memory or backed).
    mode
        One of :data:`GENE_MODES`.
    ids
        The ids of ``"list"`` (blank items ignored).
    n, by
        Size and ranking of ``"top"``.
    source, id_column
        As in :func:`gene_ids`.

    Returns
    -------
    tuple of str or None
        The gene ids; ``None`` for ``"all"``; ``()`` for ``"none"``.

    Raises
    ------
    UnknownGenesError
        ``"list"`` with an id the source does not hold.
    ValueError
        An unknown mode, an empty list, ``"hvg"`` without flagged genes, a bad ``n``/``by``.
    KeyError
        ``"hvg"`` without a ``var["highly_variable"]`` column.
    """
    if mode == "list":
        wanted = [str(g).strip() for g in (ids or [])]
        wanted = [g for g in wanted if g]
        if not wanted:
            raise ValueError("gene list is empty: expected at least one gene id (or the 'none' choice for no genes)")
        return check_known(adata, wanted, source, id_column)
    if mode == "hvg":
        genes = highly_variable(adata, source=source, id_column=id_column)
        if not genes:
            raise ValueError(
                f"var['highly_variable'] flags no gene of the {source!r} expression source: "
                "expected at least one flagged gene; pick 'top' or a list instead"
            )
        return genes
    if mode == "top":
        return top_genes(adata, n, by=by, source=source, id_column=id_column)
    if mode == "all":
        return None
    if mode == "none":
        return ()
    raise ValueError(f"gene choice {mode!r} is not known: expected one of {GENE_MODES}")


def parse_gene_spec(spec: str) -> dict[str, Any]:
    """Parse the CLI's ``--genes`` text into :func:`choose_genes` arguments.

    ``"hvg"``, ``"all"``, ``"none"``, ``"top:N"`` (ranked by :data:`DEFAULT_TOP_BY`),
    ``"top:N:mean"`` / ``"top:N:variance"``, else a comma-separated list of ids.

    Returns
    -------
    dict
        ``{"mode": ..., ...}`` (``ids`` for a list, ``n`` and ``by`` for top).

    Raises
    ------
    ValueError
        A malformed ``top:`` spec.
    """
    text = spec.strip()
    low = text.lower()
    if low in ("hvg", "all", "none"):
        return {"mode": low}
    if low.startswith("top:"):
        parts = low.split(":")
        if len(parts) not in (2, 3) or not parts[1].isdigit() or (len(parts) == 3 and parts[2] not in TOP_BY):
            raise ValueError(
                f"genes {spec!r}: expected top:N or top:N:<ranking> with a whole number N and a ranking in {TOP_BY}"
            )
        return {"mode": "top", "n": int(parts[1]), "by": parts[2] if len(parts) == 3 else DEFAULT_TOP_BY}
    return {"mode": "list", "ids": [g.strip() for g in text.split(",") if g.strip()]}


def _source_rank(info: Any) -> tuple[int, str]:
    """Sort key of a source for the default: log-normalised first (X, raw, log layers), scaled last."""
    name = info.name
    log_layer = name.startswith("layers/") and name[len("layers/"):].lower() in _LOG_LAYERS
    if info.value_hint == "log-normalized":
        return (0 if name == "X" else 1 if name == "raw" else 2 if log_layer else 3, name)
    if log_layer and info.value_hint not in ("scaled", "empty"):
        return (4, name)
    order = {"counts": 5, "other": 6, "unknown": 7, "scaled": 8, "empty": 9}
    return (order.get(info.value_hint, 7), "" if name == "X" else name)


def default_expression_source(summary: DatasetSummary) -> str | None:
    """The expression source an export uses unless told otherwise, or ``None`` when there is none.

    Log-normalised values first (``X``, then ``raw``, then a layer such as
    ``layers/log1p``), then counts, and scaled values (z-scores: negative values
    in the sampled rows) last, as they colour poorly. Ties keep ``X`` first.
    """
    if not summary.expression:
        return None
    return min(summary.expression, key=_source_rank).name


_HINT_WORDS = {
    "log-normalized": "log-normalised values",
    "counts": "raw counts (whole numbers)",
    "scaled": "scaled values (z-scores, centred per gene)",
    "other": "values that are neither counts nor log-normalised",
    "empty": "no values",
    "unknown": "values that could not be sampled",
}


def expression_source_note(summary: DatasetSummary, source: str | None) -> str:
    """One sentence saying which expression source genes come from, and why (shown by the wizard).

    Parameters
    ----------
    summary
        :func:`~cellucid_nb.adata.inspection.inspect` result.
    source
        The plan's ``expression_source`` (``None``: no genes).
    """
    if source is None:
        return "No genes are exported (choose an expression source to add some)."
    infos = {e.name: e for e in summary.expression}
    info = infos.get(source)
    what = _HINT_WORDS.get(info.value_hint, "values") if info is not None else "values"
    best = default_expression_source(summary)
    if source == best:
        others = [f"{name} holds {_HINT_WORDS.get(e.value_hint, 'values')}" for name, e in infos.items() if name != source]
        why = "".join(f"; {o}" for o in others)
        return f"Genes come from {source}: it holds {what}, the best for colouring cells{why}."
    best_info = infos.get(best) if best is not None else None
    better = (
        f" {best} holds {_HINT_WORDS.get(best_info.value_hint, 'values')}, which colour cells better."
        if best_info is not None and _source_rank(best_info) < _source_rank(info) else ""
    ) if info is not None else ""
    return f"Genes come from {source}, as chosen: it holds {what}.{better}"
