"""Validator rules of the index-named ``compact_v1`` layout and of ``compact_v2``.

:func:`checker_for` picks the checker of the layout a folder holds
(:func:`cellucid_nb.format.layouts.detect_layout`). The key layout uses the
validator's own :class:`~cellucid_nb.format.validator._Checker`. The two
others check their own rules here (placeholders, payload indices 0..N-1, gzip
ISIZE, a concrete codes dtype; v2: embedding items, var keys, gene-name sets,
centroids and vector fields keyed by embedding id), then hand the checker a
key-shaped view of each manifest (indices stripped, checked paths built from
the indices), so every rule both layouts share is checked by the same code.
A folder in no known format, or mixing two, gives one ``format_unknown``
problem naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from cellucid_nb.format import spec
from cellucid_nb.format.layouts import (
    INDEX_LAYOUT,
    KEY_LAYOUT,
    V2_EMBEDDINGS_DIR,
    V2_FORMAT_NAME,
    V2_IDENTITY_VERSION,
    V2_LAYOUT,
    V2_VAR_MANIFEST_KEYS,
    FormatError,
    Layout,
    UnreadableJSONError,
)
from cellucid_nb.format.payloads import is_gzip_path
from cellucid_nb.format.validator import RULES, Problem, _Checker, _is_int

__all__ = ["LAYOUT_RULES", "ALL_RULES", "checker_for", "gzip_isize"]

#: rule id -> what it checks (rules of the index layout and compact_v2, beside validator.RULES)
LAYOUT_RULES: dict[str, str] = {
    "format_unknown": "the folder is compact_v1 (key- or index-named) or compact_v2, and mixes none of them",
    "index_invalid": "index-named field tuples start with integer indices that are exactly 0..N-1 "
                     "(obs continuous and categorical fields share one index space)",
    "placeholder_invalid": "index-named path patterns hold exactly {index} (and {ext} in codesPathPattern), "
                           "no other placeholder",
    "gzip_isize": "each .gz payload's ISIZE trailer equals its decoded length",
    "categorical_dtype_auto": "export_settings.obs_categorical_dtype names a concrete dtype, never 'auto'",
    "embedding_invalid": "compact_v2 embeddings: items ordered by (dimension, id) with files "
                         "embeddings/<i>_<d>d.bin[.gz], one default per dimension, default_dimension the highest",
    "gene_name_sets_invalid": "compact_v2 var gene_name_sets: set 0 is the field names (names null), "
                              "later sets name one gene each",
}
ALL_RULES: dict[str, str] = {**RULES, **LAYOUT_RULES}

_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def gzip_isize(path: Path) -> int | None:
    """Return the ISIZE trailer of a gzip file (decoded length mod 2**32), ``None`` if too short.

    Parameters
    ----------
    path
        A ``.gz`` payload.
    """
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        if fh.tell() < 18:
            return None
        fh.seek(-4, 2)
        return int.from_bytes(fh.read(4), "little")


class _FormatChecker(_Checker):
    """Reports why the folder's format is unknown (the other checks would only echo it)."""

    rules = ALL_RULES

    def __init__(self, root: Path, error: FormatError, **options: Any) -> None:
        super().__init__(root, **options)
        self.error = error

    def run(self) -> list[Problem]:
        self.check_links_and_leftovers()
        text = str(self.error)
        file, _, detail = text.partition(": ")
        if not file.endswith(".json") or not detail:
            file, detail = spec.IDENTITY_FILE, text
        self.add(file, "format_unknown", detail)
        return self.problems


