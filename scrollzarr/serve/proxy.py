"""The authenticating proxy: a remote (password-protected) store served on this machine
with CORS, so that Neuroglancer can read it.

Every upstream request carries HTTP basic auth; nothing of the upstream's answer but the
body, ``ETag``, ``Last-Modified`` and ``Content-Range`` is passed on, with a neutral
content type (JSON for zarr metadata, else ``application/octet-stream``) and
``X-Content-Type-Options: nosniff``. Only zarr metadata files and chunk keys under the
upstream URL are proxied; redirects are followed only while they stay under that URL.
Error bodies name the path and the upstream status, never the user or the password.
Connection errors, timeouts, 429 and 5xx answers are asked again under the remote
reader's retry policy (``scrollzarr/remote/retry.py``: capped backoff with jitter).

Caching: with a :class:`~scrollzarr.remote.diskcache.DiskCache` (the one the remote
store reader uses), answers (200, 206 and 404) are kept in the upstream's own place
(its full URL and the user name), one entry per path and range; the status and the
passed headers are the entry's metadata. A cached 404 expires after ``cache_404_ttl``
seconds, data never (eviction alone removes it). An
upstream that ignores ``Range`` (answers 200 with the whole file) is noticed: from then
on whole files are fetched once (concurrent requests share one download) and ranges are
cut from a copy kept on disk or, without a disk cache, in a bounded memory cache.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import re
import socket
import sys
import threading
import urllib.parse

import tornado.httpclient
import tornado.netutil
import tornado.web

from ..errors import ScrollError
from ..remote.auth import PASSWORD_ENV, basic_auth_header, check_upstream_url
from ..remote.diskcache import DiskCache, entry_name
from ..remote.options import DEFAULT_ATTEMPTS
from ..remote.retry import with_retries
from .base import IDLE_TIMEOUT, MAX_CONCURRENT, BaseHandler, ThreadedServer
from .ranges import RangeNotSatisfiable, parse_range
from .static import request_parts
from .stores import STORE_MARKERS, StoreInfo, allowed_key, content_type

UPSTREAM_TIMEOUT = 60.0  # seconds to connect; a whole answer may take ten times this
CACHE_404_TTL = 3600.0  # seconds a cached "not found upstream" is believed
MAX_BODY = 1 << 30  # bytes: the largest upstream answer the proxy holds
MEMORY_BYTES = 256 << 20  # bytes of whole files kept for an upstream ignoring Range
MAX_REDIRECTS = 5
_PASSED_HEADERS = ("Content-Range", "ETag", "Last-Modified")


class UpstreamError(Exception):
    """An upstream request that did not give a usable answer.

    ``status`` is what the proxy answers (404 passes through, 416 carries the upstream's
    ``Content-Range`` in ``message``, everything else is 502); ``message`` is safe for
    an HTTP body (no user name); ``detail`` adds the user for the terminal.
    """

    def __init__(self, status: int, message: str, detail: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail or message


class _Busy(Exception):
    """A 429 or 5xx answer, raised so that :func:`~scrollzarr.remote.retry.with_retries`
    (which reads ``status``) asks again."""

    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.status = status


class _Bodies:
    """Whole upstream files, at most ``max_bytes`` together, least recently used out."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: collections.OrderedDict[str, tuple[dict, bytes]] = (
            collections.OrderedDict())
        self._total = 0
        self._lock = threading.Lock()

    def get(self, url: str) -> tuple[dict, bytes] | None:
        with self._lock:
            item = self._items.get(url)
            if item is not None:
                self._items.move_to_end(url)
            return item

    def put(self, url: str, headers: dict, body: bytes) -> None:
        if len(body) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(url, None)
            if old is not None:
                self._total -= len(old[1])
            self._items[url] = (headers, body)
            self._total += len(body)
            while self._total > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._total -= len(dropped)


class _LiteralResolver(tornado.netutil.DefaultLoopResolver):
    """An IP address needs no lookup: tornado's resolver would still hand it to a
    thread for every upstream request."""

    async def resolve(self, host: str, port: int, family=socket.AF_UNSPEC):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return await super().resolve(host, port, family)
        return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, (host, port))]


