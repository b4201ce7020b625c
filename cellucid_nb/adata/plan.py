"""ExportPlan: every choice of an AnnData export, frozen, validated and serialisable.

A plan knows nothing of arrays: it names ``obsm``/``obs``/``obsp`` keys and
settings. ``ExportPlan.from_anndata`` picks defaults from :func:`inspect`,
``plan.check(adata)`` validates it against a dataset, ``plan.to_code()`` writes
the equivalent plain ``prepare(...)`` call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from cellucid_nb.adata.inspection import DatasetSummary, expression_matrix, expression_var, inspect
from cellucid_nb.adata.lazy_frames import eager_frames
from cellucid_nb.format.codecs import check_bits, check_compression
from cellucid_nb.format.naming import safe_name
from cellucid_nb.format.safe_io import parse_json
from cellucid_nb.format.spec import CATEGORY_LIMITS
from cellucid_nb.format.suggest import did_you_mean

__all__ = ["ExportPlan", "PlanError", "PLAN_VERSION"]

PLAN_VERSION = 1
_SOURCE = re.compile(r"^(X|raw|layers/.+)$")
_CATEGORICAL_DTYPES = ("auto", "uint8", "uint16")
_LAYOUTS = ("key", "index")
#: More categories than this cannot be stored in uint16 codes.
_MAX_CATEGORIES = CATEGORY_LIMITS["uint16"][0]


class PlanError(ValueError):
    """A plan is inconsistent in itself or with the AnnData it is checked against."""


class _FrozenDict(dict):
    """A dict that refuses changes, so a frozen plan stays frozen."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("ExportPlan fields are immutable; use plan.replace(...)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple:
        return (_FrozenDict, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


def _closest(name: str, options: list[str]) -> str:
    return did_you_mean(name, options)


@dataclass(frozen=True)
class ExportPlan:
    """Every choice of an export from an AnnData.

    Parameters
    ----------
    embeddings
        ``{dimension: obsm key}`` for dimensions 1, 2, 3 (at least one).
    latent
        ``obsm`` key of the latent space for outlier quantiles, or ``None`` to
        reuse the highest-dimensional embedding (as the reference docs suggest).
    obs_keys
        ``obs`` columns to export, in order.
    expression_source
        ``"X"``, ``"layers/<name>"``, ``"raw"``, or ``None`` for no genes.
    genes
        Gene ids to export in order, or ``None`` for all genes of the source.
    var_gene_id_column
        ``"index"`` or a column of the source's ``var``.
    connectivities
        ``obsp`` key of the kNN graph, or ``None``.
    vector_fields
        ``{field key: obsm key}``; field keys follow ``<field>_<d>d`` (explicit)
        or ``<field>`` (dimension from the array) and must be file-name safe.
    var_quantization, obs_continuous_quantization
        ``None`` (float32), 8 or 16.
    obs_categorical_dtype
        ``"auto"``, ``"uint8"`` or ``"uint16"``.
    compression
        ``None`` or a gzip level 1-9 (0 is stored as ``None``).
    centroid_outlier_quantile, centroid_min_points
        Centroid settings of the exporter.
    vector_basis
        Basis named for vector fields whose id does not end in ``_umap``.
    memory_limit
        Memory :func:`~cellucid_nb.adata.exporting.export` may add to the AnnData (bytes or a size such as
        ``"2GB"``); ``None`` means half the machine's memory. Never changes the output.
    layout
        Payload file names: ``"key"`` (default, as cellucid 0.0.9) or ``"index"``
        (index-named ``compact_v1``, as cellucid 0.9.1-0.9.2 and cellucid-r).
    dataset_name, dataset_description, dataset_id, source_name, source_url, source_citation
        Metadata written to ``dataset_identity.json``.
    """

    embeddings: Mapping[int, str]
    latent: str | None = None
    obs_keys: tuple[str, ...] = ()
    expression_source: str | None = "X"
    genes: tuple[str, ...] | None = None
    var_gene_id_column: str = "index"
    connectivities: str | None = None
    vector_fields: Mapping[str, str] = field(default_factory=dict)
    var_quantization: int | None = 8
    obs_continuous_quantization: int | None = 8
    obs_categorical_dtype: str = "auto"
    compression: int | None = 6
    centroid_outlier_quantile: float | None = 0.95
    centroid_min_points: int = 10
    vector_basis: str = "umap"
    dataset_name: str | None = None
    dataset_description: str | None = None
    dataset_id: str | None = None
    source_name: str | None = None
    source_url: str | None = None
    source_citation: str | None = None
    layout: str = "key"
    memory_limit: int | str | None = None

    # ------------------------------------------------------------------ validation

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.embeddings, Mapping) or not self.embeddings:
            raise PlanError(f"embeddings={self.embeddings!r}: expected a non-empty {{dimension: obsm key}} mapping")
        emb: dict[int, str] = {}
        for dim, key in self.embeddings.items():
            try:
                d = int(dim)
            except (TypeError, ValueError):
                d = -1
            if d not in (1, 2, 3) or str(dim) != str(d):
                raise PlanError(f"embeddings has dimension {dim!r}: expected 1, 2 or 3")
            _check_str(f"embeddings[{d}]", key)
            emb[d] = key
        set_(self, "embeddings", _FrozenDict(sorted(emb.items())))
        _check_opt_str("latent", self.latent)
        if isinstance(self.obs_keys, str) or not _is_sequence(self.obs_keys):
            raise PlanError(f"obs_keys={self.obs_keys!r}: expected a list of obs column names")
        obs_keys = tuple(self.obs_keys)
        for key in obs_keys:
            _check_str("obs_keys item", key)
        _check_unique("obs_keys", obs_keys)
        set_(self, "obs_keys", obs_keys)
        if self.expression_source is not None and (
            not isinstance(self.expression_source, str) or not _SOURCE.match(self.expression_source)
        ):
            raise PlanError(
                f"expression_source={self.expression_source!r}: expected 'X', 'layers/<name>', 'raw' or None"
            )
        if self.genes is not None:
            if isinstance(self.genes, str) or not _is_sequence(self.genes):
                raise PlanError(f"genes={self.genes!r}: expected a list of gene ids or None (all genes)")
            genes = tuple(self.genes)
            if not genes and self.expression_source is not None:
                raise PlanError(
                    "genes=() selects no genes: expected at least one gene id, None (all genes), "
                    "or expression_source=None for an export without genes"
                )
            for gene in genes:
                _check_str("genes item", gene)
            _check_unique("genes", genes)
            set_(self, "genes", genes)
        _check_str("var_gene_id_column", self.var_gene_id_column)
        _check_opt_str("connectivities", self.connectivities)
        if not isinstance(self.vector_fields, Mapping):
            raise PlanError(f"vector_fields={self.vector_fields!r}: expected a {{field key: obsm key}} mapping")
        for fkey, okey in self.vector_fields.items():
            _check_str("vector_fields key", fkey)
            _check_str(f"vector_fields[{fkey!r}]", okey)
            if safe_name(fkey) != fkey:
                raise PlanError(
                    f"vector_fields key {fkey!r} is not file-name safe: expected {safe_name(fkey)!r} "
                    "(letters, digits, '.', '_', '-')"
                )
        set_(self, "vector_fields", _FrozenDict(self.vector_fields))
        try:
            set_(self, "var_quantization", check_bits(self.var_quantization, "var_quantization"))
            set_(self, "obs_continuous_quantization",
                 check_bits(self.obs_continuous_quantization, "obs_continuous_quantization"))
            set_(self, "compression", check_compression(self.compression))
        except ValueError as exc:
            raise PlanError(str(exc)) from None
        if self.obs_categorical_dtype not in _CATEGORICAL_DTYPES:
            raise PlanError(
                f"obs_categorical_dtype={self.obs_categorical_dtype!r}: expected one of {_CATEGORICAL_DTYPES}"
            )
        q = self.centroid_outlier_quantile
        if q is not None:
            if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < float(q) < 1:
                raise PlanError(f"centroid_outlier_quantile={q!r}: expected a number in (0, 1) or None")
            set_(self, "centroid_outlier_quantile", float(q))
        m = self.centroid_min_points
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise PlanError(f"centroid_min_points={m!r}: expected an integer >= 1")
        _check_str("vector_basis", self.vector_basis)
        if self.layout not in _LAYOUTS:
            raise PlanError(f"layout={self.layout!r}: expected one of {_LAYOUTS}")
        if self.memory_limit is not None:
            from cellucid_nb.adata.budget import parse_memory_limit

            try:
                parse_memory_limit(self.memory_limit)
            except ValueError as err:
                raise PlanError(str(err)) from None
        for name in ("dataset_name", "dataset_description", "dataset_id", "source_name", "source_url",
                     "source_citation"):
            _check_opt_str(name, getattr(self, name))

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "genes" and value is not None and len(value) > 6:
                value_repr = f"<{len(value)} genes: {', '.join(value[:3])}, ...>"
            elif isinstance(value, _FrozenDict):
                value_repr = repr(dict(value))
            else:
                value_repr = repr(value)
            if f.name == "embeddings" or (value if f.default is MISSING else value != f.default):
                parts.append(f"{f.name}={value_repr}")
        return f"ExportPlan({', '.join(parts)})"

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_anndata(cls, adata: Any, summary: DatasetSummary | None = None, **changes: Any) -> ExportPlan:
        """Pick sensible defaults for ``adata``.

        UMAP embeddings per dimension (``X_umap_<d>d`` first, then ``X_umap`` by
        its columns; other embeddings only when there is no UMAP), ``X_pca`` or
        the first latent candidate, every obs column except identifier-like,
        all-missing or over-65,534-category ones, log-normalised expression (``X`` when it
        holds it, else ``raw`` or a log layer; scaled values last, see
        :func:`~cellucid_nb.adata.gene_choice.default_expression_source`),
        highly variable genes when ``var["highly_variable"]`` flags any, the
        ``connectivities`` graph, vector fields whose dimension has an embedding,
        gzip 6 and 8-bit quantization.

        Parameters
        ----------
        adata
            AnnData (in memory or backed).
        summary
            A :func:`inspect` result for ``adata`` (computed when omitted).
        **changes
            Overrides, as for :meth:`replace`.
        """
        adata = eager_frames(adata)  # read_lazy's obs/var as pandas (adata/lazy_frames.py)
        summary = summary or inspect(adata)
        embeddings = _default_embeddings(summary)
        if not embeddings:
            raise PlanError(
                "no embedding found: expected an obsm array with 1-3 numeric columns such as 'X_umap'; "
                f"obsm has {list(adata.obsm.keys())}"
            )
        latent = summary.latents[0].key if summary.latents else None
        obs_keys = tuple(
            c.key for c in summary.obs
            if not c.identifier_like
            and c.n_missing < summary.n_cells
            and (c.n_categories is None or c.n_categories <= _MAX_CATEGORIES)
            and not (c.kind == "categorical" and c.n_categories is None)  # unsampled identifier columns
        )
        from cellucid_nb.adata.gene_choice import default_expression_source, highly_variable

        source = default_expression_source(summary)
        genes = None
        if source is not None and summary.var_flags.get("highly_variable", 0) > 0:
            genes = highly_variable(adata, source=source)
            if not genes:
                genes = None
        graph = next((g.key for g in summary.graphs if g.key == "connectivities"), None)
        vectors = {
            v.key: v.key
            for v in summary.vector_fields
            if v.n_dims in embeddings and safe_name(v.key) == v.key
        }
        plan = cls(
            embeddings=embeddings,
            latent=latent,
            obs_keys=obs_keys,
            expression_source=source,
            genes=genes,
            connectivities=graph,
            vector_fields=vectors,
        )
        return plan.replace(**changes) if changes else plan

    def with_genes(
        self,
        adata: Any,
        mode: str,
        *,
        ids: Any = None,
        n: int | None = None,
        by: str | None = None,
        source: str | None = None,
    ) -> ExportPlan:
        """Return a copy with a gene choice applied (the rules of :mod:`~cellucid_nb.adata.gene_choice`).

        Parameters
        ----------
        adata
            The AnnData the genes come from.
        mode
            ``"list"`` (``ids``), ``"hvg"``, ``"top"`` (``n`` genes ranked by ``by``),
            ``"all"`` or ``"none"``.
        ids, n, by
            As in :func:`~cellucid_nb.adata.gene_choice.choose_genes` (``None``: its defaults).
        source
            Expression source; default the plan's own, else the dataset's default source.

        Raises
        ------
        UnknownGenesError
            ``"list"`` with ids the source does not hold (each with a "did you mean").
        ValueError
            As :func:`~cellucid_nb.adata.gene_choice.choose_genes`.
        """
        from cellucid_nb.adata import gene_choice

        if source is None:
            source = self.expression_source or gene_choice.default_expression_source(inspect(adata)) or "X"
        options: dict[str, Any] = {"ids": ids}
        if n is not None:
            options["n"] = n
        if by is not None:
            options["by"] = by
        genes = gene_choice.choose_genes(
            adata, mode, source=source, id_column=self.var_gene_id_column, **options
        )
        if genes is not None and len(genes) == 0:
            return self.replace(expression_source=None, genes=None)
        return self.replace(expression_source=source, genes=genes)

    def replace(self, **changes: Any) -> ExportPlan:
        """Return a validated copy with ``changes`` applied.

        Raises
        ------
        TypeError
            For an unknown field name (the message suggests the closest one).
        PlanError
            If the new plan is invalid.
        """
        names = [f.name for f in fields(self)]
        for name in changes:
            if name not in names:
                raise TypeError(f"ExportPlan has no field {name!r}{_closest(name, names)}")
        values = {name: getattr(self, name) for name in names}
        values.update(changes)
        return type(self)(**values)

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (embedding dimensions become string keys)."""
        out: dict[str, Any] = {"plan_version": PLAN_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "embeddings":
                value = {str(d): k for d, k in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            elif f.name == "layout" and value == "key":
                continue  # the default layout is left out: plans from before layouts keep their JSON
            elif f.name == "memory_limit" and value is None:
                continue  # a machine setting, not the data's: left out unless set
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExportPlan:
        """Build a plan from :meth:`to_dict` output (unknown keys are errors)."""
        data = dict(data)
        version = data.pop("plan_version", PLAN_VERSION)
        if version != PLAN_VERSION:
            raise PlanError(f"plan_version={version!r} is not supported: expected {PLAN_VERSION}")
        names = [f.name for f in fields(cls)]
        for name in data:
            if name not in names:
                raise TypeError(f"ExportPlan has no field {name!r}{_closest(name, names)}")
        if "embeddings" not in data:
            raise PlanError("plan dict has no 'embeddings': expected {dimension: obsm key}")
        return cls(**data)

    def to_json(self, **kwargs: Any) -> str:
        """Return the plan as JSON (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> ExportPlan:
        """Build a plan from :meth:`to_json` output.

        Raises
        ------
        PlanError
            The text is not a JSON object (invalid, nested too deeply, a key written twice).
        """
        try:
            data = parse_json(text, "plan JSON")
        except ValueError as exc:  # also a number of more than 4300 digits
            raise PlanError(f"{exc}; expected the text of ExportPlan.to_json()") from None
        if not isinstance(data, dict):
            raise PlanError(f"plan JSON holds a {type(data).__name__}, expected an object such as ExportPlan.to_json() "
                            "writes")
        return cls.from_dict(data)

    # ------------------------------------------------------------------ against data

    @property
    def latent_key(self) -> str:
        """The ``obsm`` key actually used as latent space (the fallback resolved)."""
        return self.latent if self.latent is not None else self.embeddings[max(self.embeddings)]

    def check(self, adata: Any) -> None:
        """Validate this plan against ``adata``.

        Raises
        ------
        PlanError
            Naming the key, what was received and what was expected.
        """
        n = int(adata.n_obs)
        obsm = adata.obsm
        for dim, key in self.embeddings.items():
            shape = _obsm_shape(obsm, key, f"embeddings[{dim}]")
            if shape != (n, dim):
                raise PlanError(f"obsm[{key!r}] has shape {shape}, expected ({n}, {dim}) for embeddings[{dim}]")
        if self.latent is not None:
            shape = _obsm_shape(obsm, self.latent, "latent")
            if len(shape) != 2 or shape[0] != n:
                raise PlanError(f"obsm[{self.latent!r}] has shape {shape}, expected ({n}, n_dims) for latent")
        missing = [k for k in self.obs_keys if k not in adata.obs.columns]
        if missing:
            cols = [str(c) for c in adata.obs.columns]
            raise PlanError(
                f"obs_keys {missing} not in obs{_closest(missing[0], cols)}; obs has {cols}"
            )
        if self.expression_source is not None:
            try:
                matrix = expression_matrix(adata, self.expression_source)
            except (KeyError, ValueError) as exc:
                raise PlanError(str(exc).strip("\"'")) from None
            if int(matrix.shape[0]) != n:
                raise PlanError(
                    f"{self.expression_source} has shape {tuple(matrix.shape)}, expected ({n}, n_genes)"
                )
            var = expression_var(adata, self.expression_source)
            if self.var_gene_id_column != "index" and self.var_gene_id_column not in var.columns:
                raise PlanError(
                    f"var_gene_id_column={self.var_gene_id_column!r} is not a column of the "
                    f"{self.expression_source!r} var: expected 'index' or one of {list(var.columns)}"
                )
            if self.genes is not None:
                from cellucid_nb.adata.gene_choice import UnknownGenesError, check_known

                try:
                    check_known(adata, self.genes, self.expression_source, self.var_gene_id_column)
                except UnknownGenesError as exc:
                    raise PlanError(f"genes: {exc}") from None
        if self.connectivities is not None:
            if self.connectivities not in adata.obsp:
                raise PlanError(
                    f"connectivities={self.connectivities!r} not in obsp; obsp has {list(adata.obsp.keys())}"
                )
            shape = tuple(int(s) for s in adata.obsp[self.connectivities].shape)
            if shape != (n, n):
                raise PlanError(f"obsp[{self.connectivities!r}] has shape {shape}, expected ({n}, {n})")
        for fkey, okey in self.vector_fields.items():
            shape = _obsm_shape(obsm, okey, f"vector_fields[{fkey!r}]")
            width = 1 if len(shape) == 1 else shape[1]
            if shape[0] != n or len(shape) > 2 or not 1 <= width <= 3:
                raise PlanError(f"obsm[{okey!r}] has shape {shape}, expected ({n}, 1|2|3) for vector field {fkey!r}")

    # ------------------------------------------------------------------ code

    def to_code(
        self,
        adata_name: str = "adata",
        out_dir: str | None = None,
        *,
        created_at: str | None = None,
        record_plan: bool = False,
        import_line: bool = True,
    ) -> str:
        """Return the equivalent plain ``prepare(...)`` call as Python source.

        Parameters
        ----------
        adata_name
            Variable name of the AnnData in the generated code.
        out_dir
            Output folder written into the call (``None``: prepare's default).
        created_at
            Fixed timestamp for a reproducible export.
        record_plan
            Also pass ``sidecar_extra={"plan": ...}`` as :func:`export` does, so the
            sidecar is byte-identical too.
        import_line
            Start with ``from cellucid_nb import prepare``.
        """
        a = adata_name
        args: list[tuple[str, str]] = [("latent_space", f"{a}.obsm[{self.latent_key!r}]")]
        args.append(("obs", f"{a}.obs"))
        args.append(("obs_keys", _list_literal(self.obs_keys)))
        if self.expression_source is not None:
            src = self.expression_source
            matrix = {"X": f"{a}.X", "raw": f"{a}.raw.X"}.get(src) or f"{a}.layers[{src[len('layers/'):]!r}]"
            args.append(("var", f"{a}.raw.var" if src == "raw" else f"{a}.var"))
            args.append(("gene_expression", matrix))
            args.append(("var_gene_id_column", repr(self.var_gene_id_column)))
            args.append(("gene_identifiers", "None" if self.genes is None else _list_literal(self.genes)))
        if self.connectivities is not None:
            args.append(("connectivities", f"{a}.obsp[{self.connectivities!r}]"))
        if out_dir is not None:
            args.append(("out_dir", repr(str(out_dir))))
        args += [
            ("centroid_outlier_quantile", repr(self.centroid_outlier_quantile)),
            ("centroid_min_points", repr(self.centroid_min_points)),
            ("force", "True"),
            ("var_quantization", repr(self.var_quantization)),
            ("obs_continuous_quantization", repr(self.obs_continuous_quantization)),
            ("obs_categorical_dtype", repr(self.obs_categorical_dtype)),
            ("compression", repr(self.compression)),
        ]
        for name in ("dataset_name", "dataset_description", "dataset_id", "source_name", "source_url",
                     "source_citation"):
            if getattr(self, name) is not None:
                args.append((name, repr(getattr(self, name))))
        for dim, key in self.embeddings.items():
            args.append((f"X_umap_{dim}d", f"{a}.obsm[{key!r}]"))
        if self.vector_fields:
            items = ", ".join(f"{f!r}: {a}.obsm[{k!r}]" for f, k in self.vector_fields.items())
            args.append(("vector_fields", "{" + items + "}"))
        if created_at is not None:
            args.append(("created_at", repr(created_at)))
        if self.obs_keys:
            # Only keys with colours in uns are kept, so the call works on any AnnData.
            args.append((
                "category_colors",
                f"{{k: list({a}.uns[k + '_colors']) for k in {list(self.obs_keys)!r} if k + '_colors' in {a}.uns}}",
            ))
        if self.vector_basis != "umap":
            args.append(("vector_basis", repr(self.vector_basis)))
        if self.layout != "key":
            args.append(("layout", repr(self.layout)))
        if record_plan:
            args.append(("sidecar_extra", "{'plan': " + repr(self.to_dict()) + "}"))
        body = ",\n".join(f"    {name}={value}" for name, value in args)
        head = "from cellucid_nb import prepare\n\n" if import_line else ""
        return f"{head}prepare(\n{body},\n)\n"


# ---------------------------------------------------------------------- helpers


def _list_literal(values: tuple[str, ...], width: int = 96) -> str:
    """A list literal wrapped to ``width`` columns (long gene lists stay readable)."""
    text = repr(list(values))
    if len(text) <= width - 24:
        return text
    lines, line = [], ""
    for item in (repr(v) + "," for v in values):
        if line and len(line) + 1 + len(item) > width - 8:
            lines.append(line)
            line = item
        else:
            line = f"{line} {item}" if line else item
    lines.append(line)
    return "[\n" + "\n".join("        " + ln for ln in lines) + "\n    ]"


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _check_str(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise PlanError(f"{name}={value!r}: expected a non-empty string")


def _check_opt_str(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise PlanError(f"{name}={value!r}: expected a string or None")


def _check_unique(name: str, values: tuple[str, ...]) -> None:
    if len(set(values)) != len(values):
        seen: set[str] = set()
        dups = [v for v in values if v in seen or seen.add(v)]  # type: ignore[func-returns-value]
        raise PlanError(f"{name} has duplicates {dups[:10]}: expected unique names")


def _obsm_shape(obsm: Any, key: str, what: str) -> tuple[int, ...]:
    if key not in obsm:
        keys = [str(k) for k in obsm.keys()]
        raise PlanError(f"{what}={key!r} not in obsm{_closest(key, keys)}; obsm has {keys}")
    return tuple(int(s) for s in obsm[key].shape)


def _default_embeddings(summary: DatasetSummary) -> dict[int, str]:
    chosen: dict[int, str] = {}
    umaps = [e for e in summary.embeddings if e.kind == "umap"]
    pool = umaps or summary.embeddings
    # Explicit per-dimension keys win (X_umap_2d), then the plain key (X_umap) by its columns.
    for e in sorted(pool, key=lambda e: (not re.search(r"_[123]d$", e.key), e.key)):
        chosen.setdefault(e.n_dims, e.key)
    return dict(sorted(chosen.items()))
