"""An on-disk cache of fetched store objects, bounded in bytes and shared by processes.

Layout under the root (``--cache_dir``)::

    ROOT/.lock                        flock'ed while evicting
    ROOT/<store id>/location          the store's full location, for people looking
    ROOT/<store id>/<hh>/<sha256>     bytes of one object (or one byte range of it)
    ROOT/<store id>/<hh>/<sha256>.meta      a small JSON dict (one line), then the bytes
    ROOT/<store id>/<hh>/<sha256>.missing   the object was absent (HTTP 404 / NoSuchKey)

``<store id>`` is a readable slug plus a hash of the store's full location, so two stores
never share entries; ``<sha256>`` hashes the key and byte range inside the store. An entry
is of one kind at a time: writing one kind removes the others. ``.meta`` entries are for
users that must keep something beside the bytes (the proxy keeps an answer's status
headers); the zarr store wrapper keeps plain bytes.

Times: an entry's mtime is when it was fetched (its age, for the time-to-live of
metadata and of absent objects); its atime is set on every use and orders eviction
(least recently used first). Entries are written to a temporary name, fsync'ed and
renamed, so a reader (in any process) sees a whole entry or none. Eviction walks the whole
root under an exclusive lock, so the bound holds for everything under the root, written by
any number of processes; a file another process deleted meanwhile is simply skipped.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .. import atomic
from ..errors import ScrollError

#: Suffix of a remembered absence.
MISSING = ".missing"
#: Suffix of bytes kept with a metadata dict (a JSON line before the bytes).
META = ".meta"
#: Prefix of temporary files (a killed process may leave some; eviction removes old ones).
TEMP = ".tmp-"
#: Evict down to this fraction of the bound, so that eviction is not run on every write.
LOW_WATER = 0.9
#: Bytes accounted per file beyond its size (an inode and a partly used block).
OVERHEAD = 4096
#: Temporary files older than this (seconds) are left-overs of a killed process.
STALE_TEMP = 3600.0


@dataclass(frozen=True)
class Hit:
    """A cache hit: ``data`` is the object's bytes, or None for a remembered absence;
    ``meta`` is the dict stored with the bytes (None when none was)."""

    data: bytes | None
    meta: dict | None = None


def store_id(location: str) -> str:
    """The directory name of the store at ``location`` (its full URL, plus whatever else
    tells stores apart, such as an S3 endpoint or a user)."""
    digest = hashlib.sha256(location.encode("utf-8")).hexdigest()[:20]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", location.split("://", 1)[-1]).strip("_.")[-60:]
    return f"{slug}-{digest}"


def entry_name(key: str, byte_range: str = "") -> str:
    """The file name of ``key`` (a store key such as ``0/12/3/4``) read with
    ``byte_range`` (a text form of the range; "" = the whole object)."""
    return hashlib.sha256(f"{key}\0{byte_range}".encode("utf-8")).hexdigest()


class DiskCache:
    """Objects of any number of stores under ``root``, at most ``max_bytes`` in total
    (file sizes plus :data:`OVERHEAD` each), least recently used evicted first.

    Each process keeps an estimate of the total: exact after each walk of the root, plus
    what it wrote since. It walks again (under the lock) once the estimate passes the
    bound or once it wrote a twentieth of the bound, so processes sharing a root overshoot
    the bound by at most a twentieth of it each, and only until their next walk.
    """

    def __init__(self, root: str | Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ScrollError(f"--cache_dir {root}: cannot create it ({exc.strerror})"
                              ) from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise ScrollError(f"--cache_dir {root}: not writable")
        self._lock = threading.Lock()
        self.evictions = 0
        self._total = self._walk(evict=False)
        self._written_since_walk = 0
        if self._total > self.max_bytes:  # reopened with a smaller bound
            self.evict()

    # --- per-store places -----------------------------------------------------------------

    def place(self, location: str) -> Path:
        """The directory of the store at ``location`` (created, with a ``location`` file
        naming the store for people browsing the cache)."""
        directory = self.root / store_id(location)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        label = directory / "location"
        if not label.exists():
            self._write_file(label, location.encode("utf-8") + b"\n")
        return directory

    # --- entries --------------------------------------------------------------------------

    def lookup(self, place: Path, name: str, max_age: float | None,
               missing_max_age: float) -> Hit | None:
        """The entry ``name`` of ``place``: its bytes when present and younger than
        ``max_age`` seconds (None: any age), a remembered absence younger than
        ``missing_max_age``, else None (not cached, expired, or evicted meanwhile)."""
        path = place / name[:2] / name
        now = time.time()
        for suffix in ("", META):
            try:
                with open(path.with_name(name + suffix), "rb") as f:
                    if (max_age is not None
                            and now - os.fstat(f.fileno()).st_mtime > max_age):
                        return None
                    meta = json.loads(f.readline()) if suffix else None
                    data = f.read()
            except FileNotFoundError:
                continue
            except ValueError:  # not written by store(): treat as not cached
                return None
            self._touch(path.with_name(name + suffix), now)
            return Hit(data, meta)
        gone = path.with_name(name + MISSING)
        try:
            mtime = gone.stat().st_mtime
        except FileNotFoundError:
            return None
        if now - mtime > missing_max_age:
            return None
        self._touch(gone, now)
        return Hit(None)

    def store(self, place: Path, name: str, data: bytes | None,
              meta: dict | None = None) -> None:
        """Remember ``data`` (None: the object is absent), with ``meta`` (a small
        JSON-able dict, or None) beside it, as entry ``name`` of ``place``, replacing an
        older entry of any kind; then evict if the bound is passed. An entry bigger than
        the whole bound is not kept."""
        header = b"" if data is None or meta is None else json.dumps(meta).encode() + b"\n"
        size = len(header) + (0 if data is None else len(data)) + OVERHEAD
        if size > self.max_bytes:
            return
        directory = place / name[:2]
        directory.mkdir(parents=True, exist_ok=True)
        kind = MISSING if data is None else META if header else ""
        self._write_file(directory / (name + kind), header + (data or b""))
        for other in {"", META, MISSING} - {kind}:
            try:  # the object appeared (or vanished, or changed kind) since that entry
                (directory / (name + other)).unlink()
            except FileNotFoundError:
                pass
        with self._lock:
            self._total += size
            self._written_since_walk += size
            due = (self._total > self.max_bytes
                   or self._written_since_walk > self.max_bytes / 20)
        if due:
            self.evict()

    @property
    def total_bytes(self) -> int:
        """Bytes under the root as this process last counted them, plus its writes."""
        with self._lock:
            return self._total

    def evict(self) -> None:
        """Count everything under the root (under the lock shared by every process) and,
        when that exceeds the bound, delete least recently used entries down to
        :data:`LOW_WATER` of it."""
        with open(self.root / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                total = self._walk(evict=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        with self._lock:
            self._total = total
            self._written_since_walk = 0

    # --- helpers --------------------------------------------------------------------------

    def _walk(self, evict: bool) -> int:
        """The accounted bytes under the root; with ``evict``, after evicting down to
        the low-water mark when over the bound (and removing stale temporary files)."""
        entries = []
        total = 0
        now = time.time()
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for filename in filenames:
                path = os.path.join(dirpath, filename)
                try:
                    st = os.stat(path)
                except FileNotFoundError:  # evicted by another process meanwhile
                    continue
                if filename.startswith(TEMP):
                    if evict and now - st.st_mtime > STALE_TEMP:
                        _unlink(path)
                    continue
                if filename == "location" or dirpath == str(self.root):
                    continue
                total += st.st_size + OVERHEAD
                entries.append((st.st_atime, st.st_size + OVERHEAD, path))
        if evict and total > self.max_bytes:
            entries.sort()
            target = self.max_bytes * LOW_WATER
            for _atime, size, path in entries:
                if total <= target:
                    break
                if _unlink(path):
                    self.evictions += 1
                total -= size
        return total

    def _write_file(self, path: Path, data: bytes) -> None:
        """Write ``path`` atomically and durably: temporary file, fsync, rename."""
        # TEMP-prefixed: the eviction scan recognises (and ages out) our leftovers
        atomic.write_bytes(path, data, durable=True,
                           tmp=path.parent / f"{TEMP}{uuid.uuid4().hex}")

    @staticmethod
    def _touch(path: Path, now: float) -> None:
        """Mark a use: atime = now (eviction order), mtime kept (the entry's age)."""
        try:
            os.utime(path, (now, os.stat(path).st_mtime))
        except FileNotFoundError:
            pass


def _unlink(path: str | Path) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
