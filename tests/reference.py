"""Independent plain-numpy references the tests compare our output with.

Written differently from scrollzarr.pyramid on purpose: each output voxel gathers the
voxels of its 2x2x2 cell that exist (no padding), and averages or votes over those.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage


def _cell_members(vol: np.ndarray):
    """Yield (values, valid) for the 8 corners of every 2x2x2 cell of ``vol``; values are
    placed on the output grid, valid says where that corner exists."""
    out_shape = tuple((n + 1) // 2 for n in vol.shape)
    for dz, dy, dx in itertools.product((0, 1), repeat=3):
        part = vol[dz::2, dy::2, dx::2]
        values = np.zeros(out_shape, dtype=vol.dtype)
        valid = np.zeros(out_shape, dtype=bool)
        values[:part.shape[0], :part.shape[1], :part.shape[2]] = part
        valid[:part.shape[0], :part.shape[1], :part.shape[2]] = True
        yield values, valid


def ref_level(vol: np.ndarray, algorithm: str) -> np.ndarray:
    """The next pyramid level of ``vol`` (z, y, x) by ``algorithm``, as SPEC.md defines."""
    if algorithm == "nearest":
        return vol[::2, ::2, ::2].copy()
    if algorithm == "gaussian":
        blurred = ndimage.gaussian_filter(vol.astype(np.float64), 0.5, mode="nearest")
        total = np.zeros(tuple((n + 1) // 2 for n in vol.shape))
        count = np.zeros_like(total)
        for values, valid in _cell_members(blurred):
            total += np.where(valid, values, 0)
            count += valid
        info = np.iinfo(vol.dtype)
        return np.clip(np.rint(total / count), info.min, info.max).astype(vol.dtype)
    members = list(_cell_members(vol))
    if algorithm == "mean":
        total = sum(np.where(valid, values.astype(np.int64), 0) for values, valid in members)
        count = sum(valid.astype(np.int64) for _, valid in members)
        # total / count is exact in float64 (count is a power of two): rint is half-even
        return np.rint(total / count).astype(vol.dtype)
    if algorithm == "max":
        return np.max([np.where(valid, values, 0) for values, valid in members],
                      axis=0).astype(vol.dtype)
    if algorithm == "mode":
        stacked = np.stack([values for values, _ in members])
        valid = np.stack([v for _, v in members])
        out = np.zeros(stacked.shape[1:], dtype=vol.dtype)
        for idx in np.ndindex(*out.shape):
            vals = stacked[(slice(None),) + idx][valid[(slice(None),) + idx]]
            uniq, counts = np.unique(vals, return_counts=True)
            out[idx] = uniq[np.argmax(counts)]  # np.unique sorts: ties -> smallest
        return out
    raise ValueError(algorithm)


def ref_pyramid(vol: np.ndarray, nlevels: int, algorithm: str) -> list[np.ndarray]:
    levels = [vol]
    for _ in range(1, nlevels):
        levels.append(ref_level(levels[-1], algorithm))
    return levels