class _IndexChecker(_Checker):
    """Index-named ``compact_v1`` (cellucid 0.9.1-0.9.2): the checks of the key layout on a key-shaped view."""

    rules = ALL_RULES
    placeholder = "{index}"
    constant_range_ok = True  # 0.9.x writes a constant field as min == max with every code 0
    # 0.9.x: a codes dtype holds as many categories as its missing marker (uint8: 255, codes 0-254)
    category_limits = {"uint8": (255, 255), "uint16": (65535, 65535)}
    layout: Layout = INDEX_LAYOUT

    def __init__(self, root: Path, **options: Any) -> None:
        super().__init__(root, **options)
        self.index: dict[tuple[str, str], Any] = {}  # (manifest kind, key) -> payload index as written
        self._var_pattern: str | None = None
        self._vector_index: dict[str, int] = {}  # field id -> index (position among the sorted ids)

    # ---------------------------------------------------------------- file names
    def fill(self, pattern: str, key: Any, ext: str | None = None) -> str:
        kind = "var" if pattern == self._var_pattern else "obs"
        out = pattern.replace("{index}", str(self.index.get((kind, str(key)), key)))
        return out if ext is None else out.replace("{ext}", ext)

    def vector_file(self, field_id: str, dim: int, gz: bool) -> str:
        return f"vectors/{self._vector_index.get(field_id, field_id)}_{dim}d.bin" + (".gz" if gz else "")

    # ---------------------------------------------------------------- loading
    def load(self, name: str) -> dict | None:
        data = super().load(name)
        if data is None:
            return data
        views = {spec.IDENTITY_FILE: lambda: self.view_identity(data), self.names["obs"]: lambda: self.view_obs(name, data),
                 self.names["var"]: lambda: self.view_var(name, data)}
        if name not in views:
            return data
        try:
            return views[name]()
        except (TypeError, KeyError, ValueError, AttributeError, IndexError) as exc:  # garbage: report, never crash
            self.add(name, "manifest_malformed", f"{type(exc).__name__}: {exc}")
            self.broken.add(name)
            return data

    def view_identity(self, ident: dict) -> dict:
        """Check the identity rules of this layout; return what the key-layout checks read."""
        dtype = (ident.get("export_settings") or {}).get("obs_categorical_dtype") \
            if isinstance(ident.get("export_settings"), dict) else None
        if dtype == "auto":
            self.add(spec.IDENTITY_FILE, "categorical_dtype_auto",
                     "export_settings.obs_categorical_dtype is 'auto'; the index layout names the codes dtype "
                     "('uint8' or 'uint16')")
        fields = ((ident.get("vector_fields") or {}).get("fields")) if isinstance(ident.get("vector_fields"), dict) \
            else None
        if isinstance(fields, dict) and fields:
            self._vector_index = {fid: i for i, fid in enumerate(sorted(fields))}
            if ident["vector_fields"].get("default_field") in fields:  # 0.9.x: the caller names the default
                rule = "velocity_umap" if "velocity_umap" in fields else sorted(fields)[0]  # the key layout's
                ident = {**ident, "vector_fields": {**ident["vector_fields"], "default_field": rule}}
        return ident

    def check_placeholders(self, name: str, pattern: Any, allowed: set[str], what: str) -> None:
        if not isinstance(pattern, str):
            return  # reported by the schema checks
        found = _PLACEHOLDER.findall(pattern)
        if sorted(found) != sorted(allowed):  # each exactly once
            self.add(name, "placeholder_invalid",
                     f"{what} {pattern!r} holds placeholders {sorted(found)}, expected exactly {sorted(allowed)}")

    def strip(self, name: str, kind: str, entries: list[Any], indices: list[int]) -> list[Any]:
        """Return the tuples without their index (appended to ``indices``); report tuples without one."""
        out = []
        for entry in entries:
            if not (isinstance(entry, list) and len(entry) > 1 and isinstance(entry[1], str)):
                self.add(name, "index_invalid", f"field tuple {str(entry)[:80]} is not [index, key, ...]")
                continue
            if _is_int(entry[0]):
                indices.append(int(entry[0]))
            else:
                self.add(name, "index_invalid", f"field tuple {str(entry)[:80]} starts with {entry[0]!r}, "
                                                "expected an integer index")
            self.index[(kind, entry[1])] = entry[0]
            out.append(entry[1:])
        return out

    def check_dense(self, name: str, indices: list[int]) -> None:
        """Payload indices must be exactly 0..N-1, each once (the index is the file name)."""
        if sorted(indices) != list(range(len(indices))):
            dup = sorted({i for i in indices if indices.count(i) > 1})
            self.add(name, "index_invalid",
                     f"payload indices {sorted(indices)[:20]} are not exactly 0..{len(indices) - 1}, each once"
                     + (f" (repeated: {dup[:10]})" if dup else ""))

    def view_obs(self, name: str, m: dict) -> dict:
        view = dict(m)
        schemas = m.get("_obsSchemas")
        if isinstance(schemas, dict):
            cont, cat = schemas.get("continuous"), schemas.get("categorical")
            if isinstance(cont, dict):
                self.check_placeholders(name, cont.get("pathPattern"), {"{index}"}, "continuous pathPattern")
            if isinstance(cat, dict):
                self.check_placeholders(name, cat.get("codesPathPattern"), {"{index}", "{ext}"}, "codesPathPattern")
                self.check_placeholders(name, cat.get("outlierPathPattern"), {"{index}"}, "outlierPathPattern")
        cont_f, cat_f = m.get("_continuousFields"), m.get("_categoricalFields")
        if isinstance(cont_f, list) and isinstance(cat_f, list):
            indices: list[int] = []  # continuous and categorical fields share one index space
            view["_continuousFields"] = self.strip(name, "obs", cont_f, indices)
            view["_categoricalFields"] = [self.view_categorical(e) for e in self.strip(name, "obs", cat_f, indices)]
            self.check_dense(name, indices)
        return view

    def view_categorical(self, entry: list) -> list:
        """0.9.x keeps JSON scalar categories (numbers, booleans): the checks see them as text."""
        if len(entry) > 1 and isinstance(entry[1], list):
            entry = [entry[0], [c if isinstance(c, str) else str(c) for c in entry[1]], *entry[2:]]
        return entry

    def view_var(self, name: str, m: dict) -> dict:
        view = dict(m)
        schema = m.get("_varSchema")
        if isinstance(schema, dict):
            self.check_placeholders(name, schema.get("pathPattern"), {"{index}"}, "_varSchema pathPattern")
            self._var_pattern = schema.get("pathPattern")
        if isinstance(m.get("fields"), list):
            indices: list[int] = []
            view["fields"] = self.strip(name, "var", m["fields"], indices)
            self.check_dense(name, indices)
        if view.get("var_gene_id_column", "") is None:
            view["var_gene_id_column"] = "index"  # 0.9.x writes null for "names from var.index"
        return view

    # ---------------------------------------------------------------- gzip ISIZE
    def isize_problem(self, relpath: str, path: Path, n_bytes: int) -> list[Problem]:
        if not is_gzip_path(path) or not path.is_file():
            return []
        isize = gzip_isize(path)
        if isize is not None and isize != n_bytes % (1 << 32):
            return [self.problem(relpath, "gzip_isize", f"ISIZE trailer says {isize} bytes, the payload decodes to "
                                                        f"{n_bytes} bytes (mod 2^32: {n_bytes % (1 << 32)})")]
        return []

    def payload_task(self, relpath: str, path: Path, n_bytes: int, what: str) -> None:
        super().payload_task(relpath, path, n_bytes, what)
        self.tasks.append(lambda: self.isize_problem(relpath, path, n_bytes))

    def read(self, relpath: str, path: Path, dtype: str, count: int, what: str) -> np.ndarray | None:
        data = super().read(relpath, path, dtype, count, what)
        if data is not None:
            self.problems.extend(self.isize_problem(relpath, path, data.nbytes))
        return data


