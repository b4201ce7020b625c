"""HTTP server for exports: the standalone viewer page, the viewer API and the export's files.

``serve(path)`` (and ``cellucid-nb serve DIR``) binds 127.0.0.1 by default, takes
the next free port when the asked one is taken, and answers only its user:

- **token**: a random token is made at start (as Jupyter does); the printed URL
  carries it (``?token=...``) and the page sends it with every request (header
  ``X-Cellucid-Token``, or ``?token=`` for the page and its assets). Anything
  without it gets 403. ``token=None`` (``--no-token``) turns this off explicitly.
- **Host check**: the ``Host`` header must name the bound loopback address,
  ``localhost`` or ``[::1]`` with the port (421 otherwise, 400 when missing), which
  defeats DNS rebinding. A server bound to another address (``allow_remote=True``)
  also accepts that address (a wildcard bind: any IP literal, never a name).
- **no wildcard CORS**: a request from another origin is refused (403) and gets no
  CORS headers, unless ``allow_origins`` names that origin.
- **only the export**: ``datasets.json``, each export's identity and manifests (with
  cellucid_nb's ``cellucid_nb.json``: category colours), the payloads they name, and the
  viewer page and its assets. No dotfile, staging or
  backup folder, other file, or symbolic link is ever answered; no answer holds an
  absolute path.
- idle connections close after ``idle_timeout`` seconds; every connection has its
  own daemon thread, so slow clients never block the others.

Endpoints: ``/`` the standalone viewer page (``?dataset=<id>``);
``/_cellucid/static/<file>`` the built front-end; ``/_cellucid/health``,
``/_cellucid/info``, ``/_cellucid/datasets`` (JSON); ``/_cellucid/api/<dataset id>/<kind>?...``
the viewer requests of :mod:`cellucid_nb.viewer_protocol`, framed (``CLNB`` + header +
blob); any other path: an export file exactly as stored (``.gz`` as raw bytes).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import secrets
import socket
import threading
import warnings
import webbrowser
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from cellucid_nb.format import spec
from cellucid_nb.format.listing import export_files
from cellucid_nb.format.safe_io import SymlinkError, check_no_links, open_no_follow, parse_json
from cellucid_nb.viewer_protocol import build_response, frame_response

__all__ = ["serve", "CellucidServer", "find_free_port", "TOKEN_HEADER"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
_STATIC_FILES = {"standalone.js", "viewer.css", "standalone.html"}
_MAX_PORT_TRIES = 100
#: Request header carrying the token (the page's fetches send it).
TOKEN_HEADER = "X-Cellucid-Token"
_AUTO = "auto"
_LOOPBACK_NAMES = ("localhost",)


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
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if start == 0:
        with socket.socket(family) as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    for port in range(start, min(65536, start + tries)):
        with socket.socket(family) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port on {host} in [{start}, {start + tries})")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class _Dataset:
    id: str
    name: str
    folder: Path
    url_path: str  # "/" or "/<folder>/"
    files: frozenset[str] = field(default_factory=frozenset)  # relative to the export folder
    _reader: Any = None

    @property
    def reader(self) -> Any:
        if self._reader is None:
            from cellucid_nb.format.reader import read_export

            self._reader = read_export(self.folder)
        return self._reader


def _read_identity(folder: Path) -> dict | None:
    try:
        fd = open_no_follow(folder / spec.IDENTITY_FILE)
    except (OSError, SymlinkError):
        return None
    with os.fdopen(fd, "rb") as fh:
        data = _parse(fh.read(), folder / spec.IDENTITY_FILE)
    return data if isinstance(data, dict) else None


def _parse(raw: bytes, path: Path) -> Any:
    """A JSON file of the served folder, or a ``ValueError`` naming it (bad UTF-8, bad JSON, nested too deep)."""
    try:
        return parse_json(raw.decode("utf-8"), path.name)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"cannot serve {path}: {exc}; expected a UTF-8 JSON file as the exports format "
                         "writes it (`cellucid-nb validate` lists what is wrong)") from None


def _dataset(root: Path, folder: Path, default_id: str) -> _Dataset | None:
    """A dataset for an export folder below ``root`` (``None`` for a link, a hidden folder, no identity)."""
    rel = folder.relative_to(root).as_posix() if folder != root else ""
    try:
        check_no_links(root, rel or ".")
    except (ValueError, SymlinkError):
        logger.warning("not serving %s: it is reached through a symbolic link", rel)
        return None
    if any(part.startswith(".") for part in rel.split("/") if part):
        return None
    identity = _read_identity(folder)
    if identity is None:
        return None
    ds_id = str(identity.get("id") or default_id)
    name = str(identity.get("name") or default_id)
    return _Dataset(ds_id, name, folder, f"/{rel}/" if rel else "/", frozenset(export_files(folder)))


def _discover(root: Path) -> list[_Dataset]:
    """Find the datasets under ``root``: the folder itself, or its sub-folders (datasets.json first)."""
    if (root / spec.IDENTITY_FILE).is_file():
        one = _dataset(root, root, root.name)
        return [one] if one else []
    found: list[_Dataset] = []
    manifest = root / spec.DATASETS_FILE
    if manifest.is_file() and not manifest.is_symlink():
        data = _parse(manifest.read_bytes(), manifest)
        entries = data.get("datasets", []) if isinstance(data, dict) else []
        if not isinstance(entries, list):
            raise ValueError(f"cannot serve {manifest}: 'datasets' is {type(entries).__name__}, expected a list of "
                             "{\"id\", \"path\"} entries")
        default = data.get("default") if isinstance(data, dict) else None
        entries = sorted((e for e in entries if isinstance(e, dict)), key=lambda e: e.get("id") != default)
        for e in entries:
            rel = str(e.get("path", e.get("id", ""))).strip("/")
            try:
                folder = check_no_links(root, rel)
            except (ValueError, SymlinkError):
                continue
            ds = _dataset(root, folder, str(e.get("id", rel))) if folder != root and folder.is_dir() else None
            if ds is not None:
                ds.id, ds.name = str(e.get("id") or ds.id), str(e.get("name") or ds.name)
                found.append(ds)
        if found:
            return found
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (sub / spec.IDENTITY_FILE).is_file():
            ds = _dataset(root, sub, sub.name)
            if ds is not None:
                found.append(ds)
    return found


class _Handler(BaseHTTPRequestHandler):
    server_version = "cellucid_nb"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    # set on the subclass made by CellucidServer
    root: Path
    datasets: list[_Dataset]
    info: dict
    token: str | None
    allow_origins: frozenset[str]
    allowed_hosts: frozenset[str]
    any_ip_host: bool
    port: int
    served: dict[str, tuple[Path, str]]  # url path -> (export folder, relative path)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        logger.debug("%s - %s", self.address_string(), format % args)

    # ------------------------------------------------------------------ responses
    def _cors(self) -> None:
        origin = self.headers.get("Origin")
        if origin and origin in self.allow_origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")
            self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", TOKEN_HEADER)
            self.send_header("Access-Control-Expose-Headers", "Content-Length, Content-Type")

    def _common_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self._cors()

    def _send(self, status: int, body: bytes, content_type: str, head: bool = False, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=300" if cache else "no-store")
        self._common_headers()
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, data: Any, head: bool = False) -> None:
        self._send(status, json.dumps(data).encode(), "application/json; charset=utf-8", head)

    def _error(self, status: int, message: str, head: bool = False) -> None:
        self._json(status, {"error": self._scrub(message), "status": status}, head)

    def _scrub(self, message: str) -> str:
        """Paths inside a message made relative to the served folder: no answer holds an absolute path."""
        for folder in sorted({str(self.root), os.path.realpath(self.root)}, key=len, reverse=True):
            message = message.replace(folder + os.sep, "").replace(folder, ".")
        return message

    # ------------------------------------------------------------------ checks
    def _host_ok(self) -> int | None:
        """None when the Host header names this server, else the status to answer."""
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or not hosts[0]:
            return 400  # none, or several (RFC 9112: a request with more than one Host is refused)
        host = hosts[0]
        if not self.path.startswith("/"):  # absolute-form target: its authority is the host (RFC 9112 3.2.2)
            host = urlparse(self.path).netloc or host
        name, sep, port = host.rpartition(":")
        if not sep or not port.isdigit() or int(port) != self.port or "]" in port:
            return 421
        name = name.lower()
        if name in self.allowed_hosts:
            return None
        if self.any_ip_host:
            try:
                ipaddress.ip_address(name.strip("[]"))
                return None
            except ValueError:
                return 421
        return 421

    def _origin_ok(self) -> bool:
        origin = self.headers.get("Origin")
        if origin is None:
            return True
        own = f"http://{self.headers.get('Host', '')}"
        return origin == own or origin in self.allow_origins

    def _token_ok(self, query: dict) -> bool:
        if self.token is None:
            return True
        given = self.headers.get(TOKEN_HEADER) or (query.get("token") or [""])[-1]
        auth = self.headers.get("Authorization", "")
        if not given and auth.lower().startswith("token "):
            given = auth[6:].strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def _checked(self, query: dict, head: bool) -> bool:
        status = self._host_ok()
        if status is not None:
            self._error(status, "the Host header does not name this server (expected its loopback address or "
                        "localhost with the port)" if status == 421 else "expected exactly one Host header", head)
            return False
        if not self._origin_ok():
            self._error(403, "requests from other origins are not allowed (serve(..., allow_origins=[...]) allows one)",
                        head)
            return False
        if not self._token_ok(query):
            self._error(403, f"missing or wrong token: open the URL printed by serve (with ?token=...) or send the "
                        f"{TOKEN_HEADER} header", head)
            return False
        return True

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server naming
        if self._host_ok() is not None or self.headers.get("Origin") not in self.allow_origins:
            return self._error(403, "preflight from an origin that is not allowed")
        self.send_response(204)
        self._common_headers()
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
        query = parse_qs(parsed.query)
        try:
            if not self._checked(query, head):
                return
            if path in ("/", "/index.html"):
                return self._page(head)
            if path.startswith("/_cellucid/"):
                return self._special(path[len("/_cellucid/"):], query, head)
            return self._file(path, head)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # report, never hang the client; details only in the server's log
            logger.exception("error answering %s", parsed.path)
            self._error(500, f"internal error ({type(exc).__name__}); the server's log has the details", head)

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
            # split before decoding: a dataset id may hold "/" (the page sends it as %2F)
            raw = urlparse(self.path).path
            parts = [unquote(part) for part in raw[raw.find("/_cellucid/api/") + len("/_cellucid/api/"):].split("/")]
            if len(parts) != 2:
                return self._error(404, f"expected /_cellucid/api/<dataset>/<kind>, got /_cellucid/{rest}", head)
            ds = next((d for d in self.datasets if d.id == parts[0]), None)
            if ds is None:
                return self._error(404, f"unknown dataset {parts[0]!r}; datasets: {[d.id for d in self.datasets]}", head)
            args = {k: v[-1] for k, v in query.items() if k != "token"}
            try:
                header, blob = build_response(ds.reader, parts[1], args)
            except (KeyError, ValueError, OSError) as exc:  # OSError: a payload missing or unreadable
                return self._error(400, str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc), head)
            return self._send(200, frame_response(header, blob), "application/octet-stream", head)
        return self._error(404, f"unknown endpoint /_cellucid/{rest}", head)

    def _page(self, head: bool) -> None:
        path = STATIC_DIR / "standalone.html"
        if not path.is_file():
            return self._error(500, "the front-end file standalone.html is missing: run `node js/build.mjs`", head)
        html = path.read_text(encoding="utf-8")
        if self.token is not None:  # the page's own assets carry the token too
            for name in ("standalone.js", "viewer.css"):
                html = html.replace(f"/_cellucid/static/{name}", f"/_cellucid/static/{name}?token={self.token}")
        self._send(200, html.encode(), "text/html; charset=utf-8", head)

    def _static(self, name: str, head: bool) -> None:
        path = STATIC_DIR / name
        if not path.is_file():
            return self._error(500, f"the front-end file {name} is missing: run `node js/build.mjs`", head)
        ctype = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}[name.rsplit(".", 1)[1]]
        self._send(200, path.read_bytes(), ctype, head)

    def _file(self, url_path: str, head: bool) -> None:
        norm = os.path.normpath("/" + url_path.lstrip("/")).replace(os.sep, "/")
        if "\0" in url_path or norm.startswith("//"):
            return self._error(400, "bad path", head)
        if norm != url_path and (".." in url_path.split("/")):
            return self._error(403, f"{url_path} is outside the served exports", head)
        entry = self.served.get(norm)
        if entry is None:
            return self._error(404, f"{url_path} is not a file of a served export", head)
        folder, rel = entry
        try:
            target = check_no_links(folder, rel)
            fd = open_no_follow(target)
        except (SymlinkError, ValueError):
            return self._error(404, f"{url_path} is not a file of a served export", head)
        except FileNotFoundError:
            return self._error(404, f"{url_path} not found", head)
        with os.fdopen(fd, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            ctype = "application/json" if rel.endswith(".json") else "application/octet-stream"
            self.send_response(200)
            self.send_header("Content-Type", ctype)  # .gz payloads are raw bytes: readers inflate them
            self.send_header("Content-Length", str(size))
            self.send_header("Cache-Control", "no-cache")
            self._common_headers()
            self.end_headers()
            if head:
                return
            while chunk := fh.read(1 << 20):
                self.wfile.write(chunk)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many clients connecting at once are queued, not refused
    block_on_close = False


class _Server6(_Server):
    address_family = socket.AF_INET6  # an IPv6 host


class CellucidServer:
    """A running HTTP server (in a background thread).

    Parameters
    ----------
    root
        An export folder, or a folder of exports.
    host
        Address to bind (loopback unless ``allow_remote``).
    port
        Port to try first (0: any free port).
    token
        ``"auto"`` (default) makes a random token; a string uses that one; ``None``
        turns the token check off.
    allow_origins
        Origins (``"https://example.org"``) allowed to read answers through CORS.
    allow_remote
        Required to bind anything but a loopback address (a warning is issued).
    idle_timeout
        Seconds after which an idle connection is closed (default 15; also the longest a single read or
        write of 1 MiB may take).

    Attributes
    ----------
    url
        The viewer page's URL, with the token: ``http://127.0.0.1:8765/?token=...``.
    base_url
        ``http://127.0.0.1:8765/`` (without the token).
    token, host, port, root, datasets
    """

    def __init__(self, root: str | Path, host: str = "127.0.0.1", port: int = 8765, *,
                 token: str | None = _AUTO, allow_origins: list[str] | tuple[str, ...] = (),
                 allow_remote: bool = False, idle_timeout: float = 15.0):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"{Path(root).name} is not a folder (expected an export or a folder of exports)")
        if not is_loopback(host):
            if not allow_remote:
                raise ValueError(f"host={host!r} is not a loopback address: pass allow_remote=True (--allow-remote) to "
                                 "serve other machines; the token stays on")
            warnings.warn(f"serving on {host!r}: other machines can connect (the token is still required)", stacklevel=3)
        origins = []
        if isinstance(allow_origins, str):  # one origin given as a string, not a list of its characters
            allow_origins = [allow_origins]
        for origin in allow_origins:
            parsed = urlparse(str(origin))
            if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path not in ("", "/"):
                raise ValueError(f"allow_origins entry {origin!r} is not an origin; expected e.g. 'https://example.org'")
            origins.append(f"{parsed.scheme}://{parsed.netloc}")
        if token == _AUTO:
            token = secrets.token_urlsafe(24)
        if token is not None and (not isinstance(token, str) or len(token) < 8):
            raise ValueError(f"token must be a string of at least 8 characters, or None; got {token!r:.20}")
        datasets = _discover(self.root)
        if not datasets:
            raise ValueError(f"{self.root.name} holds no export: expected {spec.IDENTITY_FILE} in it or in its sub-folders")
        for d in datasets:
            _ = d.reader  # open now: the first request should not pay for imports and manifest parsing
        served: dict[str, tuple[Path, str]] = {}
        for d in datasets:
            for rel in d.files:
                served[f"{d.url_path}{rel}"] = (d.folder, rel)
        if (self.root / spec.DATASETS_FILE).is_file() and not (self.root / spec.DATASETS_FILE).is_symlink():
            served.setdefault(f"/{spec.DATASETS_FILE}", (self.root, spec.DATASETS_FILE))
        self.host = host
        self.token = token
        self.port = find_free_port(host, port)
        self.datasets = datasets
        info = {
            "name": "cellucid_nb", "version": _version(), "type": "exported",
            "n_datasets": len(datasets), "default_dataset": datasets[0].id, "port": self.port,
        }
        wildcard = host in ("0.0.0.0", "::", "")
        display = "127.0.0.1" if wildcard or host == "localhost" else host
        allowed = {"localhost", "127.0.0.1", "[::1]", display.lower() if ":" not in display else f"[{display.lower()}]"}
        handler = type("Handler", (_Handler,), {
            "root": self.root, "datasets": datasets, "info": info, "token": token,
            "allow_origins": frozenset(origins), "allowed_hosts": frozenset(allowed), "any_ip_host": wildcard,
            "port": self.port, "served": served, "timeout": idle_timeout,
        })
        server_cls = _Server6 if ":" in host else _Server
        self._httpd = server_cls((host, self.port), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="cellucid-serve", daemon=True)
        self._thread.start()
        url_host = f"[{display}]" if ":" in display else display
        self.base_url = f"http://{url_host}:{self.port}/"
        self.url = self.base_url + (f"?token={token}" if token else "")

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
        return f"CellucidServer({self.root.name!r}, url={self.base_url!r}, datasets={[d.id for d in self.datasets]})"


def serve(path: str | Path, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = False, block: bool = False,
          *, token: str | None = _AUTO, allow_origins: list[str] | tuple[str, ...] = (), allow_remote: bool = False,
          idle_timeout: float = 15.0) -> CellucidServer:
    """Serve an export (or a folder of exports) and its viewer over HTTP, to this user only.

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
    token
        ``"auto"``: a random token (in ``server.url``); a string: that token; ``None``: no token.
    allow_origins
        Other origins allowed to read the answers (CORS); none by default.
    allow_remote
        Needed to bind an address that is not loopback.
    idle_timeout
        Seconds before an idle connection is closed.

    Returns
    -------
    CellucidServer
        Running in a background thread; ``.url`` (with the token), ``.stop()``.
    """
    server = CellucidServer(path, host=host, port=port, token=token, allow_origins=allow_origins,
                            allow_remote=allow_remote, idle_timeout=idle_timeout)
    logger.info("serving %s at %s", server.root.name, server.url)
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
