"""Reading boxes of a zarr array so that each stored chunk is decoded once per process.

A conversion reads its input in boxes: z slabs x bands of rows x the full width. When
the input's chunks line up with those boxes every chunk lies in exactly one box and is
read straight into the caller's buffer. When they do not (other chunk sizes, a crop, the
gaussian halo) a chunk straddles two boxes; :class:`RowCache` then keeps the decoded
*chunk row* (one chunk high in z and y, every chunk across the box's x span) until each
of its (z, y) rows has been handed out once, within a byte bound (least recently used
rows go first when it is exceeded; a later read then decodes them again).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype

Span = tuple[int, int]
#: (z chunk index, y chunk index, first x chunk, one past the last x chunk)
RowKey = tuple[int, int, int, int]


@dataclass
class _Row:
    """A decoded chunk row and which of its (z, y) rows no caller has had yet."""

    data: np.ndarray
    todo: np.ndarray  # bool (z, y)
    left: int


def _chunk_spans(a: int, b: int, edge: int, size: int) -> list[tuple[int, Span]]:
    """``(chunk index, (start, stop))`` of the chunks overlapping ``[a, b)`` on an axis
    of ``size`` voxels cut into chunks of ``edge``."""
    return [(k, (k * edge, min((k + 1) * edge, size)))
            for k in range(a // edge, -(-b // edge))]


class RowCache:
    """Reads boxes of the 3-D (z, y, x) zarr ``array`` through a cache of decoded chunk
    rows bounded by ``max_bytes`` (0: no cache; straddling chunks are then decoded once
    per box that needs them). ``on_error(exc, chunk)`` turns a failed read of chunk
    index (z, y, x) into the exception to raise (the caller names the key).

    Thread-safe: two threads that need the same row share one read of it.
    """

    def __init__(self, array: zarr.Array, max_bytes: int,
                 on_error: Callable[[Exception, tuple[int, int, int]], Exception]):
        self.array = array
        self.shape = tuple(int(n) for n in array.shape)
        self.chunks = tuple(int(c) for c in array.chunks)
        self.max_bytes = max(0, int(max_bytes))
        self.on_error = on_error
        self.direct = np.dtype(array.dtype).isnative
        self._lock = threading.Lock()
        self._rows: OrderedDict[RowKey, _Row] = OrderedDict()
        self._inflight: dict[RowKey, Future] = {}
        self._bytes = 0

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def set_max_bytes(self, max_bytes: int) -> None:
        """Change the bound, dropping least recently used rows down to it at once."""
        with self._lock:
            self.max_bytes = max(0, int(max_bytes))
            self._evict()

    def _evict(self) -> None:
        while self._bytes > self.max_bytes:
            _, old = self._rows.popitem(last=False)
            self._bytes -= old.data.nbytes

    def read(self, z: Span, y: Span, x: Span, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` (shape of the box, C order) with voxels ``z, y, x`` of the
        array and return it."""
        cz, cy, cx = self.chunks
        nz, ny, nx = self.shape
        kx0, kx1 = x[0] // cx, -(-x[1] // cx)
        hull = (kx0 * cx, min(kx1 * cx, nx))
        for kz, zs in _chunk_spans(*z, cz, nz):
            for ky, ys in _chunk_spans(*y, cy, ny):
                key = (kz, ky, kx0, kx1)
                za, zb = max(zs[0], z[0]), min(zs[1], z[1])
                ya, yb = max(ys[0], y[0]), min(ys[1], y[1])
                target = out[za - z[0]:zb - z[0], ya - y[0]:yb - y[0]]
                whole = (za, zb, ya, yb) == (*zs, *ys) and hull == x
                with self._lock:
                    cached = key in self._rows or key in self._inflight
                if whole and not cached and self.direct and target.dtype == self.array.dtype:
                    # the box holds the whole row and nobody else needs it: no copy
                    self._fetch((zs, ys, hull), (kz, ky, kx0), target)
                    continue
                row = self._get(key, (zs, ys, hull))
                np.copyto(target, row.data[za - zs[0]:zb - zs[0], ya - ys[0]:yb - ys[0],
                                           x[0] - hull[0]:x[1] - hull[0]])
                self._delivered(key, row, (za - zs[0], zb - zs[0]),
                                (ya - ys[0], yb - ys[0]))
        return out

    def _fetch(self, box: tuple[Span, Span, Span], first: tuple[int, int, int],
               out: np.ndarray | None = None) -> np.ndarray:
        """Decode ``box`` (whole chunks) into ``out`` (or a new array); on failure find
        the chunk that cannot be read and raise ``on_error`` for it."""
        selection = tuple(slice(a, b) for a, b in box)
        try:
            if out is None:
                return np.ascontiguousarray(self.array[selection])
            self.array.get_basic_selection(
                selection, out=default_buffer_prototype().nd_buffer.from_numpy_array(out))
            return out
        except Exception as exc:  # noqa: BLE001 - decode errors of any codec
            raise self._culprit(box, first, exc) from exc

    def _culprit(self, box: tuple[Span, Span, Span], first: tuple[int, int, int],
                 exc: Exception) -> Exception:
        """The error for the first chunk of ``box`` that fails on its own (the row read
        does not say which one did)."""
        cx = self.chunks[2]
        for i, x0 in enumerate(range(box[2][0], box[2][1], cx)):
            try:
                self.array[box[0][0]:box[0][1], box[1][0]:box[1][1],
                           x0:min(x0 + cx, box[2][1])]
            except Exception as err:  # noqa: BLE001
                return self.on_error(err, (first[0], first[1], first[2] + i))
        return self.on_error(exc, first)

    def _get(self, key: RowKey, box: tuple[Span, Span, Span]) -> _Row:
        """The cached row ``key`` (decoded now, once, if absent)."""
        with self._lock:
            row = self._rows.get(key)
            if row is not None:
                self._rows.move_to_end(key)
                return row
            future = self._inflight.get(key)
            owner = future is None
            if owner:
                future = self._inflight[key] = Future()
        if not owner:
            return future.result()
        try:
            data = self._fetch(box, key[:3])
        except BaseException as exc:
            with self._lock:
                del self._inflight[key]
            future.set_exception(exc)
            raise
        todo = np.ones(data.shape[:2], dtype=bool)
        row = _Row(data, todo, todo.size)
        with self._lock:
            del self._inflight[key]
            if data.nbytes <= self.max_bytes:
                self._rows[key] = row
                self._bytes += data.nbytes
                self._evict()
        future.set_result(row)
        return row

    def _delivered(self, key: RowKey, row: _Row, z: Span, y: Span) -> None:
        """Note that rows ``z, y`` (of the row's box) were handed out; forget the row
        once every one of them was."""
        with self._lock:
            part = row.todo[z[0]:z[1], y[0]:y[1]]
            row.left -= int(part.sum())
            part[...] = False
            if row.left == 0 and self._rows.get(key) is row:
                del self._rows[key]
                self._bytes -= row.data.nbytes
