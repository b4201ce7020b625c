"""``estimate(adata, plan)``: export sizes, file count and time, before writing anything.

How it works: the exporter's own writers (points, obs, genes, graph, vectors,
identity) run on a *sample* of the data with a recording runner that encodes
and compresses every payload in memory (same codecs, same gzip strategy
choice) but writes nothing. The sample is

- every cell when ``n_cells <= FULL_ROWS``, else ``ROW_SEGMENTS`` contiguous
  runs of cells spread over the dataset (contiguous, so run lengths and sort
  order, which drive gzip, are kept);
- every chosen gene when there are at most ``FULL_GENES``, else
  ``SAMPLED_GENES`` genes picked at evenly spaced quantiles of their density.

Then the result is scaled: uncompressed payload sizes are exact (cells x
bytes per value), compressed sizes scale with ``n_cells / sample_cells``, and
the compressed size of each unsampled gene is interpolated from the sampled
genes by density. Manifests and the sidecar are rebuilt with the exporter's
structures (exact when every cell is sampled). With every cell and every gene
sampled (small data such as pbmc68k_reduced) the estimate is exact, also
compressed.
"""

from __future__ import annotations

import html
import inspect as pyinspect
import json
import re
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from cellucid_nb.format import codecs
from cellucid_nb.format.naming import safe_name
from cellucid_nb.genes_select import gene_ids
from cellucid_nb.inspect import expression_matrix, expression_var, inspect
from cellucid_nb.plan import ExportPlan

__all__ = ["SizeEstimate", "estimate", "FULL_ROWS", "FULL_GENES"]

#: Datasets with at most this many cells are sampled whole.
FULL_ROWS = 50_000
#: Contiguous runs of cells and cells per run when sampling.
ROW_SEGMENTS = 16
SEGMENT_ROWS = 1024
#: All genes are sampled while genes x sampled cells stays under this; else SAMPLED_GENES.
FULL_GENE_VALUES = 2_000_000
FULL_GENES = 2_000
SAMPLED_GENES = 48
#: gzip header + trailer bytes (fixed per file).
_GZIP_OVERHEAD = 18
#: Seconds to create one file (measured by the lead: ~0.3 ms).
_FILE_SECONDS = 3e-4
#: Warn above these.
WARN_FILES = 10_000
WARN_BYTES = 10**9
WARN_CATEGORIES = 1_000


@dataclass
class SizeEstimate:
    """Sizes of an export before it is written.

    Attributes
    ----------
    parts
        ``{part, name, bytes, files, exact}`` per item; ``part`` is one of
        ``"points" "obs" "genes" "graph" "vectors" "manifests"``.
    total_bytes, n_files
        Whole export (sidecar included).
    seconds
        Expected export time on this machine.
    warnings
        Advice for beginners.
    bytes_per_gene
        Average bytes of one gene file (budget genes with it).
    n_genes
        Genes in the plan.
    exact
        Whether every number is exact (no sampling was needed).
    """

    parts: list[dict[str, Any]] = field(default_factory=list)
    total_bytes: int = 0
    n_files: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    bytes_per_gene: float = 0.0
    n_genes: int = 0
    exact: bool = False
    sample_cells: int = 0
    sample_genes: int = 0

    def bytes_by_part(self) -> dict[str, int]:
        """Total bytes per part kind."""
        out: dict[str, int] = {}
        for p in self.parts:
            out[p["part"]] = out.get(p["part"], 0) + int(p["bytes"])
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        d = asdict(self)
        d["by_part"] = self.bytes_by_part()
        return d

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(p['part'])}</td><td>{html.escape(str(p['name']))}</td>"
            f"<td style='text-align:right'>{_human(p['bytes'])}</td><td style='text-align:right'>{p['files']:,}</td>"
            f"<td>{'' if p['exact'] else '≈'}</td></tr>"
            for p in self.parts
        )
        warn = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
        return (
            f"<div><b>Export estimate</b>: {'' if self.exact else '≈ '}{_human(self.total_bytes)} in "
            f"{self.n_files:,} files, about {self.seconds:.1f} s</div>"
            + (f"<ul>{warn}</ul>" if warn else "")
            + "<details><summary>parts</summary><table><tr><th>part</th><th>name</th><th>size</th>"
            f"<th>files</th><th></th></tr>{rows}</table></details>"
        )


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} B"


