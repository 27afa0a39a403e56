"""HTTP servers that let a browser (Neuroglancer) read our stores.

Two servers, both :class:`http.server.ThreadingHTTPServer` subclasses bound to 127.0.0.1
by default:

* :class:`StoreServer` serves a local directory read-only, with CORS headers and single
  byte ranges (sharded zarr v3 stores are read with ``Range``; Python's own
  ``http.server`` ignores it). Missing files are 404, which Neuroglancer and zarr read as
  an absent chunk (all fill value).
* :class:`ProxyServer` serves a remote HTTP(S) store through this machine: it adds the
  HTTP basic-auth header to every upstream request, adds CORS, honours ``Range`` even
  when the upstream does not, and can keep an on-disk cache bounded in bytes
  (:class:`DiskCache`). Credentials stay in this process: only a whitelist of upstream
  headers is passed on, and error pages name the path and status only.

Both record every request (method, path, status) in :attr:`requests_seen` so tests and
``--debug`` can tell which resolution levels a viewer asked for.

Helpers: :func:`detect_stores` finds zarr stores under a directory, :func:`source_url`
builds the ``zarr2://``/``zarr3://`` URL Neuroglancer needs, :func:`credentials` finds
the password (environment variable or ``~/.netrc``, never the command line).
"""

from __future__ import annotations

import collections
import hashlib
import html
import json
import os
import posixpath
import re
import socket
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO, Iterable

from .errors import ScrollError
from .remote.auth import (PASSWORD_ENV, _without_userinfo, basic_auth_header,  # noqa: F401
                          check_upstream_url, credentials)

#: Files that mark the root of a zarr store, and the Neuroglancer scheme each one means.
STORE_MARKERS = ((".zgroup", "zarr2"), (".zarray", "zarr2"), ("zarr.json", "zarr3"))

#: How deep :func:`detect_stores` looks for stores under a directory.
SEARCH_DEPTH = 3

BLOCK = 1 << 20  # bytes per read/write when streaming a file or an upstream body
UPSTREAM_TIMEOUT = 60.0  # seconds without progress before an upstream request fails
LOG_LENGTH = 100_000  # requests kept in requests_seen (a long session must not grow RAM)

_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Range, Content-Length, Accept-Ranges, ETag",
}
_JSON_NAMES = {".zgroup", ".zarray", ".zattrs", ".zmetadata", "zarr.json"}


# --------------------------------------------------------------------------- ranges

class RangeNotSatisfiable(Exception):
    """A syntactically valid ``Range`` that selects no byte of the resource."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Interpret a ``Range`` request header for a resource of ``size`` bytes.

    Returns ``(start, stop)`` (byte offsets, stop exclusive) for a single range
    ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` (the last n bytes), clipped to the
    resource; ``None`` when there is no header, it is malformed or asks for several
    ranges (RFC 9110 lets a server ignore those and send the whole resource). Raises
    :class:`RangeNotSatisfiable` when the range starts at or beyond the end (or is an
    empty suffix).
    """
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None
    first, last = m.group(1), m.group(2)
    if first == "":  # suffix: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - n), size
    start = int(first)
    stop = size if last == "" else int(last) + 1
    if last != "" and stop <= start:
        return None  # last < first: invalid, ignore the header
    if start >= size:
        raise RangeNotSatisfiable(header)
    return start, min(stop, size)


# --------------------------------------------------------------------------- stores

@dataclass(frozen=True)
class StoreInfo:
    """A zarr store found on disk: ``path`` relative to the served root (POSIX, "" for
    the root itself) and Neuroglancer ``scheme`` (``"zarr2"`` or ``"zarr3"``)."""

    path: str
    scheme: str


def store_scheme(directory: str | Path) -> str | None:
    """``"zarr2"`` if ``directory`` holds ``.zgroup`` or ``.zarray``, ``"zarr3"`` if it
    holds ``zarr.json``, else None."""
    directory = Path(directory)
    for marker, scheme in STORE_MARKERS:
        if (directory / marker).is_file():
            return scheme
    return None


