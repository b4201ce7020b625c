"""Check an exports folder against every rule of docs/FORMAT.md.

``validate_export(path)`` returns a list of :class:`Problem` (empty = valid).
Each problem carries a stable ``rule`` identifier from :data:`RULES`. Payloads
are checked for their exact (inflated) size; gzip is streamed so large gene
folders are checked without holding them in memory, several files at a time.
Only per-cell payloads that need a content check (points, category codes,
outlier quantiles, edges) are read in full.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from cellucid_nb.format import spec
from cellucid_nb.format.checksums import KNOWN_KEYS, file_checksum
from cellucid_nb.format.leftovers import find_leftovers
from cellucid_nb.format.naming import safe_name
from cellucid_nb.format.payloads import (
    GzipDataError,
    PayloadSizeError,
    gzip_header_problem,
    inflated_size,
    is_gzip_path,
    read_payload,
)
from cellucid_nb.format.reader import CODES_EXT, DTYPE_BITS, manifest_names
from cellucid_nb.format.safe_io import SymlinkError, check_no_links, find_symlinks, parse_json, read_text_no_follow

__all__ = ["Problem", "RULES", "validate_export", "format_problems"]

#: rule id -> what it checks (stable identifiers: tests and tools match on them)
RULES: dict[str, str] = {
    "identity_missing": "dataset_identity.json exists",
    "invalid_json": "every JSON file parses and holds an object",
    "manifest_malformed": "a manifest has the structure the format describes (types, list shapes)",
    "identity_field_missing": "dataset_identity.json has every required field (and stats/embeddings sub-fields)",
    "identity_invalid": "identity values are valid (version 2, dimensions, default dimension, created_at, files)",
    "identity_stats_mismatch": "identity stats and obs_fields agree with the manifests",
    "manifest_unknown_key": "manifests hold no keys beyond the format's (strict readers reject them)",
    "manifest_missing_key": "manifests hold every key of the format",
    "manifest_bad_value": "manifest scalars are valid (_format, n_points, compression, latent_key, quantile)",
    "schema_keys_mismatch": "_obsSchemas has a key for each non-empty field list and no other",
    "schema_invalid": "schemas are complete and path patterns match ext, {key} and compression",
    "quantization_inconsistent": "ext, dtype, quantized and quantizationBits agree (and var quantization)",
    "field_tuple_shape": "field tuples have the documented number of elements",
    "key_not_string": "field keys and gene ids are strings",
    "duplicate_key": "keys of one manifest are unique",
    "name_collision": "keys of one manifest do not collide after safe() (also ignoring case)",
    "range_invalid": "quantized min and max are finite with min < max",
    "categories_not_unique": "categories are unique strings",
    "codes_dtype_invalid": "codesDtype, missing marker and category count agree",
    "centroids_invalid": "centroidsByDim has every exported dimension and well-formed entries",
    "compression_mismatch": "payload names end in .gz exactly when the manifest's compression is set",
    "path_invalid": "manifest paths stay inside the export and use the format's file names",
    "file_missing": "every file a manifest names exists",
    "payload_size": "payload byte lengths are exact (n values x itemsize x dims)",
    "gzip_invalid": ".gz payloads are valid, complete gzip",
    "gzip_header": ".gz payloads are reproducible (mtime 0, no file name)",
    "gzip_single_member": ".gz payloads are one gzip member with nothing after it (browsers refuse more)",
    "points_not_finite": "embedding coordinates are finite",
    "points_out_of_range": "embedding coordinates lie within [-1, 1]",
    "code_out_of_range": "every category code is < n_categories or the missing marker",
    "outlier_out_of_range": "float outlier quantiles lie in (0, 1] or are NaN",
    "edge_src_not_below_dst": "every edge has src < dst",
    "edges_not_sorted": "edges are sorted by (src, dst)",
    "edges_duplicate": "edges are unique",
    "edge_index_out_of_range": "edge indices are < n_cells",
    "edge_weight_invalid": "edge weights are finite and > 0",
    "max_neighbors_mismatch": "max_neighbors is the true maximum degree",
    "index_dtype_invalid": "index dtype/bytes agree and are the smallest that hold the indices",
    "vector_field_invalid": "vector field entries are complete and match the embeddings",
    "vector_basis_missing": "every vector field names its basis (strict readers)",
    "sidecar_mismatch": "files listed in the cellucid_nb.json sidecar exist with the listed sizes (and checksums)",
    "datasets_invalid": "datasets.json has version 1, a known default and complete entries",
    "datasets_duplicate_id": "datasets.json ids are unique",
    "datasets_path_missing": "datasets.json paths name folders holding dataset_identity.json",
    "symlink": "no file or folder of the export is a symbolic link (readers never follow one)",
    "leftover_folder": "no staging or renamed-aside folder of an interrupted export lies beside the export",
}

_POINTS_TOLERANCE = 1e-4
_IDENTITY_FIELDS = ("version", "id", "name", "description", "created_at", "cellucid_data_version", "stats",
                    "embeddings", "obs_fields", "export_settings")
_STATS_FIELDS = ("n_cells", "n_genes", "n_obs_fields", "n_categorical_fields", "n_continuous_fields",
                 "has_connectivity", "n_edges")
_EMBEDDING_FIELDS = ("available_dimensions", "default_dimension", "files")
_CAT_SCHEMA_KEYS = {"codesPathPattern", "outlierPathPattern", "outlierExt", "outlierDtype", "outlierQuantized"}
_EXT_FOR_DTYPE = {"uint8": "u8", "uint16": "u16", "float32": "f32"}
_NP = {"uint8": "u1", "uint16": "<u2", "uint32": "<u4", "float32": "<f4", "float64": "<f8"}
_INT = (int, np.integer)


@dataclass(frozen=True)
class Problem:
    """One broken rule of the format.

    Attributes
    ----------
    file
        Path relative to the validated folder (``"."`` for the folder itself).
    rule
        A key of :data:`RULES`.
    detail
        What was found and what was expected.
    """

    file: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file}: [{self.rule}] {self.detail}"


def format_problems(problems: Iterable[Problem]) -> str:
    """Render problems for a terminal, one per line, with a count at the end.

    Parameters
    ----------
    problems
        From :func:`validate_export`.
    """
    problems = list(problems)
    if not problems:
        return "OK: no problems found."
    lines = [str(p) for p in problems]
    n_rules = len({p.rule for p in problems})
    lines.append(f"{len(problems)} problem{'s' * (len(problems) != 1)} ({n_rules} rule{'s' * (n_rules != 1)} broken)")
    return "\n".join(lines)


def _is_int(value: Any) -> TypeGuard[int | np.integer]:
    return isinstance(value, _INT) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class _Checker:
    """Collects problems for one export folder (``prefix`` is prepended to file names)."""

    def __init__(self, root: Path, prefix: str = "", workers: int | None = None, checksums: bool = False) -> None:
        self.root = root
        self.prefix = prefix
        self.checksums = checksums
        self.problems: list[Problem] = []
        self.workers = workers or min(4, os.cpu_count() or 1)
        # Deferred checks of payloads: (relpath, callable returning problems); run in threads.
        self.tasks: list[Callable[[], list[Problem]]] = []
        self.n_cells: int | None = None
        self.dims: list[int] = []
        # Manifests that could not be understood: not compared with the identity stats.
        self.broken: set[str] = set()
        self.names: dict[str, str] = manifest_names(None)
        #: Files the manifests name (relative POSIX), compared with the sidecar's list.
        self.referenced: set[str] = set()

    #: rule ids this checker reports; the path-pattern placeholder of a field; whether min == max is a
    #: valid (constant) range. Subclasses for the other layouts (format/validate_layouts.py) change them.
    rules: dict[str, str] = RULES
    placeholder = "{key}"
    constant_range_ok = False
    category_limits: dict[str, tuple[int, int]] = spec.CATEGORY_LIMITS

    def fill(self, pattern: str, key: Any, ext: str | None = None) -> str:
        """The file a path pattern names for one field (key layout: ``safe(key)``)."""
        out = pattern.replace("{key}", safe_name(key))
        return out if ext is None else out.replace("{ext}", ext)

    def vector_file(self, field_id: str, dim: int, gz: bool) -> str:
        """The file name the layout gives a vector field's ``dim``-D payload."""
        return f"vectors/{field_id}_{dim}d.bin" + (".gz" if gz else "")

    # --------------------------------------------------------------- helpers
    def problem(self, file: str, rule: str, detail: str) -> Problem:
        assert rule in self.rules, rule
        return Problem(self.prefix + file if file != "." or not self.prefix else self.prefix.rstrip("/"), rule, detail)

    def add(self, file: str, rule: str, detail: str) -> None:
        self.problems.append(self.problem(file, rule, detail))

    def load(self, name: str) -> dict | None:
        path = self.root / name
        if path.is_symlink() or not path.is_file():
            return None  # a link is reported by the symlink walk, never read
        try:
            data = parse_json(read_text_no_follow(path), name)
        except (ValueError, OSError) as exc:  # invalid JSON, bad UTF-8, nested too deeply, unreadable
            self.add(name, "invalid_json", f"not valid JSON: {exc}")
            self.broken.add(name)
            return None
        if not isinstance(data, dict):
            self.add(name, "invalid_json", f"holds a {type(data).__name__}, expected a JSON object")
            self.broken.add(name)
            return None
        return data

    def check_keys(self, name: str, manifest: dict, expected: frozenset[str] | set[str]) -> None:
        unknown = sorted(set(manifest) - set(expected))
        missing = sorted(set(expected) - set(manifest))
        if unknown:
            self.add(name, "manifest_unknown_key", f"unknown keys {unknown}; strict readers accept only {sorted(expected)}")
        if missing:
            self.add(name, "manifest_missing_key", f"missing keys {missing}")

    def check_compression_value(self, name: str, value: Any) -> int | None:
        if value is None:
            return None
        if not _is_int(value) or not 1 <= int(value) <= 9:
            self.add(name, "manifest_bad_value", f"compression is {value!r}, expected null or an integer 1-9")
            return None
        return int(value)

    def check_suffix(self, name: str, relpath: str, compression: int | None, what: str) -> None:
        if is_gzip_path(relpath) != bool(compression):
            expected = "end in .gz" if compression else "not end in .gz"
            self.add(name, "compression_mismatch", f"{what} {relpath!r} should {expected} (compression={compression!r})")

    def resolve(self, name: str, relpath: Any) -> Path | None:
        """Return the file a manifest path names, or report why it cannot."""
        if not isinstance(relpath, str) or not relpath:
            self.add(name, "manifest_malformed", f"path {relpath!r} is not a non-empty string")
            return None
        norm = os.path.normpath(relpath)
        if os.path.isabs(relpath) or norm == ".." or norm.startswith(".." + os.sep):
            self.add(name, "path_invalid", f"path {relpath!r} points outside the export")
            return None
        try:
            path = check_no_links(self.root, relpath)
        except SymlinkError:
            return None  # reported once by the symlink walk; never followed
        self.referenced.add(path.relative_to(self.root).as_posix())
        if not path.is_file():
            self.add(relpath, "file_missing", f"named by {name} but does not exist")
            return None
        return path

    def payload_task(self, relpath: str, path: Path, n_bytes: int, what: str) -> None:
        """Queue a size (and gzip) check of a payload that is not read for its content."""

        def run() -> list[Problem]:
            out = []
            try:
                # Bounded: a gzip bomb stops one chunk past the expected size.
                tails: list[str] = []
                got = inflated_size(path, limit=n_bytes, tails=tails) if is_gzip_path(path) else path.stat().st_size
            except GzipDataError as exc:
                return [self.problem(relpath, "gzip_invalid", str(exc))]
            out.extend(self._tail_problems(relpath, tails))
            if got != n_bytes:
                if is_gzip_path(path) and got > n_bytes:
                    detail = f"{what}: inflates to more than the expected {n_bytes} bytes (stopped after {got})"
                else:
                    detail = f"{what}: {got} bytes, expected {n_bytes}"
                out.append(self.problem(relpath, "payload_size", detail))
            if is_gzip_path(path):
                header = gzip_header_problem(path)
                if header:
                    out.append(self.problem(relpath, "gzip_header", f"gzip header has {header}"))
            return out

        self.tasks.append(run)

    def read(self, relpath: str, path: Path, dtype: str, count: int, what: str) -> np.ndarray | None:
        """Read a payload for content checks; report size and gzip problems."""
        try:
            data = read_payload(path, _NP[dtype], count, label=relpath)
        except GzipDataError as exc:
            self.add(relpath, "gzip_invalid", str(exc))
            return None
        except PayloadSizeError as exc:
            self.add(relpath, "payload_size", f"{what}: {exc}")
            return None
        if is_gzip_path(path):
            header = gzip_header_problem(path)
            if header:
                self.add(relpath, "gzip_header", f"gzip header has {header}")
            tails: list[str] = []
            inflated_size(path, limit=data.nbytes, tails=tails)
            self.problems.extend(self._tail_problems(relpath, tails))
        return data

    def _tail_problems(self, relpath: str, tails: list[str]) -> list[Problem]:
        if not tails:
            return []
        return [self.problem(relpath, "gzip_single_member", f"{'; '.join(tails[:3])}: Python reads it, but browsers' "
                             "DecompressionStream (the static site) refuses anything after the first member")]

    def check_names(self, name: str, keys: list[Any], what: str) -> None:
        seen: set[Any] = set()
        for key in keys:
            if not isinstance(key, str):
                self.add(name, "key_not_string", f"{what} key {key!r} is a {type(key).__name__}, expected a string")
        folded: dict[str, Any] = {}
        for key in keys:
            if key in seen:
                self.add(name, "duplicate_key", f"{what} key {key!r} appears more than once")
                continue
            seen.add(key)
            safe = safe_name(key).casefold()
            if safe in folded and self.placeholder == "{key}":  # index-named files never collide
                self.add(name, "name_collision",
                         f"{what} keys {folded[safe]!r} and {key!r} both become file name {safe_name(key)!r} "
                         "(ignoring case)")
            else:
                folded[safe] = key

    def check_range(self, name: str, lo: Any, hi: Any, what: str) -> bool:
        if not (_is_num(lo) and _is_num(hi) and np.isfinite(lo) and np.isfinite(hi)):
            self.add(name, "range_invalid", f"{what}: min/max {lo!r}, {hi!r} are not finite numbers")
            return False
        if not (lo < hi or (self.constant_range_ok and lo == hi)):
            self.add(name, "range_invalid", f"{what}: min {lo!r} is not below max {hi!r} (strict readers need min < max)")
            return False
        return True

    def check_value_schema(self, name: str, schema: dict, pattern_key: str, what: str,
                           compression: int | None, extra_keys: AbstractSet[str] = frozenset()) -> int | None | str:
        """Check a continuous values schema; return its bits (None = float32) or "bad"."""
        expected = {pattern_key, "ext", "dtype", "quantized"} | set(extra_keys)
        if schema.get("quantized"):
            expected.add("quantizationBits")
        missing = sorted(expected - set(schema))
        unknown = sorted(set(schema) - expected - {"quantizationBits"})
        if missing or unknown:
            self.add(name, "schema_invalid", f"{what} schema: missing keys {missing}, unknown keys {unknown}")
            return "bad"
        dtype, ext, quantized = schema["dtype"], schema["ext"], schema["quantized"]
        bits = DTYPE_BITS.get(dtype, "bad")
        problems = []
        if bits == "bad":
            problems.append(f"dtype {dtype!r} is not uint8, uint16 or float32")
        else:
            if ext != _EXT_FOR_DTYPE[dtype]:
                problems.append(f"ext {ext!r} does not match dtype {dtype!r}")
            if quantized is not (bits is not None):
                problems.append(f"quantized={quantized!r} does not match dtype {dtype!r}")
            if "quantizationBits" in schema and schema["quantizationBits"] != bits:
                problems.append(f"quantizationBits={schema['quantizationBits']!r} does not match dtype {dtype!r}")
        if problems:
            self.add(name, "quantization_inconsistent", f"{what} schema: " + "; ".join(problems))
            return "bad"
        pattern = schema[pattern_key]
        suffix = f".{ext}" + (".gz" if compression else "")
        if not isinstance(pattern, str) or self.placeholder not in pattern:
            self.add(name, "schema_invalid", f"{what} {pattern_key} {pattern!r} has no {self.placeholder}")
            return "bad"
        if not pattern.endswith(suffix):
            if is_gzip_path(pattern) != bool(compression):
                self.check_suffix(name, pattern, compression, f"{what} {pattern_key}")
            else:
                self.add(name, "schema_invalid", f"{what} {pattern_key} {pattern!r} should end in {suffix!r}")
            return "bad"
        return bits

    # ---------------------------------------------------------------- checks
    def run(self) -> list[Problem]:
        self.check_links_and_leftovers()
        identity = self.check_identity()
        side = self.load(spec.SIDECAR_FILE)
        # Manifest names differ from the defaults only if prepare() was told so (the sidecar says).
        names = manifest_names(side)
        self.names = names
        obs = self.load(names["obs"])
        var = self.load(names["var"])
        conn = self.load(names["connectivity"])
        if self.n_cells is None and obs is not None and _is_int(obs.get("n_points")):
            self.n_cells = int(obs["n_points"])
        sections = [
            # Identity sections are skipped below when identity is None; the checks repeat it for the types.
            ("dataset_identity.json", lambda: self.check_points(identity) if identity is not None else None),
            (names["obs"], lambda: self.check_obs(obs) if obs is not None else None),
            (names["var"], lambda: self.check_var(var) if var is not None else None),
            (names["connectivity"], lambda: self.check_connectivity(conn) if conn is not None else None),
            ("dataset_identity.json", lambda: self.check_vectors(identity) if identity is not None else None),
            ("dataset_identity.json", lambda: self.check_stats(identity, obs, var, conn) if identity is not None else None),
            (spec.SIDECAR_FILE, lambda: self.check_sidecar(side)),
        ]
        for name, section in sections:
            if identity is None and name == "dataset_identity.json":
                continue
            try:
                section()
            except (TypeError, KeyError, ValueError, AttributeError, IndexError, OverflowError, RecursionError,
                    OSError) as exc:
                # Garbage where structure was expected: report, never crash.
                self.add(name, "manifest_malformed", f"{type(exc).__name__}: {exc}")
                self.broken.add(name)
        with ThreadPoolExecutor(self.workers) as pool:
            for found in pool.map(self._run_task, self.tasks):
                self.problems.extend(found)
        return self._collapse_gzip_headers(self.problems)

    def _run_task(self, task: Callable[[], list[Problem]]) -> list[Problem]:
        try:
            return task()
        except (OSError, ValueError) as exc:  # a damaged file is a finding, never a traceback
            return [self.problem(".", "file_missing", f"a named file cannot be read: {type(exc).__name__}: {exc}")]

    def check_links_and_leftovers(self) -> None:
        """Report every symbolic link in the export and the leftovers of an interrupted export beside it."""
        for rel in find_symlinks(self.root):
            self.add(rel, "symlink", f"is a symbolic link (to {os.readlink(self.root / rel)!r}); readers refuse it")
        for text in find_leftovers(self.root).describe():
            self.add(".", "leftover_folder", text)

    @staticmethod
    def _collapse_gzip_headers(problems: list[Problem]) -> list[Problem]:
        """Report non-reproducible gzip headers once per export (the reference sets them on every file)."""
        headers = [p for p in problems if p.rule == "gzip_header"]
        if len(headers) <= 1:
            return problems
        first = headers[0]
        merged = Problem(first.file, first.rule, f"{first.detail} (and {len(headers) - 1} more .gz files)")
        return [merged if p is first else p for p in problems if p.rule != "gzip_header" or p is first]

    def check_identity(self) -> dict | None:
        name = spec.IDENTITY_FILE
        if not (self.root / name).is_file():
            self.add(name, "identity_missing", "required: readers fail without dataset_identity.json")
            return None
        ident = self.load(name)
        if ident is None:
            return None
        missing = [k for k in _IDENTITY_FIELDS if k not in ident]
        stats: dict = ident["stats"] if isinstance(ident.get("stats"), dict) else {}
        emb: dict = ident["embeddings"] if isinstance(ident.get("embeddings"), dict) else {}
        missing += [f"stats.{k}" for k in _STATS_FIELDS if k not in stats]
        missing += [f"embeddings.{k}" for k in _EMBEDDING_FIELDS if k not in emb]
        if missing:
            self.add(name, "identity_field_missing", f"missing {missing}")
        bad = []
        if "version" in ident and ident["version"] != spec.IDENTITY_VERSION:
            bad.append(f"version {ident['version']!r}, expected {spec.IDENTITY_VERSION}")
        if "id" in ident and (not isinstance(ident["id"], str) or not ident["id"]):
            bad.append(f"id {ident['id']!r} is not a non-empty string")
        if "created_at" in ident:
            try:
                datetime.strptime(str(ident["created_at"]), "%Y-%m-%dT%H:%M:%SZ")
            except ValueError:
                bad.append(f"created_at {ident['created_at']!r} is not UTC %Y-%m-%dT%H:%M:%SZ")
        if _is_int(stats.get("n_cells")) and stats["n_cells"] >= 0:
            self.n_cells = int(stats["n_cells"])
        elif "n_cells" in stats:
            bad.append(f"stats.n_cells {stats['n_cells']!r} is not a non-negative integer")
        dims = emb.get("available_dimensions")
        files = emb.get("files")
        if dims is not None:
            if not isinstance(dims, list) or not dims or any(d not in spec.EMBEDDING_DIMS for d in dims) \
                    or len(set(dims)) != len(dims):
                bad.append(f"embeddings.available_dimensions {dims!r}: expected distinct values from 1, 2, 3")
            else:
                self.dims = sorted(int(d) for d in dims)
                default = emb.get("default_dimension")
                if default != max(self.dims):
                    bad.append(f"embeddings.default_dimension {default!r}, expected {max(self.dims)} (3 > 2 > 1)")
                if not isinstance(files, dict) or sorted(files) != sorted(f"{d}d" for d in self.dims):
                    bad.append(f"embeddings.files keys {sorted(files) if isinstance(files, dict) else files!r} "
                               f"do not match available_dimensions {self.dims}")
        if bad:
            self.add(name, "identity_invalid", "; ".join(bad))
        return ident

    def check_points(self, ident: dict) -> None:
        files = (ident.get("embeddings") or {}).get("files") or {}
        compression = (ident.get("export_settings") or {}).get("compression")
        for dim in self.dims:
            rel = files.get(f"{dim}d")
            if rel is None:
                continue
            if rel != spec.points_file(dim, 1 if is_gzip_path(rel) else None):
                self.add(spec.IDENTITY_FILE, "path_invalid", f"{dim}D embedding file {rel!r}, expected points_{dim}d.bin[.gz]")
            self.check_suffix(spec.IDENTITY_FILE, rel, compression, f"{dim}D embedding file")
            path = self.resolve(spec.IDENTITY_FILE, rel)
            if path is None or self.n_cells is None:
                continue
            pts = self.read(rel, path, "float32", self.n_cells * dim, f"{self.n_cells} cells x {dim}D float32")
            if pts is None:
                continue
            finite = np.isfinite(pts)
            if not finite.all():
                self.add(rel, "points_not_finite", f"{int((~finite).sum())} coordinates are NaN or infinite")
            if finite.any():
                lo, hi = float(pts[finite].min()), float(pts[finite].max())
                if lo < -1 - _POINTS_TOLERANCE or hi > 1 + _POINTS_TOLERANCE:
                    self.add(rel, "points_out_of_range", f"coordinates span [{lo:.6g}, {hi:.6g}], expected within [-1, 1]")

    def check_common(self, name: str, m: dict, n_key: str) -> int | None:
        if "_format" in m and m["_format"] != spec.FORMAT_NAME:
            self.add(name, "manifest_bad_value", f"_format {m['_format']!r}, expected {spec.FORMAT_NAME!r}")
        n = m.get(n_key)
        if n_key in m and (not _is_int(n) or (self.n_cells is not None and n != self.n_cells)):
            self.add(name, "manifest_bad_value", f"{n_key} {n!r}, expected the number of cells {self.n_cells}")
        return self.check_compression_value(name, m.get("compression"))

    def check_obs(self, m: dict) -> None:
        name = self.names["obs"]
        self.check_keys(name, m, spec.OBS_MANIFEST_KEYS)
        compression = self.check_common(name, m, "n_points")
        if "latent_key" in m and m["latent_key"] != "latent_space":
            self.add(name, "manifest_bad_value", f"latent_key {m['latent_key']!r}, expected 'latent_space'")
        q = m.get("centroid_outlier_quantile")
        if q is not None and not (_is_num(q) and 0 < q < 1):
            self.add(name, "manifest_bad_value", f"centroid_outlier_quantile {q!r}, expected null or a float in (0, 1)")
        cont = m.get("_continuousFields") or []
        cat = m.get("_categoricalFields") or []
        if not isinstance(cont, list) or not isinstance(cat, list) or not all(
                isinstance(e, list) and e for e in cont + cat):
            self.add(name, "manifest_malformed", "_continuousFields and _categoricalFields must be lists of non-empty lists")
            self.broken.add(name)
            return
        schemas = m.get("_obsSchemas")
        if not isinstance(schemas, dict):
            self.add(name, "manifest_malformed", f"_obsSchemas is {schemas!r}, expected an object")
            return
        expected = {k for k, fields in (("continuous", cont), ("categorical", cat)) if fields}
        if set(schemas) != expected:
            self.add(name, "schema_keys_mismatch",
                     f"_obsSchemas keys {sorted(schemas)}, expected {sorted(expected)} (one per non-empty field list)")
        self.check_names(name, [e[0] for e in cont + cat], "obs")
        if cont and isinstance(schemas.get("continuous"), dict):
            self.check_continuous(name, schemas["continuous"], cont, compression)
        if cat and isinstance(schemas.get("categorical"), dict):
            self.check_categorical(name, schemas["categorical"], cat, compression)

    def check_continuous(self, name: str, schema: dict, fields: list, compression: int | None) -> None:
        bits = self.check_value_schema(name, schema, "pathPattern", "continuous", compression)
        if bits == "bad":
            return
        dtype = schema["dtype"]
        for entry in fields:
            key = entry[0]
            want = 3 if bits else 1
            if len(entry) != want:
                self.add(name, "field_tuple_shape", f"continuous field {entry!r} has {len(entry)} elements, expected {want}")
                continue
            if bits:
                self.check_range(name, entry[1], entry[2], f"continuous field {key!r}")
            rel = self.fill(schema["pathPattern"], key)
            path = self.resolve(name, rel)
            if path is not None and self.n_cells is not None:
                size = self.n_cells * np.dtype(_NP[dtype]).itemsize
                self.payload_task(rel, path, size, f"{self.n_cells} cells x {dtype}")

    def check_categorical(self, name: str, schema: dict, fields: list, compression: int | None) -> None:
        missing = sorted(_CAT_SCHEMA_KEYS - set(schema))
        unknown = sorted(set(schema) - _CAT_SCHEMA_KEYS)
        if missing or unknown:
            self.add(name, "schema_invalid", f"categorical schema: missing keys {missing}, unknown keys {unknown}")
            return
        odtype, oext, oquant = schema["outlierDtype"], schema["outlierExt"], schema["outlierQuantized"]
        obits = DTYPE_BITS.get(odtype, "bad")
        if isinstance(obits, str) or oext != _EXT_FOR_DTYPE.get(odtype) or oquant is not (obits is not None):
            self.add(name, "quantization_inconsistent",
                     f"categorical schema: outlierDtype {odtype!r}, outlierExt {oext!r} and outlierQuantized "
                     f"{oquant!r} disagree")
            return
        gz = ".gz" if compression else ""
        codes_pattern, out_pattern = schema["codesPathPattern"], schema["outlierPathPattern"]
        for what, pattern, suffix in (("codesPathPattern", codes_pattern, ".{ext}"),
                                      ("outlierPathPattern", out_pattern, f".{oext}")):
            if not isinstance(pattern, str) or self.placeholder not in pattern:
                self.add(name, "schema_invalid", f"categorical {what} {pattern!r} has no {self.placeholder}")
                return
            if is_gzip_path(pattern) != bool(compression):
                self.check_suffix(name, pattern, compression, f"categorical {what}")
                return
            if not pattern.endswith(suffix + gz):
                self.add(name, "schema_invalid", f"categorical {what} {pattern!r} should end in {suffix + gz!r}")
                return
        for entry in fields:
            self.check_categorical_field(name, entry, codes_pattern, out_pattern, odtype, obits)

    def check_categorical_field(self, name: str, entry: list, codes_pattern: str, out_pattern: str,
                                odtype: str, obits: int | None) -> None:
        want = 7 if obits else 5
        if len(entry) != want:
            self.add(name, "field_tuple_shape",
                     f"categorical field {entry[0]!r} has {len(entry)} elements, expected {want} "
                     "[key, categories, codesDtype, codesMissingValue, centroidsByDim"
                     + (", outlierMin, outlierMax]" if obits else "]"))
            return
        key, categories, codes_dtype, missing = entry[:4]
        centroids = entry[4]
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            self.add(name, "manifest_malformed", f"categories of {key!r} must be a list of strings")
            return
        if len(set(categories)) != len(categories):
            dup = sorted({c for c in categories if categories.count(c) > 1})[:5]
            self.add(name, "categories_not_unique", f"field {key!r} repeats categories {dup}")
        limits = self.category_limits.get(codes_dtype)
        if limits is None or missing != limits[1] or len(categories) > limits[0]:
            self.add(name, "codes_dtype_invalid",
                     f"field {key!r}: codesDtype {codes_dtype!r} with missing marker {missing!r} and "
                     f"{len(categories)} categories (codes dtype: (most categories, missing marker) "
                     f"{self.category_limits})")
            return
        self.check_centroids(name, key, categories, centroids)
        if obits:
            self.check_range(name, entry[5], entry[6], f"outliers of {key!r}")
        rel = self.fill(codes_pattern, key, CODES_EXT[codes_dtype])
        path = self.resolve(name, rel)
        if path is not None and self.n_cells is not None:
            codes = self.read(rel, path, codes_dtype, self.n_cells, f"{self.n_cells} cells x {codes_dtype}")
            if codes is not None:
                bad = (codes >= len(categories)) & (codes != missing)
                if bad.any():
                    first = int(np.flatnonzero(bad)[0])
                    self.add(rel, "code_out_of_range",
                             f"{int(bad.sum())} codes are >= the {len(categories)} categories and not the missing "
                             f"marker {missing} (first: {int(codes[first])} at cell {first})")
        rel = self.fill(out_pattern, key, CODES_EXT[codes_dtype])
        path = self.resolve(name, rel)
        if path is not None and self.n_cells is not None:
            values = self.read(rel, path, odtype, self.n_cells, f"{self.n_cells} cells x {odtype}")
            if values is not None and obits is None:
                bad = ~np.isnan(values) & ~((values > 0) & (values <= 1))
                if bad.any():
                    self.add(rel, "outlier_out_of_range", f"{int(bad.sum())} outlier quantiles outside (0, 1] and not NaN")

    def check_centroids(self, name: str, key: str, categories: list[str], centroids: Any) -> None:
        if not isinstance(centroids, dict):
            self.add(name, "centroids_invalid", f"centroidsByDim of {key!r} is {type(centroids).__name__}, expected an object")
            return
        if self.dims and sorted(centroids) != sorted(str(d) for d in self.dims):
            self.add(name, "centroids_invalid",
                     f"centroidsByDim of {key!r} has dimensions {sorted(centroids)}, expected {[str(d) for d in self.dims]}")
            return
        known = set(categories)
        for dim, items in centroids.items():
            for item in items if isinstance(items, list) else [None]:
                ok = (isinstance(item, dict) and item.get("category") in known
                      and isinstance(item.get("position"), list) and len(item["position"]) == int(dim)
                      and all(_is_num(v) and np.isfinite(v) for v in item["position"])
                      and _is_int(item.get("n_points")) and item["n_points"] > 0)
                if not ok:
                    self.add(name, "centroids_invalid", f"centroid of {key!r} in {dim}D is malformed: {item!r}")
                    return

    def check_var(self, m: dict) -> None:
        name = self.names["var"]
        self.check_keys(name, m, spec.VAR_MANIFEST_KEYS)
        compression = self.check_common(name, m, "n_points")
        if "var_gene_id_column" in m and not isinstance(m["var_gene_id_column"], str):
            self.add(name, "manifest_bad_value", f"var_gene_id_column {m['var_gene_id_column']!r} is not a string")
        schema = m.get("_varSchema")
        fields = m.get("fields")
        if not isinstance(schema, dict) or not isinstance(fields, list) or not all(isinstance(e, list) and e for e in fields):
            self.add(name, "manifest_malformed", "_varSchema must be an object and fields a list of non-empty lists")
            self.broken.add(name)
            return
        if schema.get("kind") != "continuous":
            self.add(name, "schema_invalid", f"_varSchema.kind {schema.get('kind')!r}, expected 'continuous'")
        bits = self.check_value_schema(name, schema, "pathPattern", "_varSchema", compression, {"kind"})
        if bits == "bad":
            return
        if "quantization" in m and m["quantization"] != bits:
            self.add(name, "quantization_inconsistent",
                     f"quantization {m['quantization']!r} differs from _varSchema.quantizationBits {bits!r}")
        self.check_names(name, [e[0] for e in fields], "gene")
        if self.too_few_files(name, schema["pathPattern"], len(fields), "genes"):
            return
        size = None if self.n_cells is None else self.n_cells * np.dtype(_NP[schema["dtype"]]).itemsize
        want = 3 if bits else 1
        for entry in fields:
            gene = entry[0]
            if len(entry) != want:
                self.add(name, "field_tuple_shape", f"gene field {entry!r} has {len(entry)} elements, expected {want}")
                continue
            if bits:
                self.check_range(name, entry[1], entry[2], f"gene {gene!r}")
            rel = self.fill(schema["pathPattern"], gene)
            path = self.resolve(name, rel)
            if path is not None and size is not None:
                self.payload_task(rel, path, size, f"{self.n_cells} cells x {schema['dtype']}")

    def too_few_files(self, name: str, pattern: Any, n_named: int, what: str) -> bool:
        """Report (once) a manifest naming more payloads than its folder holds, instead of one finding per file.

        A manifest that lies about its size (10^7 genes over a folder of three files)
        would otherwise cost one stat and one finding per name.
        """
        folder = os.path.dirname(str(pattern).replace("\\", "/"))
        if not folder or n_named <= 1000:
            return False
        try:
            path = check_no_links(self.root, folder)
            n_files = sum(1 for e in os.scandir(path) if e.is_file(follow_symlinks=False)) if path.is_dir() else 0
        except (OSError, ValueError):
            return False  # a bad pattern or a linked folder: reported by the per-file checks
        if n_files >= n_named:
            return False
        self.add(name, "file_missing", f"names {n_named} {what} but {folder}/ holds {n_files} file(s): at least "
                 f"{n_named - n_files} payloads are missing (files are not checked one by one)")
        return True

    def check_connectivity(self, m: dict) -> None:
        name = self.names["connectivity"]
        self.check_keys(name, m, spec.CONNECTIVITY_MANIFEST_KEYS)
        compression = self.check_common(name, m, "n_cells")
        if "format" in m and m["format"] != "edge_pairs":
            self.add(name, "manifest_bad_value", f"format {m['format']!r}, expected 'edge_pairs'")
        n_edges = m.get("n_edges")
        if not _is_int(n_edges) or n_edges < 0:
            self.add(name, "manifest_bad_value", f"n_edges {n_edges!r} is not a non-negative integer")
            return
        dtype, nbytes = m.get("index_dtype"), m.get("index_bytes")
        sizes = {"uint16": 2, "uint32": 4}
        if dtype not in sizes or nbytes != sizes[dtype]:
            self.add(name, "index_dtype_invalid", f"index_dtype {dtype!r} with index_bytes {nbytes!r}: expected uint16/2 or uint32/4")
            return
        if self.n_cells is not None:
            smallest = "uint16" if self.n_cells <= 65536 else "uint32"
            if dtype != smallest:
                self.add(name, "index_dtype_invalid", f"index_dtype {dtype!r} for {self.n_cells} cells, expected {smallest!r}")
        if "weightsPath" in m and (m.get("weight_dtype") != "float64" or m.get("weight_bytes") != 8):
            self.add(name, "manifest_bad_value",
                     f"weight_dtype {m.get('weight_dtype')!r} / weight_bytes {m.get('weight_bytes')!r}, expected float64 / 8")
        arrays = {}
        for key, dt in (("sourcesPath", dtype), ("destinationsPath", dtype), ("weightsPath", "float64")):
            if key not in m:
                continue
            rel = m[key]
            if isinstance(rel, str):
                self.check_suffix(name, rel, compression, key)
            path = self.resolve(name, rel)
            if path is not None:
                arrays[key] = self.read(rel, path, dt, int(n_edges), f"{n_edges} edges x {dt}")
        src, dst = arrays.get("sourcesPath"), arrays.get("destinationsPath")
        if src is not None and dst is not None:
            self.check_edges(m, src, dst)
        weights = arrays.get("weightsPath")
        if weights is not None:
            bad = ~(np.isfinite(weights) & (weights > 0))
            if bad.any():
                self.add(m["weightsPath"], "edge_weight_invalid", f"{int(bad.sum())} weights are not finite and > 0")

    def check_edges(self, m: dict, src: np.ndarray, dst: np.ndarray) -> None:
        rel = m["sourcesPath"]
        src = src.astype(np.int64)
        dst = dst.astype(np.int64)
        n = self.n_cells
        if n is not None and src.size and max(int(src.max()), int(dst.max())) >= n:
            self.add(rel, "edge_index_out_of_range", f"largest index {max(int(src.max()), int(dst.max()))} >= n_cells {n}")
            return
        if (src >= dst).any():
            self.add(rel, "edge_src_not_below_dst", f"{int((src >= dst).sum())} edges have src >= dst")
        if src.size > 1:
            step_src = np.diff(src)
            step_dst = np.diff(dst)
            unsorted = (step_src < 0) | ((step_src == 0) & (step_dst < 0))
            if unsorted.any():
                self.add(rel, "edges_not_sorted", f"edges are not sorted by (src, dst) (first at edge {int(np.argmax(unsorted)) + 1})")
                key = src * (int(n or dst.max() + 1)) + dst
                n_repeated = key.size - np.unique(key).size
            else:  # sorted: repeats are neighbours, no need for a full unique()
                n_repeated = int(((step_src == 0) & (step_dst == 0)).sum())
            if n_repeated:
                self.add(rel, "edges_duplicate", f"{n_repeated} edges are repeated")
        if n is not None:
            # Bounded by the largest index present (< n), never by a declared n_cells.
            size = int(max(src.max(), dst.max())) + 1 if src.size else 0
            degree = np.bincount(src, minlength=size) + np.bincount(dst, minlength=size)
            true_max = int(degree.max()) if degree.size else 0
            if m.get("max_neighbors") != true_max:
                self.add(self.names["connectivity"], "max_neighbors_mismatch",
                         f"max_neighbors {m.get('max_neighbors')!r}, the edges give a maximum degree of {true_max}")

    def check_vectors(self, ident: dict) -> None:
        name = spec.IDENTITY_FILE
        block = ident.get("vector_fields")
        if block is None:
            return
        fields = block.get("fields") if isinstance(block, dict) else None
        if not isinstance(fields, dict) or not fields:
            self.add(name, "vector_field_invalid", "vector_fields must hold a non-empty 'fields' object")
            return
        expected_default = "velocity_umap" if "velocity_umap" in fields else sorted(fields)[0]
        if block.get("default_field") != expected_default:
            self.add(name, "vector_field_invalid",
                     f"default_field {block.get('default_field')!r}, expected {expected_default!r} "
                     "('velocity_umap' if present, else the first id sorted)")
        self.check_names(name, list(fields), "vector field")
        compression = (ident.get("export_settings") or {}).get("compression")
        for fid, entry in fields.items():
            if not isinstance(entry, dict):
                self.add(name, "vector_field_invalid", f"vector field {fid!r} is not an object")
                continue
            if safe_name(fid) != fid:
                self.add(name, "vector_field_invalid", f"vector field id {fid!r} is not a safe name ({safe_name(fid)!r})")
            if not entry.get("basis"):
                self.add(name, "vector_basis_missing", f"vector field {fid!r} has no basis (strict readers require one)")
            missing = [k for k in ("label", "available_dimensions", "default_dimension", "files") if k not in entry]
            if missing:
                self.add(name, "vector_field_invalid", f"vector field {fid!r} lacks {missing}")
                continue
            dims, files = entry["available_dimensions"], entry["files"]
            if not isinstance(dims, list) or not dims or any(d not in self.dims for d in dims) \
                    or not isinstance(files, dict) or sorted(files) != sorted(f"{d}d" for d in dims) \
                    or entry["default_dimension"] not in dims:
                self.add(name, "vector_field_invalid",
                         f"vector field {fid!r}: dimensions {dims!r}, default {entry['default_dimension']!r} and files "
                         f"{sorted(files) if isinstance(files, dict) else files!r} must agree with embeddings {self.dims}")
                continue
            for dim in dims:
                rel = files[f"{dim}d"]
                expected = self.vector_file(fid, dim, is_gzip_path(rel))
                if rel != expected:
                    self.add(name, "path_invalid", f"vector field {fid!r} {dim}D file {rel!r}, expected {expected!r}")
                self.check_suffix(name, rel, compression, f"vector field {fid!r} {dim}D file")
                path = self.resolve(name, rel)
                if path is not None and self.n_cells is not None:
                    self.payload_task(rel, path, self.n_cells * dim * 4, f"{self.n_cells} cells x {dim}D float32")

    def check_stats(self, ident: dict, obs: dict | None, var: dict | None, conn: dict | None) -> None:
        stats = ident.get("stats")
        if not isinstance(stats, dict) or self.broken & set(self.names.values()):
            return
        cont = (obs or {}).get("_continuousFields") or []
        cat = (obs or {}).get("_categoricalFields") or []
        expected = {
            "n_genes": len((var or {}).get("fields") or []),
            "n_obs_fields": len(cont) + len(cat),
            "n_continuous_fields": len(cont),
            "n_categorical_fields": len(cat),
            "has_connectivity": conn is not None,
            "n_edges": conn.get("n_edges") if conn is not None else None,
        }
        wrong = [f"{k} is {stats.get(k)!r}, the manifests give {v!r}" for k, v in expected.items()
                 if k in stats and stats[k] != v]
        manifest_keys = [e[0] for e in cont] + [e[0] for e in cat]
        obs_fields = ident.get("obs_fields")
        if isinstance(obs_fields, list):
            keys = [f.get("key") if isinstance(f, dict) else f for f in obs_fields]
            if sorted(map(str, keys)) != sorted(map(str, manifest_keys)):
                wrong.append(f"obs_fields keys {keys} differ from the obs manifest's {manifest_keys}")
            kinds = {f.get("kind") for f in obs_fields if isinstance(f, dict)}
            if kinds - {"continuous", "category", "categorical"}:
                wrong.append(f"obs_fields kinds {sorted(map(str, kinds))}, expected continuous / category")
            n_categories = {e[0]: len(e[1]) for e in cat if len(e) > 1 and isinstance(e[1], list)}
            for f in obs_fields:
                if isinstance(f, dict) and "n_categories" in f and f.get("key") in n_categories \
                        and f["n_categories"] != n_categories[f["key"]]:
                    wrong.append(f"obs_fields {f['key']!r} has n_categories {f['n_categories']!r}, the manifest "
                                 f"lists {n_categories[f['key']]}")
        settings = ident.get("export_settings")
        if isinstance(settings, dict):
            for name, m in (("obs", obs), ("var", var), ("connectivity", conn)):
                if m is not None and "compression" in m and settings.get("compression") != m["compression"]:
                    wrong.append(f"export_settings.compression {settings.get('compression')!r} but the {name} manifest "
                                 f"has {m['compression']!r}")
            var_schema = (var or {}).get("_varSchema")
            if isinstance(var_schema, dict) and settings.get("var_quantization") != var_schema.get("quantizationBits"):
                wrong.append(f"export_settings.var_quantization {settings.get('var_quantization')!r} but _varSchema "
                             f"has quantizationBits {var_schema.get('quantizationBits')!r}")
            cont_schema = ((obs or {}).get("_obsSchemas") or {}).get("continuous")
            if isinstance(cont_schema, dict) and \
                    settings.get("obs_continuous_quantization") != cont_schema.get("quantizationBits"):
                wrong.append(f"export_settings.obs_continuous_quantization {settings.get('obs_continuous_quantization')!r} "
                             f"but the continuous obs schema has quantizationBits {cont_schema.get('quantizationBits')!r}")
        if wrong:
            self.add(spec.IDENTITY_FILE, "identity_stats_mismatch", "; ".join(wrong))

    def check_sidecar(self, side: dict | None) -> None:
        files = (side or {}).get("files")
        if not isinstance(files, dict):
            return
        unlisted = sorted(self.referenced - set(files))
        if unlisted:
            self.add(spec.SIDECAR_FILE, "sidecar_mismatch",
                     f"does not list {len(unlisted)} file(s) the manifests name, e.g. {unlisted[:5]}: "
                     "they were not written by the export the sidecar describes")
        for rel, info in files.items():
            try:
                path = check_no_links(self.root, rel)
            except SymlinkError:
                continue  # reported by the symlink walk
            except ValueError as exc:
                self.add(spec.SIDECAR_FILE, "sidecar_mismatch", f"lists {exc}")
                continue
            want = info.get("bytes") if isinstance(info, dict) else None
            if not path.is_file():
                self.add(spec.SIDECAR_FILE, "sidecar_mismatch", f"lists {rel!r}, which does not exist")
            elif want is not None and path.stat().st_size != want:
                self.add(spec.SIDECAR_FILE, "sidecar_mismatch",
                         f"lists {rel!r} with {want} bytes, the file has {path.stat().st_size}")
            elif self.checksums and isinstance(info, dict):
                for key in KNOWN_KEYS:
                    if isinstance(info.get(key), str):
                        self.tasks.append(partial(self._checksum, rel, path, key, info[key]))
                        break

    def _checksum(self, rel: str, path: Path, key: str, digest: str) -> list[Problem]:
        actual = file_checksum(path, key)
        if actual != digest:
            return [self.problem(spec.SIDECAR_FILE, "sidecar_mismatch", f"{rel!r} has {key} {actual}, "
                                 f"the sidecar lists {digest}")]
        return []