# ----------------------------------------------------------------------------- recording runner


class _Reporter:
    def poll(self, force: bool = False) -> None:
        pass

    def advance(self, items: int = 0, n_bytes: int = 0) -> None:
        pass


class _RecordingRunner:
    """Stands in for ``ExportRunner``: encodes and compresses in memory, writes nothing."""

    def __init__(self, compression: int | None) -> None:
        self.compression = compression
        self.suffix = codecs.payload_suffix(compression)
        self.reporter = _Reporter()
        self.files: dict[str, tuple[int, int, float]] = {}  # rel -> (raw bytes, stored bytes, density)
        self.json_docs: dict[str, Any] = {}
        self.seconds = 0.0

    def mkdir(self, rel: str) -> None:
        pass

    def check(self) -> None:
        pass

    def cancelled(self) -> bool:
        return False

    def submit(self, fn: Any, *args: Any) -> None:
        fn(*args)

    def drain(self) -> None:
        pass

    def payload_name(self, rel: str) -> str:
        return rel + self.suffix

    def store(self, rel: str, data: np.ndarray | bytes, *, rle: bool = False, items: int = 0) -> None:
        raw = memoryview(np.ascontiguousarray(data)).cast("B") if isinstance(data, np.ndarray) else memoryview(data)
        start = time.perf_counter()
        stored = len(codecs.gzip_bytes(raw, self.compression, rle=rle)) if self.compression else raw.nbytes
        self.seconds += time.perf_counter() - start
        density = 1.0
        if isinstance(data, np.ndarray) and data.size:
            # Share of values other than the most common one (gene files: ~ stored density).
            if data.dtype.itemsize <= 2 and data.dtype.kind == "u":
                density = 1.0 - np.bincount(data.ravel()).max() / data.size
            else:
                density = np.count_nonzero(data) / data.size
        self.files[rel] = (raw.nbytes, stored, float(density))

    def write_array(self, rel: str, data: np.ndarray, *, rle: bool = False, items: int = 1) -> str:
        name = self.payload_name(rel)
        self.store(name, data, rle=rle, items=items)
        return name

    def write_json(self, rel: str, obj: Any, *, indent: int | None = None, items: int = 1) -> None:
        self.json_docs[rel] = (obj, indent)


def _json_len(obj: Any, indent: int | None = None) -> int:
    return len(json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False).encode("utf-8"))


# ----------------------------------------------------------------------------- sampling