def detect_stores(root: str | Path, depth: int = SEARCH_DEPTH) -> list[StoreInfo]:
    """Find the zarr stores at or under ``root`` (at most ``depth`` directories down),
    sorted by path. A store's own sub-directories (its levels) are not searched."""
    root = Path(root)
    scheme = store_scheme(root)
    if scheme:
        return [StoreInfo("", scheme)]
    found: list[StoreInfo] = []
    if depth <= 0:
        return found
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return found
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        for sub in detect_stores(entry.path, depth - 1):
            found.append(StoreInfo(posixpath.join(entry.name, sub.path).rstrip("/"),
                                   sub.scheme))
    return found


def source_url(scheme: str, base_url: str, path: str = "") -> str:
    """The Neuroglancer source for a store: ``SCHEME://BASE/PATH/`` (one trailing slash).

    ``base_url`` is the server's ``http://host:port/`` (plus its mount prefix); ``path``
    the store's path under it, URL-quoted here.
    """
    url = base_url.rstrip("/") + "/"
    if path:
        url += urllib.parse.quote(path.strip("/")) + "/"
    return f"{scheme}://{url}"


# --------------------------------------------------------------------------- base

class _RecordingServer(ThreadingHTTPServer):
    """A threading HTTP server that remembers the requests it answered."""

    daemon_threads = True  # a browser's idle keep-alive connections must not block exit
    #: The request handler; None = the server's own (subclasses may extend it).
    handler_class: type | None = None
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler, verbose: bool = False):
        super().__init__(address, handler)
        self.verbose = verbose
        self._log: collections.deque = collections.deque(maxlen=LOG_LENGTH)
        self._log_lock = threading.Lock()

    def record(self, method: str, path: str, status: int) -> None:
        with self._log_lock:
            self._log.append((method, path, status))

    @property
    def requests_seen(self) -> list[tuple[str, str, int]]:
        """A copy of the requests answered so far: ``(method, path, status)``, oldest
        first, ``path`` URL-decoded and without query string."""
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Forget the requests recorded so far."""
        with self._log_lock:
            self._log.clear()

    @property
    def url(self) -> str:
        """``http://host:port/`` of this server; for a wildcard bind (0.0.0.0) the
        host is this machine's name, as other machines must reach it by name."""
        host, port = self.server_address[:2]
        if host in ("0.0.0.0", "::", ""):
            host = socket.getfqdn()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/"

    def start(self) -> threading.Thread:
        """Serve in a daemon thread; return it (stop with :meth:`stop`)."""
        # a short poll interval: stop() waits for it, and tests stop many servers
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=type(self).__name__, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self.shutdown()
        self.server_close()


def _listen_error(address: tuple[str, int], exc: OSError) -> ScrollError:
    host, port = address
    return ScrollError(f"--port {port}: cannot listen on {host}:{port} "
                       f"({exc.strerror or exc}); choose another --port (0 = any free one)")


class _Handler(BaseHTTPRequestHandler):
    """Shared request plumbing: CORS, preflight, small error bodies, logging."""

    protocol_version = "HTTP/1.1"  # keep-alive: a viewer fetches hundreds of chunks
    server_version = "scrollzarr"
    sys_version = ""
    server: _RecordingServer

    def do_OPTIONS(self) -> None:  # noqa: N802 (http.server naming)
        # CORS preflight, sent by browsers before a Range request from another origin.
        self.send_response(204)
        self._cors()
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.send_header("Access-Control-Allow-Headers",
                         self._allowed_request_headers())
        self.send_header("Access-Control-Max-Age", "86400")
        if self.headers.get("Access-Control-Request-Private-Network"):
            # Chrome asks before a public page (a hosted Neuroglancer) reads localhost.
            self.send_header("Access-Control-Allow-Private-Network", "true")
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.record("OPTIONS", self._url_path(), 204)

    def _allowed_request_headers(self) -> str:
        # Read-only data: any plain request header may be sent, but never credentials.
        asked = self.headers.get("Access-Control-Request-Headers", "")
        names = [h.strip() for h in asked.split(",") if h.strip()]
        names = [h for h in names if h.lower() not in ("authorization", "cookie")]
        return ", ".join(dict.fromkeys(["Range", *names]))

    def _cors(self) -> None:
        for key, value in _CORS.items():
            self.send_header(key, value)

    def _url_path(self) -> str:
        return urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)

    def _relative_parts(self, prefix: str = "") -> list[str] | None:
        """The request path as a list of names below ``prefix``; None when it leaves
        the prefix or contains '..', '.', backslashes or NUL (no traversal)."""
        path = self._url_path()
        if not path.startswith("/"):
            return None
        parts = [p for p in path.split("/") if p != ""]
        prefix_parts = [p for p in prefix.split("/") if p]
        if parts[:len(prefix_parts)] != prefix_parts:
            return None
        parts = parts[len(prefix_parts):]
        for p in parts:
            if p in (".", "..") or "\\" in p or "\0" in p:
                return None
        return parts

    def _send_error(self, status: int, message: str, head: bool = False) -> None:
        body = (message + "\n").encode("utf-8", "replace")
        self.send_response(status)
        self._cors()
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self.server.record(self.command, self._url_path(), status)

    def _send_range_not_satisfiable(self, size: int) -> None:
        self.send_response(416)
        self._cors()
        self.send_header("Content-Range", f"bytes */{size}")
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.record(self.command, self._url_path(), 416)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (base signature)
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def handle_one_request(self) -> None:
        # A viewer cancels requests when the user pans or zooms: a closed connection is
        # normal, not an error worth a traceback.
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


