"""``estimate(adata, plan)``: export sizes, file count and time, before writing anything.

How it works: the exporter's own writers (points, obs, genes, graph, vectors,
identity) run on a *sample* of the data with a recording runner that encodes
and compresses every payload in memory (same codecs, same gzip strategy
choice) but writes nothing. The sample is

- every cell when ``n_cells <= estimate_sampling.FULL_ROWS`` (50,000), else
  16 contiguous runs of up to 1,024 cells spread over the dataset (contiguous,
  so run lengths and sort order, which drive gzip, are kept);
- every chosen gene while there are at most ``FULL_GENES`` and genes x sampled
  cells stays under ``FULL_GENE_VALUES``, else ``SAMPLED_GENES`` genes picked
  at evenly spaced ranks of their density (stored values per sampled cell).

Then the result is scaled: uncompressed payload sizes are exact (cells x
bytes per value), compressed sizes scale with ``n_cells / sample_cells``, and
each unsampled gene gets the gzip rate of the sampled gene nearest to it in
density rank. Manifests and the sidecar are rebuilt with the exporter's
structures and the full data's numbers (exact when every cell and gene is
sampled). With every cell and every gene sampled (small data such as
pbmc68k_reduced) the whole estimate is exact, compressed sizes included.
"""

from __future__ import annotations

import html
import inspect as pyinspect
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from cellucid_nb.adata import estimation_sampling as sampling
from cellucid_nb.adata.estimation_sampling import GZIP_OVERHEAD, RecordingRunner, json_len
from cellucid_nb.adata.gene_choice import gene_ids
from cellucid_nb.adata.inspection import expression_matrix, expression_var, inspect
from cellucid_nb.adata.lazy_frames import eager_frames
from cellucid_nb.adata.plan import ExportPlan
from cellucid_nb.format import codecs
from cellucid_nb.format.layouts import LAYOUTS

__all__ = ["SizeEstimate", "estimate", "format_bytes", "block_size", "disk_bytes", "FULL_GENES", "FULL_GENE_VALUES", "SAMPLED_GENES"]

#: All genes are sampled while genes x sampled cells stays under this; else SAMPLED_GENES.
FULL_GENE_VALUES = 2_000_000
FULL_GENES = 2_000
SAMPLED_GENES = 48
#: Lower bound of the seconds to create one file (measured by the lead: ~0.3 ms).
_FILE_SECONDS = 3e-4
#: Validation, staging folder, sidecar and the final move.
_FIXED_SECONDS = 0.2
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
    disk_bytes
        Size on disk: each file rounded up to whole blocks of the target folder's
        file system (``block_size``), as ``du`` counts it (folders not included).
    block_size
        File-system block size used for ``disk_bytes`` (``os.statvfs(...).f_frsize``
        of the nearest existing folder of the target; 4096 where it cannot be read).
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
    disk_bytes: int = 0
    block_size: int = 4096

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
            f"<td style='text-align:right'>{format_bytes(p['bytes'])}</td><td style='text-align:right'>{p['files']:,}</td>"
            f"<td>{'' if p['exact'] else '≈'}</td></tr>"
            for p in self.parts
        )
        warn = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
        return (
            f"<div><b>Export estimate</b>: {'' if self.exact else '≈ '}{format_bytes(self.total_bytes)} in "
            f"{self.n_files:,} files ({format_bytes(self.disk_bytes)} on disk), about {self.seconds:.1f} s</div>"
            + (f"<ul>{warn}</ul>" if warn else "")
            + "<details><summary>parts</summary><table><tr><th>part</th><th>name</th><th>size</th>"
            f"<th>files</th><th></th></tr>{rows}</table></details>"
        )


def format_bytes(n: float) -> str:
    """Format a byte count for people (decimal units: 1 MB = 10^6 bytes, as file browsers show).

    Parameters
    ----------
    n
        Number of bytes.
    """
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} B"


# ----------------------------------------------------------------------------- the sample


