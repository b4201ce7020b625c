"""``publish``: turn exports into a self-contained static site (viewer + exports + ``datasets.json``).

The site opens from any static HTTP server (every URL is relative, so any
sub-path works), from ``file://`` (folder picker / drag-and-drop), and can show an
export hosted elsewhere with ``index.html?url=<base URL>``.
"""

from __future__ import annotations

from cellucid_nb.publishing.site import PublishResult, publish

__all__ = ["publish", "PublishResult"]
