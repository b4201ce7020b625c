"""The site's page: ``index.html`` and the bundled viewer it loads (relative URLs only)."""

from __future__ import annotations

import html
from pathlib import Path

__all__ = ["index_html", "ASSETS", "STATIC_DIR", "GENERATOR"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
#: built file in cellucid_nb/static -> its path in the site
ASSETS = {"site.js": "viewer/site.js", "viewer.css": "viewer/viewer.css"}
#: marks a folder as a site written by publish (a re-publish may replace it)
GENERATOR = "cellucid_nb publish"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{generator}">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="viewer/viewer.css">
<style>
  :root {{ color-scheme: light dark; }}
  body {{ margin: 0; padding: 12px 16px; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; background: #fff; color: #1f1f1f; }}
  header {{ display: flex; flex-wrap: wrap; align-items: baseline; gap: 12px; margin-bottom: 8px; }}
  h1 {{ font-size: 18px; margin: 0; font-weight: 600; }}
  #selection {{ color: #616161; font-size: 13px; }}
  #dataset, #download {{ font: inherit; }}
  #notice {{ border: 2px dashed #888; border-radius: 8px; padding: 24px; text-align: center; margin: 24px 0; }}
  #notice.cnb-drag {{ border-color: #1f77b4; background: rgba(31, 119, 180, 0.08); }}
  @media (prefers-color-scheme: dark) {{
    body {{ background: #111; color: #e0e0e0; }}
    .cnb-viewer {{ --jp-layout-color0: #111; --jp-layout-color1: #1c1c1c; --jp-ui-font-color1: #e0e0e0; --jp-ui-font-color2: #a0a0a0; --jp-border-color1: #444; }}
  }}
</style>
</head>
<body>
<header><h1 id="title">{title}</h1><select id="dataset" hidden aria-label="dataset"></select>
<span id="selection"></span><button id="download" type="button" hidden>Download selection (CSV)</button></header>
<div id="notice" hidden>
  <p id="notice-text"></p>
  <p><label>Choose the site or export folder: <input id="folder" type="file" webkitdirectory directory multiple></label></p>
  <p>or drop the folder here.</p>
</div>
<div id="app"></div>
<script src="viewer/site.js" defer></script>
</body>
</html>
"""


def index_html(title: str) -> str:
    """Return the site's ``index.html`` with ``title`` (escaped).

    Parameters
    ----------
    title
        Page title and heading.
    """
    return _PAGE.format(title=html.escape(title), generator=GENERATOR)
