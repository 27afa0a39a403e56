"""Pyramid kernels: one level down (2x on every axis) of a (z, y, x) block.

Every kernel maps a block of shape ``(Z, Y, X)`` to ``ceil(Z/2), ceil(Y/2), ceil(X/2)``.
On an odd edge the last voxel stands in for its missing neighbour (edge replication),
which for every kernel here gives the result over the voxels that exist: replication
scales every value's count in the block by the same factor.

* ``mean``: mean of each 2x2x2 block, rounded half to even (exact integer arithmetic for
  integer dtypes; plain mean for floats).
* ``nearest``: the block's low-corner voxel.
* ``gaussian``: blur with sigma 0.5 voxel (scipy.ndimage.gaussian_filter, mode "nearest",
  truncate 4 -> radius 2), then ``mean``. Blurring needs :data:`GAUSSIAN_HALO` voxels of
  context on every side that is not the volume edge; with it the result equals a blur of
  the whole level, so blocks leave no seams.
* ``max``: block maximum (label/indicator volumes).
* ``mode``: the most frequent value of the block (plurality), ties to the smallest value
  (label volumes).
"""

from __future__ import annotations

import numpy as np

from . import scratch

ALGORITHMS = ("mean", "nearest", "gaussian", "max", "mode")
GAUSSIAN_SIGMA = 0.5
GAUSSIAN_TRUNCATE = 4.0
#: Context voxels the gaussian needs beyond a block: scipy's radius int(4 * 0.5 + 0.5).
GAUSSIAN_HALO = int(GAUSSIAN_TRUNCATE * GAUSSIAN_SIGMA + 0.5)


def halo(algorithm: str) -> int:
    """Voxels of context a kernel needs around a block (0 unless gaussian)."""
    return GAUSSIAN_HALO if algorithm == "gaussian" else 0


