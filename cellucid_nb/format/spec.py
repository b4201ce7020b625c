"""Constants of the ``compact_v1`` exports format (see docs/FORMAT.md).

Writers build manifests with exactly these keys; the validator rejects any
other key, as the strict Cellucid reader does.
"""

from __future__ import annotations

__all__ = [
    "FORMAT_NAME",
    "IDENTITY_FILE",
    "SIDECAR_FILE",
    "DATASETS_FILE",
    "OBS_MANIFEST_KEYS",
    "VAR_MANIFEST_KEYS",
    "CONNECTIVITY_MANIFEST_KEYS",
    "IDENTITY_VERSION",
    "DATASETS_VERSION",
    "EMBEDDING_DIMS",
    "points_file",
    "CATEGORY_LIMITS",
]

FORMAT_NAME = "compact_v1"
IDENTITY_FILE = "dataset_identity.json"
IDENTITY_VERSION = 2
#: cellucid_nb's own additions (colours, checksums, plan); readers never open it.
SIDECAR_FILE = "cellucid_nb.json"
DATASETS_FILE = "datasets.json"
DATASETS_VERSION = 1

EMBEDDING_DIMS = (1, 2, 3)

OBS_MANIFEST_KEYS = frozenset(
    {
        "_format",
        "n_points",
        "centroid_outlier_quantile",
        "latent_key",
        "compression",
        "_obsSchemas",
        "_continuousFields",
        "_categoricalFields",
    }
)
VAR_MANIFEST_KEYS = frozenset(
    {"_format", "n_points", "var_gene_id_column", "compression", "quantization", "_varSchema", "fields"}
)
CONNECTIVITY_MANIFEST_KEYS = frozenset(
    {
        "format",
        "n_cells",
        "n_edges",
        "max_neighbors",
        "index_bytes",
        "index_dtype",
        "sourcesPath",
        "destinationsPath",
        "weightsPath",
        "weight_bytes",
        "weight_dtype",
        "compression",
    }
)

#: codes dtype name -> (max number of categories, missing code)
CATEGORY_LIMITS = {"uint8": (254, 255), "uint16": (65534, 65535)}


def points_file(dim: int, compression: int | None) -> str:
    """Return the embedding file name for ``dim`` (``points_2d.bin[.gz]``).

    Parameters
    ----------
    dim
        1, 2 or 3.
    compression
        Normalised gzip level or ``None``.
    """
    return f"points_{dim}d.bin" + (".gz" if compression else "")
