"""The grey display window of a volume, recorded in the ``omero`` block of our stores.

Arrays are (z, y, x); the window is in stored units (the array's dtype).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .formats import tidy

#: Percentiles of the non-zero voxels of a coarse level that bound the display window.
WINDOW_PERCENTILES = (0.5, 99.5)

#: At most about this many voxels of the coarse level are read for the window.
_WINDOW_SAMPLE = 2**27


def display_window(array: Any) -> tuple[float, float]:
    """``(start, end)`` of a grey display window in stored units: the
    :data:`WINDOW_PERCENTILES` of the non-zero voxels of ``array`` (a coarse level,
    (z, y, x); masked background is 0 and must not pull the window down). An array
    larger than about 2**27 voxels (a single-level store) is sampled by whole chunks on
    a regular grid, so only those chunks are read. An all-zero array gives the whole
    dtype range."""
    shape, chunks = tuple(array.shape), tuple(array.chunks)
    if int(np.prod(shape)) <= _WINDOW_SAMPLE:
        values = np.asarray(array[...]).ravel()
    else:
        grid = [-(-s // c) for s, c in zip(shape, chunks)]
        wanted = max(1, _WINDOW_SAMPLE // int(np.prod(chunks)))
        stride = max(1, round((int(np.prod(grid)) / wanted) ** (1 / 3)))
        parts = []
        for iz in range(stride // 2 % grid[0], grid[0], stride):
            for iy in range(stride // 2 % grid[1], grid[1], stride):
                for ix in range(stride // 2 % grid[2], grid[2], stride):
                    block = np.asarray(array[iz * chunks[0]:(iz + 1) * chunks[0],
                                             iy * chunks[1]:(iy + 1) * chunks[1],
                                             ix * chunks[2]:(ix + 1) * chunks[2]])
                    parts.append(block[block != 0])
        values = np.concatenate(parts) if parts else np.zeros(0, array.dtype)
    values = values[values != 0]
    info = np.iinfo(array.dtype) if np.dtype(array.dtype).kind in "ui" else None
    if values.size == 0:
        return (float(info.min), float(info.max)) if info else (0.0, 1.0)
    lo, hi = np.percentile(values, WINDOW_PERCENTILES)
    if hi <= lo:
        hi = lo + 1
    return tidy(lo), tidy(hi)
