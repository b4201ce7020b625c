"""Open an ``.h5ad`` file for export with its large elements left in the file.

``anndata.read_h5ad(path, backed="r")`` leaves ``X`` in the file but loads ``obsp``
(the kNN graphs: 8 bytes per stored entry, 330 MB for a 2M-cell scanpy graph; scanpy
also stores ``distances``) and ``layers`` whole. :func:`open_h5ad` builds the same
backed AnnData with every sparse ``obsp`` and ``layers`` element left in the file as
anndata's backed sparse dataset; the export reads the graph by row blocks
(:func:`.sources.graph_for_export`) and a layer by row chunks, as it reads ``X``.
``obs``, ``var``, ``obsm`` and ``uns`` are read as anndata reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["open_h5ad"]

_SPARSE = ("csr_matrix", "csc_matrix")


def _encoding(node: Any) -> str:
    value = node.attrs.get("encoding-type", "")
    return value.decode() if isinstance(value, bytes) else str(value)


def open_h5ad(path: str | Path) -> Any:
    """A backed (read-only) AnnData of ``path`` whose sparse ``obsp`` and ``layers`` stay in the file.

    Parameters
    ----------
    path
        An ``.h5ad`` file written by anndata >= 0.7 (elements with encoding metadata).

    Raises
    ------
    ValueError
        A file without anndata's encoding metadata (open it with ``anndata.read_h5ad``).
    """
    import anndata
    import h5py
    from anndata.io import read_elem, sparse_dataset

    path = Path(path)
    handle = h5py.File(path, "r")
    try:
        if "encoding-type" not in handle.attrs:
            raise ValueError(f"{str(path)!r} has no anndata encoding metadata (written before anndata 0.7); "
                             "open it with anndata.read_h5ad(path, backed='r') instead.")

        def lazy(node: Any) -> Any:
            return sparse_dataset(node) if _encoding(node) in _SPARSE else read_elem(node)

        parts: dict[str, Any] = {k: read_elem(handle[k]) for k in ("obs", "var", "obsm", "varm", "varp", "uns")
                                 if k in handle}
        for key in ("obsp", "layers"):
            if key in handle:
                parts[key] = {name: lazy(node) for name, node in handle[key].items()}
        raw: dict[str, Any] = {}
        if "raw" in handle:  # as read_h5ad(backed=...) reads it: var and varm (raw.X stays in the file)
            raw = {k: read_elem(handle["raw"][k]) for k in ("var", "varm") if k in handle["raw"]}
        adata = anndata.AnnData(filename=path, filemode="r", raw=raw, **parts)
    except BaseException:
        handle.close()
        raise
    # The backed datasets keep their file open (h5py object ids) as long as the AnnData holds them.
    return adata
