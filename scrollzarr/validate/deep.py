"""Deep checks of an OME-Zarr store: every chunk read (decode errors per chunk) and sampled
blocks of each level recomputed from the level above with the recorded method.

Arrays are (z, y, x); a level is compared with the recorded method applied to the level
above, which is how pyramids are built, so level by level every level is tied to level 0.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from itertools import islice, product
from typing import Callable, Iterable, Iterator

import numpy as np
import zarr

from .. import pyramid
from .findings import ERROR, WARNING, Finding, fmt, one_line
from .header import Level

#: Chunks read at once by --deep (zarr releases the GIL while decoding).
READ_THREADS = 4
#: Most chunk-corrupt findings per level; the rest are counted in one more finding.
MAX_CHUNK_FINDINGS = 20


def _regions(array: zarr.Array) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """Every (inner) chunk of ``array``: its grid coordinates and region."""
    grid = [range(-(-n // c)) for n, c in zip(array.shape, array.chunks)]
    for coords in product(*grid):
        yield coords, tuple(slice(i * c, min((i + 1) * c, n))
                            for i, c, n in zip(coords, array.chunks, array.shape))


def check_deep(levels: list[Level], seed: int, samples: int,
                progress: Callable[[Iterable, int, str], Iterable] | None,
                findings: list[Finding]) -> None:
    """Read every chunk (decode errors per chunk), then recompute sampled blocks."""
    nonempty = {lv.path: _read_all(lv, progress, findings) for lv in levels}
    rng = np.random.default_rng(seed)
    for above, lv in zip(levels, levels[1:]):
        if lv.method is None or not (above.shape_ok and lv.shape_ok):
            continue
        if lv.array.ndim != 3 or above.array.ndim != 3:
            continue
        ratio = [s / s0 if s0 else math.nan for s, s0 in zip(lv.scale, above.scale)]
        if not np.allclose(ratio, 2.0) or lv.array.shape != pyramid.reduced_shape(
                above.array.shape):
            findings.append(Finding(lv.path, WARNING, "pyramid-unchecked",
                                    f"scale ratio {fmt(ratio)} to level {above.path} is "
                                    "not 2: cannot recompute it with a 2x kernel"))
            continue
        candidates = nonempty[lv.path] or [c for c, _ in _regions(lv.array)]
        picks = rng.choice(len(candidates), size=min(samples, len(candidates)), replace=False)
        for i in sorted(picks):
            _check_block(above, lv, candidates[i], findings)


def _read_all(level: Level, progress: Callable[[Iterable, int, str], Iterable] | None,
              findings: list[Finding]) -> list[tuple[int, ...]]:
    """Read every chunk of ``level``; return the coordinates of the non-empty ones.
    Chunks that fail to decode are reported, up to :data:`MAX_CHUNK_FINDINGS` each."""
    array = level.array
    fill = array.fill_value if array.fill_value is not None else 0

    def read(item):
        coords, region = item
        try:
            return coords, bool(np.any(array[region] != fill)), None
        except Exception as exc:  # codecs raise many types for bad bytes
            return coords, False, one_line(exc)

    nonempty, corrupt = [], set()
    total = int(np.prod([-(-n // c) for n, c in zip(array.shape, array.chunks)]))
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        results = _batched_map(pool, read, _regions(array))
        if progress:
            results = progress(results, total, f"level {level.path}")
        for coords, filled, error in results:
            if error is not None:
                corrupt.add(coords)
                if len(corrupt) <= MAX_CHUNK_FINDINGS:
                    key = array.metadata.encode_chunk_key(_outer(array, coords))
                    findings.append(Finding(level.path, ERROR, "chunk-corrupt",
                                            f"chunk {coords} (key {level.path}/{key}) does "
                                            f"not decode: {error}"))
            elif filled:
                nonempty.append(coords)
    if len(corrupt) > MAX_CHUNK_FINDINGS:
        findings.append(Finding(level.path, ERROR, "chunk-corrupt",
                                f"{len(corrupt) - MAX_CHUNK_FINDINGS} more chunks do not "
                                "decode"))
    return nonempty


def _batched_map(pool: ThreadPoolExecutor, function: Callable, items: Iterator,
                 batch: int = 256) -> Iterator:
    """``pool.map`` a batch at a time: a level of a scroll has ~10^5 chunks, and futures
    for all of them at once would cost more memory than the chunks being read."""
    while True:
        chunk = list(islice(items, batch))
        if not chunk:
            return
        yield from pool.map(function, chunk)


def _outer(array: zarr.Array, coords: tuple[int, ...]) -> tuple[int, ...]:
    """Grid coordinates of the stored object (shard or chunk) holding chunk ``coords``."""
    if not array.shards:
        return coords
    return tuple(i * c // s for i, c, s in zip(coords, array.chunks, array.shards))


def _check_block(above: Level, level: Level, coords: tuple[int, ...],
                 findings: list[Finding]) -> None:
    """Compare one chunk of ``level`` with the recorded method applied to the level
    above (gaussian with its halo, so the result is the seamless one)."""
    dst = tuple(slice(i * c, min((i + 1) * c, n))
                for i, c, n in zip(coords, level.array.chunks, level.array.shape))
    h = pyramid.halo(level.method)
    src, context = [], []
    for sl, n in zip(dst, above.array.shape):
        lo, hi = 2 * sl.start, min(2 * sl.stop, n)
        lo_c, hi_c = max(0, lo - h), min(n, hi + h)
        src.append(slice(lo_c, hi_c))
        context.append((lo - lo_c, hi_c - hi))
    try:
        expected = pyramid.downsample(above.array[tuple(src)], level.method, tuple(context))
        actual = level.array[dst]
    except Exception:
        return  # a chunk that does not decode is already reported
    if np.array_equal(expected, actual):
        return
    diff = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
    where = ", ".join(f"{s.start}:{s.stop}" for s in dst)
    message = (f"block [{where}] differs from {level.method} of level {above.path} at "
               f"{int(np.count_nonzero(diff))} of {diff.size} voxels (max difference "
               f"{diff.max():g})")
    if diff.max() <= 1:
        findings.append(Finding(level.path, WARNING, "pyramid-rounding",
                                message + ": rounding differs from ours"))
    else:
        findings.append(Finding(level.path, ERROR, "pyramid-mismatch", message))
