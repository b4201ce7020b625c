"""Row blocks of the latent space, never read whole.

:class:`LatentReader` gives ``[start:stop]`` row blocks of a ``(n_cells,
n_dims)`` array that may live in memory (numpy, scipy sparse) or in a file
(h5py dataset, zarr array, or a Dask array, computed block by block with the
synchronous scheduler). Every reader of the latent space (validation, outlier
quantiles) goes through it, with the same fixed block size, so an in-memory
array and the same values in a file give bit-identical results.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from scipy import sparse

__all__ = ["BLOCK_ROWS", "LatentReader"]

#: Rows per block: 65536 x 30 float32 dimensions is 7.5 MiB.
BLOCK_ROWS = 65536


def _is_dask(value: Any) -> bool:
    return type(value).__module__.split(".")[0] == "dask" and hasattr(value, "compute")


def _is_lazy(value: Any) -> bool:
    """An array read on slicing (h5py dataset, zarr array, Dask array, ...): a shape, a dtype and ``[a:b]``."""
    if isinstance(value, np.ndarray) or sparse.issparse(value):
        return False
    shape = getattr(value, "shape", None)
    return (
        isinstance(shape, tuple) and len(shape) >= 2 and hasattr(value, "dtype") and hasattr(value, "__getitem__")
        and not hasattr(value, "columns")  # a DataFrame is converted whole, as before
    )


class LatentReader:
    """Float32 row blocks of a 2-D latent space.

    Parameters
    ----------
    source
        A 2-D numpy array, a CSR matrix, or a lazily sliced 2-D array (h5py
        dataset, zarr array, Dask array). Use :meth:`open` for anything else.
    """

    def __init__(self, source: Any) -> None:
        self._source = source
        #: The source's shape; :meth:`open` accepts any, the blocks need two dimensions.
        self.shape: tuple[int, ...] = tuple(int(n) for n in source.shape)
        self.dtype = np.dtype(source.dtype)
        self._dask = _is_dask(source)

    @classmethod
    def open(cls, value: Any, name: str = "latent_space") -> LatentReader:
        """A reader of ``value``; 1-D arrays become one column. Nothing is read from a lazy array.

        The caller checks :attr:`shape` (any number of dimensions is accepted here).

        Raises
        ------
        TypeError
            ``value`` cannot be read as a numeric array (the message names ``name``).
        """
        if sparse.issparse(value):
            if value.dtype.kind not in "biuf":
                raise TypeError(f"{name} has dtype {value.dtype}, expected a numeric array.")
            return cls(value.tocsr())
        if not _is_lazy(value):
            try:
                value = np.asarray(value)
            except Exception as err:  # noqa: BLE001 - report what was received
                raise TypeError(f"{name} ({type(value).__name__}) cannot be converted to a numeric array: {err}") from err
            if value.ndim == 1:
                value = value.reshape(-1, 1)
        if np.dtype(value.dtype).kind not in "biuf":
            raise TypeError(f"{name} has dtype {value.dtype}, expected a numeric array.")
        return cls(value)

    @property
    def n_rows(self) -> int:
        """Number of cells."""
        return self.shape[0]

    def raw(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start:stop]`` in the source's dtype (a view of a numpy array, else a new array)."""
        block = self._source[start:stop]
        if sparse.issparse(block):
            return block.toarray()
        if self._dask:
            return np.asarray(block.compute(scheduler="synchronous"))
        return np.asarray(block)

    def ranges(self, block_rows: int = BLOCK_ROWS) -> Iterator[tuple[int, int]]:
        """The ``(start, stop)`` of every block, in order."""
        for start in range(0, self.n_rows, block_rows):
            yield start, min(start + block_rows, self.n_rows)

    def block(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start:stop]`` as float32 (a view when the source is a float32 array)."""
        return self.raw(start, stop).astype(np.float32, copy=False)

    def blocks(self, block_rows: int = BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, rows)`` for every block, rows as :meth:`block` gives them."""
        for start, stop in self.ranges(block_rows):
            yield start, self.block(start, stop)