class ProxyServer(ThreadedServer):
    """Serve the remote store ``upstream`` (an http(s) URL of a store or a directory of
    stores) at ``http://host:port/``, adding basic auth from ``auth`` = (user, password).

    ``cache``: a :class:`DiskCache` or None; ``timeout``: seconds to connect upstream
    (ten times that for a whole answer); ``cache_404_ttl``: seconds a cached 404 holds;
    ``memory_bytes``: the in-memory budget for whole files of an upstream that ignores
    ``Range``; ``attempts``: tries per upstream request on connection errors, timeouts,
    429 and 5xx answers (the remote reader's retry policy).
    """

    def __init__(self, upstream: str, auth: tuple[str, str] | None = None,
                 address: tuple[str, int] = ("127.0.0.1", 0),
                 cache: DiskCache | None = None, verbose: bool = False,
                 timeout: float = UPSTREAM_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT,
                 max_concurrent: int = MAX_CONCURRENT,
                 cache_404_ttl: float = CACHE_404_TTL, memory_bytes: int = MEMORY_BYTES,
                 attempts: int = DEFAULT_ATTEMPTS):
        self.upstream = check_upstream_url(upstream)
        self._prefix = urllib.parse.urlsplit(self.upstream)
        self._authorization = basic_auth_header(*auth) if auth else None
        self.user = auth[0] if auth else None
        self.cache = cache
        # the user is part of the place: another account may see other data
        self._place = None if cache is None else cache.place(
            f"{self.upstream} (proxy{f', user {self.user}' if self.user else ''})")
        self.timeout = float(timeout)
        self.attempts = int(attempts)
        self.cache_404_ttl = float(cache_404_ttl)
        self.ignores_range = False  # set once the upstream answers a Range with 200
        self._bodies = _Bodies(int(memory_bytes))
        self._inflight: dict[tuple, asyncio.Future] = {}
        self._client: tornado.httpclient.AsyncHTTPClient | None = None
        self._warned: set[str] = set()
        if self.handler_class is None:
            self.handler_class = ProxyHandler
        super().__init__(address, verbose, idle_timeout, max_concurrent)

    @property
    def base_url(self) -> str:
        """URL of the proxied upstream root: ``http://host:port/``."""
        return self.url

    def upstream_url(self, parts: list[str]) -> str:
        """The upstream URL for local path ``parts`` (always under the upstream URL)."""
        return self.upstream + "/".join(urllib.parse.quote(p) for p in parts)

    def within(self, url: str) -> bool:
        """True when ``url`` lies under the upstream URL (same scheme, host, port and
        path prefix, no dot segments): where a redirect may lead."""
        parts = urllib.parse.urlsplit(url)
        if (parts.scheme, parts.netloc) != (self._prefix.scheme, self._prefix.netloc):
            return False
        names = urllib.parse.unquote(parts.path).split("/")
        return parts.path.startswith(self._prefix.path) and not (
            {".", ".."} & set(names))

    # ------------------------------------------------------------------ client

    def _new_client(self) -> tornado.httpclient.AsyncHTTPClient:
        return tornado.httpclient.AsyncHTTPClient(
            force_instance=True, max_clients=16, max_body_size=MAX_BODY,
            max_buffer_size=MAX_BODY, resolver=_LiteralResolver())

    def on_loop_start(self) -> None:
        self._client = self._new_client()

    async def on_loop_stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def fetch(self, parts: list[str], range_header: str | None = None,
              method: str = "GET") -> tuple[int, dict, bytes]:
        """:meth:`fetch_async` from any thread, whether or not the server runs."""
        if self._loop is not None:
            return self.run_on_loop(self.fetch_async(parts, range_header, method))

        async def once() -> tuple[int, dict, bytes]:
            client = self._new_client()
            try:
                return await self._fetch_with(client, parts, range_header, method)
            finally:
                client.close()
        return asyncio.run(once())

    async def fetch_async(self, parts: list[str], range_header: str | None = None,
                          method: str = "GET") -> tuple[int, dict, bytes]:
        """Fetch ``parts`` from the upstream with credentials.

        Returns ``(status, headers, body)`` with status 200 or 206 and only the headers
        safe to pass on (Content-Range, ETag, Last-Modified and, for HEAD,
        Content-Length). Raises :class:`UpstreamError` otherwise.
        """
        assert self._client is not None
        return await self._fetch_with(self._client, parts, range_header, method)

    async def _fetch_with(self, client, parts: list[str], range_header: str | None,
                          method: str) -> tuple[int, dict, bytes]:
        shown = "/" + "/".join(parts)
        url = self.upstream_url(parts)
        for _ in range(MAX_REDIRECTS + 1):
            resp = await self._request(client, url, range_header, method, shown)
            location = resp.headers.get("Location")
            if resp.code in (301, 302, 303, 307, 308) and location:
                url = urllib.parse.urljoin(url, location)
                if not self.within(url):
                    raise UpstreamError(502, f"{shown}: upstream redirected outside "
                                             f"{self.upstream}; not followed")
                continue
            return self._answer(resp, shown, method)
        raise UpstreamError(502, f"{shown}: more than {MAX_REDIRECTS} upstream redirects")

    async def _request(self, client, url: str, range_header: str | None, method: str,
                       shown: str) -> tornado.httpclient.HTTPResponse:
        headers = {"User-Agent": "scrollzarr-proxy", "Accept-Encoding": "identity"}
        if range_header:
            headers["Range"] = range_header
        if self._authorization:  # same origin always: redirects stay under the prefix
            headers["Authorization"] = self._authorization
        request = tornado.httpclient.HTTPRequest(
            url, method=method, headers=headers, follow_redirects=False,
            decompress_response=False, connect_timeout=self.timeout,
            request_timeout=10 * self.timeout)

        async def once() -> tornado.httpclient.HTTPResponse:
            resp = await client.fetch(request, raise_error=False)
            if resp.code == 599:  # timed out, or the connection dropped
                raise resp.error
            if resp.code == 429 or resp.code >= 500:
                raise _Busy(resp.code)
            return resp

        try:
            return await with_retries(once, shown, self.attempts)
        except ScrollError as exc:  # "<shown>: <reason> (after N attempts)"
            why = str(exc)[len(shown) + 2:]
            if isinstance(exc.__cause__, _Busy):
                raise UpstreamError(502, f"{shown}: upstream answered {why}") from None
            # DNS, TLS, refused, timed out, body cut short
            raise UpstreamError(502, f"{shown}: no complete answer from upstream "
                                     f"({why})") from None

    def _answer(self, resp, shown: str, method: str) -> tuple[int, dict, bytes]:
        code = resp.code
        if code in (404, 410):
            raise UpstreamError(404, f"{shown}: not found upstream")
        if code == 416:
            raise UpstreamError(416, resp.headers.get("Content-Range", ""))
        if code in (401, 403):
            who = f"user {self.user}" if self.user else "no credentials"
            raise UpstreamError(502, f"{shown}: upstream refused access (HTTP {code})",
                                f"{shown}: upstream refused access ({who}, HTTP {code})")
        if code not in (200, 206):
            raise UpstreamError(502, f"{shown}: upstream answered HTTP {code}")
        headers = {k: resp.headers[k] for k in _PASSED_HEADERS if resp.headers.get(k)}
        if method == "HEAD" and resp.headers.get("Content-Length"):
            headers["Content-Length"] = resp.headers["Content-Length"]
        return code, headers, b"" if method == "HEAD" else (resp.body or b"")

    # ------------------------------------------------------------------ cached GET

    async def get(self, parts: list[str], wanted: str | None) -> tuple[int, dict, bytes]:
        """A GET through the caches: the exact range, a whole file (disk or memory),
        then the upstream (one download per URL and range at a time)."""
        url = self.upstream_url(parts)
        key = "/".join(parts)
        whole, exact = entry_name(key), entry_name(key, wanted or "")
        if self.cache is not None:
            for name in ([exact] if wanted else []) + [whole]:
                hit = self.cache.lookup(self._place, name, None, self.cache_404_ttl)
                if hit is None:
                    continue
                if hit.data is None:
                    raise UpstreamError(404, f"/{key}: not found upstream")
                if hit.meta is not None:
                    return hit.meta["status"], hit.meta["headers"], hit.data
        held = self._bodies.get(url)
        if held is not None:
            return 200, held[0], held[1]
        ask = None if self.ignores_range else wanted
        try:
            status, headers, body = await self._shared(
                (url, ask), lambda: self.fetch_async(parts, ask))
        except UpstreamError as exc:
            if exc.status == 404 and self.cache is not None:
                # absent chunks are the commonest answer of a sparse store: keep them
                await self._keep(whole, None, None)
            raise
        if status == 200 and wanted and not _covers_all(wanted, len(body)):
            self.ignores_range = True  # the whole file, whatever was asked
            if self.cache is None:
                self._bodies.put(url, headers, body)
        if self.cache is not None:
            # a 200 is the whole file: key it so any range hits it
            await self._keep(whole if status == 200 else exact, body,
                             {"status": status, "headers": headers})
        return status, headers, body

    async def _keep(self, name: str, body: bytes | None, meta: dict | None) -> None:
        """Store an answer (None: absent upstream) off the event loop (the write is
        fsync'ed and may evict); a cache that cannot be written costs only the entry."""
        try:
            await asyncio.to_thread(self.cache.store, self._place, name, body, meta)
        except OSError:
            pass

    async def _shared(self, key: tuple, make):
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(make())
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    def warn_once(self, error: UpstreamError) -> None:
        """Tell the person running the proxy, once per kind of failure, why the viewer
        gets errors (the browser only sees a 502)."""
        path, _, kind = error.detail.partition(": ")
        with self._log_lock:
            if kind in self._warned:
                return
            self._warned.add(kind)
        hint = (f"; check the password in {PASSWORD_ENV} or ~/.netrc"
                if "refused" in kind else "")
        print(f"warning: {kind} (first at {path}){hint}", file=sys.stderr)


