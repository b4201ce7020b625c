"""Rules of the format that every layer shares (exporter, AnnData side, widgets).

One home per rule: the obs column kind lives here, the category limits in
:mod:`cellucid_nb.format.spec` (``CATEGORY_LIMITS``).
"""

from __future__ import annotations

import pandas as pd

from cellucid_nb.format.spec import CATEGORY_LIMITS

__all__ = ["CATEGORY_LIMITS", "obs_column_kind"]


def obs_column_kind(series: pd.Series) -> str:
    """Return ``"categorical"`` or ``"continuous"``: the field kind FORMAT.md gives a column.

    Pandas categorical, bool and non-numeric columns are categorical; numeric
    columns are continuous. The exporter and ``inspect()`` both call this, so that what
    ``inspect()`` shows is what the exporter writes.

    Parameters
    ----------
    series
        One ``obs`` column.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        return "continuous"
    return "categorical"
