"""Read a Cellucid exports folder (``compact_v1`` or ``compact_v2``, see docs/FORMAT.md).

``read_export(path)`` opens the JSON files only; every payload (points, obs
fields, genes, edges, vector fields) is read when asked for. Exports written by
``cellucid==0.0.9`` are read too: they have no edge weights file and may lack a
vector field ``basis``. The layout (key-named or index-named ``compact_v1``,
``compact_v2``) is detected from the manifests; its rules live in
:mod:`cellucid_nb.format.layouts`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cellucid_nb.format import spec
from cellucid_nb.format.codecs import dequantize
from cellucid_nb.format.layouts import EmbeddingItem, FormatError, detect_layout
from cellucid_nb.format.payloads import read_payload
from cellucid_nb.format.safe_io import check_no_links, parse_json, read_text_no_follow

__all__ = ["read_export", "ExportReader", "ObsFieldInfo", "load_json", "manifest_names", "DTYPE_BITS", "CODES_EXT"]

#: manifest dtype name -> quantization bits (None = float32)
DTYPE_BITS = {"uint8": 8, "uint16": 16, "float32": None}
#: categorical codesDtype -> the ``{ext}`` substituted in ``codesPathPattern``
CODES_EXT = {"uint8": "u8", "uint16": "u16", "uint32": "u32"}
_NUMPY_DTYPE = {"uint8": "u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8", "float32": "<f4", "float64": "<f8"}


def load_json(path: Path, label: str | None = None) -> Any:
    """Load a JSON file; errors name the file.

    Parameters
    ----------
    path
        The file.
    label
        Name of the file in messages (defaults to ``path``).
    """
    name = label or str(path)
    try:
        text = read_text_no_follow(path)  # a symbolic link is refused
    except FileNotFoundError:
        raise FileNotFoundError(f"{name} does not exist") from None
    return parse_json(text, name)  # ValueError naming the file: invalid or nested too deeply


def _number(value: Any, label: Any, key: str, what: str) -> float:
    """A manifest's min/max as a float, or a ``ValueError`` naming the file, the key and what was received."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{label}: {key!r} has {what} {value!r:.60}, expected a number")
    return float(value)


#: manifest kind -> default file name (prepare() may be told other names; its sidecar records them)
DEFAULT_MANIFESTS = {
    "obs": "obs_manifest.json",
    "var": "var_manifest.json",
    "connectivity": "connectivity_manifest.json",
}


def manifest_names(sidecar: dict | None) -> dict[str, str]:
    """Return the manifest file names of an export: the defaults, or those its sidecar's settings name.

    Parameters
    ----------
    sidecar
        The parsed ``cellucid_nb.json`` or ``None``.
    """
    settings = (sidecar or {}).get("settings") if isinstance(sidecar, dict) else None
    names = dict(DEFAULT_MANIFESTS)
    if isinstance(settings, dict):
        for kind in names:
            value = settings.get(f"{kind}_manifest_filename")
            if isinstance(value, str) and value and "/" not in value and "\\" not in value and value != "..":
                names[kind] = value
    return names


@dataclass(frozen=True)
class ObsFieldInfo:
    """Everything the manifest says about one obs field (no payload is read).

    ``dtype`` is the stored payload type: the values dtype for continuous fields,
    ``codesDtype`` for categorical ones; ``bits`` is the quantization of
    continuous values (``None`` = float32 or categorical).
    """

    key: str
    kind: str  # "continuous" | "categorical"
    dtype: str
    bits: int | None
    min: float | None
    max: float | None
    categories: list[str] | None
    missing_code: int | None
    centroids: dict[str, list[dict]] | None
    outlier_bits: int | None
    outlier_min: float | None
    outlier_max: float | None