@dataclass
class _Sample:
    """Which cells and genes the dry run sees, and the expression it reads."""

    n: int
    rows: np.ndarray
    gene_names: list[str] = field(default_factory=list)
    gene_cols: np.ndarray | None = None
    sampled: np.ndarray | None = None  # positions in gene_names
    density: np.ndarray | None = None  # per chosen gene, over the sampled rows
    source_matrix: Any = None
    sub_matrix: Any = None  # what the dry run exports (the source itself when exact)

    @property
    def m(self) -> int:
        return int(self.rows.shape[0])

    @property
    def rows_all(self) -> bool:
        return self.m == self.n

    @property
    def genes_all(self) -> bool:
        return self.sampled is None or self.sampled.shape[0] == len(self.gene_names)

    @property
    def exact(self) -> bool:
        return self.rows_all and self.genes_all


def _choose_sample(adata: Any, plan: ExportPlan) -> _Sample:
    n = int(adata.n_obs)
    sample = _Sample(n=n, rows=sampling.row_sample(n))
    if plan.expression_source is None:
        return sample
    matrix = expression_matrix(adata, plan.expression_source)
    ids = gene_ids(adata, plan.expression_source, plan.var_gene_id_column)
    cols = (
        np.arange(len(ids), dtype=np.int64)
        if plan.genes is None
        else ids.get_indexer(pd.Index(plan.genes, dtype=object)).astype(np.int64)
    )
    sample.source_matrix, sample.gene_cols, sample.gene_names = matrix, cols, list(ids[cols])
    k = len(sample.gene_names)
    if k == 0:
        return sample
    if k <= FULL_GENES and k * sample.m <= FULL_GENE_VALUES:
        sample.sampled = np.arange(k)
    in_memory = sparse.issparse(matrix) or isinstance(matrix, np.ndarray)
    if sample.rows_all and sample.sampled is not None and in_memory:
        sample.sub_matrix = matrix  # exact: the exporter's writers read it themselves
        return sample
    density, rows_block = sampling.sample_density(matrix, sample.rows, int(matrix.shape[1]))
    sample.density = density[cols]
    if sample.sampled is None:
        sample.sampled = sampling.pick_genes(sample.density, SAMPLED_GENES)
    sample.sub_matrix = sampling.sample_columns(matrix, sample.rows, cols[sample.sampled], rows_block)
    return sample


def _prepare_defaults() -> dict[str, Any]:
    from cellucid_nb.exporter.prepare import prepare

    return {
        name: p.default
        for name, p in pyinspect.signature(prepare).parameters.items()
        if p.default is not pyinspect.Parameter.empty
    }


def _subset_rows(kw: dict[str, Any], rows: np.ndarray, n: int) -> None:
    """Keep only the sampled cells of every per-cell input (the graph is estimated apart).

    ``obsm`` arrays left in their file (``open_h5ad``) are read in the sampled rows only.
    """
    if rows.shape[0] == n:
        return
    kw["latent_space"] = sampling.take_rows(kw["latent_space"], rows)
    obs = kw["obs"]
    if isinstance(obs, pd.DataFrame) and obs.columns.is_unique:
        # The columns' arrays only: the sample's cell names are never used, and taking rows of an
        # Arrow string index (open_h5ad's) joins its chunks first (0.45 s and the names' size again
        # at 10M cells).
        kw["obs"] = pd.DataFrame({k: pd.Series(obs[k].array.take(rows), name=k) for k in obs.columns},
                                 columns=obs.columns, index=pd.RangeIndex(rows.shape[0]))
    else:  # the exporter's validation names what is wrong with it
        kw["obs"] = obs.iloc[rows] if isinstance(obs, pd.DataFrame) else obs
    for dim in (1, 2, 3):
        key = f"X_umap_{dim}d"
        if kw.get(key) is not None:
            kw[key] = sampling.take_rows(kw[key], rows)
    if kw.get("vector_fields"):
        kw["vector_fields"] = {f: sampling.take_rows(v, rows) for f, v in kw["vector_fields"].items()}
    kw["connectivities"] = None