class _V2Checker(_IndexChecker):
    """``compact_v2`` (cellucid 0.9.3-0.9.4): its own embeddings, var keys, centroids and vector fields."""

    layout = V2_LAYOUT
    category_limits = {"uint8": (255, 255), "uint16": (65535, 65535), "uint32": (4294967295, 4294967295)}

    def __init__(self, root: Path, **options: Any) -> None:
        super().__init__(root, **options)
        self.items: dict[str, dict] = {}
        self.defaults: dict[int, str] = {}
        self.vector_block: Any = None
        self.compression: int | None = None

    def view_identity(self, ident: dict) -> dict:
        ident = super().view_identity(ident)
        name = spec.IDENTITY_FILE
        view = dict(ident)
        settings = ident.get("export_settings")
        self.compression = settings.get("compression") if isinstance(settings, dict) else None
        if ident.get("version") == V2_IDENTITY_VERSION:
            view["version"] = spec.IDENTITY_VERSION  # the shared checks know version 2 only
        emb = ident.get("embeddings")
        items = emb.get("items") if isinstance(emb, dict) else None
        if not isinstance(emb, dict) or not isinstance(items, dict) or not items:
            self.add(name, "embedding_invalid", "embeddings.items must be a non-empty object {id: item}")
            return view
        self.check_embeddings(emb, items)
        files = {f"{d}d": (items.get(eid) or {}).get("file") for d, eid in self.defaults.items()}
        view["embeddings"] = {"available_dimensions": sorted(self.defaults),  # default_dimension: checked above
                              "default_dimension": max(self.defaults, default=None), "files": files}
        self.vector_block = ident.get("vector_fields")
        view.pop("vector_fields", None)  # checked by check_vectors below, bound to embedding ids
        return view

    def check_embeddings(self, emb: dict, items: dict) -> None:
        name = spec.IDENTITY_FILE
        bad: list[str] = []
        order = []
        for eid, item in items.items():
            dim = item.get("dimension") if isinstance(item, dict) else None
            if dim not in spec.EMBEDDING_DIMS or not isinstance(item.get("file"), str):
                bad.append(f"item {eid!r} needs dimension 1-3 and a file, found {item!r}"[:200])
                continue
            self.items[str(eid)] = item
            order.append((int(dim), str(eid)))
        if order != sorted(order):
            bad.append(f"items are in order {[e for _, e in order]}, expected sorted by (dimension, id)")
        for index, (eid, item) in enumerate(self.items.items()):
            expected = f"{V2_EMBEDDINGS_DIR}/{index}_{item['dimension']}d.bin"
            if item["file"] not in (expected, expected + ".gz"):
                bad.append(f"item {eid!r} has file {item['file']!r}, expected {expected!r}[.gz]")
        dims = sorted({int(i["dimension"]) for i in self.items.values()})
        defaults = emb.get("defaults")
        if not isinstance(defaults, dict):
            bad.append(f"defaults is {defaults!r}, expected {{'<d>d': embedding id}}")
            defaults = {}
        for d in dims:
            eid = defaults.get(f"{d}d")
            if eid not in self.items or int(self.items[eid]["dimension"]) != d:
                bad.append(f"defaults['{d}d'] is {eid!r}, expected one of the {d}D items")
            else:
                self.defaults[d] = eid
        extra = sorted(set(defaults) - {f"{d}d" for d in dims})
        if extra:
            bad.append(f"defaults has {extra} with no item of that dimension")
        if dims and emb.get("default_dimension") != max(dims):
            bad.append(f"default_dimension {emb.get('default_dimension')!r}, expected {max(dims)} (the highest)")
        for d in dims:
            self.defaults.setdefault(d, next(e for e, i in self.items.items() if int(i["dimension"]) == d))
        if bad:
            self.add(name, "embedding_invalid", "; ".join(bad))

    def check_points(self, ident: dict) -> None:
        for item in self.items.values():
            self.check_points_file(item["file"], int(item["dimension"]))

    def check_points_file(self, rel: str, dim: int) -> None:
        self.check_suffix(spec.IDENTITY_FILE, rel, self.compression, f"{dim}D embedding file")
        path = self.resolve(spec.IDENTITY_FILE, rel)
        if path is None or self.n_cells is None:
            return
        pts = self.read(rel, path, "float32", self.n_cells * dim, f"{self.n_cells} cells x {dim}D float32")
        if pts is None:
            return
        finite = np.isfinite(pts)
        if not finite.all():
            self.add(rel, "points_not_finite", f"{int((~finite).sum())} coordinates are NaN or infinite")
        if finite.any() and (float(pts[finite].min()) < -1 - 1e-4 or float(pts[finite].max()) > 1 + 1e-4):
            self.add(rel, "points_out_of_range", f"coordinates span [{float(pts[finite].min()):.6g}, "
                                                 f"{float(pts[finite].max()):.6g}], expected within [-1, 1]")

    def view_obs(self, name: str, m: dict) -> dict:
        view = super().view_obs(name, m)
        if view.get("_format") == V2_FORMAT_NAME:
            view["_format"] = spec.FORMAT_NAME
        cats = []
        for entry in view.get("_categoricalFields") or []:
            if len(entry) > 4 and isinstance(entry[4], dict) and self.items:
                keys = sorted(entry[4])
                if keys != sorted(self.items):
                    self.add(name, "centroids_invalid", f"centroids of {entry[0]!r} are keyed {keys}, expected the "
                                                        f"embedding ids {sorted(self.items)}")
                entry = [*entry[:4], {str(d): entry[4].get(eid, []) for d, eid in self.defaults.items()}, *entry[5:]]
            cats.append(entry)
        view["_categoricalFields"] = cats
        return view

    def view_var(self, name: str, m: dict) -> dict:
        unknown, missing = sorted(set(m) - V2_VAR_MANIFEST_KEYS), sorted(V2_VAR_MANIFEST_KEYS - set(m))
        if unknown:
            self.add(name, "manifest_unknown_key", f"unknown keys {unknown}; compact_v2 var manifests hold only "
                                                   f"{sorted(V2_VAR_MANIFEST_KEYS)}")
        if missing:
            self.add(name, "manifest_missing_key", f"missing keys {missing}")
        view = super().view_var(name, {k: v for k, v in m.items() if k in V2_VAR_MANIFEST_KEYS})
        if "gene_name_sets" in m:  # a missing key is reported above
            self.check_gene_name_sets(name, m["gene_name_sets"], [e[0] for e in view.get("fields") or []])
        view.pop("gene_name_sets", None)
        view["var_gene_id_column"] = "index"
        if view.get("_format") == V2_FORMAT_NAME:
            view["_format"] = spec.FORMAT_NAME
        return view

    def check_gene_name_sets(self, name: str, sets: Any, genes: list[Any]) -> None:
        bad = []
        if not isinstance(sets, list) or not sets:
            bad.append(f"gene_name_sets is {str(sets)[:60]}, expected a non-empty list")
        else:
            for i, item in enumerate(sets):
                if not isinstance(item, dict) or set(item) != {"source", "filled_from_index", "renamed", "names"}:
                    bad.append(f"set {i} must hold exactly source, filled_from_index, renamed, names")
                    continue
                names = item["names"]
                if i == 0 and names is not None:
                    bad.append("set 0 has names; expected null (its names are the field names)")
                if i > 0 and (not isinstance(names, list) or len(names) != len(genes)):
                    bad.append(f"set {i} needs one name (or null) per gene: {len(genes)}")
        if bad:
            self.add(name, "gene_name_sets_invalid", "; ".join(bad))

    def check_vectors(self, ident: dict) -> None:
        block = self.vector_block
        if block is None:
            return
        name = spec.IDENTITY_FILE
        fields = block.get("fields") if isinstance(block, dict) else None
        if not isinstance(fields, dict) or not fields or block.get("default_field") not in fields:
            self.add(name, "vector_field_invalid", "vector_fields must hold a non-empty 'fields' object and a "
                                                   "default_field naming one of them")
            return
        index_of = {eid: i for i, eid in enumerate(self.items)}
        for f_index, (fid, entry) in enumerate(fields.items()):
            files = entry.get("files") if isinstance(entry, dict) else None
            if not isinstance(files, dict) or not files:
                self.add(name, "vector_field_invalid", f"vector field {fid!r} needs files {{embedding id: file}}")
                continue
            for eid, rel in files.items():
                if eid not in index_of:
                    self.add(name, "vector_field_invalid", f"vector field {fid!r} is bound to {eid!r}, which is "
                                                           f"not an embedding id {sorted(index_of)}")
                    continue
                expected = f"vectors/{f_index}_{index_of[eid]}.bin"
                if rel not in (expected, expected + ".gz"):
                    self.add(name, "path_invalid", f"vector field {fid!r} on {eid!r}: file {rel!r}, expected "
                                                   f"{expected!r}[.gz]")
                self.check_suffix(name, rel, self.compression, f"vector field {fid!r} file")
                path = self.resolve(name, rel)
                dim = int(self.items[eid]["dimension"])
                if path is not None and self.n_cells is not None:
                    self.payload_task(rel, path, self.n_cells * dim * 4, f"{self.n_cells} cells x {dim}D float32")


def checker_for(root: Path, **options: Any) -> _Checker:
    """Return the checker of the layout ``root`` holds.

    Parameters
    ----------
    root
        An export folder.
    **options
        ``_Checker`` options (prefix, workers, checksums).
    """
    from cellucid_nb.format.layouts import detect_format, newer_format_signals

    if not (Path(root) / spec.IDENTITY_FILE).is_file():
        return _Checker(root, **options)  # reports the missing identity
    try:
        layout = detect_format(root)
    except UnreadableJSONError:
        return _Checker(root, **options)  # reports the invalid JSON itself
    except FormatError as exc:
        if not newer_format_signals(root):
            return _Checker(root, **options)  # a damaged key-layout export: reported rule by rule
        return _FormatChecker(root, exc, **options)
    if layout == KEY_LAYOUT:
        return _Checker(root, **options)
    return (_V2Checker if layout == V2_LAYOUT else _IndexChecker)(root, **options)
