"""The one "did you mean" helper, and the one name-search ranking of the Python side.

Every layer suggests the closest known name the same way (format is the lowest
layer, so the exporter, the AnnData side, the widgets and the CLI all import it).

Ranking (:func:`search_names`), the Python twin of the front-end's gene search
(``js/common/gene_search.js``, ``searchGenes``): case-insensitive; exact
matches first (the case-sensitive one before others), then prefix matches, then
substring matches, each group in the order of ``names``. Keep both in step.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

__all__ = ["search_names", "closest", "did_you_mean"]


def search_names(query: object, names: Sequence[str], limit: int = 20,
                 lowered: Sequence[str] | None = None) -> list[str]:
    """Up to ``limit`` names matching ``query``: exact, then prefix, then substring (case-insensitive).

    Parameters
    ----------
    query
        What was typed (``str()`` of it, surrounding blanks ignored); blank matches nothing.
    names
        Candidate names, in their display order.
    limit
        Most names returned.
    lowered
        ``[n.lower() for n in names]`` when the caller keeps it (many queries on one list).

    Returns
    -------
    list of str
    """
    raw = str(query if query is not None else "").strip()
    q = raw.lower()
    if not q or limit <= 0:
        return []
    lower = lowered if lowered is not None else [str(n).lower() for n in names]
    exact: list[int] = []
    prefix: list[int] = []
    inner: list[int] = []
    for i, name in enumerate(lower):
        pos = name.find(q)
        if pos < 0:
            continue
        if len(name) == len(q):
            if names[i] == raw:
                exact.insert(0, i)
            else:
                exact.append(i)
        elif pos == 0:
            if len(prefix) < limit:
                prefix.append(i)
        elif len(inner) < limit:
            inner.append(i)
    return [names[i] for i in (exact + prefix + inner)[:limit]]


def closest(name: object, options: Iterable[object], lowered: Sequence[str] | None = None) -> str | None:
    """The known name a user most likely meant by ``name``, or ``None``.

    The first :func:`search_names` match (so ``"cd3d"`` gives ``"CD3D"`` and
    ``"CD3"`` gives the first ``CD3…`` gene), else the closest spelling
    (:func:`difflib.get_close_matches`, case-insensitive), for typos such as
    ``"louvian"`` for ``"louvain"``.

    Parameters
    ----------
    name
        The unknown name.
    options
        The known names.
    lowered
        Lower-cased ``options``, when the caller keeps it.
    """
    opts = [str(o) for o in options]
    if not opts:
        return None
    lower = list(lowered) if lowered is not None else [o.lower() for o in opts]
    text = str(name)
    ranked = search_names(text, opts, 1, lower)
    if ranked and ranked[0] != text:
        return ranked[0]
    match = difflib.get_close_matches(text.lower(), lower, n=1)
    return opts[lower.index(match[0])] if match else None


def did_you_mean(name: object, options: Iterable[object], prefix: str = "") -> str:
    """``"; did you mean 'X'?"`` for :func:`closest`'s answer, or ``""`` when none is close.

    ``prefix`` goes before the suggestion: ``"obs:"`` gives ``"; did you mean 'obs:louvain'?"``.
    """
    match = closest(name, options)
    return f"; did you mean {prefix + match!r}?" if match is not None else ""