def _sample_inputs(adata: Any, plan: ExportPlan, sample: _Sample, target: Path, created_at: str | None):
    """Validated exporter inputs for the sample, the exporter's warnings, and the full graph matrix."""
    from cellucid_nb.adata.exporting import prepare_kwargs
    from cellucid_nb.exporter.inputs import validate_inputs

    kw = _prepare_defaults()
    if sample.sub_matrix is sample.source_matrix:
        kw.update(prepare_kwargs(adata, plan))
    else:
        # a sub-matrix apart from the source exists only for a gene sample of an expression source
        assert plan.expression_source is not None and sample.gene_cols is not None and sample.sampled is not None
        var = expression_var(adata, plan.expression_source)
        picked = sample.gene_cols[sample.sampled]
        kw.update(prepare_kwargs(adata, plan, sample.sub_matrix, var.iloc[picked]))
        kw["gene_identifiers"] = [sample.gene_names[i] for i in sample.sampled]
    graph_matrix = kw.get("connectivities")
    _subset_rows(kw, sample.rows, sample.n)
    kw.update(force=True, created_at=created_at, sidecar_extra={"plan": plan.to_dict()})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inputs = validate_inputs(target, kw)
    return inputs, [str(w.message) for w in caught], graph_matrix


@dataclass
class _DryRun:
    runner: RecordingRunner
    points: dict[str, str]
    obs_manifest: dict[str, Any] | None
    var_manifest: dict[str, Any] | None
    connectivity: dict[str, Any] | None
    vectors: dict[str, Any] | None
    cell_seconds: float  # points, obs, vectors: scale with cells
    gene_seconds: float  # genes: scale with cells x genes
    graph_seconds: float


def _dry_run(inputs: Any, compression: int | None, cell_scale: float = 1.0) -> _DryRun:
    """Run the exporter's writers on the sample with the recording runner, timing each kind of work."""
    from cellucid_nb.exporter.genes import write_genes
    from cellucid_nb.exporter.graph import write_graph
    from cellucid_nb.exporter.obs import write_obs
    from cellucid_nb.exporter.points import write_points
    from cellucid_nb.exporter.vectors import write_vectors

    runner = RecordingRunner(compression, cell_scale)
    clock = time.perf_counter
    with np.errstate(invalid="ignore"):  # NaN outlier quantiles are cast to the missing code on purpose
        t0 = clock()
        points = write_points(runner, inputs)
        obs_manifest = write_obs(runner, inputs)
        vectors = write_vectors(runner, inputs)
        t1 = clock()
        var_manifest = write_genes(runner, inputs)
        t2 = clock()
        connectivity = write_graph(runner, inputs)
        t3 = clock()
    return _DryRun(runner, points, obs_manifest, var_manifest, connectivity, vectors, t1 - t0, t2 - t1, t3 - t2)


# ----------------------------------------------------------------------------- scaling to the full data


@dataclass
class _Totals:
    """Parts of the estimate and per-file sizes (the sidecar lists every file's size)."""

    parts: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)

    def add(self, part: str, name: str, size: int, files: int, exact: bool) -> None:
        self.parts.append({"part": part, "name": name, "bytes": int(size), "files": int(files), "exact": bool(exact)})


