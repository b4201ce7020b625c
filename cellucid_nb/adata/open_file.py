"""Open an ``.h5ad`` file for export with its large elements left in the file.

``anndata.read_h5ad(path, backed="r")`` leaves ``X`` in the file but loads ``obsp``
(the kNN graphs: 8 bytes per stored entry, 330 MB for a 2M-cell scanpy graph; scanpy
also stores ``distances``), ``layers`` and ``obsm`` whole, and holds every cell name
as a Python ``str`` (~70 bytes each). :func:`open_h5ad` builds the same backed
AnnData with

- every sparse ``obsp`` and ``layers`` element left in the file as anndata's backed
  sparse dataset; the export reads the graph by row blocks
  (:func:`.sources.graph_for_export`) and a layer by row chunks, as it reads ``X``;
- every dense numeric ``obsm`` array left in the file as an ``h5py.Dataset`` (anndata
  accepts them: ``anndata.typing.ArrayDataStructureTypes``); the export densifies
  the 1-3-column embeddings and reads the latent space by row blocks;
- the obs names and the plain (non-categorical) string columns of ``obs`` as
  ``string[pyarrow]`` arrays (:mod:`.arrow_strings`): the text plus 8 bytes per cell.

``var``, ``uns``, categorical and numeric ``obs`` columns, sparse or dataframe
``obsm`` elements are read as anndata reads them. At 10M cells x 30 PCs this is
~1.4 GB of ``obsm`` and ~0.7 GB of cell names less than ``read_h5ad(backed="r")``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cellucid_nb.adata.arrow_strings import has_duplicates, read_strings

__all__ = ["LegacyH5adError", "close_h5ad", "open_h5ad", "open_h5ad_for_export"]

_LOG = logging.getLogger(__name__)
_SPARSE = ("csr_matrix", "csc_matrix")


class LegacyH5adError(ValueError):
    """An ``.h5ad`` file without anndata's encoding metadata (written before anndata 0.7)."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _encoding(node: Any) -> str:
    return _text(node.attrs.get("encoding-type", ""))


def _is_dataset(node: Any) -> bool:
    import h5py

    return isinstance(node, h5py.Dataset)


def _is_group(node: Any) -> bool:
    import h5py

    return isinstance(node, h5py.Group)


def _strings_in_file(node: Any) -> bool:
    """An anndata ``string-array`` (obs names, plain string column)."""
    return _is_dataset(node) and _encoding(node) == "string-array" and node.ndim == 1


def _dense_numeric(node: Any) -> bool:
    """A dense numeric ``obsm`` array that can stay in the file."""
    return _is_dataset(node) and _encoding(node) in ("array", "") and node.dtype.kind in "biuf" and node.ndim >= 1


def _read_obs(group: Any) -> tuple[pd.DataFrame, Any]:
    """``obs`` as ``(columns, names)``: strings as Arrow strings; ``names`` is ``None`` when read as anndata does.

    With Arrow names the frame gets a placeholder index (all missing, see :func:`open_h5ad`).
    """
    from anndata.io import read_elem

    if _encoding(group) != "dataframe" or _text(group.attrs.get("encoding-version", "")) != "0.2.0":
        return read_elem(group), None
    columns = [_text(c) for c in np.atleast_1d(group.attrs.get("column-order", []))]
    index_key = _text(group.attrs["_index"])
    if not _strings_in_file(group[index_key]):
        return read_elem(group), None
    names = pd.Index(read_strings(group[index_key]), name=None if index_key == "_index" else index_key)  # as anndata
    data = {k: read_strings(group[k]) if _strings_in_file(group[k]) else read_elem(group[k]) for k in columns}
    return pd.DataFrame(data, index=_placeholder_index(len(names)), columns=columns or None, copy=False), names


def _placeholder_index(n: int) -> pd.Index:
    """``n`` missing strings: a string index whose duplicate check (anndata's, on non-missing names) is free."""
    import pyarrow as pa

    return pd.Index(pd.arrays.ArrowStringArray(pa.chunked_array([pa.nulls(n, pa.large_string())])))