class ProxyHandler(BaseHandler):
    """GET and HEAD of allowlisted names, answered from the caches or the upstream."""

    server: ProxyServer

    def may_share(self, path: str) -> bool:
        parts = request_parts(path)
        return parts is not None and allowed_key(parts)

    async def get(self, path: str) -> None:
        await self._proxy(path, head=False)

    async def head(self, path: str) -> None:
        await self._proxy(path, head=True)

    async def _proxy(self, path: str, head: bool) -> None:
        parts = request_parts(path)
        if parts is None or not allowed_key(parts):
            raise tornado.web.HTTPError(404)
        self.allow_cross_origin()
        wanted = None if head else self.request.headers.get("Range")
        try:
            if head:
                status, headers, body = await self.server.fetch_async(parts, None, "HEAD")
            else:
                status, headers, body = await self.server.get(parts, wanted)
        except UpstreamError as exc:
            if exc.status == 416 and not head:
                self._not_satisfiable(exc.message or "bytes */0")
                return
            if exc.status != 404:
                self.server.warn_once(exc)
            self.set_status(exc.status if exc.status in (404, 502) else 502)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.set_header("Cache-Control", "no-store")
            self.finish(exc.message + "\n")
            return
        if wanted and status == 200:
            # The upstream ignored Range (or the whole file came from a cache): answer
            # the range here, as the browser expects.
            try:
                rng = parse_range(wanted, len(body))
            except RangeNotSatisfiable:
                self._not_satisfiable(f"bytes */{len(body)}")
                return
            if rng:
                total = len(body)
                body = body[rng[0]:rng[1]]
                status = 206
                headers = {**headers,
                           "Content-Range": f"bytes {rng[0]}-{rng[1] - 1}/{total}"}
        self.set_status(status)
        self.set_header("Accept-Ranges", "bytes")
        self.set_header("Content-Type", content_type(parts[-1]) if parts else
                        "application/octet-stream")
        for key in _PASSED_HEADERS:
            if key in headers and (status == 206 or key != "Content-Range"):
                self.set_header(key, headers[key])
        if head:
            self.set_header("Content-Length", headers.get("Content-Length", "0"))
        self.finish(body)

    def _not_satisfiable(self, content_range: str) -> None:
        self.set_status(416)
        self.set_header("Content-Range", content_range)
        self.finish()


def detect_remote_stores(server: ProxyServer, limit: int = 50) -> list[StoreInfo]:
    """Find zarr stores at the proxy's upstream: the upstream URL itself, else the
    sub-directories linked from its HTML index page (at most ``limit``, one level).

    Raises :class:`UpstreamError` when the upstream refuses the credentials or cannot
    be reached (better said at start than as a blank viewer)."""
    scheme = _remote_scheme(server, [])
    if scheme:
        return [StoreInfo("", scheme)]
    try:
        _, _, body = server.fetch([])
    except UpstreamError as exc:
        if exc.status == 404:
            return []
        raise
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
        if name and "/" not in name and name not in names and not name.startswith("."):
            names.append(name)
    return names


def _covers_all(wanted: str, size: int) -> bool:
    """True when the range ``wanted`` asks for every byte of ``size`` (a 200 answer to it
    is right, not a sign of an upstream that ignores Range)."""
    try:
        return parse_range(wanted, size) in (None, (0, size))
    except RangeNotSatisfiable:
        return False
