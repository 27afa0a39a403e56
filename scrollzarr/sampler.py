"""The sampler: trilinear interpolation of a cached volume along a tile's normals, in
compiled (numba ``nogil``) kernels, so tiles render in parallel on every core.

The rule (see :mod:`scrollzarr.layers`): the sample of pixel ``p`` in layer ``k`` lies at
array index ``i = base[p] + offsets[k] * normal[p]`` (z, y, x, float64). It is *in the
volume* iff ``0 <= i <= n - 1`` on every axis (never for NaN); in-volume samples are the
trilinear interpolation of the 8 surrounding voxels in float64, rounded to nearest (half
to even) and clipped to an integer output dtype (float dtypes: a plain cast); every other
sample is 0. The arithmetic is the numpy renderer's, operation for operation
(``a + (b - a) * t`` per axis, x first, then y, then z), so results are bit-identical.

A tile is planned (:func:`plan_tile`: which chunks each group of samples needs, in a box
small enough to copy densely), its chunks fetched (I/O threads), then interpolated from
that box (:func:`sample_group`, compute threads). The compiled kernels are cached on disk
(``cache=True``); when the package directory is not writable (a read-only install) the
cache goes to ``$NUMBA_CACHE_DIR`` or else ``~/.cache/scrollzarr/numba``
(``$XDG_CACHE_HOME`` honoured). No compiler toolchain is needed: numba ships LLVM.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import cover


def _user_cache_dir() -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "scrollzarr", "numba")


def _compile_cache_dir() -> str | None:
    """Where numba should keep our compiled kernels: None (numba's own choice, the
    package's ``__pycache__``) when that is writable, else a user cache directory."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None  # the user's explicit choice; numba reads it itself
    pycache = Path(__file__).resolve().parent / "__pycache__"
    target = pycache if pycache.is_dir() else pycache.parent
    return None if os.access(target, os.W_OK) else _user_cache_dir()


import numba  # noqa: E402  (after the helpers above, which must not need it)

_cache_dir = _compile_cache_dir()
_saved_cache_dir = numba.config.CACHE_DIR
if _cache_dir is not None:
    # numba binds the cache location when a function is decorated: set it for our
    # kernels only and restore it, so other numba users in the process are unaffected
    numba.config.CACHE_DIR = _cache_dir
try:
    _jit = numba.njit(nogil=True, cache=True)

    @_jit
    def _chunk(w, shift, size):
        """Chunk coordinate of voxel ``w``: a shift for power-of-two chunk sizes
        (``shift`` >= 0, the common case), else a division."""
        return w >> shift if shift >= 0 else w // size

    @_jit
    def _axis_chunks(low, high, shift, size):
        """First and last chunk read along one axis by samples whose indices run from
        ``low`` to ``high`` (both in the volume), when no chunk between is skipped."""
        top = math.floor(high)
        last_voxel = np.int64(top) + (1 if high > top else 0)
        return (_chunk(np.int64(math.floor(low)), shift, size),
                _chunk(last_voxel, shift, size))

    @_jit
    def _at(bz, by, bx, nz, ny, nx, o, last):
        """Array index (z, y, x) of the sample ``o`` voxels along the normal ``n`` from
        ``b``, and whether it is in the volume (``0 <= i <= last`` on every axis, never
        for NaN). Inlined by LLVM into the kernels below."""
        iz = bz + o * nz
        iy = by + o * ny
        ix = bx + o * nx
        inside = (iz >= 0.0 and iz <= last[0] and iy >= 0.0 and iy <= last[1]
                  and ix >= 0.0 and ix <= last[2])
        return iz, iy, ix, inside

    @_jit
    def _mark(base, normal, offsets, last, k0, k1, p0, p1, shifts, chunks, first, wanted):
        """Mark in ``wanted`` (bool, the cover's chunk grid starting at chunk ``first``)
        every chunk an in-volume sample of layers ``k0:k1`` x pixels ``p0:p1`` reads: the
        chunk of its corner and, along an axis with a non-zero fraction, the chunk of the
        +1 neighbour. ``chunks`` are the chunk sizes, ``shifts`` their log2 (-1 where
        not a power of two)."""
        lz, ly, lx = -1, -1, -1  # the last single chunk marked: most samples repeat it
        oa, ob = offsets[k0], offsets[k1 - 1]
        step = 0.0  # the largest step between consecutive layers
        for k in range(k0 + 1, k1):
            step = max(step, abs(offsets[k] - offsets[k - 1]))
        for p in range(p0, p1):
            bz, by, bx = base[p, 0], base[p, 1], base[p, 2]
            nz, ny, nx = normal[p, 0], normal[p, 1], normal[p, 2]
            # fast paths, when both extreme samples are in the volume (then all are:
            # each axis index is monotone in k): per axis, the corners run from
            # floor(min) to floor(max), and the +1 neighbour adds floor(max) + 1 when
            # the max has a fraction (a sample with the same floor and a fraction
            # would be larger)
            az, ay, ax, a_inside = _at(bz, by, bx, nz, ny, nx, oa, last)
            cz, cy, cx, c_inside = _at(bz, by, bx, nz, ny, nx, ob, last)
            if a_inside and c_inside:
                z0, z1 = _axis_chunks(min(az, cz), max(az, cz), shifts[0], chunks[0])
                y0, y1 = _axis_chunks(min(ay, cy), max(ay, cy), shifts[1], chunks[1])
                x0, x1 = _axis_chunks(min(ax, cx), max(ax, cx), shifts[2], chunks[2])
                z0 -= first[0]
                z1 -= first[0]
                y0 -= first[1]
                y1 -= first[1]
                x0 -= first[2]
                x1 -= first[2]
                moving = (z1 > z0) + (y1 > y0) + (x1 > x0)
                if moving == 0:
                    if not (z0 == lz and y0 == ly and x0 == lx):
                        wanted[z0, y0, x0] = True
                        lz, ly, lx = z0, y0, x0
                    continue
                # one axis crosses chunk faces and steps shorter than a chunk skip none:
                # every chunk between the two ends is read
                if moving == 1 and ((z1 > z0 and step * abs(nz) < chunks[0])
                                    or (y1 > y0 and step * abs(ny) < chunks[1])
                                    or (x1 > x0 and step * abs(nx) < chunks[2])):
                    for z in range(z0, z1 + 1):
                        for y in range(y0, y1 + 1):
                            for x in range(x0, x1 + 1):
                                wanted[z, y, x] = True
                    continue
            for k in range(k0, k1):
                iz, iy, ix, inside = _at(bz, by, bx, nz, ny, nx, offsets[k], last)
                if not inside:
                    continue
                wz, wy, wx = math.floor(iz), math.floor(iy), math.floor(ix)
                cz0 = np.int64(wz)
                cy0 = np.int64(wy)
                cx0 = np.int64(wx)
                z0 = _chunk(cz0, shifts[0], chunks[0]) - first[0]
                y0 = _chunk(cy0, shifts[1], chunks[1]) - first[1]
                x0 = _chunk(cx0, shifts[2], chunks[2]) - first[2]
                z1 = _chunk(cz0 + (1 if iz > wz else 0), shifts[0], chunks[0]) - first[0]
                y1 = _chunk(cy0 + (1 if iy > wy else 0), shifts[1], chunks[1]) - first[1]
                x1 = _chunk(cx0 + (1 if ix > wx else 0), shifts[2], chunks[2]) - first[2]
                if z0 == z1 and y0 == y1 and x0 == x1:
                    if z0 == lz and y0 == ly and x0 == lx:
                        continue
                    lz, ly, lx = z0, y0, x0
                for z in range(z0, z1 + 1):
                    for y in range(y0, y1 + 1):
                        for x in range(x0, x1 + 1):
                            wanted[z, y, x] = True

    @_jit
    def _interpolate(base, normal, offsets, last, box, lo, sy, sx, k0, k1, p0, p1, rows,
                     cols, out, is_int, vmin, vmax):
        """Write every sample of layers ``k0:k1`` x pixels ``p0:p1`` into
        ``out[k, rows[p], cols[p]]``: trilinear from ``box`` (a flat C-order box of
        voxels starting at ``lo``, strides ``sy`` and ``sx`` elements) when in the
        volume, else 0. Returns the number of non-zero samples written."""
        nonzero = 0
        # pixel by pixel, its layers inside: consecutive samples step along one normal
        # and the next pixel's walk re-reads the same cache lines, still in L1
        for p in range(p0, p1):
            bz, by, bx = base[p, 0], base[p, 1], base[p, 2]
            nz, ny, nx = normal[p, 0], normal[p, 1], normal[p, 2]
            r, c = np.uint64(rows[p]), np.uint64(cols[p])
            for k in range(k0, k1):
                iz, iy, ix, inside = _at(bz, by, bx, nz, ny, nx, offsets[k], last)
                if not inside:
                    out[np.uint64(k), r, c] = 0
                    continue
                wz, wy, wx = math.floor(iz), math.floor(iy), math.floor(ix)
                fz, fy, fx = iz - wz, iy - wy, ix - wx
                # unsigned indices: numba then skips its negative-index wraparound
                i = np.uint64((np.int64(wz) - lo[0]) * sy + (np.int64(wy) - lo[1]) * sx
                              + (np.int64(wx) - lo[2]))
                # a zero fraction reads the corner twice: a + (a - a) * 0 == a, exactly
                # what a + (b - a) * 0 gives for any finite b, and b is never read (its
                # chunk may not be loaded, or lie past the volume)
                dz = np.uint64(sy) if fz > 0.0 else np.uint64(0)
                dy = np.uint64(sx) if fy > 0.0 else np.uint64(0)
                dx = np.uint64(1) if fx > 0.0 else np.uint64(0)
                a = np.float64(box[i])
                x00 = a + (np.float64(box[i + dx]) - a) * fx
                a = np.float64(box[i + dy])
                x01 = a + (np.float64(box[i + dy + dx]) - a) * fx
                a = np.float64(box[i + dz])
                x10 = a + (np.float64(box[i + dz + dx]) - a) * fx
                a = np.float64(box[i + dz + dy])
                x11 = a + (np.float64(box[i + dz + dy + dx]) - a) * fx
                c0 = x00 + (x01 - x00) * fy
                c1 = x10 + (x11 - x10) * fy
                v = c0 + (c1 - c0) * fz
                if is_int:
                    v = np.rint(v)
                    if v < vmin:
                        v = vmin
                    elif v > vmax:
                        v = vmax
                out[np.uint64(k), r, c] = v
                if v != 0:
                    nonzero += 1
        return nonzero
finally:
    numba.config.CACHE_DIR = _saved_cache_dir


#: Largest dense box (voxels) copied for one group of samples (64 MB of uint16); a tile
#: whose samples span more is split into groups (layers first, then pixels).
MAX_BOX_VOXELS = 1 << 25


@dataclass
class Group:
    """Samples of layers ``k0:k1`` x pixels ``p0:p1`` of a tile, read from the box
    ``lo:hi`` (array indices z, y, x; ``hi`` exclusive) whose cover (chunks ``first``
    .. ``first + wanted.shape - 1``) has the chunks marked in ``wanted`` to load.
    ``lo``/``hi`` are None when no sample of the group is in the volume."""

    k0: int
    k1: int
    p0: int
    p1: int
    lo: tuple[int, int, int] | None
    hi: tuple[int, int, int] | None
    first: tuple[int, int, int]
    wanted: np.ndarray


def _box(base: np.ndarray, normal: np.ndarray, o_first: float, o_last: float,
         shape: tuple[int, int, int]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The box (lo, hi exclusive, z, y, x) holding the integer corners and +1 neighbours
    of every in-volume sample between the layer offsets ``o_first`` and ``o_last``: each
    axis index is monotone along a pixel's offsets, so the two extreme layers bound it
    (clipped to the volume). None when no sample can be in the volume."""
    ends = [base + o_first * normal, base + o_last * normal]
    low = np.fmin(np.nanmin(ends[0], axis=0), np.nanmin(ends[1], axis=0))
    high = np.fmax(np.nanmax(ends[0], axis=0), np.nanmax(ends[1], axis=0))
    lo, hi = [], []
    for a, n in enumerate(shape):
        if not (high[a] >= 0 and low[a] <= n - 1):  # also NaN: no finite sample
            return None
        lo.append(max(0, math.floor(low[a])))
        hi.append(min(n - 1, math.floor(high[a])) + 2)
    return tuple(lo), tuple(hi)


def plan_tile(base: np.ndarray, normal: np.ndarray, offsets: np.ndarray,
              shape: tuple[int, int, int], chunks: tuple[int, int, int],
              max_box_voxels: int | None = None) -> list[Group]:
    """Split the samples ``base + offsets[k] * normal`` (``base``/``normal`` float64
    ``(P, 3)`` C-contiguous array indices and directions, z, y, x; ``offsets`` monotone)
    into groups whose box holds at most ``max_box_voxels`` (default
    :data:`MAX_BOX_VOXELS`) voxels, and mark the chunks each one reads. A single sample
    always fits (its box is 2 x 2 x 2)."""
    limit = MAX_BOX_VOXELS if max_box_voxels is None else max_box_voxels
    last = np.asarray([n - 1 for n in shape], dtype=np.float64)
    shift_arr = np.asarray([-1 if c & (c - 1) else int(c).bit_length() - 1 for c in chunks],
                           dtype=np.int64)
    chunk_arr = np.asarray(chunks, dtype=np.int64)
    groups: list[Group] = []
    todo = [(0, offsets.shape[0], 0, base.shape[0])]
    while todo:
        k0, k1, p0, p1 = todo.pop()
        box = _box(base[p0:p1], normal[p0:p1], offsets[k0], offsets[k1 - 1], shape)
        if box is None:
            groups.append(Group(k0, k1, p0, p1, None, None, (0, 0, 0),
                                np.zeros((0, 0, 0), bool)))
            continue
        box_lo, box_hi = box
        if math.prod(h - l for l, h in zip(box_lo, box_hi)) > limit and (
                k1 - k0 > 1 or p1 - p0 > 1):
            if k1 - k0 > 1:  # fewer layers make a thinner box along the normals
                mid = (k0 + k1) // 2
                todo += [(mid, k1, p0, p1), (k0, mid, p0, p1)]
            else:
                mid = (p0 + p1) // 2
                todo += [(k0, k1, mid, p1), (k0, k1, p0, mid)]
            continue
        first, grid = cover(box_lo, box_hi, shape, chunks)
        wanted = np.zeros(grid, dtype=bool)
        _mark(base, normal, offsets, last, k0, k1, p0, p1, shift_arr, chunk_arr,
              np.asarray(first, dtype=np.int64), wanted)
        groups.append(Group(k0, k1, p0, p1, box_lo, box_hi, first, wanted))
    return groups


def sample_group(group: Group, box: np.ndarray | None, base: np.ndarray,
                 normal: np.ndarray, offsets: np.ndarray, shape: tuple[int, int, int],
                 rows: np.ndarray, cols: np.ndarray, out: np.ndarray) -> int:
    """Interpolate ``group`` from ``box`` (its voxels, loaded for the marked chunks) into
    ``out[k, rows[p], cols[p]]`` (``out``: 3-D, layers first, an integer or float dtype).
    Returns the number of non-zero samples written."""
    if group.lo is None:
        for k in range(group.k0, group.k1):
            out[k, rows[group.p0:group.p1], cols[group.p0:group.p1]] = 0
        return 0
    last = np.asarray([n - 1 for n in shape], dtype=np.float64)
    is_int = np.issubdtype(out.dtype, np.integer)
    info = np.iinfo(out.dtype) if is_int else None
    _, ny, nx = box.shape
    return int(_interpolate(base, normal, offsets, last, box.reshape(-1),
                            np.asarray(group.lo, dtype=np.int64), ny * nx, nx, group.k0,
                            group.k1, group.p0, group.p1, rows, cols, out, is_int,
                            float(info.min) if info else 0.0,
                            float(info.max) if info else 0.0))