def _through_link(root: Path, rel: str) -> bool:
    try:
        check_no_links(root, rel)
    except SymlinkError:
        return True
    return False


def _check_datasets(root: Path, problems: list[Problem]) -> list[str]:
    """Check ``datasets.json``; return the dataset folders it names that exist."""
    name = spec.DATASETS_FILE
    checker = _Checker(root)
    data = checker.load(name)
    problems.extend(checker.problems)
    if data is None:
        return []
    entries = data.get("datasets")
    if data.get("version") != spec.DATASETS_VERSION or not isinstance(entries, list) or not entries:
        problems.append(Problem(name, "datasets_invalid",
                                f"version {data.get('version')!r} and datasets {type(entries).__name__}: "
                                f"expected version {spec.DATASETS_VERSION} and a non-empty list"))
        return []
    folders: list[str] = []
    seen: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("id", "path", "name")):
            problems.append(Problem(name, "datasets_invalid", f"entry {entry!r} needs string id, path and name"))
            continue
        did, rel = entry["id"], entry["path"]
        if did in seen:
            problems.append(Problem(name, "datasets_duplicate_id", f"id {did!r} is used by {seen[did]!r} and {rel!r}"))
        seen.setdefault(did, rel)
        norm = os.path.normpath(rel)
        if os.path.isabs(rel) or norm.startswith(".."):
            problems.append(Problem(name, "datasets_path_missing", f"path {rel!r} of {did!r} points outside {root}"))
        elif _through_link(root, norm):
            problems.append(Problem(Path(norm).as_posix(), "symlink",
                                    f"dataset folder of {did!r} is reached through a symbolic link; readers refuse it"))
        elif not (root / norm / spec.IDENTITY_FILE).is_file():
            problems.append(Problem(name, "datasets_path_missing",
                                    f"path {rel!r} of {did!r} has no {spec.IDENTITY_FILE}"))
        else:
            folders.append(norm)
    if data.get("default") not in seen:
        problems.append(Problem(name, "datasets_invalid", f"default {data.get('default')!r} is not one of the ids {sorted(seen)}"))
    return folders