def reduced_shape(shape: tuple[int, ...],
                  context: tuple[tuple[int, int], ...] | None = None) -> tuple[int, ...]:
    """Shape of the next level: ``ceil(n / 2)`` on every axis (of a block of ``shape``
    whose ``context`` voxels, as in :func:`downsample`, are dropped first)."""
    if context is not None:
        shape = tuple(n - lo - hi for n, (lo, hi) in zip(shape, context))
    return tuple(-(-n // 2) for n in shape)


def downsample(block: np.ndarray, algorithm: str,
               context: tuple[tuple[int, int], ...] = ((0, 0),) * 3,
               out: np.ndarray | None = None) -> np.ndarray:
    """Return ``block`` (z, y, x) downsampled 2x on every axis with ``algorithm``.

    ``context`` gives, per axis, how many voxels before and after the block proper are
    present only as context (gaussian halo); they are blurred with the block and then
    dropped. The block proper starts at an even index of its level (a chunk boundary), so
    2x2x2 cells never straddle the context. Returns an array of the block's dtype: ``out``
    if given (the result's shape and the block's dtype; any strides), which the mean of
    uint8/uint16 fills without a temporary of the result's size.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}")
    if out is not None:
        shape = reduced_shape(block.shape, context)
        if out.shape != shape or out.dtype != block.dtype:
            raise ValueError(f"out is {out.shape} {out.dtype}, the result {shape} "
                             f"{block.dtype}")
        if algorithm == "mean" and block.dtype in (np.uint8, np.uint16):
            inner = tuple(slice(lo, n - hi) for (lo, hi), n in zip(context, block.shape))
            return _mean_unsigned(block[inner], out)
        out[...] = downsample(block, algorithm, context)
        return out
    if algorithm == "gaussian":
        from scipy import ndimage  # imported here: half a second, needed only for this

        blurred = ndimage.gaussian_filter(block.astype(np.float64), GAUSSIAN_SIGMA,
                                          mode="nearest", truncate=GAUSSIAN_TRUNCATE)
        inner = tuple(slice(lo, n - hi) for (lo, hi), n in zip(context, block.shape))
        cells = _cells(blurred[inner])
        return _round_to(cells.sum(axis=(1, 3, 5)) / 8.0, block.dtype)
    if any(lo or hi for lo, hi in context):
        block = block[tuple(slice(lo, n - hi) for (lo, hi), n in zip(context, block.shape))]
    if algorithm == "nearest":
        return np.ascontiguousarray(block[::2, ::2, ::2])
    if algorithm == "mode":
        return _mode(_cells(block))
    if algorithm == "max":
        return _pairwise(block, np.maximum, block.dtype)
    if block.dtype in (np.uint8, np.uint16):
        return _mean_unsigned(block)
    if not np.issubdtype(block.dtype, np.integer):
        return _cells(block).mean(axis=(1, 3, 5), dtype=np.float64).astype(block.dtype)
    return _round_mean(_pairwise(block, np.add, np.int64)).astype(block.dtype)


def _round_mean(total: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Round half to even of ``total / 8``, exactly: ``(total + 3 + (total >> 3 & 1)) >> 3``
    (into ``out``, same shape and dtype, if given)."""
    rounded = np.right_shift(total, 3, out=out)
    rounded &= 1
    rounded += 3
    rounded += total
    rounded >>= 3
    return rounded


#: Input bytes processed per step of the mean kernel: the step's temporaries stay in
#: the CPU cache (2 MiB was 1.6x faster than 4 MiB here).
_STEP_BYTES = 2 << 20


def _mean_unsigned(block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The mean kernel for uint8/uint16, a few z-planes at a time, into ``out`` (or a
    new array). Its temporaries are this thread's reused scratch buffers: fresh ones for
    every step were page-faulted in and zeroed each time, which made the kernel 4x
    slower."""
    nz, ny, nx = block.shape
    if out is None:
        out = np.empty(reduced_shape(block.shape), dtype=block.dtype)
    wide = np.uint16 if block.itemsize == 1 else np.uint32
    step = max(2, (_STEP_BYTES // max(ny * nx * block.itemsize, 1)) // 2 * 2)
    half_y, half_x = -(-ny // 2), -(-nx // 2)
    xsums = scratch.array("pyramid.x", (step, ny, half_x), wide)
    low = scratch.array("pyramid.low", (step, ny, half_x), wide)
    zsums = scratch.array("pyramid.z", (step // 2, ny, half_x), wide)
    ysums = scratch.array("pyramid.y", (step // 2, half_y, half_x), wide)
    rounded = scratch.array("pyramid.rounded", (step // 2, half_y, half_x), wide)
    for z0 in range(0, nz, step):
        part = block[z0:z0 + step]
        n, m = part.shape[0], -(-part.shape[0] // 2)
        sums = _xpairs(part, xsums[:n], low[:n])
        sums = _pairs(sums, 0, zsums[:m])
        sums = _pairs(sums, 1, ysums[:m])
        out[z0 // 2:z0 // 2 + m] = _round_mean(sums, rounded[:m])
    return out


def _xpairs(block: np.ndarray, out: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Sums of x-neighbour pairs, into ``out`` of the next wider unsigned type (odd edge
    doubled); ``low`` is a temporary of the same shape.

    Where rows are contiguous, two neighbours are one wider integer: its low and high
    halves added give the pair's sum without a strided, type-converting loop."""
    wide = out.dtype.type
    bits = 8 * block.itemsize
    nx = block.shape[2]
    half = nx // 2
    even = block[:, :, :2 * half]
    if half and even.strides[2] == block.itemsize and np.little_endian:
        try:
            packed = even.view(wide)
        except ValueError:
            packed = None
        if packed is not None:
            np.right_shift(packed, bits, out=out[:, :, :half])
            np.bitwise_and(packed, wide((1 << bits) - 1), out=low[:, :, :half])
            out[:, :, :half] += low[:, :, :half]
        else:
            np.add(even[:, :, 0::2], even[:, :, 1::2], out=out[:, :, :half], dtype=wide)
    elif half:
        np.add(even[:, :, 0::2], even[:, :, 1::2], out=out[:, :, :half], dtype=wide)
    if nx % 2:
        np.add(block[:, :, -1], block[:, :, -1], out=out[:, :, -1], dtype=wide)
    return out


def _pairs(values: np.ndarray, axis: int, out: np.ndarray) -> np.ndarray:
    """Sums of neighbour pairs along ``axis`` (0 or 1) into ``out`` (same dtype), odd
    edge doubled."""
    n = values.shape[axis]
    half = n // 2
    take = (lambda a, sl: a[sl]) if axis == 0 else (lambda a, sl: a[:, sl])
    np.add(take(values, slice(0, 2 * half, 2)), take(values, slice(1, 2 * half, 2)),
           out=take(out, slice(0, half)))
    if n % 2:
        last = take(values, slice(n - 1, n))
        np.add(last, last, out=take(out, slice(half, half + 1)))
    return out


def _pairwise(block: np.ndarray, op: np.ufunc, dtype: np.dtype) -> np.ndarray:
    """Combine neighbours pairwise along z, then y, then x with ``op`` (add or maximum)
    into ``dtype``; an odd edge's last voxel is combined with itself (edge replication).
    Three half-size passes: much faster than one reduction over a 6-D view."""
    out = block
    for axis in range(3):
        n = out.shape[axis]
        half = n // 2
        shape = list(out.shape)
        shape[axis] = -(-n // 2)
        result = np.empty(shape, dtype=dtype)
        index = [slice(None)] * 3
        lo, hi, dst = list(index), list(index), list(index)
        lo[axis], hi[axis], dst[axis] = slice(0, 2 * half, 2), slice(1, 2 * half, 2), \
            slice(0, half)
        op(out[tuple(lo)], out[tuple(hi)], out=result[tuple(dst)], dtype=dtype)
        if n % 2:
            last, dst[axis] = list(index), half
            last[axis] = n - 1
            op(out[tuple(last)], out[tuple(last)], out=result[tuple(dst)], dtype=dtype)
        out = result
    return out


def _cells(block: np.ndarray) -> np.ndarray:
    """View ``block`` as (Z/2, 2, Y/2, 2, X/2, 2) cells, edge-replicating odd sizes."""
    pad = [(0, n % 2) for n in block.shape]
    if any(p for _, p in pad):
        block = np.pad(block, pad, mode="edge")
    z, y, x = block.shape
    return block.reshape(z // 2, 2, y // 2, 2, x // 2, 2)


def _round_to(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def _mode(cells: np.ndarray) -> np.ndarray:
    shape = (cells.shape[0], cells.shape[2], cells.shape[4])
    values = cells.transpose(0, 2, 4, 1, 3, 5).reshape(-1, 8)
    values = np.sort(values, axis=1)
    counts = (values[:, :, None] == values[:, None, :]).sum(axis=2)
    # sorted, so the first maximal count is the smallest of the most frequent values
    best = np.argmax(counts, axis=1)
    return values[np.arange(values.shape[0]), best].reshape(shape)
