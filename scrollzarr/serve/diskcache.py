"""The proxy's on-disk cache of upstream answers, bounded in bytes.

(Another cache for remote reads lives in scrollzarr/remote/; this one keeps whole HTTP
answers, status and headers included, for ``serve_ome.py --proxy``.)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterable


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