# --------------------------------------------------------------------------- local

class StoreServer(_RecordingServer):
    """Serve the directory ``root`` read-only over HTTP, with CORS and byte ranges.

    URLs are ``http://host:port/MOUNT/relative/path``; ``mount`` (default "") lets a
    single store be served under its own name without exposing its siblings. Files
    outside ``root`` (``..``, symbolic links leading out) are never served.
    """

    def __init__(self, root: str | Path, address: tuple[str, int] = ("127.0.0.1", 0),
                 mount: str = "", verbose: bool = False):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ScrollError(f"{root}: not a directory")
        self.mount = mount.strip("/")
        try:
            super().__init__(address, self.handler_class or _FileHandler, verbose)
        except OSError as exc:
            raise _listen_error(address, exc) from None

    @property
    def base_url(self) -> str:
        """URL of the served root: ``http://host:port/MOUNT/``."""
        return self.url + (urllib.parse.quote(self.mount) + "/" if self.mount else "")

    def resolve(self, parts: list[str]) -> Path | None:
        """The file or directory for URL path ``parts``, or None if it is outside the
        root once symbolic links are followed."""
        path = self.root.joinpath(*parts)
        try:
            real = path.resolve()
        except (OSError, RuntimeError):
            return None
        if real != self.root and self.root not in real.parents:
            return None
        return real


