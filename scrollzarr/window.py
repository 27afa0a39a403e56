"""uint8 windowing (``--window``): map a contrast window of the input onto 0..255.

``--window LO:HI`` writes ``clip(round_half_even((v - LO) * 255 / (HI - LO)), 0, 255)``
as uint8, computed in float64 in exactly that order, and ``v == 0`` (masked background)
stays 0. ``--window auto[:P_LO:P_HI]`` (default 0.5:99.5) takes LO and HI from those
percentiles (numpy's default "linear" method) of the non-zero voxels of a coarse sample:
every 4th voxel on each axis of the cropped level-0 region.

* :func:`parse_window` reads the option's text.
* :func:`apply_window` maps values (a lookup table for 8- and 16-bit unsigned input,
  blocks of float64 otherwise: the same arithmetic, bit for bit).
* :func:`auto_window` samples a :class:`~scrollzarr.sources.Source`: it reads every 4th
  plane of the region (a quarter of its bytes) in bands of rows, and keeps a histogram
  (integer input of up to 16 bits) or the non-zero sampled values (other dtypes).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from . import progress
from .errors import ScrollError
from .sources.base import Source, Span

#: Sampling step on each axis of :func:`auto_window`.
STEP = 4
#: Default percentiles of ``--window auto``.
AUTO = (0.5, 99.5)
#: Rows of the bands :func:`auto_window` reads (a multiple of :data:`STEP`): a band's
#: planes are read one after the other, so a chunked source decodes the chunks of one band
#: once for all its sampled planes when its cache holds a band's chunk row.
BAND_ROWS = 128
#: Elements mapped at once by :func:`apply_window` (bounds its float64 or index
#: temporaries to 2 MiB).
_BLOCK = 1 << 18


class Window(NamedTuple):
    """A resolved window: input values ``lo`` and ``hi`` map to 0 and 255."""

    lo: float
    hi: float


class AutoWindow(NamedTuple):
    """``--window auto``: the window is the ``p_lo`` and ``p_hi`` percentiles (0..100) of
    the sample's non-zero voxels."""

    p_lo: float
    p_hi: float


def parse_window(text: str) -> Window | AutoWindow:
    """Parse ``LO:HI``, ``auto`` or ``auto:P_LO:P_HI``. Raises :class:`ScrollError` naming
    ``--window`` and ``text``."""
    parts = text.strip().split(":")
    auto = parts[0].strip().lower() == "auto"
    if auto and len(parts) == 1:
        return AutoWindow(*AUTO)
    numbers = parts[1:] if auto else parts
    try:
        if len(numbers) != 2:
            raise ValueError
        lo, hi = (float(n) for n in numbers)
    except ValueError:
        raise ScrollError(f"--window {text}: expected LO:HI, auto or auto:P_LO:P_HI "
                          "(numbers)") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ScrollError(f"--window {text}: the numbers must be finite")
    if auto and not (0 <= lo <= 100 and 0 <= hi <= 100):
        raise ScrollError(f"--window {text}: percentiles must lie in [0, 100]")
    if not lo < hi:
        what = "P_LO must be below P_HI" if auto else "LO must be below HI"
        raise ScrollError(f"--window {text}: {what}")
    return AutoWindow(lo, hi) if auto else Window(lo, hi)


def apply_window(values: np.ndarray, lo: float, hi: float, out: np.ndarray) -> np.ndarray:
    """Write the uint8 windowed ``values`` into ``out`` (a C-contiguous uint8 array of the
    same shape) and return it: ``clip(rint((v - lo) * 255 / (hi - lo)), 0, 255)``, with 0
    (and NaN) kept 0. Any axis order; values of any real dtype."""
    if out.shape != values.shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous uint8 array of the values' shape")
    table = None
    if values.dtype.kind in "ub" and values.dtype.itemsize <= 2:
        table = _table(values.dtype.str, float(lo), float(hi))
    flat_in, flat_out = values.reshape(-1), out.reshape(-1)
    for start in range(0, flat_in.size, _BLOCK):  # bounds the temporaries
        part = slice(start, start + _BLOCK)
        if table is not None:
            np.take(table, flat_in[part], out=flat_out[part], mode="clip")
        else:
            _window_float(flat_in[part], lo, hi, flat_out[part])
    return out