def _per_cell_parts(totals: _Totals, run: _DryRun, inputs: Any, sample: _Sample, compression: int | None) -> None:
    """Points, obs and vector payloads: raw sizes scale exactly with cells, gzip sizes by ratio."""
    settings = inputs.settings
    skip = (settings.var_binary_dirname + "/", settings.connectivity_binary_dirname + "/")
    obs_dir = settings.obs_binary_dirname + "/"
    scale = sample.n / max(sample.m, 1)
    by_obs: dict[str, list[int]] = {}
    layout = LAYOUTS[settings.layout]  # payload stems: safe(key) or the field's index
    safe_to_key = {layout.stem(f.key, i): f.key for i, f in enumerate(inputs.obs_fields)}
    for rel, (raw, stored) in run.runner.files.items():
        if rel.startswith(skip):
            continue
        if sample.rows_all:
            size = stored
        elif not compression:
            size = raw // sample.m * sample.n  # payloads hold a whole number of bytes per cell
        else:
            size = int(round((stored - GZIP_OVERHEAD) * scale + GZIP_OVERHEAD))
        totals.files[rel] = size
        if rel.startswith("points_"):
            totals.add("points", rel, size, 1, sample.rows_all or not compression)
        elif rel.startswith(obs_dir):
            entry = by_obs.setdefault(safe_to_key.get(rel[len(obs_dir):].split(".")[0], rel), [0, 0])
            entry[0] += size
            entry[1] += 1
        else:
            totals.add("vectors", rel, size, 1, sample.rows_all or not compression)
    for f in inputs.obs_fields:
        if f.key in by_obs:
            size, count = by_obs[f.key]
            totals.add("obs", f.key, size, count, sample.rows_all or not compression)


def _gene_part(totals: _Totals, run: _DryRun, inputs: Any, sample: _Sample, plan: ExportPlan) -> None:
    """Gene files: exact when all were encoded, else sampled genes' gzip rates by density rank."""
    k = len(sample.gene_names)
    if not k:
        return
    spec = codecs.QuantSpec(plan.var_quantization)
    var_dir = inputs.settings.var_binary_dirname + "/"
    tail = f".values.{spec.ext}{run.runner.suffix}"
    index_layout = inputs.settings.layout == "index"  # gene i is var/<i>...
    names = [f"{var_dir}{i}{tail}" for i in range(k)] if index_layout else \
        [f"{var_dir}{name}{tail}" for name in sampling.safe_names(sample.gene_names)]
    recorded = run.runner.files
    if sample.exact:
        sizes = np.array([recorded[r][1] for r in names], dtype=np.float64)
    elif not plan.compression:
        sizes = np.full(k, float(sample.n * spec.numpy_dtype.itemsize))
    else:
        assert sample.sampled is not None  # _choose_sample picks genes whenever there are any
        # the dry run numbered only the sampled genes, 0..m-1
        picked = [f"{var_dir}{j}{tail}" for j in range(len(sample.sampled))] if index_layout else \
            [names[i] for i in sample.sampled]
        rates = np.array([(recorded[r][1] - GZIP_OVERHEAD) / sample.m for r in picked])
        density = sample.density if sample.density is not None else np.zeros(k)
        sizes = sampling.stratified_rates(density, sample.sampled, rates) * sample.n + GZIP_OVERHEAD
    totals.files.update(zip(names, np.rint(sizes).astype(np.int64).tolist(), strict=True))
    totals.add("genes", var_dir, int(round(float(sizes.sum()))), k, sample.exact or not plan.compression)


def _graph_part(totals: _Totals, run: _DryRun, inputs: Any, sample: _Sample, graph_matrix: Any,
                compression: int | None) -> dict[str, Any] | None:
    """Edge files and the connectivity manifest document (``None`` without a graph)."""
    if graph_matrix is None:
        return None
    settings = inputs.settings
    conn_dir = settings.connectivity_binary_dirname + "/"
    if sample.rows_all:
        conn = {rel: v for rel, v in run.runner.files.items() if rel.startswith(conn_dir)}
        for rel, (_, stored) in conn.items():
            totals.files[rel] = stored
        totals.add("graph", conn_dir, sum(v[1] for v in conn.values()), len(conn), True)
        return run.runner.json_docs[settings.connectivity_manifest_filename][0]
    start = time.perf_counter()
    size, n_edges, exact = sampling.graph_estimate(graph_matrix, sample.rows, sample.n, compression)
    run.graph_seconds = (time.perf_counter() - start) * sample.n / sample.m
    from cellucid_nb.exporter.graph import EDGE_FILES, connectivity_manifest
    from cellucid_nb.exporter.graph_blocks import max_neighbors_estimate

    paths = tuple(conn_dir + name + run.runner.suffix for name in EDGE_FILES)
    for i, path in enumerate(paths):  # the split only matters for the sidecar's digits
        totals.files[path] = size // 3 + (size % 3 if i == 0 else 0)
    totals.add("graph", conn_dir, size, 3, exact)
    # the exporter's own manifest builder; the neighbour count without A + Aᵀ (seconds at 2M cells), for its digits
    return connectivity_manifest(sample.n, n_edges, max_neighbors_estimate(graph_matrix), paths,
                                 inputs.settings.compression)