class _FileHandler(_Handler):
    server: StoreServer

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def _serve(self, head: bool) -> None:
        parts = self._relative_parts(self.server.mount)
        path = None if parts is None else self.server.resolve(parts)
        if path is None:
            self._send_error(404, "not found", head)
            return
        if path.is_dir():
            if not self._url_path().endswith("/"):
                # a relative link in the listing must resolve inside this directory
                self.send_response(301)
                self._cors()
                self.send_header("Location", urllib.parse.quote(self._url_path()) + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.server.record(self.command, self._url_path(), 301)
                return
            self._send_listing(path, head)
            return
        try:
            f = open(path, "rb")
        except OSError:
            self._send_error(404, "not found", head)
            return
        with f:
            size = os.fstat(f.fileno()).st_size
            try:
                rng = parse_range(self.headers.get("Range"), size)
            except RangeNotSatisfiable:
                self._send_range_not_satisfiable(size)
                return
            start, stop = rng if rng else (0, size)
            self.send_response(206 if rng else 200)
            self._cors()
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", _content_type(path.name))
            self.send_header("Content-Length", str(stop - start))
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
            self.end_headers()
            self.server.record(self.command, self._url_path(), 206 if rng else 200)
            if not head:
                _copy(f, self.wfile, start, stop - start)

    def _send_listing(self, directory: Path, head: bool) -> None:
        # A minimal index so a person (or Neuroglancer's source completion) can browse.
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            self._send_error(404, "not found", head)
            return
        rows = []
        for name in names:
            suffix = "/" if (directory / name).is_dir() else ""
            href = urllib.parse.quote(name) + suffix
            rows.append(f'<a href="{href}">{html.escape(name + suffix)}</a><br>')
        body = ("<!DOCTYPE html><html><body>\n" + "\n".join(rows)
                + "\n</body></html>\n").encode()
        self.send_response(200)
        self._cors()
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.server.record(self.command, self._url_path(), 200)
        if not head:
            self.wfile.write(body)


def _content_type(name: str) -> str:
    return "application/json" if name in _JSON_NAMES else "application/octet-stream"


def _copy(src: BinaryIO, dst: BinaryIO, offset: int, length: int) -> None:
    src.seek(offset)
    while length > 0:
        block = src.read(min(BLOCK, length))
        if not block:
            break
        dst.write(block)
        length -= len(block)


# --------------------------------------------------------------------------- cache

class DiskCache:
    """Upstream responses on disk, at most ``max_bytes`` in total, least recently used
    evicted first.

    One file per key (a SHA-256 of the key, so keys never become paths): a JSON line
    with the status and headers, then the body. Files are written to a temporary name
    and renamed, so a reader never sees half a response; a hit touches the file's mtime,
    which is the recency used for eviction.
    """

    def __init__(self, directory: str | Path, max_bytes: int):
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._total = sum(p.stat().st_size for p in self._files())
        self.hits = 0
        self.misses = 0
        self._evict()

    def _files(self) -> Iterable[Path]:
        return (p for p in self.directory.glob("*.cached") if p.is_file())

    def _path(self, key: str) -> Path:
        return self.directory / (hashlib.sha256(key.encode()).hexdigest() + ".cached")

    def get(self, key: str) -> tuple[dict, bytes] | None:
        """``(meta, body)`` stored under ``key``, or None."""
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                meta = json.loads(f.readline())
                body = f.read()
            os.utime(path)
        except (OSError, ValueError):
            with self._lock:
                self.misses += 1
            return None
        with self._lock:
            self.hits += 1
        return meta, body

    def put(self, key: str, meta: dict, body: bytes) -> None:
        """Store ``body`` with ``meta`` (a JSON-able dict) under ``key``, unless the
        entry alone exceeds the budget; then evict down to the budget."""
        header = json.dumps(meta).encode() + b"\n"
        size = len(header) + len(body)
        if size > self.max_bytes:
            return
        path = self._path(key)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(header)
                f.write(body)
            with self._lock:
                try:
                    self._total -= path.stat().st_size
                except OSError:
                    pass
                os.replace(tmp, path)
                self._total += size
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return
        self._evict()

    @property
    def total_bytes(self) -> int:
        """Bytes currently held (as accounted by this process)."""
        with self._lock:
            return self._total

    def _evict(self) -> None:
        with self._lock:
            if self._total <= self.max_bytes:
                return
            entries = []
            for p in self._files():
                try:
                    st = p.stat()
                except OSError:
                    continue
                entries.append((st.st_mtime, st.st_size, p))
            entries.sort(key=lambda e: e[0])
            self._total = sum(e[1] for e in entries)
            for _, size, p in entries:
                if self._total <= self.max_bytes:
                    break
                try:
                    p.unlink()
                    self._total -= size
                except OSError:
                    pass


def default_cache_dir(upstream: str) -> Path:
    """``$XDG_CACHE_HOME/scrollzarr/proxy/<hash of the upstream URL>`` (or ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".cache")
    return Path(base) / "scrollzarr" / "proxy" / hashlib.sha256(
        upstream.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- proxy

class UpstreamError(Exception):
    """An upstream request that did not give a usable answer; ``status`` is what the
    proxy answers (404 passes through, everything else becomes 502)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but send the credentials only to the upstream's own origin
    (scheme, host and port): a redirect to a CDN or to plain http gets none."""

    def __init__(self, origin: tuple[str, str], authorization: str | None):
        super().__init__()
        self.origin = origin
        self.authorization = authorization

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and self.authorization:
            parts = urllib.parse.urlsplit(new.full_url)
            if (parts.scheme, parts.netloc) == self.origin:
                new.add_unredirected_header("Authorization", self.authorization)
        return new


class ProxyServer(_RecordingServer):
    """Serve the remote store ``upstream`` (an http(s) URL of a store or a directory of
    stores) at ``http://host:port/``, adding basic auth from ``auth`` = (user, password).

    ``cache`` (a :class:`DiskCache` or None) keeps upstream answers (200, 206 and 404)
    keyed by path and range.
    """

    def __init__(self, upstream: str, auth: tuple[str, str] | None = None,
                 address: tuple[str, int] = ("127.0.0.1", 0),
                 cache: DiskCache | None = None, verbose: bool = False,
                 timeout: float = UPSTREAM_TIMEOUT):
        self.upstream = check_upstream_url(upstream)
        parts = urllib.parse.urlsplit(self.upstream)
        self._authorization = basic_auth_header(*auth) if auth else None
        self.user = auth[0] if auth else None
        self.cache = cache
        self.timeout = timeout
        self._opener = urllib.request.build_opener(
            _SameOriginRedirects((parts.scheme, parts.netloc), self._authorization))
        self._warned: set[str] = set()
        try:
            super().__init__(address, self.handler_class or _ProxyHandler, verbose)
        except OSError as exc:
            raise _listen_error(address, exc) from None

    @property
    def base_url(self) -> str:
        """URL of the proxied upstream root: ``http://host:port/``."""
        return self.url

    def upstream_url(self, parts: list[str]) -> str:
        """The upstream URL for local path ``parts`` (always under the upstream URL)."""
        return self.upstream + "/".join(urllib.parse.quote(p) for p in parts)

    def fetch(self, parts: list[str], range_header: str | None = None,
              method: str = "GET") -> tuple[int, dict, bytes]:
        """Fetch ``parts`` from the upstream with credentials.

        Returns ``(status, headers, body)`` with status 200 or 206 and only the headers
        safe to pass on (Content-Type, Content-Range, ETag, Last-Modified and, for HEAD,
        Content-Length). Raises :class:`UpstreamError` otherwise; its message names the
        path and the upstream status, never the credentials.
        """
        req = urllib.request.Request(self.upstream_url(parts), method=method)
        req.add_header("User-Agent", "scrollzarr-proxy")
        if range_header:
            req.add_header("Range", range_header)
        if self._authorization:
            # unredirected: the redirect handler decides whether a new host gets it
            req.add_unredirected_header("Authorization", self._authorization)
        shown = "/" + "/".join(parts)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                status = resp.status
                body = b"" if method == "HEAD" else resp.read()
                headers = {k: resp.headers[k] for k in
                           ("Content-Type", "Content-Range", "ETag", "Last-Modified")
                           if resp.headers.get(k)}
                if method == "HEAD" and resp.headers.get("Content-Length"):
                    headers["Content-Length"] = resp.headers["Content-Length"]
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (404, 410):
                raise UpstreamError(404, f"{shown}: not found upstream") from None
            if exc.code == 416:
                raise UpstreamError(416, exc.headers.get("Content-Range", "")) from None
            if exc.code in (401, 403):
                who = f"user {self.user}" if self.user else "no credentials"
                raise UpstreamError(502, f"{shown}: upstream refused access "
                                         f"({who}, HTTP {exc.code})") from None
            raise UpstreamError(502, f"{shown}: upstream answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise UpstreamError(502, f"{shown}: upstream unreachable "
                                     f"({type(reason).__name__}: {reason})") from None
        if status not in (200, 206):
            raise UpstreamError(502, f"{shown}: upstream answered HTTP {status}")
        return status, headers, body

    def warn_once(self, error: UpstreamError) -> None:
        """Tell the person running the proxy, once per kind of failure, why the viewer
        gets errors (the browser only sees a 502)."""
        path, _, kind = error.message.partition(": ")
        with self._log_lock:
            if kind in self._warned:
                return
            self._warned.add(kind)
        hint = (f"; check the password in {PASSWORD_ENV} or ~/.netrc"
                if "refused" in kind else "")
        print(f"warning: {kind} (first at {path}){hint}", file=sys.stderr)


class _ProxyHandler(_Handler):
    server: ProxyServer

    def do_GET(self) -> None:  # noqa: N802
        self._proxy(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._proxy(head=True)

    def _proxy(self, head: bool) -> None:
        parts = self._relative_parts()
        if parts is None:
            self._send_error(404, "not found", head)
            return
        if head:
            self._proxy_head(parts)
            return
        wanted = self.headers.get("Range")
        try:
            status, headers, body = self._get(parts, wanted)
        except UpstreamError as exc:
            if exc.status == 416:
                self.send_response(416)
                self._cors()
                self.send_header("Content-Range", exc.message or "bytes */0")
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.server.record("GET", self._url_path(), 416)
                return
            if exc.status == 502:
                self.server.warn_once(exc)
            self._send_error(exc.status, exc.message)
            return
        if wanted and status == 200:
            # The upstream ignored Range (or the whole file came from the cache):
            # answer the range ourselves, as the browser expects.
            try:
                rng = parse_range(wanted, len(body))
            except RangeNotSatisfiable:
                self._send_range_not_satisfiable(len(body))
                return
            if rng:
                total = len(body)
                body = body[rng[0]:rng[1]]
                status = 206
                headers = {**headers, "Content-Range": f"bytes {rng[0]}-{rng[1] - 1}/{total}"}
        self.send_response(status)
        self._cors()
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", headers.get("Content-Type")
                         or _content_type(parts[-1] if parts else ""))
        for key in ("Content-Range", "ETag", "Last-Modified"):
            if key in headers and (status == 206 or key != "Content-Range"):
                self.send_header(key, headers[key])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.server.record("GET", self._url_path(), status)
        self.wfile.write(body)

    def _get(self, parts: list[str], wanted: str | None) -> tuple[int, dict, bytes]:
        """A GET through the cache: the exact range first, then a cached whole file."""
        cache = self.server.cache
        path = "/" + "/".join(parts)
        keys = [f"{path}\n{wanted}"] if wanted else []
        keys.append(f"{path}\n")
        if cache is not None:
            for key in keys:
                hit = cache.get(key)
                if hit is not None:
                    meta, body = hit
                    if meta["status"] == 404:
                        raise UpstreamError(404, f"{path}: not found upstream")
                    return meta["status"], meta["headers"], body
        try:
            status, headers, body = self.server.fetch(parts, wanted)
        except UpstreamError as exc:
            if exc.status == 404 and cache is not None:
                # absent chunks are the commonest answer of a sparse store: keep them
                cache.put(keys[-1], {"status": 404, "headers": {}}, b"")
            raise
        if cache is not None:
            # a 200 is the whole file whatever was asked: key it so any range hits it
            key = keys[-1] if status == 200 else keys[0]
            cache.put(key, {"status": status, "headers": headers}, body)
        return status, headers, body

    def _proxy_head(self, parts: list[str]) -> None:
        try:
            status, headers, _ = self.server.fetch(parts, None, method="HEAD")
        except UpstreamError as exc:
            if exc.status != 404:
                self.server.warn_once(exc)
            self._send_error(exc.status if exc.status != 416 else 502, exc.message,
                             head=True)
            return
        self.send_response(status)
        self._cors()
        self.send_header("Accept-Ranges", "bytes")
        for key in ("Content-Type", "ETag", "Last-Modified", "Content-Length"):
            if key in headers:
                self.send_header(key, headers[key])
        if "Content-Length" not in headers:
            self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.record("HEAD", self._url_path(), status)


def detect_remote_stores(server: ProxyServer, limit: int = 50) -> list[StoreInfo]:
    """Find zarr stores at the proxy's upstream: the upstream URL itself, else the
    sub-directories linked from its HTML index page (at most ``limit``, one level).

    Raises :class:`UpstreamError` when the upstream refuses the credentials or cannot
    be reached (better said at start than as a blank viewer)."""
    scheme = _remote_scheme(server, [])
    if scheme:
        return [StoreInfo("", scheme)]
    try:
        _, headers, body = server.fetch([])
    except UpstreamError as exc:
        if exc.status == 404:
            return []
        raise
    if "html" not in headers.get("Content-Type", "html"):
        return []
    found = []
    for name in _subdirectory_links(body.decode("utf-8", "replace"))[:limit]:
        scheme = _remote_scheme(server, [name])
        if scheme:
            found.append(StoreInfo(name, scheme))
    return found


def _remote_scheme(server: ProxyServer, parts: list[str]) -> str | None:
    for marker, scheme in STORE_MARKERS:
        try:
            server.fetch([*parts, marker], method="HEAD")
            return scheme
        except UpstreamError as exc:
            if exc.status != 404:
                raise
    return None


def _subdirectory_links(page: str) -> list[str]:
    """Names of the immediate sub-directories an autoindex page links to."""
    names = []
    for href in re.findall(r'href\s*=\s*"([^"]+)"', page, flags=re.IGNORECASE):
        href = urllib.parse.unquote(href)
        if not href.endswith("/") or href.startswith(("/", "?", "#", "..")) or "://" in href:
            continue
        name = href.rstrip("/")
        if name and "/" not in name and name not in names and name != ".":
            names.append(name)
    return names
