"""Whole-chunk reads and writes of a level array, fast where the layout allows it.

Our default store (local zarr v2, no compressor, C order, "/" keys) keeps each chunk as
one file of raw little-endian bytes, padded with the fill value at the array's far edges.
For such arrays :class:`RawLevel` reads and writes the chunk files directly: one
``readinto`` or ``write`` per chunk into reused buffers, all-zero chunks never written
(and a stale one removed), every file written under a temporary name and renamed, as zarr
itself does. That is several times faster than zarr-python's generic codec pipeline, which
runs every chunk through one event-loop thread. The writes happen behind the computing
threads (:func:`flush` waits for a thread's own), so the disk stays busy while the
tasks read and downsample the next chunks. Any other layout (compressed, zarr v3,
sharded, object storage) goes through zarr (:class:`ZarrLevel`); both produce the same
files.
"""

from __future__ import annotations

import json
import mmap
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import atomic, scratch, store

Region = tuple[slice, slice, slice]

_local = threading.local()
#: Suffix of a chunk file being written (zarr's LocalStore uses the same).
PARTIAL = atomic.PARTIAL


def remove_partial_files(root: str) -> int:
    """Delete the temporary chunk files a killed run left in the local store at ``root``;
    return how many. (Renamed files are complete; temporary ones never are.)"""
    if store.is_url(root):
        return 0
    count = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.endswith(PARTIAL):
                atomic.remove(os.path.join(dirpath, name))
                count += 1
    return count


def release_scratch() -> None:
    """Free this thread's scratch buffers (the next stage needs other sizes) and the
    idle write-behind buffers."""
    scratch.release()
    with _queued:
        _free.clear()


#: Bytes of chunk files the local executor queues for the writer threads (process-wide)
#: when the memory budget allows it: enough that the disk never waits for the computing
#: threads. At least one chunk is always allowed.
WRITE_BEHIND_BYTES = 64 << 20
#: Writer threads: O_DIRECT writes of a few MB keep a disk busy at queue depth two.
WRITERS = 2

_queued = threading.Condition()
_queued_bytes = 0
_queue_limit = 0  # bytes; set_write_behind
_free: dict[int, list[mmap.mmap]] = {}  # idle write buffers by size, reused
_writers: ThreadPoolExecutor | None = None


def set_write_behind(nbytes: int) -> None:
    """Allow ``nbytes`` of chunk files queued for writing (0: one chunk at a time)."""
    global _queue_limit
    with _queued:
        _queue_limit = nbytes
        _queued.notify_all()


def _after_fork() -> None:
    """A forked child has none of the writer threads: start afresh there."""
    global _writers, _queued, _queued_bytes
    _writers, _queued, _queued_bytes = None, threading.Condition(), 0
    _free.clear()
    _local.pending = []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _take_buffer(nbytes: int) -> mmap.mmap:
    """A write buffer of ``nbytes``, once the queue has room for it."""
    global _queued_bytes
    with _queued:
        while _queued_bytes and _queued_bytes + nbytes > _queue_limit:
            _queued.wait()
        _queued_bytes += nbytes
        idle = _free.get(nbytes)
        if idle:
            return idle.pop()
    return scratch.anonymous(nbytes)


def _give_back(memory: mmap.mmap) -> None:
    global _queued_bytes
    with _queued:
        _queued_bytes -= len(memory)
        _free.setdefault(len(memory), []).append(memory)
        _queued.notify_all()


def _submit(fn, *args) -> None:
    """Run ``fn(*args)`` on a writer thread; :func:`flush` in this thread waits for it."""
    global _writers
    with _queued:
        if _writers is None:
            _writers = ThreadPoolExecutor(WRITERS, thread_name_prefix="chunk-writer")
        pool = _writers
    pending = getattr(_local, "pending", None)
    if pending is None:
        pending = _local.pending = []
    pending.append(pool.submit(fn, *args))


