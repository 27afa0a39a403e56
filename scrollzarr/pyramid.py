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
from scipy import ndimage

ALGORITHMS = ("mean", "nearest", "gaussian", "max", "mode")
GAUSSIAN_SIGMA = 0.5
GAUSSIAN_TRUNCATE = 4.0
#: Context voxels the gaussian needs beyond a block: scipy's radius int(4 * 0.5 + 0.5).
GAUSSIAN_HALO = int(GAUSSIAN_TRUNCATE * GAUSSIAN_SIGMA + 0.5)


def halo(algorithm: str) -> int:
    """Voxels of context a kernel needs around a block (0 unless gaussian)."""
    return GAUSSIAN_HALO if algorithm == "gaussian" else 0


def reduced_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the next level: ``ceil(n / 2)`` on every axis."""
    return tuple(-(-n // 2) for n in shape)


def downsample(block: np.ndarray, algorithm: str,
               context: tuple[tuple[int, int], ...] = ((0, 0),) * 3) -> np.ndarray:
    """Return ``block`` (z, y, x) downsampled 2x on every axis with ``algorithm``.

    ``context`` gives, per axis, how many voxels before and after the block proper are
    present only as context (gaussian halo); they are blurred with the block and then
    dropped. The block proper starts at an even index of its level (a chunk boundary), so
    2x2x2 cells never straddle the context. Returns an array of the block's dtype.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}")
    if algorithm == "gaussian":
        blurred = ndimage.gaussian_filter(block.astype(np.float64), GAUSSIAN_SIGMA,
                                          mode="nearest", truncate=GAUSSIAN_TRUNCATE)
        inner = tuple(slice(lo, n - hi) for (lo, hi), n in zip(context, block.shape))
        cells = _cells(blurred[inner])
        return _round_to(cells.sum(axis=(1, 3, 5)) / 8.0, block.dtype)
    if any(lo or hi for lo, hi in context):
        block = block[tuple(slice(lo, n - hi) for (lo, hi), n in zip(context, block.shape))]
    if algorithm == "nearest":
        return np.ascontiguousarray(block[::2, ::2, ::2])
    cells = _cells(block)
    if algorithm == "max":
        return cells.max(axis=(1, 3, 5))
    if algorithm == "mode":
        return _mode(cells)
    return _mean(cells, block.dtype)


def _cells(block: np.ndarray) -> np.ndarray:
    """View ``block`` as (Z/2, 2, Y/2, 2, X/2, 2) cells, edge-replicating odd sizes."""
    pad = [(0, n % 2) for n in block.shape]
    if any(p for _, p in pad):
        block = np.pad(block, pad, mode="edge")
    z, y, x = block.shape
    return block.reshape(z // 2, 2, y // 2, 2, x // 2, 2)


def _mean(cells: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if not np.issubdtype(dtype, np.integer):
        return cells.mean(axis=(1, 3, 5), dtype=np.float64).astype(dtype)
    acc = np.uint32 if np.dtype(dtype).itemsize <= 2 and dtype.kind == "u" else np.int64
    total = cells.sum(axis=(1, 3, 5), dtype=acc)
    # exact division by 8 with rounding half to even
    quotient = total >> 3
    rest = total & 7
    quotient += (rest > 4) | ((rest == 4) & (quotient & 1).astype(bool))
    return quotient.astype(dtype)


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
