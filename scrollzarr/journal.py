"""The resume journal: a durable record, inside the output store, of finished tasks.

Layout: ``OUT.zarr/.scrollzarr_journal/`` holds ``params.json`` (the options that decide
the output's bytes, the task geometry and a fingerprint of the input) and ``done-NNNNNN``
files, each listing task keys, one per line. Zarr and the viewers ignore the directory
(its name is no zarr key they look up); a finished conversion removes it.

Durability: tasks are recorded in batches. Before a batch is recorded the written chunks
are flushed to disk (``os.sync`` for local stores; an object store has them once the
write returns), and each ``done`` file is written under a temporary name, fsynced and
renamed, so after a crash or power cut every recorded task is really on disk. Tasks
finished after the last batch are simply redone by ``--resume``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from typing import Any, Iterable

import fsspec

from . import atomic
from .errors import ScrollError

DIRNAME = ".scrollzarr_journal"
#: Seconds between durable batches: a crash costs at most this much finished work
#: (environment variable SCROLLZARR_JOURNAL_SECONDS overrides it; 0 records every task).
FLUSH_SECONDS = 10.0


def fingerprint(paths: Iterable[str | None]) -> str:
    """A hash of the input slices' names, sizes and modification times (not contents:
    reading 2 TB to fingerprint it would cost as much as the conversion)."""
    h = hashlib.sha256()
    for p in paths:
        if p is None:
            h.update(b"-\n")
            continue
        st = os.stat(p)
        # fsencode: a name that is not valid UTF-8 hashes as its bytes
        h.update(os.fsencode(os.path.basename(p)) + f" {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class Journal:
    """Finished tasks of one conversion, recorded durably in the output store.

    State is real here: the set of recorded tasks, the batch not yet recorded, and the
    lock that lets executor threads report tasks concurrently.
    """

    def __init__(self, store: str, params: dict[str, Any], done: set[str] | None = None,
                 batches: int = 0):
        self.store = str(store)
        self.root = self.store.rstrip("/") + "/" + DIRNAME
        self.params = params
        self.done: set[str] = set(done or ())
        self._pending: list[str] = []
        self._batches = batches
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()  # guards _pending, done, _flushing
        self._flush_lock = threading.Lock()
        self._flushing = False
        self._error: BaseException | None = None
        self._fs, self._path = fsspec.core.url_to_fs(self.root)
        self._local = "://" not in self.store

    # ---- creating and opening
    @classmethod
    def create(cls, store: str, params: dict[str, Any]) -> "Journal":
        journal = cls(store, params)
        journal._fs.makedirs(journal._path, exist_ok=True)
        journal._write("params.json", json.dumps(params, indent=1, sort_keys=True, allow_nan=False))
        return journal

    @classmethod
    def open(cls, store: str) -> "Journal | None":
        """The journal of an unfinished conversion at ``store``, or None if there is none."""
        fs, path = fsspec.core.url_to_fs(str(store).rstrip("/") + "/" + DIRNAME)
        if not fs.exists(path + "/params.json"):
            return None
        params = json.loads(fs.cat_file(path + "/params.json"))
        done: set[str] = set()
        batches = 0
        for name in sorted(fs.ls(path, detail=False)):
            base = name.rstrip("/").rsplit("/", 1)[-1]
            # a batch still being written (.partial; .tmp in older versions) is not done
            if base.startswith("done-") and not base.endswith((atomic.PARTIAL, ".tmp")):
                done.update(fs.cat_file(name).decode().split())
                batches += 1
        return cls(store, params, done, batches)

    # ---- recording
    def record(self, key: str) -> None:
        """Note that task ``key`` finished; it is recorded durably with the next batch.

        Batches are written by a background thread, so the executor never waits for the
        disk flush; an error there is raised by the next call here or to :meth:`flush`.
        """
        crash_point("task")
        self._raise_background_error()
        with self._lock:
            self._pending.append(key)
            due = time.monotonic() - self._last_flush >= _flush_seconds()
            start = due and _flush_seconds() > 0 and not self._flushing
            if start:
                self._flushing = True
        if due and _flush_seconds() <= 0:
            self.flush()
        elif start:
            threading.Thread(target=self._background_flush, daemon=True,
                             name="journal-flush").start()

    def _background_flush(self) -> None:
        try:
            self.flush()
        except BaseException as exc:  # surfaced by the next record() or flush()
            self._error = exc
        finally:
            with self._lock:
                self._flushing = False

    def _raise_background_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def flush(self) -> None:
        """Record every finished task durably now."""
        self._raise_background_error()
        with self._flush_lock:  # one batch at a time, in order
            with self._lock:
                keys, self._pending = self._pending, []
                self._last_flush = time.monotonic()
            if not keys:
                return
            if self._local:
                os.sync()  # the chunks of these tasks reach the disk before their record
            self._batches += 1
            self._write(f"done-{self._batches:06d}", "\n".join(keys) + "\n")
            with self._lock:
                self.done.update(keys)
        crash_point("journal")

    def remove(self) -> None:
        """Delete the journal: the conversion is complete."""
        if self._fs.exists(self._path):
            self._fs.rm(self._path, recursive=True)

    def _write(self, name: str, text: str) -> None:
        target = self._path + "/" + name
        if not self._local:
            self._fs.pipe_file(target, text.encode())
            return
        atomic.write_bytes(target, text, durable=True)

    # ---- checks
    def check_matches(self, params: dict[str, Any]) -> None:
        """Refuse to resume with other options or a changed input."""
        old, new = self.params, params
        for key in sorted(set(old) | set(new)):
            if key in ("command", "bands"):
                continue
            if old.get(key) != new.get(key):
                what = ("the input slices changed (names, sizes or times)"
                        if key == "fingerprint" else
                        f"{key} was {old.get(key)!r}, now {new.get(key)!r}")
                raise ScrollError(f"{self.store}: cannot --resume: {what}; resume with the "
                                  f"original options ({old.get('command', '?')}) or start "
                                  "again with --overwrite")


def _flush_seconds() -> float:
    return float(os.environ.get("SCROLLZARR_JOURNAL_SECONDS", FLUSH_SECONDS))


_crash_counts: dict[str, int] = {}


def crash_point(event: str) -> None:
    """Fault injection for the crash tests: ``SCROLLZARR_KILL_AT=event:n`` kills this
    process with SIGKILL at the n-th ``event`` (task, journal, level). No effect
    otherwise."""
    spec = os.environ.get("SCROLLZARR_KILL_AT")
    if not spec:
        return
    name, _, count = spec.partition(":")
    if name != event:
        return
    _crash_counts[event] = _crash_counts.get(event, 0) + 1
    if _crash_counts[event] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
