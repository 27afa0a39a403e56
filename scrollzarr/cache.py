"""A chunk cache for reading a zarr volume at scattered places from several threads.

Rendering a segment reads the same chunks again and again (every layer of neighbouring
tiles lands in the same few chunks), and zarr itself caches nothing. :class:`ChunkCache`
keeps decoded chunks as numpy arrays in least-recently-used order, bounded in bytes, and
makes sure a chunk is fetched once even when two threads ask for it at the same time (the
second waits for the first one's read instead of reading it again).

Chunks of a local, uncompressed array (our default layout; zarr v2, or v3 without
sharding) are read straight from their files, one ``readinto`` that releases the GIL;
zarr-python's codec pipeline holds it for several milliseconds per chunk, which
serialised the render threads. Any other layout goes through zarr. Given an opened
:class:`~scrollzarr.ngff.Volume` whose metadata names its chunk files, the cache never
opens the array with zarr (nor imports it).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from .chunk_layout import zarr_chunk_files
from .errors import ScrollError

if TYPE_CHECKING:
    import zarr

ChunkIndex = tuple[int, int, int]


class ChunkCache:
    """LRU cache of decoded chunks of a 3-D (z, y, x) array: ``source`` is an opened
    :class:`~scrollzarr.ngff.Volume` (its ``shape``, ``chunks``, ``dtype``, ``chunk_file``
    and, for chunks it cannot read from files, ``array``) or a zarr array.

    ``max_bytes`` bounds the bytes of the chunks held by the cache (a chunk larger than
    that is read but not kept; 0 disables caching). Chunks a caller is still using stay
    alive through the caller's references, so real memory is the bound plus the working
    set of the tiles being rendered. Counters: ``fetches`` (chunk reads from the store),
    ``hits`` (served from the cache or from another thread's read in flight) and
    :attr:`unique_chunks` (distinct chunks ever read).
    """

    def __init__(self, source: Any, max_bytes: int):
        self.source = source
        self.shape: tuple[int, int, int] = tuple(int(n) for n in source.shape)  # type: ignore
        self.chunks: tuple[int, int, int] = tuple(int(c) for c in source.chunks)  # type: ignore
        self.dtype = np.dtype(source.dtype)
        self.max_bytes = max(0, int(max_bytes))
        self._lock = threading.Lock()
        self._data: OrderedDict[ChunkIndex, np.ndarray] = OrderedDict()
        self._inflight: dict[ChunkIndex, Future] = {}
        self._bytes = 0
        self._seen: set[ChunkIndex] = set()
        self.fetches = 0
        self.hits = 0
        self._volume = hasattr(source, "chunk_file")  # else a zarr array
        if self._volume:
            self._chunk_file, self.name = source.chunk_file, source.store_path
        else:
            self._chunk_file, self.name = zarr_chunk_files(source), str(source.store_path)

    @property
    def array(self) -> zarr.Array:
        """The zarr array (a Volume's opened now if it was not)."""
        return self.source.array if self._volume else self.source

    @property
    def unique_chunks(self) -> int:
        """Number of distinct chunks read from the store so far."""
        return len(self._seen)

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def get(self, index: ChunkIndex) -> np.ndarray:
        """Return chunk ``index`` (chunk grid coordinates, z, y, x) as a read-only numpy
        array of the array's dtype; edge chunks are cut to the array's shape.

        A failed read raises :class:`ScrollError` naming the store and chunk, in every
        thread waiting for it; the chunk is not cached (a later call tries again)."""
        with self._lock:
            chunk = self._data.get(index)
            if chunk is not None:
                self._data.move_to_end(index)
                self.hits += 1
                return chunk
            future = self._inflight.get(index)
            owner = future is None
            if owner:
                future = Future()
                self._inflight[index] = future
            else:
                self.hits += 1
        if not owner:
            return future.result()
        try:
            chunk = self._read(index)
        except BaseException as exc:
            with self._lock:
                del self._inflight[index]
            future.set_exception(exc)
            raise
        with self._lock:
            del self._inflight[index]
            self.fetches += 1
            self._seen.add(index)
            if chunk.nbytes <= self.max_bytes:
                self._data[index] = chunk
                self._bytes += chunk.nbytes
                while self._bytes > self.max_bytes:
                    _, old = self._data.popitem(last=False)
                    self._bytes -= old.nbytes
        future.set_result(chunk)
        return chunk

    def _read(self, index: ChunkIndex) -> np.ndarray:
        box = tuple(slice(i * c, min((i + 1) * c, n))
                    for i, c, n in zip(index, self.chunks, self.shape))
        try:
            if self._chunk_file is not None:
                chunk = self._read_file(index, box)
            else:
                chunk = np.ascontiguousarray(self.array[box])
        except Exception as exc:  # decode errors, vanished files: name the chunk
            first = (str(exc).splitlines() or [""])[0]
            raise ScrollError(f"{self.name}: cannot read chunk (z, y, x) = "
                              f"{index}: {type(exc).__name__}: {first}") from exc
        chunk.setflags(write=False)  # shared between threads: nobody may modify it
        return chunk

    def _read_file(self, index: ChunkIndex, box: tuple[slice, ...]) -> np.ndarray:
        """Chunk ``index`` from its file (a missing file is the fill value 0), cut to
        the array's edge: the bytes zarr would decode."""
        chunk = np.empty(self.chunks, dtype=self.dtype)
        path = self._chunk_file(index)
        try:
            with open(path, "rb", buffering=0) as f:
                got = f.readinto(memoryview(chunk).cast("B"))
                extra = f.read(1)
        except FileNotFoundError:
            chunk.fill(0)
        else:
            if got != chunk.nbytes or extra:
                raise ValueError(f"{path}: {os.path.getsize(path)} bytes, an uncompressed "
                                 f"chunk holds {chunk.nbytes}")
        edge = tuple(slice(0, s.stop - s.start) for s in box)
        return chunk if chunk.shape == tuple(s.stop for s in edge) else \
            np.ascontiguousarray(chunk[edge])

    def read_box(self, lo: Iterable[int], hi: Iterable[int],
                 wanted: np.ndarray | None = None) -> np.ndarray:
        """Return the voxels of the box ``lo:hi`` (array indices, z, y, x; ``hi``
        exclusive) as a new array of the array's dtype. The box may extend beyond the
        array on any side: voxels outside it are 0.

        ``wanted`` (optional, bool, one entry per chunk of :attr:`Region.cover`) says which
        chunks to read; voxels of the other chunks are left 0. Callers pass it so chunks
        no sample touches are never read.
        """
        region = Region(self, lo, hi)
        region.load(wanted)
        return region.data


def cover(lo: Iterable[int], hi: Iterable[int], shape: Iterable[int],
          chunks: Iterable[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(first, grid)``: the chunks (z, y, x chunk coordinates ``first`` ..
    ``first + grid - 1``) overlapping the box ``lo:hi`` (``hi`` exclusive) clipped to an
    array of ``shape`` with ``chunks``; grid is (0, 0, 0) when the box misses the array."""
    clo = [max(int(l), 0) for l in lo]
    chi = [min(int(h), int(n)) for h, n in zip(hi, shape)]
    if any(b <= a for a, b in zip(clo, chi)):
        return (0, 0, 0), (0, 0, 0)
    chunks = [int(c) for c in chunks]
    first = tuple(a // c for a, c in zip(clo, chunks))
    return first, tuple((b - 1) // c - f + 1 for b, c, f in zip(chi, chunks, first))


class Region:
    """A dense copy of the box ``lo:hi`` (array indices, z, y, x; ``hi`` exclusive) of a
    cached volume, filled chunk by chunk on demand: rendering a tile loads only the
    chunks its samples need, once, however many batches of samples use them.

    ``data`` has the box's shape and the array's dtype; voxels outside the array and of
    chunks not loaded are 0. ``first`` and ``grid`` describe the *cover*: the chunks
    (z, y, x chunk coordinates ``first`` .. ``first + grid - 1``) that overlap the box
    clipped to the array. ``grid`` is (0, 0, 0) when the box misses the array.

    ``buffer`` (optional): a 1-D array of the array's dtype and at least the box's size to
    hold ``data`` (a renderer's per-thread scratch space); its voxels outside the loaded
    chunks are then undefined, not 0, and callers must read only loaded chunks.
    """

    def __init__(self, cache: ChunkCache, lo: Iterable[int], hi: Iterable[int],
                 buffer: np.ndarray | None = None):
        self.cache = cache
        self.lo = tuple(int(v) for v in lo)
        self.hi = tuple(int(v) for v in hi)
        box = tuple(h - l for l, h in zip(self.lo, self.hi))
        if buffer is None:
            self.data = np.zeros(box, dtype=cache.dtype)
        else:
            self.data = buffer[:int(np.prod(box))].reshape(box)
        self._clo = tuple(max(l, 0) for l in self.lo)
        self._chi = tuple(min(h, n) for h, n in zip(self.hi, cache.shape))
        self.first, self.grid = cover(self.lo, self.hi, cache.shape, cache.chunks)
        self.loaded = np.zeros(self.grid, dtype=bool)

    def load(self, wanted: np.ndarray | None = None,
             fetched: dict[ChunkIndex, np.ndarray] | None = None) -> None:
        """Copy in the chunks of the cover marked in ``wanted`` (all when None) that are
        not loaded yet, taking them from ``fetched`` (chunk index -> chunk, read ahead
        by an I/O thread) where present, else from the cache."""
        todo = ~self.loaded if wanted is None else wanted & ~self.loaded
        chunks = self.cache.chunks
        for g in zip(*np.nonzero(todo)):
            index = tuple(int(f + i) for f, i in zip(self.first, g))
            chunk = fetched.get(index) if fetched is not None else None
            if chunk is None:
                chunk = self.cache.get(index)
            start = [i * c for i, c in zip(index, chunks)]
            a = [max(s, l) for s, l in zip(start, self._clo)]
            b = [min(s + c, h) for s, c, h in zip(start, chunks, self._chi)]
            self.data[a[0] - self.lo[0]:b[0] - self.lo[0], a[1] - self.lo[1]:b[1] - self.lo[1],
                      a[2] - self.lo[2]:b[2] - self.lo[2]] = chunk[
                a[0] - start[0]:b[0] - start[0], a[1] - start[1]:b[1] - start[1],
                a[2] - start[2]:b[2] - start[2]]
            self.loaded[g] = True
