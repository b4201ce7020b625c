"""HTTP server for exports: the standalone viewer page, the viewer API and the raw files.

``serve(path)`` (and ``cellucid-nb serve DIR``) binds 127.0.0.1 by default, takes
the next free port when the asked one is taken, and answers:

- ``/`` the standalone viewer page (``?dataset=<id>`` picks a dataset);
- ``/_cellucid/static/<file>`` the built front-end;
- ``/_cellucid/health``, ``/_cellucid/info``, ``/_cellucid/datasets`` (JSON, CORS) so
  other Cellucid clients can connect;
- ``/_cellucid/api/<dataset id>/<kind>?...`` the viewer requests of
  :mod:`cellucid_nb.viewer_protocol`, framed (``CLNB`` + header + blob);
- any other path: the export's files exactly as stored (``.gz`` files as raw bytes,
  never ``Content-Encoding: gzip``); paths outside the export are refused.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import socket
import threading
import webbrowser
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from cellucid_nb.format import spec
from cellucid_nb.viewer_protocol import build_response, frame_response

__all__ = ["serve", "CellucidServer", "find_free_port"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
_STATIC_FILES = {"standalone.js", "viewer.css", "standalone.html"}
_MAX_PORT_TRIES = 100


def _version() -> str:
    from cellucid_nb._version import __version__

    return __version__


def find_free_port(host: str, start: int, tries: int = _MAX_PORT_TRIES) -> int:
    """Return ``start`` if it can be bound on ``host``, else the next free port.

    Parameters
    ----------
    host
        Address to bind.
    start
        First port to try (0 asks the OS for any free port).
    tries
        How many consecutive ports to try.
    """
    if start == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    for port in range(start, min(65536, start + tries)):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port on {host} in [{start}, {start + tries})")


@dataclass
class _Dataset:
    id: str
    name: str
    folder: Path
    url_path: str  # "/" or "/<folder>/"
    _reader: Any = None

    @property
    def reader(self) -> Any:
        if self._reader is None:
            from cellucid_nb.format.reader import read_export

            self._reader = read_export(self.folder)
        return self._reader


def _discover(root: Path) -> list[_Dataset]:
    """Find the datasets under ``root``: the folder itself, or its sub-folders (datasets.json first)."""
    if (root / spec.IDENTITY_FILE).is_file():
        identity = json.loads((root / spec.IDENTITY_FILE).read_text(encoding="utf-8"))
        return [_Dataset(str(identity.get("id") or root.name), str(identity.get("name") or root.name), root, "/")]
    found: list[_Dataset] = []
    manifest = root / spec.DATASETS_FILE
    if manifest.is_file():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        entries = data.get("datasets", [])
        default = data.get("default")
        entries = sorted(entries, key=lambda e: e.get("id") != default)  # default first
        for e in entries:
            folder = (root / str(e.get("path", e.get("id", "")))).resolve()
            if (folder / spec.IDENTITY_FILE).is_file() and folder.is_relative_to(root):
                rel = folder.relative_to(root).as_posix()
                found.append(_Dataset(str(e["id"]), str(e.get("name") or e["id"]), folder, f"/{rel}/"))
        if found:
            return found
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        ident = sub / spec.IDENTITY_FILE
        if ident.is_file():
            identity = json.loads(ident.read_text(encoding="utf-8"))
            found.append(_Dataset(str(identity.get("id") or sub.name), str(identity.get("name") or sub.name), sub, f"/{sub.name}/"))
    return found


class _Handler(BaseHTTPRequestHandler):
    server_version = "cellucid_nb"
    protocol_version = "HTTP/1.1"

    # set on the subclass made by CellucidServer
    root: Path
    datasets: list[_Dataset]
    info: dict

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        logger.debug("%s - %s", self.address_string(), format % args)

    # ------------------------------------------------------------------ responses
    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "*")
        self.send_header("Access-Control-Expose-Headers", "Content-Length, Content-Type")

    def _send(self, status: int, body: bytes, content_type: str, head: bool = False, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=300" if cache else "no-store")
        self._cors()
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, data: Any, head: bool = False) -> None:
        self._send(status, json.dumps(data).encode(), "application/json; charset=utf-8", head)

    def _error(self, status: int, message: str, head: bool = False) -> None:
        self._json(status, {"error": message, "status": status}, head)

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server naming
        self.send_response(204)
        self._cors()
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._route(head=False)

    # ------------------------------------------------------------------ routing
    def _route(self, head: bool) -> None:
        parsed = urlparse(self.path)
        path = unquote(parsed.path)
        try:
            if path in ("/", "/index.html"):
                return self._static("standalone.html", head)
            if path.startswith("/_cellucid/"):
                return self._special(path[len("/_cellucid/"):], parse_qs(parsed.query), head)
            return self._file(path, head)
        except BrokenPipeError:
            pass
        except Exception as exc:  # report, never hang the client
            logger.exception("error answering %s", self.path)
            self._error(500, f"{type(exc).__name__}: {exc}", head)

    def _special(self, rest: str, query: dict, head: bool) -> None:
        if rest == "health":
            return self._json(200, {"status": "ok", "type": "exported", "generator": "cellucid_nb", "version": _version()}, head)
        if rest == "info":
            return self._json(200, self.info, head)
        if rest == "datasets":
            return self._json(200, {"datasets": [{"id": d.id, "name": d.name, "path": d.url_path} for d in self.datasets]}, head)
        if rest.startswith("static/"):
            name = rest[len("static/"):]
            if name not in _STATIC_FILES:
                return self._error(404, f"no static file {name!r}", head)
            return self._static(name, head)
        if rest.startswith("api/"):
            parts = rest[len("api/"):].split("/")
            if len(parts) != 2:
                return self._error(404, f"expected /_cellucid/api/<dataset>/<kind>, got /_cellucid/{rest}", head)
            ds = next((d for d in self.datasets if d.id == parts[0]), None)
            if ds is None:
                return self._error(404, f"unknown dataset {parts[0]!r}; datasets: {[d.id for d in self.datasets]}", head)
            args = {k: v[-1] for k, v in query.items()}
            try:
                header, blob = build_response(ds.reader, parts[1], args)
            except (KeyError, ValueError) as exc:
                return self._error(400, str(exc.args[0]) if exc.args else str(exc), head)
            return self._send(200, frame_response(header, blob), "application/octet-stream", head)
        return self._error(404, f"unknown endpoint /_cellucid/{rest}", head)

    def _static(self, name: str, head: bool) -> None:
        path = STATIC_DIR / name
        if not path.is_file():
            return self._error(500, f"the front-end file {name} is missing: run `node js/build.mjs`", head)
        ctype = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}[name.rsplit(".", 1)[1]]
        self._send(200, path.read_bytes(), ctype, head)

    def _file(self, url_path: str, head: bool) -> None:
        if "\0" in url_path:
            return self._error(400, "bad path", head)
        target = (self.root / url_path.lstrip("/")).resolve()
        if not target.is_relative_to(self.root):
            return self._error(403, f"{url_path} is outside the served folder", head)
        if not target.is_file():
            return self._error(404, f"{url_path} not found", head)
        if target.name.endswith(".gz"):
            ctype = "application/octet-stream"  # raw bytes: readers inflate .gz files themselves
        elif target.suffix == ".json":
            ctype = "application/json"
        elif target.suffix == ".bin" or target.suffix in (".u8", ".u16", ".f32"):
            ctype = "application/octet-stream"
        else:
            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        size = target.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(size))
        self.send_header("Cache-Control", "no-cache")
        self._cors()
        self.end_headers()
        if head:
            return
        with open(target, "rb") as fh:
            while chunk := fh.read(1 << 20):
                self.wfile.write(chunk)


class CellucidServer:
    """A running HTTP server (in a background thread).

    Attributes
    ----------
    url
        Base URL, e.g. ``http://127.0.0.1:8765/``.
    host, port, root
    """

    def __init__(self, root: str | Path, host: str = "127.0.0.1", port: int = 8765):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root} is not a folder (expected an export or a folder of exports)")
        datasets = _discover(self.root)
        if not datasets:
            raise ValueError(f"{self.root} holds no export: expected {spec.IDENTITY_FILE} in it or in its sub-folders")
        for d in datasets:
            d.reader  # open now: the first request should not pay for imports and manifest parsing
        self.host = host
        self.port = find_free_port(host, port)
        self.datasets = datasets
        info = {
            "name": "cellucid_nb", "version": _version(), "type": "exported", "data_dir": str(self.root),
            "n_datasets": len(datasets), "default_dataset": datasets[0].id, "host": host, "port": self.port,
        }
        handler = type("Handler", (_Handler,), {"root": self.root, "datasets": datasets, "info": info})
        self._httpd = ThreadingHTTPServer((host, self.port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="cellucid-serve", daemon=True)
        self._thread.start()
        display_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.url = f"http://{display_host}:{self.port}/"

    def wait(self) -> None:
        """Block until the server stops (Ctrl+C raises KeyboardInterrupt here)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> CellucidServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"CellucidServer({str(self.root)!r}, url={self.url!r}, datasets={[d.id for d in self.datasets]})"


def serve(path: str | Path, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = False, block: bool = False) -> CellucidServer:
    """Serve an export (or a folder of exports) and its viewer over HTTP.

    Parameters
    ----------
    path
        An export folder, or a folder of exports (with or without ``datasets.json``).
    host
        Address to bind; the default serves this machine only.
    port
        Port to try first; the next free one is used when it is taken.
    open_browser
        Open the viewer page in a browser tab.
    block
        Serve until interrupted (Ctrl+C) instead of returning at once.

    Returns
    -------
    CellucidServer
        Running in a background thread; ``.url``, ``.stop()``.
    """
    server = CellucidServer(path, host=host, port=port)
    logger.info("serving %s at %s", server.root, server.url)
    if open_browser:
        webbrowser.open(server.url)
    if block:
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
    return server
