"""The local store server: zarr stores under a directory, read-only, for Neuroglancer.

Files are sent by tornado's :class:`~tornado.web.StaticFileHandler` (single byte ranges,
HEAD, conditional requests), but only what :func:`stores.locate` allows: zarr metadata
and chunk keys inside a store. Missing allowlisted keys are 404 with CORS headers, which
Neuroglancer and zarr read as an absent chunk (all fill value); everything else is a
plain 404 without them. Listings show only stores, and inside a store only allowlisted
names.
"""

from __future__ import annotations

import html
import os
import urllib.parse
from pathlib import Path

import tornado.web

from ..errors import ScrollError
from .base import IDLE_TIMEOUT, MAX_CONCURRENT, BaseHandler, ThreadedServer
from .stores import Target, content_type, locate, store_listing

BLOCK = 4 << 20  # bytes read and sent at a time


def request_parts(path: str, mount: str = "") -> list[str] | None:
    """The decoded request path as names below ``mount``; None when it is not below it
    or holds ``.``/``..``, backslashes or NUL (no traversal, whatever the encoding)."""
    parts = [p for p in path.split("/") if p != ""]
    prefix = [p for p in mount.split("/") if p]
    if parts[:len(prefix)] != prefix:
        return None
    parts = parts[len(prefix):]
    if any(p in (".", "..") or "\\" in p or "\0" in p for p in parts):
        return None
    return parts


class StoreServer(ThreadedServer):
    """Serve the zarr stores at or under ``root`` read-only over HTTP.

    URLs are ``http://host:port/MOUNT/relative/path``; ``mount`` (default "") lets a
    single store be served under its own name without exposing its siblings.
    ``idle_timeout`` (seconds) and ``max_concurrent`` (requests in flight before 503)
    bound what one client can hold.
    """

    def __init__(self, root: str | Path, address: tuple[str, int] = ("127.0.0.1", 0),
                 mount: str = "", verbose: bool = False,
                 idle_timeout: float = IDLE_TIMEOUT, max_concurrent: int = MAX_CONCURRENT):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ScrollError(f"{root}: not a directory")
        self.mount = mount.strip("/")
        if self.handler_class is None:
            self.handler_class = StoreFileHandler
        super().__init__(address, verbose, idle_timeout, max_concurrent)

    @property
    def base_url(self) -> str:
        """URL of the served root: ``http://host:port/MOUNT/``."""
        return self.url + (urllib.parse.quote(self.mount) + "/" if self.mount else "")

    def locate(self, path: str) -> Target:
        """What the decoded request ``path`` names (see :func:`stores.locate`)."""
        parts = request_parts(path, self.mount)
        if parts is None:
            return Target("refused")
        return locate(self.root, parts)


class StoreFileHandler(BaseHandler, tornado.web.StaticFileHandler):
    """Allowlisted store files through tornado's static-file machinery."""

    server: StoreServer

    def initialize(self, server: StoreServer) -> None:  # type: ignore[override]
        BaseHandler.initialize(self, server)
        tornado.web.StaticFileHandler.initialize(self, path=str(server.root))

    def may_share(self, path: str) -> bool:
        return self.server.locate(path).kind in ("file", "missing")

    async def get(self, path: str, include_body: bool = True) -> None:
        target = self.server.locate(path)
        if target.kind == "missing":
            self.allow_cross_origin()  # an absent chunk: the viewer must see the 404
            raise tornado.web.HTTPError(404)
        if target.kind in ("store_dir", "dir"):
            self._directory(target)
            return
        if target.kind != "file":
            raise tornado.web.HTTPError(404)
        self.allow_cross_origin()
        # serve the resolved file relative to its store: tornado checks again that it
        # stays inside (symlinks included) and is a regular file
        self.root = str(target.store)
        await super().get(target.path.relative_to(target.store).as_posix(), include_body)

    def _directory(self, target: Target) -> None:
        if not self.request.path.endswith("/"):
            # a relative link in the listing must resolve inside this directory
            self.redirect(_quoted(self.url_path()) + "/", permanent=True)
            return
        if target.kind == "dir":
            names = [s.path + "/" for s in target.stores]
        else:
            try:
                names = store_listing(target.path)
            except OSError:
                raise tornado.web.HTTPError(404) from None
        rows = [f'<a href="{urllib.parse.quote(n)}">{html.escape(n)}</a><br>'
                for n in names]
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        body = "<!DOCTYPE html><html><body>\n" + "\n".join(rows) + "\n</body></html>\n"
        self.finish(body)  # tornado drops the body of a HEAD answer

    # --- tornado's static-file hooks

    def compute_etag(self) -> str | None:
        # size and modification time: tornado would hash the whole file, and keep the
        # hash of every file ever served; listings get none
        if getattr(self, "absolute_path", None) is None:
            return None
        st = self._stat()
        return f'"{st.st_size:x}-{st.st_mtime_ns:x}"'

    @classmethod
    def get_content_version(cls, abspath: str) -> str:
        st = os.stat(abspath)
        return f"{st.st_size:x}-{st.st_mtime_ns:x}"

    @classmethod
    def get_content(cls, abspath: str, start: int | None = None, end: int | None = None):
        # tornado's own reads 64 KiB at a time and waits for each to be sent; a chunk
        # file is usually a few MB, so fewer, larger blocks keep the loop free
        with open(abspath, "rb") as f:
            if start is not None:
                f.seek(start)
            remaining = None if end is None else end - (start or 0)
            while remaining is None or remaining > 0:
                block = f.read(BLOCK if remaining is None else min(BLOCK, remaining))
                if not block:
                    return
                if remaining is not None:
                    remaining -= len(block)
                yield block

    def get_content_type(self) -> str:
        return content_type(os.path.basename(self.absolute_path or ""))


def _quoted(path: str) -> str:
    # one leading slash: a path starting with "//" would redirect to another host
    return "/" + urllib.parse.quote(path.lstrip("/"))

