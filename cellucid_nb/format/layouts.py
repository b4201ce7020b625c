"""The three generations of Cellucid exports folders, and how to tell them apart.

=====================  ==========================================  ===========================
layout                 written by                                  told apart by
=====================  ==========================================  ===========================
``compact_v1`` key     cellucid 0.0.9, cellucid_nb (default)       identity ``version`` 2,
                                                                   patterns hold ``{key}``
``compact_v1`` index   cellucid 0.9.1-0.9.2, cellucid-r,           identity ``version`` 2,
                       cellucid_nb ``layout="index"``              patterns hold ``{index}``
``compact_v2``         cellucid 0.9.3-0.9.4                        identity ``version`` 3,
                                                                   ``"_format": "compact_v2"``
=====================  ==========================================  ===========================

Index-named manifests prefix every field tuple with its payload index
(``[1, "n_genes", 1001.0, 2605.0]``); stripping that index gives the tuple of
the key layout, so the reader and validator parse one tuple shape.
:class:`Layout` holds every rule that differs between the three: tuple shape,
payload file names, where the embeddings are listed, how centroids and vector
fields are keyed. :func:`detect_layout` decides from the JSON files only and
raises :class:`FormatError` (naming the file and what was expected) for a
folder in an unknown format or a mix of two.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellucid_nb.format import spec
from cellucid_nb.format.naming import safe_name
from cellucid_nb.format.safe_io import parse_json

__all__ = [
    "FormatError",
    "UnreadableJSONError",
    "Layout",
    "EmbeddingItem",
    "KEY_LAYOUT",
    "INDEX_LAYOUT",
    "V2_LAYOUT",
    "LAYOUTS",
    "detect_layout",
    "detect_format",
    "newer_format_signals",
    "V2_FORMAT_NAME",
    "V2_IDENTITY_VERSION",
    "V2_VAR_MANIFEST_KEYS",
    "V2_EMBEDDINGS_DIR",
]

V2_FORMAT_NAME = "compact_v2"
V2_IDENTITY_VERSION = 3
V2_EMBEDDINGS_DIR = "embeddings"
#: compact_v2's var manifest: gene_name_sets replaces var_gene_id_column
V2_VAR_MANIFEST_KEYS = frozenset(
    {"_format", "n_points", "compression", "quantization", "_varSchema", "fields", "gene_name_sets"}
)


class FormatError(ValueError):
    """The folder is not in a format we know, or mixes two (the message names the file)."""


class UnreadableJSONError(FormatError):
    """``dataset_identity.json`` is not valid JSON, so no format can be told."""


@dataclass(frozen=True)
class EmbeddingItem:
    """One embedding of an export: ``id`` is ``"<d>d"`` in ``compact_v1`` (one per dimension)."""

    id: str
    dim: int
    file: str
    label: str


@dataclass(frozen=True)
class Layout:
    """The rules of one exports layout (see the module docstring).

    Attributes
    ----------
    format
        The manifests' ``_format``: ``"compact_v1"`` or ``"compact_v2"``.
    naming
        ``"key"`` (payloads named ``safe(key)``) or ``"index"`` (named by the tuple's index).
    identity_version
        ``dataset_identity.json["version"]``.
    """

    format: str
    naming: str
    identity_version: int

    @property
    def name(self) -> str:
        """Human-readable name, e.g. ``"compact_v1 (index-named)"``."""
        return self.format if self.format == V2_FORMAT_NAME else f"{self.format} ({self.naming}-named)"

    @property
    def placeholder(self) -> str:
        """The path-pattern placeholder of a field: ``"{key}"`` or ``"{index}"``."""
        return "{" + self.naming + "}"

    @property
    def indexed(self) -> bool:
        """Whether field tuples start with their payload index."""
        return self.naming == "index"

    def split(self, entry: list) -> tuple[int | None, list]:
        """Return ``(index, tuple without the index)`` of one field tuple (index ``None`` in the key layout).

        Parameters
        ----------
        entry
            A field tuple of an obs or var manifest.
        """
        if not self.indexed:
            return None, entry
        return entry[0], entry[1:]

    def fill(self, pattern: str, key: str, index: int | None, ext: str | None = None) -> str:
        """Substitute a field's name (``safe(key)`` or its index) and ``{ext}`` in a path pattern.

        Parameters
        ----------
        pattern
            A manifest path pattern.
        key
            The field key or gene id.
        index
            The field's payload index (index layouts).
        ext
            The codes extension for ``{ext}``.
        """
        out = pattern.replace(self.placeholder, str(index) if self.indexed else safe_name(key))
        return out if ext is None else out.replace("{ext}", ext)

    def stem(self, key: str, index: int) -> str:
        """The file-name stem of a field's payloads: ``safe(key)`` or its index (writers).

        Parameters
        ----------
        key
            The field key or gene id.
        index
            The field's position (obs fields share one index space, genes another).
        """
        return str(index) if self.indexed else safe_name(key)

    def entry(self, index: int, entry: list) -> list:
        """Return a key-layout field tuple as this layout writes it (index first in index layouts).

        Parameters
        ----------
        index
            The field's payload index.
        entry
            The tuple without an index (``[key, ...]``).
        """
        return [index, *entry] if self.indexed else entry

    def embeddings(self, identity: dict) -> list[EmbeddingItem]:
        """List the embeddings the identity declares, in file order.

        Parameters
        ----------
        identity
            The parsed ``dataset_identity.json``.
        """
        block = identity.get("embeddings") or {}
        if self.format == V2_FORMAT_NAME:
            items = block.get("items") or {}
            return [EmbeddingItem(str(eid), int(item["dimension"]), str(item["file"]), str(item.get("label", eid)))
                    for eid, item in items.items()]
        files = block.get("files") or {}
        out = [EmbeddingItem(f"{int(str(k).rstrip('d'))}d", int(str(k).rstrip("d")), str(v), f"{int(str(k).rstrip('d'))}D")
               for k, v in files.items()]
        return sorted(out, key=lambda e: e.dim)

    def default_embeddings(self, identity: dict) -> dict[int, str]:
        """Return ``{dimension: embedding id}`` of the embedding each dimension shows first.

        Parameters
        ----------
        identity
            The parsed ``dataset_identity.json``.
        """
        items = self.embeddings(identity)
        if self.format != V2_FORMAT_NAME:
            return {e.dim: e.id for e in items}
        defaults = (identity.get("embeddings") or {}).get("defaults") or {}
        out: dict[int, str] = {}
        for item in items:  # a dimension without a declared default uses its first item
            out.setdefault(item.dim, item.id)
        for slot, eid in defaults.items():
            out[int(str(slot).rstrip("d"))] = str(eid)
        return dict(sorted(out.items()))

    def centroids_by_dim(self, centroids: Any, identity: dict) -> dict[str, list] | None:
        """Return a categorical field's centroids keyed by dimension (``"2"``), as ``compact_v1`` keys them.

        ``compact_v2`` keys them by embedding id; the default embedding of each
        dimension gives that dimension's centroids.

        Parameters
        ----------
        centroids
            The tuple's centroids object.
        identity
            The parsed ``dataset_identity.json``.
        """
        if not isinstance(centroids, dict) or self.format != V2_FORMAT_NAME:
            return centroids
        return {str(dim): centroids.get(eid, []) for dim, eid in self.default_embeddings(identity).items()}

    def vector_fields(self, identity: dict) -> dict[str, dict]:
        """Return the identity's vector fields as ``compact_v1`` lists them.

        Each entry has ``label``, ``basis``, ``available_dimensions``,
        ``default_dimension`` and ``files`` keyed ``"<d>d"``. ``compact_v2``
        binds fields to embedding ids: the file of each dimension is the one
        bound to that dimension's default embedding, and ``embedding_files``
        keeps every binding.

        Parameters
        ----------
        identity
            The parsed ``dataset_identity.json``.
        """
        fields = dict(((identity.get("vector_fields") or {}).get("fields")) or {})
        if self.format != V2_FORMAT_NAME:
            return fields
        dims = {e.id: e.dim for e in self.embeddings(identity)}
        defaults = self.default_embeddings(identity)
        out: dict[str, dict] = {}
        for fid, entry in fields.items():
            bound = dict((entry or {}).get("files") or {})
            files = {f"{dim}d": bound[eid] for dim, eid in defaults.items() if eid in bound}
            available = sorted(int(k.rstrip("d")) for k in files)
            out[fid] = {
                "label": (entry or {}).get("label", fid),
                "basis": (entry or {}).get("basis", "umap"),
                "available_dimensions": available,
                "default_dimension": max(available) if available else None,
                "files": files,
                "embedding_files": {eid: path for eid, path in bound.items() if eid in dims},
            }
        return out


KEY_LAYOUT = Layout(spec.FORMAT_NAME, "key", spec.IDENTITY_VERSION)
INDEX_LAYOUT = Layout(spec.FORMAT_NAME, "index", spec.IDENTITY_VERSION)
V2_LAYOUT = Layout(V2_FORMAT_NAME, "index", V2_IDENTITY_VERSION)
#: writer option ``layout=`` -> layout
LAYOUTS = {"key": KEY_LAYOUT, "index": INDEX_LAYOUT}


def _patterns(obs: dict | None, var: dict | None) -> list[tuple[str, str]]:
    """(manifest label, path pattern) of every field path pattern the manifests hold."""
    out: list[tuple[str, str]] = []
    schemas = (obs or {}).get("_obsSchemas") if isinstance(obs, dict) else None
    if isinstance(schemas, dict):
        for kind, keys in (("continuous", ("pathPattern",)), ("categorical", ("codesPathPattern", "outlierPathPattern"))):
            schema = schemas.get(kind)
            if isinstance(schema, dict):
                out += [("obs", schema[k]) for k in keys if isinstance(schema.get(k), str)]
    var_schema = (var or {}).get("_varSchema") if isinstance(var, dict) else None
    if isinstance(var_schema, dict) and isinstance(var_schema.get("pathPattern"), str):
        out.append(("var", var_schema["pathPattern"]))
    return out


def _tuples(obs: dict | None, var: dict | None) -> list[tuple[str, Any]]:
    """(manifest label, field tuple) of every field tuple the manifests hold."""
    out: list[tuple[str, Any]] = []
    for label, manifest, keys in (("obs", obs, ("_continuousFields", "_categoricalFields")), ("var", var, ("fields",))):
        if isinstance(manifest, dict):
            for key in keys:
                entries = manifest.get(key)
                if isinstance(entries, list):
                    out += [(label, e) for e in entries]
    return out


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def detect_layout(identity: Any, manifests: dict[str, Any], names: dict[str, str] | None = None) -> Layout:
    """Decide the layout of an export from its parsed JSON files.

    Parameters
    ----------
    identity
        The parsed ``dataset_identity.json``.
    manifests
        ``{"obs": ..., "var": ..., "connectivity": ...}`` parsed manifests (``None`` when absent).
    names
        File names of the manifests in messages (default: the standard names).

    Returns
    -------
    Layout

    Raises
    ------
    FormatError
        Unknown format, or a mix of two (e.g. ``{key}`` patterns over index tuples,
        a version 3 identity over ``compact_v1`` manifests); the message names the file.
    """
    names = {"obs": "obs_manifest.json", "var": "var_manifest.json", **(names or {})}
    ident = spec.IDENTITY_FILE
    if not isinstance(identity, dict):
        raise FormatError(f"{ident} holds a {type(identity).__name__}, expected a JSON object")
    version = identity.get("version")
    by_version = {spec.IDENTITY_VERSION: spec.FORMAT_NAME, V2_IDENTITY_VERSION: V2_FORMAT_NAME}
    if version is None:  # an identity without a version: the manifests' _format decides (validators report it)
        formats = {m.get("_format") for m in manifests.values() if isinstance(m, dict)} - {None}
        version = V2_IDENTITY_VERSION if formats == {V2_FORMAT_NAME} else spec.IDENTITY_VERSION
    if isinstance(version, bool) or not isinstance(version, int) or version not in by_version:
        raise FormatError(f"{ident}: version {version!r} is not a Cellucid exports version we know; expected "
                          f"{spec.IDENTITY_VERSION} (compact_v1) or {V2_IDENTITY_VERSION} (compact_v2)")
    fmt = by_version[version]
    for kind in ("obs", "var"):
        m = manifests.get(kind)
        if isinstance(m, dict) and "_format" in m and m["_format"] != fmt:
            known = m["_format"] in by_version.values()
            raise FormatError(
                f"{names[kind]}: _format {m['_format']!r} but {ident} has version {version!r} ({fmt}); "
                + ("the folder mixes two export formats" if known else f"expected {fmt!r}")
            )
    emb = identity.get("embeddings")
    if isinstance(emb, dict):
        if fmt == V2_FORMAT_NAME and "items" not in emb:
            raise FormatError(f"{ident}: version 3 (compact_v2) needs embeddings.items, found keys {sorted(emb)}")
        if fmt == spec.FORMAT_NAME and "items" in emb and "files" not in emb:
            raise FormatError(f"{ident}: version 2 (compact_v1) lists embeddings.files, found the compact_v2 "
                              f"keys {sorted(emb)}")
    obs, var = manifests.get("obs"), manifests.get("var")
    placeholders: dict[str, set[str]] = {}
    for label, pattern in _patterns(obs, var):
        found = {p for p in ("key", "index") if "{" + p + "}" in pattern}
        placeholders.setdefault(label, set()).update(found or {"none"})
    used = set().union(*placeholders.values()) if placeholders else set()
    if "none" in used or len(used) > 1:
        label = next(lbl for lbl, found in placeholders.items() if "none" in found or len(found) > 1
                     or found != used)
        raise FormatError(f"{names[label]}: path patterns hold {sorted(used - {'none'}) or 'no placeholder'}; "
                          "expected every pattern to hold {key} (key-named) or every one {index} (index-named)")
    if fmt == V2_FORMAT_NAME:
        naming = "index"
        if used == {"key"}:
            raise FormatError(f"{names[next(iter(placeholders))]}: compact_v2 path patterns must hold {{index}}, "
                              "found {key}")
    elif used:
        naming = used.pop()
    else:  # no field patterns at all: the tuples (if any) or the vector file names decide
        naming = "key"
    layout = {"key": KEY_LAYOUT, "index": INDEX_LAYOUT}[naming] if fmt == spec.FORMAT_NAME else V2_LAYOUT
    # Tuples of the other shape throughout a manifest mean a mix; a few odd ones are the validator's to report.
    for label in ("obs", "var"):
        entries = [e for lbl, e in _tuples(obs, var) if lbl == label and isinstance(e, list) and e]
        indexed = [_is_index(e[0]) and len(e) > 1 and isinstance(e[1], str) for e in entries]
        if entries and layout.indexed and not any(indexed):
            raise FormatError(f"{names[label]}: path patterns hold {{index}} but no field tuple starts with an "
                              f"integer index and a key ([index, key, ...]), e.g. {entries[0][:2]!r}")
        if entries and not layout.indexed and all(indexed):
            raise FormatError(f"{names[label]}: path patterns hold {{key}} but every field tuple starts with an "
                              f"integer index, e.g. {entries[0][:2]!r} (index-named tuples need {{index}} patterns)")
    return layout


def newer_format_signals(path: str | os.PathLike[str]) -> list[str]:
    """What in the folder belongs to the index layout or ``compact_v2`` (empty: only key-layout traits).

    The validator uses it to tell a damaged key-layout export (checked rule by rule) from a folder
    that mixes formats (one ``format_unknown`` problem).

    Parameters
    ----------
    path
        An export folder.
    """
    from cellucid_nb.format.reader import manifest_names

    root = Path(path)
    identity = _load(root / spec.IDENTITY_FILE)
    names = manifest_names(None)
    obs, var = _load(root / names["obs"]), _load(root / names["var"])
    found = [f"{names[label]} pattern {pattern!r}" for label, pattern in _patterns(obs, var) if "{index}" in pattern]
    found += [f"{names[kind]} _format {m['_format']!r}" for kind, m in (("obs", obs), ("var", var))
              if isinstance(m, dict) and m.get("_format") == V2_FORMAT_NAME]
    if isinstance(identity, dict) and isinstance(identity.get("embeddings"), dict) \
            and "items" in identity["embeddings"]:
        found.append(f"{spec.IDENTITY_FILE} embeddings.items")
    return found


def _load(path: Path, required: bool = False) -> Any:
    """Parsed JSON of ``path``; ``None`` when absent, or unreadable and not ``required`` (readers report it)."""
    try:
        return parse_json(path.read_text(encoding="utf-8"), path.name)  # bounded nesting (issue 11)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        if required:
            raise UnreadableJSONError(f"{path.name}: not readable JSON: {exc}") from None
        return None


def detect_format(path: str | os.PathLike[str]) -> Layout:
    """Return the layout of the export folder ``path`` (reads its JSON files only).

    Parameters
    ----------
    path
        An export folder.

    Raises
    ------
    FileNotFoundError
        No ``dataset_identity.json`` in ``path``.
    FormatError
        Unknown format or a mix (see :func:`detect_layout`).
    """
    from cellucid_nb.format.reader import manifest_names

    root = Path(path)
    identity = _load(root / spec.IDENTITY_FILE, required=True)
    if identity is None:
        raise FileNotFoundError(f"{root / spec.IDENTITY_FILE} does not exist: not a Cellucid export folder")
    sidecar = _load(root / spec.SIDECAR_FILE)
    names = manifest_names(sidecar if isinstance(sidecar, dict) else None)
    manifests = {kind: _load(root / name) for kind, name in names.items() if kind != "connectivity"}
    return detect_layout(identity, manifests, names)