def _window_float(values: np.ndarray, lo: float, hi: float, out: np.ndarray) -> None:
    """The window in float64, in the documented order of operations."""
    t = values.astype(np.float64)
    t -= lo
    t *= 255.0
    t /= float(hi) - float(lo)
    np.rint(t, out=t)  # round half to even
    np.clip(t, 0.0, 255.0, out=t)
    t[np.isnan(t)] = 0.0
    out[...] = t  # exact: whole numbers in 0..255
    out[values == 0] = 0


@functools.lru_cache(maxsize=8)
def _table(dtype: str, lo: float, hi: float) -> np.ndarray:
    """The window of every value of an 8- or 16-bit unsigned ``dtype``: the same float
    arithmetic as the float path, done once per value."""
    dtype = np.dtype(dtype)
    values = np.arange(1 << (8 * dtype.itemsize), dtype=np.float64)
    out = np.empty(values.shape, np.uint8)
    _window_float(values, lo, hi, out)
    return out


def auto_window(source: Source, crop: tuple[Span, Span, Span], p_lo: float, p_hi: float,
                quiet: bool = True) -> Window:
    """LO and HI of ``--window auto:P_LO:P_HI``: the ``p_lo`` and ``p_hi`` percentiles
    (numpy's "linear") of the non-zero voxels among every 4th voxel on each axis of the
    region ``crop`` ((z0, z1), (y0, y1), (x0, x1), voxels of the source).

    Reads every 4th plane of the region within ``source.filled()`` (a quarter of the
    region's bytes), band of :data:`BAND_ROWS` rows by band, through ``source.read``.
    Raises :class:`ScrollError` if the sample has no non-zero voxel.
    """
    (z0, z1), (y0, y1), (x0, x1) = crop
    f0, f1 = source.filled()
    planes = [z for z in range(z0, z1, STEP) if f0 <= z < f1]
    dtype = np.dtype(source.dtype)
    width = x1 - x0
    buffer = np.empty((1, min(BAND_ROWS, y1 - y0), width), dtype)
    histogram = dtype.kind in "ub" and dtype.itemsize <= 2
    counts = np.zeros(1 << (8 * dtype.itemsize), np.int64) if histogram else None
    kept: list[np.ndarray] = []
    total = len(planes) * (y1 - y0) * width * dtype.itemsize
    with progress.bar(total, "auto window sample", quiet=quiet) as bar:
        for a in range(y0, y1, BAND_ROWS):
            b = min(a + BAND_ROWS, y1)
            for z in planes:
                band = source.read((z, z + 1), (a, b), (x0, x1), buffer[:, :b - a])
                sample = band[0, ::STEP, ::STEP]
                if histogram:
                    counts += np.bincount(sample.reshape(-1), minlength=counts.size)
                else:
                    kept.append(sample[sample != 0])
                bar.update(band.nbytes)
    if histogram:
        counts[0] = 0
        found = int(counts.sum())
    else:
        values = np.concatenate(kept) if kept else np.empty(0, dtype)
        values = values[~np.isnan(values)] if dtype.kind == "f" else values
        found = values.size
    if found == 0:
        raise ScrollError(f"--window auto: no non-zero voxel in the sample of "
                          f"{source.location} (every {STEP}th voxel on each axis); "
                          "give the window as LO:HI")
    if histogram:
        lo, hi = (histogram_percentile(counts, p) for p in (p_lo, p_hi))
    else:
        lo, hi = (float(v) for v in np.percentile(values, [p_lo, p_hi]))
    if not lo < hi:
        raise ScrollError(f"--window auto:{p_lo:g}:{p_hi:g}: the sample's percentiles give "
                          f"LO {lo:g} and HI {hi:g} (too few distinct values); give the "
                          "window as LO:HI")
    return Window(lo, hi)


def histogram_percentile(counts: np.ndarray, p: float) -> float:
    """The ``p`` percentile (0..100) of the values whose ``counts[v]`` is the number of
    occurrences of value ``v``, exactly as ``np.percentile`` (method "linear") of those
    values would give it."""
    n = int(counts.sum())
    virtual = (n - 1) * (p / 100)
    if virtual >= n - 1:
        before = after = n - 1
    elif virtual < 0:
        before = after = 0
    else:
        before = math.floor(virtual)
        after = before + 1
    gamma = virtual - before
    cumulative = np.cumsum(counts)
    a, b = (int(np.searchsorted(cumulative, k, side="right")) for k in (before, after))
    diff = b - a
    # numpy's _lerp: from the nearer end, so the result is monotonic in p
    return float(b - diff * (1 - gamma)) if gamma >= 0.5 else float(a + diff * gamma)