def _row_sample(n: int) -> np.ndarray:
    if n <= FULL_ROWS:
        return np.arange(n, dtype=np.int64)
    length = max(1, min(SEGMENT_ROWS, n // (2 * ROW_SEGMENTS)))  # at most half of the cells
    starts = np.linspace(0, n - length, ROW_SEGMENTS).astype(np.int64)
    return (starts[:, None] + np.arange(length)[None, :]).ravel()


def _segments(rows: np.ndarray) -> list[tuple[int, int]]:
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    bounds = np.concatenate([[0], breaks, [rows.shape[0]]])
    return [(int(rows[a]), int(rows[b - 1]) + 1) for a, b in zip(bounds[:-1], bounds[1:])]


def _sample_density(matrix: Any, rows: np.ndarray, n_genes: int) -> tuple[np.ndarray, Any]:
    """Stored-value density per gene over the sampled rows, and the sampled rows themselves.

    In-memory CSR is read through views of ``indices`` (no copy of the rows).
    """
    segs = _segments(rows)
    if sparse.issparse(matrix) and matrix.format == "csr":
        counts = np.zeros(n_genes, dtype=np.int64)
        for a, b in segs:
            lo, hi = matrix.indptr[a], matrix.indptr[b]
            counts += np.bincount(matrix.indices[lo:hi], minlength=n_genes)
        return counts / max(rows.shape[0], 1), None
    pieces = []
    for a, b in segs:
        block = matrix[a:b]
        pieces.append(sparse.csr_matrix(block) if sparse.issparse(block) else np.asarray(block))
    block = sparse.vstack(pieces, format="csr") if sparse.issparse(pieces[0]) else np.concatenate(pieces)
    if sparse.issparse(block):
        counts = np.bincount(block.indices, minlength=n_genes)
    else:
        counts = np.count_nonzero(block, axis=0)
    return counts / max(rows.shape[0], 1), block


def _sample_columns(matrix: Any, rows: np.ndarray, cols: np.ndarray, rows_block: Any) -> Any:
    """``matrix[rows][:, cols]`` as CSR (sparse source) or dense float32, read cheaply."""
    if rows_block is not None:
        sub = rows_block[:, cols]
        return sparse.csr_matrix(sub) if sparse.issparse(sub) else np.asarray(sub, dtype=np.float32)
    # In-memory CSR: gather the sampled rows' entries of the sampled columns through index views.
    col_map = np.full(matrix.shape[1], -1, dtype=np.int64)
    col_map[cols] = np.arange(cols.shape[0])
    data_parts, col_parts, row_parts = [], [], []
    offset = 0
    for a, b in _segments(rows):
        lo, hi = matrix.indptr[a], matrix.indptr[b]
        mapped = col_map[matrix.indices[lo:hi]]
        keep = mapped >= 0
        local_rows = np.repeat(np.arange(b - a), np.diff(matrix.indptr[a : b + 1]))
        data_parts.append(matrix.data[lo:hi][keep])
        col_parts.append(mapped[keep])
        row_parts.append(local_rows[keep] + offset)
        offset += b - a
    return sparse.csr_matrix(
        (np.concatenate(data_parts), (np.concatenate(row_parts), np.concatenate(col_parts))),
        shape=(rows.shape[0], cols.shape[0]),
        dtype=np.float32,
    )


def _pick_genes(density: np.ndarray, k: int) -> np.ndarray:
    """Positions of ``k`` genes at evenly spaced quantiles of density (extremes included)."""
    order = np.argsort(density, kind="stable")
    picks = np.unique(np.round(np.linspace(0, density.shape[0] - 1, k)).astype(np.int64))
    return np.sort(order[picks])


# ----------------------------------------------------------------------------- main


def _prepare_defaults() -> dict[str, Any]:
    from cellucid_nb.export.prepare import prepare

    return {
        name: p.default
        for name, p in pyinspect.signature(prepare).parameters.items()
        if p.default is not pyinspect.Parameter.empty
    }


def _subset_rows(kw: dict[str, Any], rows: np.ndarray, n: int) -> None:
    if rows.shape[0] == n:
        return
    kw["latent_space"] = np.asarray(kw["latent_space"][rows]) if not sparse.issparse(kw["latent_space"]) else kw["latent_space"][rows]
    kw["obs"] = kw["obs"].iloc[rows]
    for dim in (1, 2, 3):
        key = f"X_umap_{dim}d"
        if kw.get(key) is not None:
            kw[key] = np.asarray(kw[key])[rows]
    if kw.get("vector_fields"):
        kw["vector_fields"] = {f: np.asarray(v)[rows] for f, v in kw["vector_fields"].items()}
    kw["connectivities"] = None


def _graph_estimate(matrix: Any, rows: np.ndarray, n: int, compression: int | None) -> tuple[int, int, bool]:
    """(bytes, n_edges, exact) of the three edge files, from sampled rows of a symmetric kNN matrix."""
    from cellucid_nb.export.graph import index_dtype_for

    a = sparse.csr_matrix(matrix)
    diag = int(np.count_nonzero(a.diagonal()))
    n_edges = (int(a.nnz) - diag) // 2  # scanpy's connectivities are symmetric
    idx = index_dtype_for(n).itemsize
    raw = n_edges * (2 * idx + 8)
    if not compression or n_edges == 0:
        return raw, n_edges, False
    sub = a[rows]
    r = np.repeat(rows, np.diff(sub.indptr))
    c = sub.indices.astype(np.int64)
    keep = c > r
    order = np.lexsort((c[keep], r[keep]))
    src, dst, w = r[keep][order], c[keep][order], sub.data[keep][order].astype("<f8") * 2
    m = max(src.shape[0], 1)
    dt = index_dtype_for(n)
    stored = 0.0
    for payload in (src.astype(dt), dst.astype(dt), w):
        size = len(codecs.gzip_bytes(payload, compression)) - _GZIP_OVERHEAD
        stored += size * n_edges / m + _GZIP_OVERHEAD
    return int(round(stored)), n_edges, False


def estimate(adata: Any, plan: ExportPlan | None = None, *, out_dir: str | Path | None = None,
             created_at: str | None = None) -> SizeEstimate:
    """Estimate the size, file count and duration of ``export(adata, plan)`` without writing.

    See the module docstring for the method. Uncompressed sizes are exact;
    compressed sizes are exact when every cell and gene fits the sample,
    otherwise extrapolated from it (within a few percent on the benchmark data).

    The expected time is calibrated on this machine while estimating: the
    sample's measured encode + gzip time, scaled by the ratio of full to sampled
    bytes, divided by the exporter's worker threads, plus ~0.3 ms per file.

    Parameters
    ----------
    adata
        AnnData (in memory or backed; a backed matrix is read only in the sampled rows).
    plan
        Default ``ExportPlan.from_anndata(adata)``.
    out_dir
        Export folder (its name becomes the default dataset name, as in the export).
    created_at
        As in :func:`export` (only affects nothing but symmetry of arguments).

    Returns
    -------
    SizeEstimate
    """
    from cellucid_nb.export.from_anndata import prepare_kwargs
    from cellucid_nb.export.genes import block_ranges
    from cellucid_nb.export.expression import iter_column_blocks
    from cellucid_nb.export.graph import write_graph
    from cellucid_nb.export.identity import build_identity
    from cellucid_nb.export.inputs import validate_inputs
    from cellucid_nb.export.obs import write_obs
    from cellucid_nb.export.points import write_points
    from cellucid_nb.export.prepare import _version
    from cellucid_nb.export.runner import library_versions, settings_fingerprint
    from cellucid_nb.export.vectors import write_vectors
    from cellucid_nb.format.spec import IDENTITY_FILE, SIDECAR_FILE

    summary = None
    if plan is None:
        summary = inspect(adata)
        plan = ExportPlan.from_anndata(adata, summary)
    plan.check(adata)
    n = int(adata.n_obs)
    rows = _row_sample(n)
    m = int(rows.shape[0])
    rows_all = m == n

    # Genes: choose the sample by density over the sampled rows.
    gene_cols = gene_names = sampled = None
    density = None
    source_matrix = None
    n_genes = 0
    if plan.expression_source is not None:
        source_matrix = expression_matrix(adata, plan.expression_source)
        ids = gene_ids(adata, plan.expression_source, plan.var_gene_id_column)
        if plan.genes is None:
            gene_cols = np.arange(len(ids), dtype=np.int64)
        else:
            gene_cols = ids.get_indexer(pd.Index(plan.genes, dtype=object)).astype(np.int64)
        gene_names = list(ids[gene_cols])
        n_genes = len(gene_names)
    genes_all = n_genes <= FULL_GENES and n_genes * m <= FULL_GENE_VALUES
    sub_matrix = None
    if n_genes:
        if genes_all:
            sampled = np.arange(n_genes)
        if rows_all and genes_all and (sparse.issparse(source_matrix) or isinstance(source_matrix, np.ndarray)):
            sub_matrix = source_matrix  # exact: the exporter reads it itself
        else:
            dens_all, rows_block = _sample_density(source_matrix, rows, int(source_matrix.shape[1]))
            density = dens_all[gene_cols]
            if sampled is None:
                sampled = _pick_genes(density, SAMPLED_GENES)
            sub_matrix = _sample_columns(source_matrix, rows, gene_cols[sampled], rows_block)

    kw = _prepare_defaults()
    if sub_matrix is source_matrix:
        kw.update(prepare_kwargs(adata, plan))
    else:
        var = expression_var(adata, plan.expression_source) if n_genes else None
        gene_var = var.iloc[gene_cols[sampled]] if n_genes else None
        kw.update(prepare_kwargs(adata, plan, sub_matrix, gene_var))
        if n_genes:
            kw["gene_identifiers"] = [gene_names[i] for i in sampled]
    graph_matrix = kw.get("connectivities")
    _subset_rows(kw, rows, n)
    target = Path.cwd() / "exports" if out_dir is None else Path(out_dir)
    kw.update(force=True, created_at=created_at, sidecar_extra={"plan": plan.to_dict()})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inputs = validate_inputs(target, kw)
    warning_list = [str(w.message) for w in caught]

    runner = _RecordingRunner(plan.compression)
    work_start = time.perf_counter()
    points = write_points(runner, inputs)
    obs_manifest = write_obs(runner, inputs)
    from cellucid_nb.export.genes import write_genes

    var_manifest = write_genes(runner, inputs)
    connectivity = write_graph(runner, inputs)
    vectors = write_vectors(runner, inputs)
    work_seconds = time.perf_counter() - work_start

    scale = n / max(m, 1)
    parts: list[dict[str, Any]] = []
    files_full: dict[str, int] = {}
    exact = rows_all
    var_dir = inputs.settings.var_binary_dirname + "/"
    gene_files = {rel: v for rel, v in runner.files.items() if rel.startswith(var_dir)}
    conn_dir = inputs.settings.connectivity_binary_dirname + "/"

    def scaled(raw: int, stored: int) -> tuple[int, int]:
        if rows_all:
            return raw, stored
        raw_full = int(raw // max(m, 1) * n) if raw % max(m, 1) == 0 else int(round(raw * scale))
        if not plan.compression:
            return raw_full, raw_full
        return raw_full, int(round((stored - _GZIP_OVERHEAD) * scale + _GZIP_OVERHEAD))

    obs_dir = inputs.settings.obs_binary_dirname + "/"
    by_obs: dict[str, list[int]] = {}
    safe_to_key = {safe_name(f.key): f.key for f in inputs.obs_fields}
    full_raw = 0
    for rel, (raw, stored, _) in runner.files.items():
        if rel in gene_files or rel.startswith(conn_dir):
            continue
        raw_full, size = scaled(raw, stored)
        full_raw += raw_full
        files_full[rel] = size
        if rel.startswith("points_"):
            parts.append({"part": "points", "name": rel, "bytes": size, "files": 1, "exact": rows_all})
        elif rel.startswith(obs_dir):
            key = safe_to_key.get(rel[len(obs_dir):].split(".")[0], rel)
            entry = by_obs.setdefault(key, [0, 0])
            entry[0] += size
            entry[1] += 1
        else:
            parts.append({"part": "vectors", "name": rel, "bytes": size, "files": 1, "exact": rows_all})
    for f in inputs.obs_fields:
        if f.key in by_obs:
            size, count = by_obs[f.key]
            parts.append({"part": "obs", "name": f.key, "bytes": size, "files": count, "exact": rows_all})

    # Genes.
    genes_exact = rows_all and genes_all
    if n_genes:
        bits = plan.var_quantization
        per_value = codecs.QuantSpec(bits).numpy_dtype.itemsize
        tail = f".values.{codecs.QuantSpec(bits).ext}{runner.suffix}"
        names_full = [f"{var_dir}{name}{tail}" for name in _safe_names(gene_names)]
        if genes_exact:
            sizes = np.array([gene_files[r][1] for r in names_full], dtype=np.float64)
        else:
            sampled_names = [names_full[i] for i in sampled]
            s_density = density[sampled] if density is not None else np.array([gene_files[r][2] for r in sampled_names])
            rates = np.array([(gene_files[r][1] - (_GZIP_OVERHEAD if plan.compression else 0)) / m for r in sampled_names])
            if plan.compression:
                sizes = _stratified_rates(density, sampled, rates) * n + _GZIP_OVERHEAD
            else:
                sizes = np.full(n_genes, float(n * per_value))
        full_raw += n * per_value * n_genes
        files_full.update(zip(names_full, np.rint(sizes).astype(np.int64).tolist()))
        total_genes = int(round(float(sizes.sum())))
        parts.append({
            "part": "genes", "name": var_dir, "bytes": total_genes, "files": n_genes,
            "exact": genes_exact or not plan.compression,
        })

    # Graph.
    n_edges = None
    if graph_matrix is not None:
        if rows_all:
            conn_files = {rel: v for rel, v in runner.files.items() if rel.startswith(conn_dir)}
            for rel, (raw, stored, _) in conn_files.items():
                files_full[rel] = stored
                full_raw += raw
            n_edges = connectivity["n_edges"]
            parts.append({"part": "graph", "name": conn_dir, "bytes": sum(v[1] for v in conn_files.values()),
                          "files": len(conn_files), "exact": True})
        else:
            size, n_edges, _ = _graph_estimate(graph_matrix, rows, n, plan.compression)
            full_raw += size
            suffix = runner.suffix
            for i, name in enumerate(("edges.src.bin", "edges.dst.bin", "edges.weights.f64.bin")):
                files_full[conn_dir + name + suffix] = size // 3 + (size % 3 if i == 0 else 0)
            parts.append({"part": "graph", "name": conn_dir, "bytes": size, "files": 3, "exact": not plan.compression})

    # Manifests, rebuilt with full numbers.
    manifests: dict[str, int] = {}
    obs_name = inputs.settings.obs_manifest_filename
    if obs_manifest is not None:
        doc = dict(obs_manifest)
        doc["n_points"] = n
        manifests[obs_name] = _json_len(doc)
    if var_manifest is not None:
        doc = dict(var_manifest)
        doc["n_points"] = n
        if genes_exact:
            manifests[inputs.settings.var_manifest_filename] = _json_len(doc)
        else:
            fields = _full_var_fields(var_manifest["fields"], gene_names, plan, source_matrix, gene_cols, n,
                                      rows_all, iter_column_blocks, block_ranges)
            doc["fields"] = []
            base = _json_len(doc)
            manifests[inputs.settings.var_manifest_filename] = base + fields
    if graph_matrix is not None:
        if rows_all:
            doc = runner.json_docs[inputs.settings.connectivity_manifest_filename][0]
        else:
            doc = _connectivity_doc(inputs, n, n_edges, runner.suffix, graph_matrix)
        connectivity = doc
        manifests[inputs.settings.connectivity_manifest_filename] = _json_len(doc)
    identity = build_identity(inputs, points, connectivity, vectors)
    identity["stats"]["n_cells"] = n
    identity["stats"]["n_genes"] = n_genes
    manifests[IDENTITY_FILE] = _json_len(identity, indent=2)
    files_full.update(manifests)
    sidecar: dict[str, Any] = {
        "generator": "cellucid_nb",
        "version": _version(),
        "settings": inputs.settings.to_dict(),
        "settings_fingerprint": settings_fingerprint(inputs.settings.to_dict()),
        "category_colors": inputs.category_colors,
        "library_versions": library_versions(),
        "plan": plan.to_dict(),
    }
    manifests[SIDECAR_FILE] = _sidecar_len(sidecar, files_full)
    manifests_exact = rows_all and (genes_exact or not n_genes)
    for name, size in manifests.items():
        parts.append({"part": "manifests", "name": name, "bytes": size, "files": 1, "exact": manifests_exact})

    est = SizeEstimate(parts=parts)
    est.total_bytes = int(sum(p["bytes"] for p in parts))
    est.n_files = int(sum(p["files"] for p in parts))
    est.n_genes = n_genes
    est.bytes_per_gene = float(next((p["bytes"] for p in parts if p["part"] == "genes"), 0)) / max(n_genes, 1)
    est.exact = bool(rows_all and genes_exact)
    est.sample_cells = m
    est.sample_genes = 0 if sampled is None else int(len(sampled))
    sample_raw = sum(v[0] for v in runner.files.values()) or 1
    workers = min(os.cpu_count() or 1, 4)
    est.seconds = float(work_seconds * full_raw / sample_raw / workers + est.n_files * _FILE_SECONDS)
    est.warnings = _warnings(est, plan, summary or inspect(adata), warning_list)
    return est


def _safe_names(names: list[str]) -> list[str]:
    """``safe_name`` of many names at once (vectorised through pandas)."""
    joined = "\n".join(map(str, names))
    if len(names) < 1000 or joined.count("\n") != len(names) - 1:
        return [safe_name(g) for g in names]
    # One regex pass over all names; "\n" (kept) separates them.
    replaced = re.sub(r"[^A-Za-z0-9._\n-]+", "_", joined).split("\n")
    return [x.strip("._") or "field" for x in replaced]


def _sum_json_lengths(values: list[Any]) -> int:
    """Sum of ``len(json.dumps(v))`` in UTF-8 bytes over ``values``, with one C-encoder call."""
    if not values:
        return 0
    text = json.dumps(values, ensure_ascii=False).encode("utf-8")
    return len(text) - 2 - 2 * (len(values) - 1)


def _sidecar_len(sidecar: dict[str, Any], files: dict[str, int]) -> int:
    """Length of the indented sidecar JSON with a ``files`` entry per file (sha256 placeholders).

    The indented encoder is pure Python and slow on 30k files, so the length is
    derived from two tiny documents: each entry adds a constant plus its path and
    size lengths.
    """
    sha = "0" * 64
    one = dict(sidecar, files={"a": {"bytes": 1, "sha256": sha}})
    two = dict(sidecar, files={"a": {"bytes": 1, "sha256": sha}, "b": {"bytes": 1, "sha256": sha}})
    len_one, len_two = _json_len(one, indent=2), _json_len(two, indent=2)
    per_entry = len_two - len_one - len('"b"') - len("1")  # constant part of one more entry
    if not files:
        return _json_len(dict(sidecar, files={}), indent=2)
    first = len_one - (per_entry + len('"a"') + len("1"))  # document without entries, separators included
    rels = sorted(files)
    return first + per_entry * len(rels) + _sum_json_lengths(rels) + _sum_json_lengths([int(files[r]) for r in rels])


def _stratified_rates(density: np.ndarray, sampled: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Give every gene the rate of the sampled gene nearest to it in density rank.

    Rank-based (not value-based) so that ties, e.g. dense matrices where every
    gene has density 1, still spread over all sampled genes.
    """
    order = np.argsort(density, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    sample_rank = rank[sampled]
    by_rank = np.argsort(sample_rank)
    sorted_ranks = sample_rank[by_rank]
    # Nearest sampled rank: midpoints between consecutive sampled ranks split the genes.
    mids = (sorted_ranks[1:] + sorted_ranks[:-1]) / 2
    which = np.searchsorted(mids, rank, side="right")
    return rates[by_rank][which]


def _float_field_len(lo: float, hi: float) -> int:
    return len(json.dumps(lo)) + len(json.dumps(hi)) + 4  # ", " twice


def _full_var_fields(sample_fields: list, gene_names: list[str], plan: ExportPlan, matrix: Any, cols: np.ndarray,
                     n: int, rows_all: bool, iter_column_blocks: Any, block_ranges: Any) -> int:
    """JSON length of the ``fields`` list for every gene (exact when the ranges are affordable)."""
    ids_len = _sum_json_lengths(list(gene_names))
    count = len(gene_names)
    structure = 2 + 2 * count + 2 * max(count - 1, 0)  # [ ] + [ ] per entry + ", " between
    if plan.var_quantization is None:
        return ids_len + structure
    if rows_all and (sparse.issparse(matrix) or isinstance(matrix, np.ndarray)):
        floats = 0
        for block in iter_column_blocks(matrix, cols):
            lo, hi = block_ranges(block, n)
            floats += sum(_float_field_len(a, b) for a, b in zip(lo.tolist(), hi.tolist()))
        return ids_len + structure + floats
    sample = [(_float_field_len(f[1], f[2])) for f in sample_fields] or [40]
    return ids_len + structure + int(round(np.mean(sample) * count))


def _connectivity_doc(inputs: Any, n: int, n_edges: int, suffix: str, matrix: Any) -> dict[str, Any]:
    from cellucid_nb.export.graph import index_dtype_for

    dtype = index_dtype_for(n)
    folder = inputs.settings.connectivity_binary_dirname
    degree = np.diff(sparse.csr_matrix(matrix).indptr)
    return {
        "format": "edge_pairs",
        "n_cells": n,
        "n_edges": int(n_edges),
        "max_neighbors": int(degree.max()) if degree.size else 0,
        "index_bytes": dtype.itemsize,
        "index_dtype": dtype.name,
        "sourcesPath": f"{folder}/edges.src.bin{suffix}",
        "destinationsPath": f"{folder}/edges.dst.bin{suffix}",
        "weightsPath": f"{folder}/edges.weights.f64.bin{suffix}",
        "weight_bytes": 8,
        "weight_dtype": "float64",
        "compression": inputs.settings.compression,
    }


def _warnings(est: SizeEstimate, plan: ExportPlan, summary: Any, exporter_warnings: list[str]) -> list[str]:
    out = list(exporter_warnings)
    if est.n_files > WARN_FILES:
        out.append(
            f"{est.n_files:,} files: tens of thousands of files are slow to copy and serve; "
            "export fewer genes (e.g. highly variable ones)."
        )
    if est.total_bytes > WARN_BYTES:
        out.append(
            f"about {est.total_bytes / 1e9:.1f} GB of output: consider fewer genes, 8-bit quantization "
            "and gzip compression."
        )
    if plan.var_quantization is None and est.n_genes:
        out.append("genes are stored as float32: 8-bit (var_quantization=8) is 4x smaller and enough for colouring.")
    if plan.obs_continuous_quantization is None and any(
        c.kind == "continuous" for c in summary.obs if c.key in plan.obs_keys
    ):
        out.append("continuous obs fields are stored as float32: 8-bit (obs_continuous_quantization=8) is usually enough.")
    for col in summary.obs:
        if col.key not in plan.obs_keys:
            continue
        if col.identifier_like:
            out.append(
                f"obs[{col.key!r}] looks like an identifier (almost one value per cell): as a category it is "
                "useless for colouring and bloats the export; leave it out."
            )
        elif col.n_categories is not None and col.n_categories > WARN_CATEGORIES:
            out.append(f"obs[{col.key!r}] has {col.n_categories:,} categories: colours and legends get unreadable.")
    if not plan.compression:
        out.append("no compression: gzip level 6 (compression=6) usually makes the export several times smaller.")
    return out