def stop_writers() -> None:
    """Wait for every queued chunk write and end the writer threads (a run's end, also
    after an error or Ctrl-C: nothing writes behind the process's back as it exits).
    The next write starts them again."""
    global _writers
    with _queued:
        pool, _writers = _writers, None
    if pool is not None:
        pool.shutdown(wait=True)


def flush(errors: bool = True) -> None:
    """Wait until the chunk writes this thread queued are on disk; raise the first
    error among them (unless not ``errors``). A task calls this before it counts as
    done."""
    pending: list[Future] = getattr(_local, "pending", None) or []
    _local.pending = []
    error = None
    for future in pending:
        exc = future.exception()
        if exc is not None and error is None:
            error = exc
    if error is not None and errors:
        raise error


def _nonzero(buf: np.ndarray) -> bool:
    """True if any byte of the contiguous ``buf`` is non-zero (8 bytes per comparison)."""
    flat = buf.reshape(-1).view(np.uint8)
    n = flat.size // 8 * 8
    return bool(flat[:n].view(np.uint64).max(initial=0) or flat[n:].max(initial=0))


def _prefetch(paths) -> None:
    """Ask the kernel to read ``paths`` (chunk files) into the page cache in the
    background: a task then reads its region at the disk's full queue depth instead of
    one chunk at a time (the level a stage reads was written straight to the disk)."""
    if not hasattr(os, "posix_fadvise"):
        return
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)


