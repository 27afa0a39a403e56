"""What both servers share: a tornado HTTP server run in a background thread, and a
request handler base that answers every request with a status.

* Every request gets an HTTP status: unknown methods 405, refused paths 404, more than
  ``max_concurrent`` requests in flight 503 (with ``Retry-After``); malformed requests
  are answered 400 by tornado itself. Connections idle for ``idle_timeout`` seconds
  (also while a request's headers trickle in) are closed.
* Error bodies are one plain-text line (status and reason), never a traceback; handler
  failures are logged as one line, with the traceback only when ``verbose`` (--debug).
* Every response carries ``X-Content-Type-Options: nosniff``; CORS headers are added
  only by handlers for files they may serve (:meth:`BaseHandler.allow_cross_origin`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import sys
import threading
import traceback
import urllib.parse

import tornado.httpserver
import tornado.netutil
import tornado.web

from ..errors import ScrollError
from .ranges import clamp_range_header

LOG_LENGTH = 100_000  # requests kept in requests_seen (a long session must not grow RAM)
IDLE_TIMEOUT = 60.0  # seconds a connection may stay idle (or send its headers)
MAX_CONCURRENT = 64  # requests in flight before new ones get 503
MAX_HEADER_BYTES = 64 * 1024  # request line plus headers; tornado answers more with 400
STOP_TIMEOUT = 10.0  # seconds stop() waits for open connections to close

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Range, Content-Length, Accept-Ranges, ETag",
}


class _OneLine(logging.Handler):
    """tornado's warnings and errors as one line each on stderr; tracebacks only while
    a verbose server runs (``verbose`` counts them)."""

    verbose = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage().splitlines()[0] if record.getMessage() else ""
            print(f"warning: {text}", file=sys.stderr)
            if self.verbose and record.exc_info:
                traceback.print_exception(*record.exc_info, file=sys.stderr)
        except Exception:  # logging must never break serving
            pass


_LOG_HANDLER = _OneLine(logging.WARNING)


def _configure_logging() -> None:
    logger = logging.getLogger("tornado")
    if _LOG_HANDLER not in logger.handlers:
        logger.addHandler(_LOG_HANDLER)
        logger.propagate = False


class ThreadedServer:
    """A tornado HTTP server listening on ``address`` and serving in a daemon thread.

    The socket is bound at construction (a busy port is a :class:`ScrollError` naming
    ``--port``); :meth:`start` serves, :meth:`stop` closes every connection. Every
    answered request is recorded as ``(method, path, status)`` in
    :attr:`requests_seen`, before its first byte is sent.
    """

    #: The request handler class; subclasses (and tests) may set their own.
    handler_class: type | None = None

    def __init__(self, address: tuple[str, int], verbose: bool = False,
                 idle_timeout: float = IDLE_TIMEOUT, max_concurrent: int = MAX_CONCURRENT):
        host, port = address
        try:
            self._sockets = tornado.netutil.bind_sockets(port, host or None)
        except (OSError, ValueError) as exc:
            raise ScrollError(f"--port {port}: cannot listen on {host}:{port} "
                              f"({getattr(exc, 'strerror', None) or exc}); choose another "
                              "--port (0 = any free one)") from None
        self.server_address = self._sockets[0].getsockname()[:2]
        self._bind_host = host
        self.verbose = verbose
        self.idle_timeout = float(idle_timeout)
        self.max_concurrent = int(max_concurrent)
        self.active = 0  # requests in flight; touched only on the server's event loop
        self._log: collections.deque = collections.deque(maxlen=LOG_LENGTH)
        self._log_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: tornado.httpserver.HTTPServer | None = None
        self._thread: threading.Thread | None = None
        _configure_logging()

    # ------------------------------------------------------------------ log

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

    # ------------------------------------------------------------------ address

    @property
    def url(self) -> str:
        """``http://host:port/`` of this server; for a wildcard bind (0.0.0.0) the
        host is this machine's name, as other machines must reach it by name."""
        host, port = self.server_address[:2]
        if self._bind_host in ("0.0.0.0", "::", "") or host in ("0.0.0.0", "::"):
            host = socket.getfqdn()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/"

    # ------------------------------------------------------------------ life

    def application(self) -> tornado.web.Application:
        """The tornado application: one catch-all route to :attr:`handler_class`."""
        return tornado.web.Application(
            [(r"/(.*)", self.handler_class, {"server": self})],
            log_function=self._log_request, serve_traceback=False, compress_response=False)

    def on_loop_start(self) -> None:
        """Called on the server's event loop before it serves (subclasses make their
        per-loop clients here)."""

    def start(self) -> threading.Thread:
        """Serve in a daemon thread; return it (stop with :meth:`stop`)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                self._http = tornado.httpserver.HTTPServer(
                    self.application(), idle_connection_timeout=self.idle_timeout,
                    max_header_size=MAX_HEADER_BYTES, body_timeout=self.idle_timeout,
                    max_body_size=MAX_HEADER_BYTES)  # GET and HEAD carry no body
                self._http.add_sockets(self._sockets)
                self.on_loop_start()
                self._loop = loop
            except BaseException as exc:  # reported by start() in the caller's thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        _LOG_HANDLER.verbose += self.verbose
        return self._thread

    def stop(self) -> None:
        """Stop serving: close the listening sockets and every open connection."""
        loop, self._loop = self._loop, None
        if loop is None or self._http is None:
            for sock in self._sockets:
                sock.close()
            return
        _LOG_HANDLER.verbose -= self.verbose
        http = self._http

        async def shutdown() -> None:
            http.stop()
            try:
                await asyncio.wait_for(http.close_all_connections(), STOP_TIMEOUT)
            except asyncio.TimeoutError:
                pass
            await self.on_loop_stop()
            # requests still waiting (on an upstream) end here, not as "Task was
            # destroyed but it is pending" when the loop closes
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(STOP_TIMEOUT + 5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(STOP_TIMEOUT)

    async def on_loop_stop(self) -> None:
        """Called on the event loop when the server stops."""

    def run_on_loop(self, coro, timeout: float | None = None):
        """Run ``coro`` on the running server's event loop from another thread and
        return its result."""
        if self._loop is None:
            raise RuntimeError("server not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _log_request(self, handler: tornado.web.RequestHandler) -> None:
        if self.verbose:
            request = handler.request
            print(f"{request.remote_ip} {request.method} {request.uri} "
                  f"{handler.get_status()} {1000 * request.request_time():.1f} ms",
                  file=sys.stderr)


class BaseHandler(tornado.web.RequestHandler):
    """GET, HEAD and OPTIONS only; a bounded number in flight; plain error lines."""

    SUPPORTED_METHODS = ("GET", "HEAD", "OPTIONS")  # type: ignore[assignment]

    def initialize(self, server: ThreadedServer) -> None:  # type: ignore[override]
        self.server = server
        self._counted = False
        self._recorded = False

    def set_default_headers(self) -> None:
        # also called again when an error answer replaces the headers
        self.set_header("Server", "scrollzarr")
        self.set_header("X-Content-Type-Options", "nosniff")
        if getattr(self, "_cross_origin", False):
            for key, value in CORS_HEADERS.items():
                self.set_header(key, value)

    def prepare(self) -> None:
        if self.server.active >= self.server.max_concurrent:
            raise tornado.web.HTTPError(503)  # write_error adds Retry-After
        self.server.active += 1
        self._counted = True
        rng = self.request.headers.get("Range")
        if rng is not None:
            # thousands of digits: same meaning, but nothing later parses them
            self.request.headers["Range"] = clamp_range_header(rng)

    def _release(self) -> None:
        if self._counted:
            self._counted = False
            self.server.active -= 1

    def on_finish(self) -> None:
        self._release()

    def on_connection_close(self) -> None:
        self._release()

    def url_path(self) -> str:
        """The request path, URL-decoded, without query string (as recorded)."""
        return urllib.parse.unquote(self.request.path, errors="replace")

    def flush(self, include_footers: bool = False):
        if not self._recorded:  # the headers go out now: record the final status
            self._recorded = True
            self.server.record(self.request.method or "", self.url_path(),
                               self.get_status())
        return super().flush(include_footers)

    # ------------------------------------------------------------------ CORS

    def allow_cross_origin(self) -> None:
        """Let any web page read this answer, error answers included (only for files
        that may be served)."""
        self._cross_origin = True
        for key, value in CORS_HEADERS.items():
            self.set_header(key, value)

    def may_share(self, path: str) -> bool:
        """Whether ``path`` (the route's capture) names something cross-origin pages
        may read; subclasses decide."""
        return False

    def options(self, path: str) -> None:
        # CORS preflight, sent by browsers before a Range request from another origin.
        if not self.may_share(path):
            raise tornado.web.HTTPError(404)
        self.set_status(204)
        self.allow_cross_origin()
        self.set_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        asked = self.request.headers.get("Access-Control-Request-Headers", "")
        # Read-only data: any plain request header may be sent, but never credentials.
        names = [h.strip() for h in asked.split(",") if h.strip()]
        names = [h for h in names if h.lower() not in ("authorization", "cookie")]
        self.set_header("Access-Control-Allow-Headers", ", ".join(dict.fromkeys(
            ["Range", *names])))
        self.set_header("Access-Control-Max-Age", "86400")
        if self.request.headers.get("Access-Control-Request-Private-Network"):
            # Chrome asks before a public page (a hosted Neuroglancer) reads localhost.
            self.set_header("Access-Control-Allow-Private-Network", "true")

    # ------------------------------------------------------------------ errors

    def write_error(self, status_code: int, **kwargs) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        if status_code == 503:
            self.set_header("Retry-After", "1")
        self.finish(f"{status_code} {self._reason}\n")

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, tornado.web.HTTPError):
            return  # an answer like any other, not a failure
        if self.server.verbose:
            print(f"error: {self.request.method} {self.url_path()}:", file=sys.stderr)
            traceback.print_exception(typ, value, tb, file=sys.stderr)
            return
        print(f"warning: {self.request.method} {self.url_path()}: {typ.__name__}: "
              f"{str(value).splitlines()[0] if str(value) else ''} "
              "(run with --debug for details)", file=sys.stderr)