class ExportReader:
    """Lazy access to one export folder; create it with :func:`read_export`.

    Parameters
    ----------
    path
        The export folder (holding ``dataset_identity.json``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"export folder {self.path} does not exist")
        self.identity: dict = self._json(spec.IDENTITY_FILE, required=True)
        if not isinstance(self.identity, dict):
            raise ValueError(f"{self.path / spec.IDENTITY_FILE} must hold a JSON object")
        self.sidecar: dict | None = self._json(spec.SIDECAR_FILE)
        #: manifest kind ("obs", "var", "connectivity") -> its file name in this export
        self.manifest_files = manifest_names(self.sidecar)
        self.obs_manifest: dict | None = self._json(self.manifest_files["obs"])
        self.connectivity_manifest: dict | None = self._json(self.manifest_files["connectivity"])
        manifests = {"obs": self.obs_manifest}
        if not ((self.obs_manifest or {}).get("_obsSchemas")):  # no obs patterns: the var manifest decides
            manifests["var"] = self.var_manifest
        #: the export's layout (key- or index-named compact_v1, compact_v2); see cellucid_nb.format.layouts
        self.layout = detect_layout(self.identity, manifests, self.manifest_files)
        self._obs_index: dict[str, int | None] = {}
        self._centroids: dict[str, dict] = {}  # as the manifest keys them: by dimension (v1) or embedding id (v2)
        self._obs_fields = self._parse_obs_fields()

    # ------------------------------------------------------------------ files
    def file_path(self, relpath: str) -> Path:
        """Return the absolute path of a file named by a manifest, refusing paths outside the export.

        Parameters
        ----------
        relpath
            Path relative to the export folder, as manifests write it.
        """
        return check_no_links(self.path, relpath)  # ValueError outside the export, SymlinkError through a link

    def _json(self, name: str, required: bool = False) -> Any:
        path = self.file_path(name)
        if not path.is_file():
            if required:
                raise FileNotFoundError(f"{path} does not exist: not a Cellucid export folder")
            return None
        return load_json(path)

    def _payload(self, relpath: str, dtype: str, count: int) -> np.ndarray:
        return read_payload(self.file_path(relpath), _NUMPY_DTYPE.get(dtype, dtype), count, label=str(self.path / relpath))

    # ------------------------------------------------------------ basic facts
    @property
    def n_cells(self) -> int:
        """Number of cells (from the identity stats, else the obs manifest)."""
        stats = self.identity.get("stats") or {}
        if "n_cells" in stats:
            return int(stats["n_cells"])
        if self.obs_manifest is not None:
            return int(self.obs_manifest["n_points"])
        raise ValueError(f"{self.path / spec.IDENTITY_FILE} has no stats.n_cells and there is no obs manifest")

    @cached_property
    def embeddings(self) -> list[EmbeddingItem]:
        """Every embedding of the export (``compact_v2`` may hold several per dimension; ids ``"<d>d"`` in v1)."""
        return self.layout.embeddings(self.identity)

    @cached_property
    def default_embeddings(self) -> dict[int, str]:
        """``{dimension: embedding id}`` of the embedding :meth:`points` reads for each dimension."""
        return self.layout.default_embeddings(self.identity)

    @cached_property
    def _embedding_files(self) -> dict[int, str]:
        by_id = {e.id: e.file for e in self.embeddings}
        out = {dim: by_id[eid] for dim, eid in self.default_embeddings.items() if eid in by_id}
        if not out:  # identity without an embeddings block: look for the files themselves
            for dim in spec.EMBEDDING_DIMS:
                for name in (spec.points_file(dim, None), spec.points_file(dim, 1)):
                    if (self.path / name).is_file():
                        out[dim] = name
        return dict(sorted(out.items()))

    @property
    def dimensions(self) -> list[int]:
        """Embedding dimensions present, sorted."""
        dims = (self.identity.get("embeddings") or {}).get("available_dimensions")
        return sorted(int(d) for d in dims) if dims and self.layout.format == spec.FORMAT_NAME \
            else list(self._embedding_files)

    @property
    def default_dimension(self) -> int:
        """The dimension a viewer shows first (identity's choice, else the largest)."""
        dim = (self.identity.get("embeddings") or {}).get("default_dimension")
        return int(dim) if dim is not None else max(self.dimensions)

    def points(self, dim: int, embedding: str | None = None) -> np.ndarray:
        """Return a normalised embedding of dimension ``dim`` as float32 ``(n_cells, dim)``.

        Parameters
        ----------
        dim
            1, 2 or 3.
        embedding
            An embedding id of :attr:`embeddings` (default: the dimension's default embedding).
        """
        if embedding is not None:
            item = next((e for e in self.embeddings if e.id == embedding), None)
            if item is None or item.dim != dim:
                raise KeyError(f"no {dim}D embedding {embedding!r} in {self.path}; available: "
                               f"{[(e.id, e.dim) for e in self.embeddings]}")
            return self._payload(item.file, "float32", self.n_cells * dim).reshape(-1, dim)
        if dim not in self._embedding_files:
            raise KeyError(f"no {dim}D embedding in {self.path}; available: {self.dimensions}")
        return self._payload(self._embedding_files[dim], "float32", self.n_cells * dim).reshape(-1, dim)

    # -------------------------------------------------------------------- obs
    def _parse_obs_fields(self) -> dict[str, ObsFieldInfo]:
        m = self.obs_manifest
        if m is None:
            return {}
        label = self.path / self.manifest_files["obs"]
        schemas = m.get("_obsSchemas") or {}
        fields: dict[str, ObsFieldInfo] = {}
        cont = schemas.get("continuous") or {}
        bits = DTYPE_BITS.get(cont.get("dtype", "float32"))
        for indexed in m.get("_continuousFields") or []:
            index, entry = self.layout.split(indexed)
            key = str(entry[0])
            self._obs_index[key] = index
            lo, hi = (_number(entry[1], label, key, "min"), _number(entry[2], label, key, "max")) if len(entry) >= 3 \
                else (None, None)
            if bits is not None and lo is None:
                raise ValueError(f"{label}: continuous field {key!r} is quantized but has no min/max: {entry!r}")
            fields[key] = ObsFieldInfo(key, "continuous", cont.get("dtype", "float32"), bits, lo, hi,
                                       None, None, None, None, None, None)
        cat = schemas.get("categorical") or {}
        outlier_bits = DTYPE_BITS.get(cat.get("outlierDtype", "float32"))
        for indexed in m.get("_categoricalFields") or []:
            index, entry = self.layout.split(indexed)
            if len(entry) < 4:
                raise ValueError(f"{label}: categorical field entry {indexed!r} has {len(indexed)} elements, expected "
                                 + ("6 or 8" if self.layout.indexed else "5 or 7"))
            key = str(entry[0])
            self._obs_index[key] = index
            self._centroids[key] = entry[4] if len(entry) >= 5 and isinstance(entry[4], dict) else {}
            omin, omax = (_number(entry[5], label, key, "outlier min"), _number(entry[6], label, key, "outlier max")) \
                if len(entry) >= 7 else (None, None)
            if not isinstance(entry[1], list):
                raise ValueError(f"{label}: categorical field {key!r} has categories {entry[1]!r:.60}, expected a list")
            fields[key] = ObsFieldInfo(
                key, "categorical", str(entry[2]), None, None, None, [str(c) for c in entry[1]], int(entry[3]),
                self.layout.centroids_by_dim(entry[4], self.identity) if len(entry) >= 5 else None,
                outlier_bits, omin, omax,
            )
        return fields

    @property
    def obs_keys(self) -> list[str]:
        """Obs field keys in manifest order: continuous fields, then categorical."""
        return list(self._obs_fields)

    def obs_field_info(self, key: str) -> ObsFieldInfo:
        """Return the manifest facts of one obs field.

        Parameters
        ----------
        key
            An obs key from :attr:`obs_keys`.
        """
        try:
            return self._obs_fields[key]
        except KeyError:
            raise KeyError(f"obs field {key!r} is not in {self.path / self.manifest_files['obs']}; "
                           f"available: {self.obs_keys[:20]}") from None

    def centroids(self, key: str, embedding: str) -> list[dict]:
        """Return a categorical field's centroids on one embedding (``[{category, position, n_points}]``).

        Parameters
        ----------
        key
            A categorical obs key.
        embedding
            An embedding id of :attr:`embeddings` (``"2d"`` in ``compact_v1``).
        """
        info = self.obs_field_info(key)
        item = next((e for e in self.embeddings if e.id == embedding), None)
        if info.kind != "categorical" or item is None:
            raise KeyError(f"no centroids of {key!r} on embedding {embedding!r}: expected a categorical field and "
                           f"one of {[e.id for e in self.embeddings]}")
        raw = self._centroids.get(key, {})
        return list(raw.get(embedding if self.layout.format != spec.FORMAT_NAME else str(item.dim), []))

    def _obs_value_path(self, info: ObsFieldInfo) -> str:
        schemas = self._listed_in("obs")["_obsSchemas"]
        index = self._obs_index.get(info.key)
        if info.kind == "continuous":
            return self.layout.fill(schemas["continuous"]["pathPattern"], info.key, index)
        return self.layout.fill(schemas["categorical"]["codesPathPattern"], info.key, index,
                                CODES_EXT.get(info.dtype, info.dtype))

    def obs_raw(self, key: str) -> np.ndarray:
        """Return the stored payload of an obs field, inflated: category codes or (quantized) values.

        Parameters
        ----------
        key
            An obs key.
        """
        info = self.obs_field_info(key)
        return self._payload(self._obs_value_path(info), info.dtype, self.n_cells)

    def obs_outliers_raw(self, key: str) -> np.ndarray | None:
        """Return the stored outlier-quantile payload of a categorical field (``None`` for continuous ones).

        Parameters
        ----------
        key
            An obs key.
        """
        info = self.obs_field_info(key)
        if info.kind != "categorical":
            return None
        schema = self._listed_in("obs")["_obsSchemas"]["categorical"]
        path = self.layout.fill(schema["outlierPathPattern"], key, self._obs_index.get(key), CODES_EXT.get(info.dtype))
        return self._payload(path, schema.get("outlierDtype", "float32"), self.n_cells)

    def obs_outliers(self, key: str) -> np.ndarray | None:
        """Return decoded outlier quantiles (float32, NaN = none) of a categorical field.

        Parameters
        ----------
        key
            An obs key.
        """
        raw = self.obs_outliers_raw(key)
        info = self.obs_field_info(key)
        if raw is None or info.outlier_bits is None:
            return raw
        if info.outlier_min is None or info.outlier_max is None:
            raise ValueError(f"{self.path / self.manifest_files['obs']}: categorical field {key!r} has quantized "
                             f"outliers ({info.outlier_bits} bits) but no outlierMin/outlierMax in its entry")
        return dequantize(raw, info.outlier_min, info.outlier_max, info.outlier_bits,
                          f"{self.path / self.manifest_files['obs']}: outliers of {key!r}")

    def obs_column(self, key: str) -> pd.Series:
        """Return one decoded obs column.

        Categorical fields become a pandas Categorical (missing codes → NaN);
        continuous fields float32 (missing marker → NaN).

        Parameters
        ----------
        key
            An obs key.
        """
        info = self.obs_field_info(key)
        raw = self.obs_raw(key)
        if info.kind == "continuous":
            if info.bits is None:
                return pd.Series(raw, name=key)
            assert info.min is not None and info.max is not None  # parsing refuses quantized fields without a range
            return pd.Series(dequantize(raw, info.min, info.max, info.bits,
                                        f"{self.path / self.manifest_files['obs']}: obs field {key!r}"), name=key)
        assert info.categories is not None  # every categorical field carries its categories
        n_cat = len(info.categories)
        bad = (raw >= n_cat) & (raw != info.missing_code)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{self.path / self._obs_value_path(info)}: code {int(raw[first])} at cell {first} is not below "
                f"the {n_cat} categories of {key!r} nor the missing marker {info.missing_code}"
            )
        codes = raw.astype(np.int32 if n_cat > 32767 else np.int16)
        codes[raw == info.missing_code] = -1
        return pd.Series(pd.Categorical.from_codes(codes, categories=info.categories), name=key)

    @property
    def obs(self) -> pd.DataFrame:
        """All obs fields decoded, in :attr:`obs_keys` order (reads every obs payload)."""
        return pd.DataFrame({key: self.obs_column(key) for key in self.obs_keys}, index=pd.RangeIndex(self.n_cells))

    def category_colors(self, key: str) -> list[str] | None:
        """Return the category colours stored in the sidecar for ``key``, if any.

        Parameters
        ----------
        key
            An obs key.
        """
        colors = (self.sidecar or {}).get("category_colors") or {}
        value = colors.get(key)
        return list(value) if value is not None else None

    # ------------------------------------------------------------------ genes
    @cached_property
    def var_manifest(self) -> dict | None:
        """The parsed ``var_manifest.json`` or ``None`` (loaded on first use: it can be large)."""
        manifest = self._json(self.manifest_files["var"])
        layout = getattr(self, "layout", None)
        if manifest is not None and layout is not None:
            found = detect_layout(self.identity, {"obs": self.obs_manifest, "var": manifest}, self.manifest_files)
            if found != layout:
                raise FormatError(f"{self.path / self.manifest_files['var']} is {found.name} but the rest of the "
                                  f"export is {layout.name}")
        return manifest

    def _listed_in(self, kind: str) -> dict:
        """The ``"obs"`` or ``"var"`` manifest of a field it lists (so it exists; a clear error otherwise)."""
        manifest = self.obs_manifest if kind == "obs" else self.var_manifest
        if manifest is None:
            raise FileNotFoundError(f"{self.path / self.manifest_files[kind]} is missing")
        return manifest

    @cached_property
    def _gene_index(self) -> dict[str, int]:
        fields = (self.var_manifest or {}).get("fields") or []
        return {str(self.layout.split(f)[1][0]): i for i, f in enumerate(fields)}

    @property
    def genes(self) -> list[str]:
        """Exported gene ids in export order."""
        return list(self._gene_index)

    def gene_info(self, gene: str) -> tuple[float | None, float | None, int | None]:
        """Return ``(min, max, bits)`` of one gene; ``(None, None, None)`` when stored as float32.

        Parameters
        ----------
        gene
            A gene id from :attr:`genes`.
        """
        if gene not in self._gene_index:
            raise KeyError(f"gene {gene!r} is not in {self.path / self.manifest_files['var']}")
        var = self._listed_in("var")
        entry = self.layout.split(var["fields"][self._gene_index[gene]])[1]
        bits = DTYPE_BITS.get(var["_varSchema"].get("dtype", "float32"))
        if bits is None:
            return None, None, None
        label = self.path / self.manifest_files["var"]
        return _number(entry[1], label, gene, "min"), _number(entry[2], label, gene, "max"), bits

    def gene_raw(self, gene: str) -> np.ndarray:
        """Return the stored payload of one gene (quantized codes or float32).

        Parameters
        ----------
        gene
            A gene id.
        """
        self.gene_info(gene)
        var = self._listed_in("var")
        schema = var["_varSchema"]
        index = self.layout.split(var["fields"][self._gene_index[gene]])[0]
        path = self.layout.fill(schema["pathPattern"], gene, index)
        return self._payload(path, schema.get("dtype", "float32"), self.n_cells)

    def gene(self, gene: str) -> np.ndarray:
        """Return one gene's expression decoded to float32 (missing marker → NaN).

        Parameters
        ----------
        gene
            A gene id.
        """
        lo, hi, bits = self.gene_info(gene)
        raw = self.gene_raw(gene)
        if bits is None:
            return raw
        assert lo is not None and hi is not None  # gene_info gives a range with every bit width
        return dequantize(raw, lo, hi, bits, f"{self.path / self.manifest_files['var']}: gene {gene!r}")

    # ------------------------------------------------------------------ edges
    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Return the kNN graph as ``(src, dst, weights)``; weights are ``None`` in exports without them.

        Raises
        ------
        FileNotFoundError
            The export has no connectivity manifest.
        """
        m = self.connectivity_manifest
        if m is None:
            raise FileNotFoundError(f"{self.path / self.manifest_files['connectivity']} does not exist: no kNN graph exported")
        n = int(m["n_edges"])
        src = self._payload(m["sourcesPath"], m["index_dtype"], n)
        dst = self._payload(m["destinationsPath"], m["index_dtype"], n)
        weights = self._payload(m["weightsPath"], m.get("weight_dtype", "float64"), n) if m.get("weightsPath") else None
        return src, dst, weights

    # ---------------------------------------------------------- vector fields
    @property
    def vector_fields(self) -> dict:
        """Vector field entries (``{id: {label, basis, available_dimensions, files: {"<d>d": path}}}``), or ``{}``.

        ``compact_v2`` entries also hold ``embedding_files`` (``{embedding id: path}``).
        """
        return self.layout.vector_fields(self.identity)

    def vector_field(self, field_id: str, dim: int, embedding: str | None = None) -> np.ndarray:
        """Return one vector field in one dimension as float32 ``(n_cells, dim)``.

        Parameters
        ----------
        field_id
            A key of :attr:`vector_fields`.
        dim
            1, 2 or 3.
        embedding
            The embedding id the field is drawn over (``compact_v2``; default: the dimension's default).
        """
        fields = self.vector_fields
        if field_id not in fields:
            raise KeyError(f"vector field {field_id!r} is not in {self.path / spec.IDENTITY_FILE}; "
                           f"available: {sorted(fields)}")
        files = fields[field_id].get("files") or {}
        if embedding is not None:
            bound = fields[field_id].get("embedding_files") or {f"{d}d": p for d, p in files.items()}
            if embedding not in bound:
                raise KeyError(f"vector field {field_id!r} is not bound to embedding {embedding!r}; "
                               f"available: {sorted(bound)}")
            files = {f"{dim}d": bound[embedding]}
        if f"{dim}d" not in files:
            raise KeyError(f"vector field {field_id!r} has no {dim}D file; available: {sorted(files)}")
        return self._payload(files[f"{dim}d"], "float32", self.n_cells * dim).reshape(-1, dim)

    def __repr__(self) -> str:
        return (f"ExportReader({str(self.path)!r}, n_cells={self.n_cells}, dimensions={self.dimensions}, "
                f"obs={len(self.obs_keys)}, genes={'?' if 'var_manifest' not in self.__dict__ else len(self.genes)})")


def read_export(path: str | os.PathLike[str]) -> ExportReader:
    """Open an export folder lazily (only its JSON files are read now).

    Parameters
    ----------
    path
        Folder holding ``dataset_identity.json`` and the manifests.

    Returns
    -------
    ExportReader

    Raises
    ------
    FileNotFoundError
        The folder or its ``dataset_identity.json`` is missing.
    ValueError
        A JSON file is invalid (the message names it).
    """
    return ExportReader(path)

