"""Type stub of the compiled CSR sweeps (``_csr_sweep.c``); see :mod:`.csr_kernels` for the meaning."""

import numpy as np

def column_stats(
    indices: np.ndarray, data: np.ndarray, lo: np.ndarray, hi: np.ndarray, count: np.ndarray,
    index_bytes: int, data_kind: str, /,
) -> None: ...
def sweep(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, cursor: np.ndarray, col_start: int, col_stop: int,
    local: np.ndarray, lo32: np.ndarray, lo64: np.ndarray, scale: np.ndarray, wide: np.ndarray, out: np.ndarray,
    qmax: int, missing: int, index_bytes: int, data_kind: str, out_kind: str, /,
) -> None: ...
