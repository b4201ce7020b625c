"""The committed front-end bundle must be what the sources build to.

A plain ``pip install`` ships ``cellucid_nb/static`` without running Node, so a
stale bundle would silently show users old front-end code.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "cellucid_nb" / "static"
BUNDLES = ["viewer.js", "viewer.css", "wizard.js", "wizard.css", "standalone.js", "site.js"]


def test_committed_bundle_matches_sources(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is needed to build the front-end (make setup installs the npm packages)"
    env = dict(os.environ, CELLUCID_BUILD_OUTDIR=str(tmp_path))
    subprocess.run([node, "js/build.mjs"], cwd=ROOT, env=env, check=True, timeout=120)
    for name in BUNDLES:
        built = (tmp_path / name).read_bytes()
        committed = (STATIC / name).read_bytes()
        assert built == committed, f"cellucid_nb/static/{name} is stale: run `npm run build` and commit it"


def test_bundle_has_no_network_imports() -> None:
    # Users are often offline (clusters, trains): every module must be bundled.
    network_import = re.compile(r"""(?:\bimport\s*\(|\bfrom)\s*["']https?://""")
    for name in BUNDLES:
        text = (STATIC / name).read_text(encoding="utf-8")
        assert not network_import.search(text), f"{name} imports a module over the network"
        assert "@import url(http" not in text, f"{name} imports a stylesheet over the network"