def _trim_heap() -> None:
    """Give the C heap's free memory back to the system (glibc's ``malloc_trim``; nothing elsewhere)."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc
        pass


def open_h5ad(path: str | Path) -> Any:
    """A backed (read-only) AnnData of ``path`` with its large elements left in the file.

    Sparse ``obsp`` and ``layers`` stay in the file (anndata's backed sparse datasets),
    dense numeric ``obsm`` arrays too (``h5py.Dataset``); obs names and plain string
    ``obs`` columns are ``string[pyarrow]`` arrays (the module docstring has the sizes).
    The file stays open as long as the AnnData (or one of those datasets) lives.

    The obs names are compact because AnnData keeps an index as it is given one
    (``obs_names`` setter: a ``pd.Index`` is used by reference, string dtypes pass its
    check without a warning), and pandas slices Arrow arrays without converting them
    (``adata[mask]``, ``obs_names[:k]``). Only anndata's duplicate-name check at
    construction would build a Python string per cell (pandas' hash table), so the
    AnnData is built with a placeholder index (all missing: nothing to check) and gets
    its names afterwards through the ``obs_names`` setter; the duplicate check is done
    here on the Arrow buffers (:func:`.arrow_strings.has_duplicates`) with anndata's
    warning. Hashed look-ups (``obs_names.get_loc``, ``adata["cell_1"]``) still build
    that table when used.

    Parameters
    ----------
    path
        An ``.h5ad`` file written by anndata >= 0.7 (elements with encoding metadata).

    Raises
    ------
    LegacyH5adError
        A file without anndata's encoding metadata (open it with ``anndata.read_h5ad``).
    """
    import anndata
    import h5py
    from anndata.io import read_elem, sparse_dataset

    path = Path(path)
    handle = h5py.File(path, "r")
    try:
        if "encoding-type" not in handle.attrs:
            raise LegacyH5adError(f"{str(path)!r} has no anndata encoding metadata (written before anndata 0.7); "
                                  "open it with anndata.read_h5ad(path, backed='r') instead.")

        def lazy(node: Any) -> Any:
            return sparse_dataset(node) if _encoding(node) in _SPARSE else read_elem(node)

        parts: dict[str, Any] = {k: read_elem(handle[k]) for k in ("var", "varm", "varp", "uns") if k in handle}
        names = None
        if "obs" in handle:
            parts["obs"], names = _read_obs(handle["obs"])
        for key in ("obsp", "layers"):
            if key in handle:
                parts[key] = {name: lazy(node) for name, node in handle[key].items()}
        stored_index: dict[str, pd.Index] = {}  # of obsm dataframes, checked against the names once they are set
        if "obsm" in handle:
            parts["obsm"] = {name: node if _dense_numeric(node) else read_elem(node) for name, node in handle["obsm"].items()}
            if names is not None:
                for name, value in parts["obsm"].items():
                    if isinstance(value, pd.DataFrame):
                        stored_index[name] = value.index
                        parts["obsm"][name] = value.set_axis(parts["obs"].index, axis=0)
        raw: dict[str, Any] = {}
        if "raw" in handle:  # as read_h5ad(backed=...) reads it: var and varm (raw.X stays in the file)
            raw = {k: read_elem(handle["raw"][k]) for k in ("var", "varm") if k in handle["raw"]}
        adata = anndata.AnnData(filename=path, filemode="r", raw=raw, **parts)
        if names is not None:
            adata.obs_names = names  # also the index of obsm dataframes
            if has_duplicates(names.array):
                from anndata.utils import warn_names_duplicates

                warn_names_duplicates("obs")
            parts.clear()  # the placeholder index (8 bytes per cell)
            import pyarrow as pa

            pa.default_memory_pool().release_unused()  # it and the chunks read and cast: ~0.1 GB at 10M cells
            _trim_heap()  # the blocks of the names' reading: ~0.07 GB at 10M cells
        for name, index in stored_index.items():  # anndata's own check, with the names' dtype
            if not index.astype(adata.obs_names.dtype).equals(adata.obs_names):
                raise ValueError(f"{str(path)!r}: obsm[{name!r}] is a dataframe whose index is not the obs names")
    except BaseException:
        handle.close()
        raise
    # The datasets left in the file keep it open (h5py object ids) as long as the AnnData holds them.
    return adata


def open_h5ad_for_export(path: str | Path) -> Any:
    """:func:`open_h5ad`, or ``anndata.read_h5ad(path, backed="r")`` for a file it refuses (logged).

    Parameters
    ----------
    path
        An ``.h5ad`` file.
    """
    try:
        return open_h5ad(path)
    except LegacyH5adError as exc:
        import anndata

        _LOG.info("%s; reading it with anndata.read_h5ad(backed='r'): obsm, obsp and layers are loaded whole", exc)
        return anndata.read_h5ad(path, backed="r")


def close_h5ad(adata: Any) -> None:
    """Close the file of a backed AnnData, also the handle that :func:`open_h5ad`'s in-file elements share.

    ``adata.file.close()`` closes anndata's own handle only: the ``obsm``, ``obsp`` and
    ``layers`` elements left in the file keep theirs open until they are garbage collected.

    Parameters
    ----------
    adata
        A backed AnnData (from :func:`open_h5ad` or ``anndata.read_h5ad(..., backed="r")``).
    """
    nodes: list[Any] = []  # collected first: anndata re-validates a mapping (reads shapes) each time it is accessed
    for key in ("obsm", "obsp", "layers"):
        for value in getattr(adata, key).values():
            node = value if _is_dataset(value) else getattr(value, "group", None)
            if _is_dataset(node) or _is_group(node):
                nodes.append(node)
    for node in nodes:
        if node.id.valid:
            node.file.close()  # closes every object opened through that handle
    if getattr(adata, "isbacked", False):
        adata.file.close()