class RawLevel:
    """Direct access to the chunk files of a local, uncompressed zarr v2 array."""

    def __init__(self, path: str, meta: dict):
        self.path = path
        self.shape = tuple(meta["shape"])
        self.chunks = tuple(meta["chunks"])
        self.dtype = np.dtype(meta["dtype"])
        self._direct = True  # until the file system refuses O_DIRECT

    def _chunk_path(self, index: tuple[int, int, int]) -> str:
        return os.path.join(self.path, *map(str, index))

    def _grid(self, region: Region):
        for iz in range(region[0].start // self.chunks[0],
                        -(-region[0].stop // self.chunks[0])):
            for iy in range(region[1].start // self.chunks[1],
                            -(-region[1].stop // self.chunks[1])):
                for ix in range(region[2].start // self.chunks[2],
                                -(-region[2].stop // self.chunks[2])):
                    yield iz, iy, ix

    def write(self, z0: int, y0: int, data: np.ndarray) -> None:
        """Write ``data`` (z, y, x; full width) at rows from (z0, y0); the region must
        start on chunk boundaries and end on one or at the array's edge."""
        cz, cy, cx = self.chunks
        count = cz * cy * cx
        region = (slice(z0, z0 + data.shape[0]), slice(y0, y0 + data.shape[1]),
                  slice(0, data.shape[2]))
        made: set[str] = set()
        for iz, iy, ix in self._grid(region):
            part = data[iz * cz - z0:(iz + 1) * cz - z0, iy * cy - y0:(iy + 1) * cy - y0,
                        ix * cx:(ix + 1) * cx]
            target = self._chunk_path((iz, iy, ix))
            memory = _take_buffer(count * self.dtype.itemsize)
            buf = np.frombuffer(memory, dtype=self.dtype, count=count).reshape(self.chunks)
            if part.shape != self.chunks:
                buf.fill(0)  # edge chunk: zarr v2 pads with the fill value
            buf[:part.shape[0], :part.shape[1], :part.shape[2]] = part
            del buf  # only the writer thread refers to the memory from here on
            if not _nonzero(np.frombuffer(memory, dtype=np.uint8)):
                _give_back(memory)
                atomic.remove(target)  # all-zero chunks stay off disk, also a stale one
                continue
            directory = os.path.dirname(target)
            if directory not in made:
                os.makedirs(directory, exist_ok=True)
                made.add(directory)
            _submit(self._write_chunk, target, memory)

    def _write_chunk(self, target: str, memory: mmap.mmap) -> None:
        """Write one chunk file under a temporary name and rename it (writer thread)."""
        try:
            # no fsync per chunk: the journal's batch sync makes them durable
            with atomic.replacing(target, durable=False) as tmp:
                self._direct = atomic.write_direct(tmp, [memory], self._direct)
        finally:
            _give_back(memory)

    def read(self, region: Region, out: np.ndarray | None = None) -> np.ndarray:
        """Return the region (z, y, x slices with explicit bounds) as an array."""
        if out is None:
            out = np.empty(tuple(s.stop - s.start for s in region), dtype=self.dtype)
        cz, cy, cx = self.chunks
        buf = scratch.array("chunkio.chunk", self.chunks, self.dtype)
        plane = cy * cx * self.dtype.itemsize
        _prefetch(self._chunk_path(index) for index in self._grid(region))
        for iz, iy, ix in self._grid(region):
            zs = slice(max(region[0].start, iz * cz), min(region[0].stop, (iz + 1) * cz))
            ys = slice(max(region[1].start, iy * cy), min(region[1].stop, (iy + 1) * cy))
            xs = slice(max(region[2].start, ix * cx), min(region[2].stop, (ix + 1) * cx))
            dst = out[zs.start - region[0].start:zs.stop - region[0].start,
                      ys.start - region[1].start:ys.stop - region[1].start,
                      xs.start - region[2].start:xs.stop - region[2].start]
            # only the chunk's planes in the region: an edge chunk of a thin level is
            # mostly padding
            p0, p1 = zs.start - iz * cz, zs.stop - iz * cz
            want = memoryview(buf[p0:p1]).cast("B")
            path = self._chunk_path((iz, iy, ix))
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                dst[...] = 0
                continue
            try:
                if os.preadv(fd, [want], p0 * plane) != want.nbytes:
                    raise OSError(f"{path}: short chunk file")
            finally:
                os.close(fd)
            dst[...] = buf[p0:p1, ys.start - iy * cy:ys.stop - iy * cy,
                           xs.start - ix * cx:xs.stop - ix * cx]
        return out


class ZarrLevel:
    """Any other layout, through zarr-python."""

    def __init__(self, path: str):
        self.array = store.open_array(path)
        self.shape = tuple(self.array.shape)
        self.dtype = np.dtype(self.array.dtype)

    def write(self, z0: int, y0: int, data: np.ndarray) -> None:
        # zarr leaves all-zero chunks unwritten and deletes stale ones
        self.array[z0:z0 + data.shape[0], y0:y0 + data.shape[1], :data.shape[2]] = data

    def read(self, region: Region, out: np.ndarray | None = None) -> np.ndarray:
        data = self.array[region]
        if out is None:
            return data
        out[...] = data
        return out


def forget() -> None:
    """Drop this thread's open levels: a store recreated at the same path (``--overwrite``,
    another shape) must be looked at afresh by the next conversion."""
    cache = getattr(_local, "levels", None)
    if cache:
        cache.clear()


def open_level(path: str) -> RawLevel | ZarrLevel:
    """Open a level array for task I/O, choosing the direct path when the layout allows."""
    cache = getattr(_local, "levels", None)
    if cache is None:
        cache = _local.levels = {}
    if path not in cache:
        cache[path] = _open(path)
    return cache[path]


def _open(path: str) -> RawLevel | ZarrLevel:
    if not store.is_url(path):
        meta_path = Path(path) / ".zarray"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            dtype = np.dtype(meta["dtype"])
            if (meta.get("compressor") is None and not meta.get("filters")
                    and meta.get("order", "C") == "C"
                    and meta.get("dimension_separator") == "/"
                    and meta.get("fill_value") in (0, 0.0)
                    and (dtype.byteorder in ("<", "|", "=") and np.little_endian)
                    and len(meta["shape"]) == 3):
                return RawLevel(path, meta)
    return ZarrLevel(path)