def _manifest_parts(totals: _Totals, run: _DryRun, inputs: Any, sample: _Sample, plan: ExportPlan,
                    connectivity: dict[str, Any] | None) -> None:
    """Every JSON file, rebuilt with the full data's numbers; the sidecar last (it lists all files)."""
    from cellucid_nb.exporter.identity import build_identity, build_sidecar
    from cellucid_nb.format.spec import IDENTITY_FILE, SIDECAR_FILE

    settings = inputs.settings
    manifests: dict[str, int] = {}
    if run.obs_manifest is not None:
        manifests[settings.obs_manifest_filename] = json_len(dict(run.obs_manifest, n_points=sample.n))
    if run.var_manifest is not None:
        doc = dict(run.var_manifest, n_points=sample.n)
        if sample.exact:
            manifests[settings.var_manifest_filename] = json_len(doc)
        else:
            from cellucid_nb.exporter.expression import iter_column_blocks
            from cellucid_nb.exporter.genes import block_ranges

            indexed = settings.layout == "index"  # [index, gene, ...]: the index adds "i, " per gene
            assert sample.gene_cols is not None  # a var manifest means genes were chosen
            fields = sampling.full_var_fields(
                [f[1:] for f in run.var_manifest["fields"]] if indexed else run.var_manifest["fields"],
                sample.gene_names, plan.var_quantization, sample.source_matrix,
                sample.gene_cols, sample.n, sample.rows_all, iter_column_blocks, block_ranges,
            )
            fields += sum(len(str(i)) + 2 for i in range(len(sample.gene_names))) if indexed else 0
            manifests[settings.var_manifest_filename] = json_len(dict(doc, fields=[])) + fields
    if connectivity is not None:
        manifests[settings.connectivity_manifest_filename] = json_len(connectivity)
    identity = build_identity(inputs, run.points, connectivity, run.vectors)
    identity["stats"]["n_cells"] = sample.n
    identity["stats"]["n_genes"] = len(sample.gene_names)
    manifests[IDENTITY_FILE] = json_len(identity, indent=2)
    totals.files.update(manifests)
    sidecar = build_sidecar(inputs, {"plan": plan.to_dict()})  # as export() writes it
    manifests[SIDECAR_FILE] = sampling.sidecar_len(sidecar, totals.files)
    totals.files[SIDECAR_FILE] = manifests[SIDECAR_FILE]
    for name, size in manifests.items():
        totals.add("manifests", name, size, 1, sample.exact)


# ----------------------------------------------------------------------------- main


