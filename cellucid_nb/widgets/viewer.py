"""The viewer widget: an export drawn with WebGL2 in Jupyter, data sent over the widget comm.

``show(path)`` returns a :class:`Viewer`. Everything travels over the comm
(:mod:`cellucid_nb.viewer_protocol`), never by URL, so the viewer works in
JupyterLab, Notebook 7, VS Code and behind JupyterHub without ports or proxies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from cellucid_nb.format.suggest import did_you_mean
from cellucid_nb.viewer_protocol import ViewerBackend

__all__ = ["Viewer", "show", "DimensionError"]

_STATIC = Path(__file__).resolve().parent.parent / "static"


class DimensionError(traitlets.TraitError, ValueError):
    """A dimension the export has no embedding for (a ``ValueError`` too, for ``except ValueError``)."""


def _check_dimension(reader: Any, value: Any) -> int:
    """Return ``value`` as an int if the export has an embedding of that dimension, else raise DimensionError."""
    dims = [int(d) for d in reader.dimensions]
    dim = int(value)
    if dim not in dims:
        only = ", ".join(f"{d}D" for d in dims)
        raise DimensionError(
            f"dimension={dim}: this export has no {dim}D embedding; its dimensions are {dims} ({only}). "
            f"Use one of those, or export a {dim}D embedding (e.g. ExportPlan(embeddings={{{dim}: 'X_umap_{dim}d'}}) "
            f"after sc.tl.umap(adata, n_components={dim}) stored as obsm['X_umap_{dim}d'])."
        )
    return dim


def _check_field(reader: Any, field: str) -> str:
    """Validate a colour field string against the export; return it."""
    if field == "":
        return field
    if field.startswith("obs:"):
        key = field[4:]
        keys = list(reader.obs_keys)
        if key not in keys:
            hint = did_you_mean(key, keys, prefix="obs:") or f"; fields: {keys[:20]}"
            raise ValueError(f"color_field={field!r}: obs field {key!r} is not in the export{hint}")
        return field
    if field.startswith("gene:"):
        gene = field[5:]
        if gene not in set(reader.genes):
            hint = did_you_mean(gene, reader.genes, prefix="gene:")
            raise ValueError(f"color_field={field!r}: gene {gene!r} is not in the export ({len(reader.genes)} genes){hint}")
        return field
    # Bare names are accepted when unambiguous: an obs key first, then a gene.
    if field in list(reader.obs_keys):
        return f"obs:{field}"
    if field in set(reader.genes):
        return f"gene:{field}"
    raise ValueError(f"color_field={field!r}: expected 'obs:<key>', 'gene:<id>' or '' (default field)")


def _check_embedding(reader: Any, embedding: str) -> int | None:
    """Validate an embedding id against the export; return its dimension (None for ``""``, the default)."""
    if embedding == "":
        return None
    dims = {str(e.id): int(e.dim) for e in reader.embeddings}
    if embedding not in dims:
        by_dim = {d: [i for i, dd in dims.items() if dd == d] for d in sorted(set(dims.values()))}
        hint = did_you_mean(embedding, list(dims)) or ""
        raise ValueError(f"embedding={embedding!r} is not in the export{hint}; embeddings by dimension: {by_dim}")
    return dims[embedding]


class Viewer(anywidget.AnyWidget):
    """Interactive WebGL2 view of a Cellucid export.

    Parameters
    ----------
    path
        Export folder (ours or one written by ``cellucid==0.0.9``), or an ``ExportReader``.
    dimension
        1, 2 or 3; default: the export's default dimension.
    embedding
        An embedding id of ``reader.embeddings`` (``compact_v2`` exports hold several
        per dimension; ``"2d"`` style ids otherwise). It sets the dimension; ``""``
        (default) shows each dimension's default embedding. The front-end reports the
        embedding it shows here.
    color_field
        ``"obs:<key>"``, ``"gene:<id>"`` or ``""`` (the first categorical field).
    point_size
        Point size in CSS pixels; 0 picks one from the number of cells.
    show_edges, show_vectors
        Draw the kNN graph / vector-field arrows when the export has them.
    opacity
        Point opacity in (0, 1]; 0 (default) adapts it to the number of points on
        screen and the zoom (opaque for small data).
    height
        Height of the plot in pixels.
    chunk_bytes
        Largest binary message (default 4 MiB).

    Examples
    --------
    >>> v = show("exports/pbmc")            # doctest: +SKIP
    >>> v.color_field = "obs:louvain"        # doctest: +SKIP
    >>> v.selected                           # cells picked with the lasso  # doctest: +SKIP
    """

    _esm = _STATIC / "viewer.js"
    _css = _STATIC / "viewer.css"

    dimension = traitlets.Int(0).tag(sync=True)
    embedding = traitlets.Unicode("").tag(sync=True)
    color_field = traitlets.Unicode("").tag(sync=True)
    point_size = traitlets.Float(0.0).tag(sync=True)
    show_edges = traitlets.Bool(False).tag(sync=True)
    show_vectors = traitlets.Bool(False).tag(sync=True)
    height = traitlets.Int(520).tag(sync=True)
    opacity = traitlets.Float(0.0, min=0.0, max=1.0).tag(sync=True)
    timeout_ms = traitlets.Int(30000).tag(sync=True)

    _OPTIONS = ("dimension", "embedding", "color_field", "point_size", "show_edges", "show_vectors", "height", "opacity", "timeout_ms",
                "chunk_bytes")

    def __init__(self, path: Any, **kwargs: Any):
        unknown = [k for k in kwargs if k not in self._OPTIONS]
        if unknown:
            k = unknown[0]
            hint = did_you_mean(k, self._OPTIONS) or f"; expected one of {list(self._OPTIONS)}"
            raise TypeError(f"Viewer() got an unexpected keyword argument {k!r}{hint}")
        chunk_bytes = int(kwargs.pop("chunk_bytes", 4 << 20))
        backend = ViewerBackend(path, send=self._send_to_front, chunk_bytes=chunk_bytes)
        reader = backend.reader
        embedding = str(kwargs.pop("embedding", "") or "")
        embedding_dim = _check_embedding(reader, embedding)
        asked_dim = int(kwargs.pop("dimension", 0) or 0)
        if embedding_dim is not None and asked_dim not in (0, embedding_dim):
            raise ValueError(f"embedding={embedding!r} is {embedding_dim}D but dimension={asked_dim} was asked; "
                             "give one of them, or an embedding of that dimension")
        dim = asked_dim or embedding_dim or int(reader.default_dimension)
        dim = _check_dimension(reader, dim)
        field = _check_field(reader, str(kwargs.pop("color_field", "") or ""))
        super().__init__(dimension=dim, embedding=embedding, color_field=field, **kwargs)
        self._backend = backend
        self.on_msg(self._on_front_msg)

    # traitlets validation also covers later assignments (viewer.color_field = ...)
    @traitlets.validate("color_field")
    def _validate_color_field(self, proposal: dict) -> str:
        backend = getattr(self, "_backend", None)
        return _check_field(backend.reader, proposal["value"]) if backend is not None else proposal["value"]

    @traitlets.validate("embedding")
    def _validate_embedding(self, proposal: dict) -> str:
        backend = getattr(self, "_backend", None)
        value = str(proposal["value"] or "")
        if backend is not None:
            try:
                _check_embedding(backend.reader, value)
            except ValueError as exc:
                raise traitlets.TraitError(str(exc)) from None
        return value

    @traitlets.validate("dimension")
    def _validate_dimension(self, proposal: dict) -> int:
        backend = getattr(self, "_backend", None)
        return _check_dimension(backend.reader, proposal["value"]) if backend is not None else int(proposal["value"])

    def _send_to_front(self, content: dict, buffers: list) -> None:
        self.send(content, buffers=buffers or None)

    def _on_front_msg(self, _widget: Any, content: dict, buffers: list) -> None:
        self._backend.handle(content, buffers)

    # ------------------------------------------------------------------ public API
    @property
    def reader(self) -> Any:
        """The ``ExportReader`` being shown."""
        return self._backend.reader

    @property
    def backend(self) -> ViewerBackend:
        """The comm backend (for hosts that embed the viewer)."""
        return self._backend

    @property
    def selected(self) -> np.ndarray:
        """Indices (int64, sorted) of the cells selected with the lasso or box."""
        return self._backend.selected

    def on_select(self, callback: Callable[[np.ndarray], None]) -> Callable[[np.ndarray], None]:
        """Call ``callback(indices)`` after every selection in the view (usable as a decorator)."""
        return self._backend.on_select(callback)

    def highlight(self, indices: Sequence[int] | np.ndarray) -> None:
        """Highlight cells by index (others are dimmed); an empty list clears it."""
        self._backend.highlight(indices)

    def reset_view(self) -> None:
        """Reset the camera."""
        self._backend.reset_view()

    def close(self) -> None:
        """Close the widget (the front-end frees its WebGL objects) and its backend."""
        backend = getattr(self, "_backend", None)
        if backend is not None:
            backend.close()
        super().close()

    @property
    def timings(self) -> dict:
        """Front-end timings reported so far (e.g. ``first_frame`` in ms)."""
        return {name: payload for name, payload in self._backend.events}


def show(path: Any, **kwargs: Any) -> Viewer:
    """Show an export in an interactive viewer.

    Parameters
    ----------
    path
        Export folder or ``ExportReader``.
    **kwargs
        :class:`Viewer` options: ``dimension``, ``embedding``, ``color_field``, ``point_size``,
        ``show_edges``, ``show_vectors``, ``height``, ``opacity``.

    Returns
    -------
    Viewer
    """
    return Viewer(path, **kwargs)