def _make_checker(root: Path, **options: Any) -> _Checker:
    """The checker of the layout the folder holds (key-named compact_v1: :class:`_Checker` itself)."""
    from cellucid_nb.format.validate_layouts import checker_for  # index-named compact_v1, compact_v2

    return checker_for(root, **options)


def validate_export(path: str | os.PathLike[str], *, workers: int | None = None,
                    checksums: bool = False) -> list[Problem]:
    """Check an export folder (or an exports root with ``datasets.json``) against docs/FORMAT.md.

    Parameters
    ----------
    path
        An export folder (with ``dataset_identity.json``), or a folder holding
        ``datasets.json`` and one sub-folder per dataset (each is validated too).
    workers
        Threads for streaming payload checks (default: up to 4).
    checksums
        Also compare every file's sha256 with the ``cellucid_nb.json`` sidecar
        (reads every byte once; sizes are always compared).

    Returns
    -------
    list of Problem
        Empty when the export follows every rule. ``Problem.file`` is relative to ``path``.
    """
    root = Path(path)
    if not root.is_dir():
        hint = "".join(f"; {text}" for text in find_leftovers(root).describe())
        raise FileNotFoundError(f"{root} is not a folder{hint}")
    problems: list[Problem] = []
    has_identity = (root / spec.IDENTITY_FILE).is_file()
    if (root / spec.DATASETS_FILE).is_file():
        for folder in _check_datasets(root, problems):
            if Path(folder) != Path("."):
                problems.extend(_make_checker(root / folder, prefix=f"{Path(folder).as_posix()}/", workers=workers,
                                         checksums=checksums).run())
        if not has_identity:
            return problems
    problems.extend(_make_checker(root, workers=workers, checksums=checksums).run())
    return problems