def estimate(adata: Any, plan: ExportPlan | None = None, *, out_dir: str | Path | None = None,
             created_at: str | None = None, summary: Any = None) -> SizeEstimate:
    """Estimate the size, file count and duration of ``export(adata, plan)`` without writing.

    See the module docstring for the method. Uncompressed sizes are exact;
    compressed sizes are exact when every cell and gene fits the sample,
    otherwise extrapolated from it (within a few percent on the benchmark data).

    The expected time is calibrated on this machine while estimating: the
    sample's measured encode + gzip time, scaled by the ratio of full to sampled
    uncompressed bytes, divided by the exporter's worker threads, plus ~0.3 ms
    per file.

    Parameters
    ----------
    adata
        AnnData (in memory or backed; a backed matrix is read only in the sampled rows).
    plan
        Default ``ExportPlan.from_anndata(adata)``.
    out_dir
        Export folder (its name becomes the default dataset name, as in the export).
    created_at
        As in :func:`export` (the timestamp has a fixed length, so sizes do not depend on it).
    summary
        A :func:`~cellucid_nb.adata.inspection.inspect` result for ``adata`` (computed when
        omitted; pass it to save time on repeated estimates).

    Returns
    -------
    SizeEstimate
    """
    adata = eager_frames(adata)  # read_lazy's obs/var as pandas (adata/lazy_frames.py)
    if plan is None:
        summary = summary or inspect(adata)
        plan = ExportPlan.from_anndata(adata, summary)
    plan.check(adata)
    sample = _choose_sample(adata, plan)
    target = Path.cwd() / "exports" if out_dir is None else Path(out_dir)
    inputs, exporter_warnings, graph_matrix = _sample_inputs(adata, plan, sample, target, created_at)
    run = _dry_run(inputs, plan.compression, sample.n / max(sample.m, 1))

    totals = _Totals()
    _per_cell_parts(totals, run, inputs, sample, plan.compression)
    _gene_part(totals, run, inputs, sample, plan)
    connectivity = _graph_part(totals, run, inputs, sample, graph_matrix, plan.compression)
    _manifest_parts(totals, run, inputs, sample, plan, connectivity)

    n_genes = len(sample.gene_names)
    est = SizeEstimate(parts=totals.parts)
    est.total_bytes = int(sum(p["bytes"] for p in totals.parts))
    est.n_files = int(sum(p["files"] for p in totals.parts))
    est.n_genes = n_genes
    est.bytes_per_gene = float(next((p["bytes"] for p in totals.parts if p["part"] == "genes"), 0)) / max(n_genes, 1)
    est.exact = sample.exact
    est.sample_cells = sample.m
    est.sample_genes = 0 if sample.sampled is None else int(sample.sampled.shape[0])
    est.seconds = _expected_seconds(run, sample, est.n_files, est.total_bytes)
    est.block_size = block_size(target)
    est.disk_bytes = disk_bytes(totals.files.values(), est.block_size)
    est.warnings = _warnings(est, plan, summary or inspect(adata), exporter_warnings)
    return est


def _expected_seconds(run: _DryRun, sample: _Sample, n_files: int, total_bytes: int) -> float:
    """Export time on this machine, from the dry run's timings and a storage calibration.

    Encoding + gzip: the dry run's own timings (measured in this call), per-cell
    work scaled by ``n / m`` and gene work by ``n / m x genes / sampled genes``,
    divided by the exporter's worker threads (``prepare``'s default, one per CPU). Storing:
    ``total_bytes`` at the hash+write throughput and ``n_files`` at the per-file
    cost that :func:`~cellucid_nb.adata.estimation_sampling.machine_rates` measured once
    per process. Plus a fixed ~0.2 s for validation, staging and the final move.
    """
    cells = sample.n / max(sample.m, 1)
    genes = len(sample.gene_names) / max(1 if sample.sampled is None else sample.sampled.shape[0], 1)
    work = run.cell_seconds * cells + run.gene_seconds * cells * genes + run.graph_seconds
    from cellucid_nb.exporter.prepare import default_n_workers

    workers = default_n_workers()
    rate, per_file = sampling.machine_rates()
    return float(work / workers + total_bytes / rate + n_files * max(per_file, _FILE_SECONDS) + _FIXED_SECONDS)


def block_size(path: str | Path, default: int = 4096) -> int:
    """File-system block size (``f_frsize``) of ``path`` or its nearest existing parent folder.

    Parameters
    ----------
    path
        The export's target folder (it need not exist yet).
    default
        Returned where ``os.statvfs`` is missing (Windows) or fails.
    """
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        size = int(os.statvfs(probe).f_frsize)
    except (OSError, AttributeError):
        return default
    return size if size > 0 else default


def disk_bytes(sizes: Any, block: int) -> int:
    """Bytes on disk of files of ``sizes`` bytes: each rounded up to whole ``block``s (an empty file takes none)."""
    arr = np.fromiter((int(s) for s in sizes), dtype=np.int64)
    return int((-(-arr // block) * block).sum())


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
