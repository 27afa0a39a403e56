"""Writing a file atomically: under a temporary name in its directory, renamed when whole.

Every file scrollzarr writes goes through :func:`replacing` (or :func:`write_bytes`, or
:func:`commit` for files filled elsewhere), shaped like zarr-python 3's own
``_atomic_write``: the temporary name is ``NAME.<hex>.partial`` unless the caller names
it, so a final name never holds an incomplete file and the leftovers of a killed run are
recognisably ours (``chunkio.remove_partial_files`` and the server's allowlist treat
``*.partial`` so); on any error the temporary file is removed.

Durability is the caller's choice. ``durable=True`` flushes the file before the rename
and its directory after it (``fsync`` twice), for the files that must survive a power cut
on their own: layer TIFFs, decompressed slices, the journal, metadata, cache entries.
:func:`commit_many` gives many finished files the same guarantee at once (the layer
TIFFs of a render): their flushes run concurrently and each directory is flushed once.
Chunk files use ``durable=False``: one ``sync`` per journal batch makes a whole batch of
them durable at once, far cheaper than a flush per file.

:func:`write_direct` is the fast path for large new files (chunks, decompressed slices):
``O_DIRECT`` past the page cache where the file system allows it.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import uuid
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from . import scratch, workers

#: Suffix of a file still being written (zarr's LocalStore uses the same).
PARTIAL = ".partial"
_DIRECT = getattr(os, "O_DIRECT", 0)
_PAGE = mmap.PAGESIZE


def temporary_name(path: str | Path) -> str:
    """A fresh temporary name beside ``path``: ``NAME.<32 hex digits>.partial``."""
    return f"{os.fspath(path)}.{uuid.uuid4().hex}{PARTIAL}"


def fsync_path(path: str | Path) -> None:
    """Flush the file or directory ``path`` to disk (a directory: its entries)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: str | Path, path: str | Path, durable: bool = True) -> None:
    """Rename the finished ``tmp`` to ``path`` (replacing it). With ``durable``, ``tmp``
    is flushed first and the directory after, so that after a power cut ``path`` is
    either the old file or the whole new one, never zeros."""
    if durable:
        fsync_path(tmp)
    os.replace(tmp, path)
    if durable:
        fsync_path(os.path.dirname(os.path.abspath(path)))


#: Threads flushing files at once in :func:`commit_many`: enough for the file system to
#: gather their journal commits into a few, few enough not to swamp the disk queue.
FLUSH_THREADS = 8


def commit_many(pairs: Iterable[tuple[str | Path, str | Path]]) -> None:
    """Rename every finished ``tmp`` to its ``path`` (replacing it), durably: the
    guarantee of :func:`commit` with ``durable=True`` for each file, bought at a fraction
    of the cost. All ``tmp`` files are flushed first, on :data:`FLUSH_THREADS` threads
    (``fsync`` releases the GIL, and concurrent flushes share the file system's journal
    commits instead of waiting for one each), then renamed in order, then every distinct
    directory of a ``path`` is flushed once. A failed flush raises before any rename."""
    pairs = [(os.fspath(tmp), os.fspath(path)) for tmp, path in pairs]
    for _ in workers.map_unordered(fsync_path, [tmp for tmp, _ in pairs],
                                   min(FLUSH_THREADS, max(1, len(pairs))), name="fsync"):
        pass
    for tmp, path in pairs:
        os.replace(tmp, path)
    for directory in dict.fromkeys(os.path.dirname(os.path.abspath(path))
                                   for _, path in pairs):
        fsync_path(directory)


def remove(path: str | Path) -> None:
    """Delete the file ``path`` if it exists."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@contextlib.contextmanager
def replacing(path: str | Path, durable: bool = True,
              tmp: str | Path | None = None) -> Iterator[str]:
    """Yield a temporary name for the caller to write ``path``'s new content to; when
    the block ends without error, :func:`commit` it to ``path``; on any error (also
    Ctrl-C) delete it. ``tmp`` overrides the name (default :func:`temporary_name`)."""
    tmp = os.fspath(tmp) if tmp is not None else temporary_name(path)
    try:
        yield tmp
        commit(tmp, path, durable)
    except BaseException:
        remove(tmp)
        raise


def write_bytes(path: str | Path, data: bytes | str, durable: bool = True,
                tmp: str | Path | None = None) -> None:
    """Write ``data`` (text is UTF-8 encoded) as the whole file ``path``, atomically."""
    if isinstance(data, str):
        data = data.encode()
    with replacing(path, durable, tmp) as name:
        with open(name, "wb") as f:
            f.write(data)


def write_direct(path: str | Path, parts: Sequence, direct: bool = True) -> bool:
    """Write the concatenated ``parts`` (buffers) as the new file ``path``; return whether
    ``O_DIRECT`` was used (a caller may pass the answer as ``direct`` next time, so that a
    file system that refused once is not asked again).

    ``O_DIRECT`` sends the bytes straight to the disk: buffered writes of new files run at
    a fraction of the disk's speed on our machines (every page-cache page is fresh
    memory), and a 2 TB conversion would only evict the page cache. It needs page-aligned
    memory and lengths: one part that already is goes out as it is, anything else is
    copied into this thread's reused page-aligned buffer (:mod:`scrollzarr.scratch`), padded
    and truncated back. File systems without it (tmpfs) get a plain buffered write. Not
    flushed (no fsync).
    """
    views = [memoryview(p).cast("B") for p in parts]
    size = sum(len(v) for v in views)
    if direct and _DIRECT:
        if len(views) == 1 and size % _PAGE == 0 and _address(views[0]) % _PAGE == 0:
            memory = views[0]
        else:
            memory = memoryview(scratch.buffer("atomic.direct", size))[:scratch.pages(size)]
            position = 0
            for view in views:
                memory[position:position + len(view)] = view
                position += len(view)
        if _write_unbuffered(path, memory, size):
            return True
    with open(path, "wb") as f:
        for view in views:
            f.write(view)
    return False


def write_pages(path: str | Path, buffer: mmap.mmap, size: int) -> bool:
    """Write the first ``size`` bytes of ``buffer`` (page-aligned memory such as a
    :func:`scrollzarr.scratch.buffer`, in which the caller built the file's content, so
    nothing is copied) as the new file ``path``; return whether ``O_DIRECT`` was used.
    Not flushed (no fsync)."""
    memory = memoryview(buffer)
    if _DIRECT and _write_unbuffered(path, memory[:scratch.pages(size)], size):
        return True
    with open(path, "wb") as f:
        f.write(memory[:size])
    return False


def _write_unbuffered(path: str | Path, memory: memoryview, size: int) -> bool:
    """One O_DIRECT write of ``memory``, truncated to ``size``; False if refused."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _DIRECT, 0o644)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    try:
        if os.write(fd, memory) != len(memory):
            return False
        if size != len(memory):
            os.ftruncate(fd, size)
        return True
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    finally:
        os.close(fd)


def _address(view: memoryview) -> int:
    return np.frombuffer(view, np.uint8).ctypes.data if len(view) else 0
