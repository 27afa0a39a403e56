"""Flattened layers: sampling the volume along a segment's normals and writing layer TIFFs.

Layer conventions (N = number of layers, h = N // 2, ``interval`` in scroll voxels):

* ``both`` (default): layer ``k`` samples each mapped pixel at
  ``point + (k - h) * interval * normal``; with N = 65 the surface itself is layer 32.
* ``positive``: layer ``k`` at ``point + k * interval * normal`` (layer 0 = surface).
* ``negative``: layer ``k`` at ``point - k * interval * normal`` (layer 0 = surface).

Normals are used as stored in the .ppm (volume-cartographer writes unit normals), in
scroll voxel units, and mapped to the opened level like the points.

Sampling rule, in array indices ``i`` of the opened level (z, y, x; see
:meth:`scrollzarr.ngff.Volume.to_index`): a sample is *in the volume* iff
``0 <= i <= n - 1`` on every axis. In-volume samples are trilinear interpolations of the
8 surrounding voxels, computed in float64 (at ``i == n - 1`` exactly the voxel itself),
rounded to nearest (half to even) and clipped to the range of the store's dtype. Every
other sample is 0: beyond the last voxel centre (``n - 1 < i``, even by less than one
voxel), before the first (``i < 0``, so negative coordinates are never wrapped), NaN, and
every layer of an unmapped pixel. Interpolating towards an imagined voxel outside the
volume would invent data, so the volume ends at its outermost voxel centres.

Outputs: ``OUT_DIR/<k>.tif`` per layer, zero-padded to the digit count of N (``00`` ..
``64``), 2-D, the store's dtype, uncompressed; optionally a stack image, the per-pixel
maximum over the central ``number_of_stacked_layers`` layers (layers
``h - S // 2 .. h - S // 2 + S - 1``; 20..44 for N = 65, S = 25).
"""

from __future__ import annotations

import math
import os
import shutil
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import tifffile
from tqdm import tqdm

from .cache import ChunkCache, Region
from .errors import ScrollError
from .ngff import Volume, open_volume
from .ppm import Ppm

DIRECTIONS = ("both", "positive", "negative")
#: Samples interpolated in one go: temporaries of ~256 KB stay in the CPU caches.
BATCH_SAMPLES = 1 << 15
#: Largest dense box (voxels) copied for one tile or batch (64 MB of uint16); larger
#: tiles fall back to a box per batch, larger batches are split in halves.
MAX_BOX_VOXELS = 1 << 25
#: Suffix of outputs being written; renamed away only once a file is complete.
PARTIAL = ".partial"


# --- layer geometry -----------------------------------------------------------------------

def layer_offsets(number_of_layers: int, interval: float = 1.0,
                  direction: str = "both") -> np.ndarray:
    """Return the offset of every layer along the normal, in scroll voxels: a float64
    array of shape ``(number_of_layers,)`` (see the module docstring for the rule)."""
    k = np.arange(number_of_layers, dtype=np.float64)
    if direction == "both":
        return (k - number_of_layers // 2) * interval
    if direction == "positive":
        return k * interval
    if direction == "negative":
        return -k * interval
    raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")


def stacked_layers(number_of_layers: int, number_of_stacked_layers: int) -> range:
    """Return the layer numbers that make the stack image: the central
    ``number_of_stacked_layers`` of ``number_of_layers`` (20..44 of 65 for 25)."""
    start = number_of_layers // 2 - number_of_stacked_layers // 2
    return range(start, start + number_of_stacked_layers)


def layer_names(number_of_layers: int) -> list[str]:
    """Return the output file names ``00.tif`` .. zero-padded to the number of digits of
    ``number_of_layers``."""
    digits = len(str(number_of_layers))
    return [f"{k:0{digits}d}.tif" for k in range(number_of_layers)]


def tile_order(tiles_u: int, tiles_v: int) -> np.ndarray:
    """Return every tile ``(iu, iv)`` of a ``tiles_u x tiles_v`` grid once, as an int64
    array of shape ``(tiles_u * tiles_v, 2)``, in the order of a Hilbert curve over the
    covering power-of-two square: consecutive tiles are neighbours (always within that
    square, mostly in a rectangle), so the chunks they share are still in the cache."""
    side = 1 << max(0, (max(tiles_u, tiles_v) - 1).bit_length())
    iu, iv = np.meshgrid(np.arange(tiles_u, dtype=np.int64),
                         np.arange(tiles_v, dtype=np.int64), indexing="ij")
    iu, iv = iu.reshape(-1), iv.reshape(-1)
    x, y = iu.copy(), iv.copy()
    d = np.zeros_like(x)
    s = side // 2
    while s > 0:  # the classic (x, y) -> d conversion, vectorised over the tiles
        rx = (x & s) > 0
        ry = (y & s) > 0
        d += s * s * ((3 * rx.astype(np.int64)) ^ ry.astype(np.int64))
        rotate = ~ry
        flip = rotate & rx
        x[flip] = side - 1 - x[flip]
        y[flip] = side - 1 - y[flip]
        x[rotate], y[rotate] = y[rotate], x[rotate]
        s //= 2
    order = np.argsort(d, kind="stable")
    return np.stack([iu[order], iv[order]], axis=1)


# --- sampling -------------------------------------------------------------------------------

def to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round float64 ``values`` to nearest (half to even) and clip them to the range of an
    integer ``dtype``; float dtypes are a plain cast. Returns a new array of ``dtype``."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def sample_trilinear(cache: ChunkCache, index: np.ndarray) -> np.ndarray:
    """Interpolate the volume of ``cache`` at ``index``, an ``(M, 3)`` float64 array of
    array indices (z, y, x) of that volume.

    Returns float64 ``(M,)``: the trilinear value for samples in the volume
    (``0 <= i <= n - 1`` on every axis), 0 for all others (including NaN). Only chunks
    that some sample needs are read.
    """
    index = np.asarray(index, dtype=np.float64).reshape(-1, 3)
    return sample_axes(cache, *(np.ascontiguousarray(index[:, a]) for a in range(3)))


def sample_axes(cache: ChunkCache, z: np.ndarray, y: np.ndarray, x: np.ndarray,
                region: Region | None = None) -> np.ndarray:
    """:func:`sample_trilinear` with the indices given as three float64 ``(M,)`` arrays
    (z, y, x): contiguous per-axis arrays keep every pass over the samples cheap.

    ``region`` (optional) is a :class:`Region` of ``cache`` expected to hold the samples
    (a tile's box): chunks are loaded into it on demand and reused by later calls.
    Batches that do not fit in it get a box of their own."""
    out = np.zeros(z.shape[0], dtype=np.float64)
    last = [float(n - 1) for n in cache.shape]
    for s in range(0, z.shape[0], BATCH_SAMPLES):
        part = [a[s:s + BATCH_SAMPLES] for a in (z, y, x)]
        inside = (part[0] >= 0) & (part[0] <= last[0])  # False for NaN too
        for a in (1, 2):
            inside &= (part[a] >= 0) & (part[a] <= last[a])
        if inside.all():
            out[s:s + part[0].shape[0]] = _interpolate(cache, part, region)
        else:
            where = np.flatnonzero(inside)
            if where.size:
                out[s + where] = _interpolate(cache, [a[where] for a in part], region)
    return out


def _interpolate(cache: ChunkCache, p: list[np.ndarray],
                 region: Region | None) -> np.ndarray:
    """Trilinear values (float64) at in-volume indices ``p`` = [z, y, x], (P,) each."""
    whole = [np.floor(a) for a in p]
    lo = [int(w.min()) for w in whole]
    hi = [int(w.max()) + 2 for w in whole]  # +1 neighbour; past n - 1 it reads 0 (weight 0)
    if region is None or any(l < rl or h > rh for l, h, rl, rh in
                             zip(lo, hi, region.lo, region.hi)):
        if math.prod(h - l for h, l in zip(hi, lo)) > MAX_BOX_VOXELS and p[0].shape[0] > 1:
            half = p[0].shape[0] // 2  # samples come in layer/row order: halves are compact
            return np.concatenate([_interpolate(cache, [a[:half] for a in p], None),
                                   _interpolate(cache, [a[half:] for a in p], None)])
        region = Region(cache, lo, hi)
    frac = [a - w for a, w in zip(p, whole)]
    region.load(_chunks_needed(region, whole, frac))
    box = region.data
    sy, sx = box.shape[1] * box.shape[2], box.shape[2]
    flat = box.reshape(-1)
    base = (whole[0] - region.lo[0]) * sy
    base += (whole[1] - region.lo[1]) * sx
    base += whole[2] - region.lo[2]
    base = base.astype(np.intp)  # exact: integer-valued floats far below 2**52
    fz, fy, fx = frac

    def along_x(offset: int) -> np.ndarray:
        a = flat.take(base + offset).astype(np.float64)
        b = flat.take(base + (offset + 1)).astype(np.float64)
        return _lerp(a, b, fx)

    c0 = _lerp(along_x(0), along_x(sx), fy)
    c1 = _lerp(along_x(sy), along_x(sy + sx), fy)
    return _lerp(c0, c1, fz)


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``a + (b - a) * t``, computed in place in ``b``; exactly ``a`` where ``t == 0``
    (whatever ``b`` is: the +1 neighbour past the volume's last voxel reads 0)."""
    b -= a
    b *= t
    b += a
    return b


def _chunks_needed(region: Region, whole: list[np.ndarray],
                   frac: list[np.ndarray]) -> np.ndarray:
    """Which chunks of ``region``'s cover the samples with integer corners ``whole``
    (float64, integer-valued) and fractions ``frac`` (per axis z, y, x) read: the chunk
    of the corner, plus the next chunk along an axis where the +1 neighbour lies across
    a chunk face with a non-zero weight. A bool array of shape ``region.grid``."""
    grid = region.grid
    wanted = np.zeros(grid, dtype=bool)
    cells, nexts = [], []
    for axis in range(3):
        c = float(region.cache.chunks[axis])
        # floor(w / c) is exact in float64 for integer-valued w < 2**52 (a quotient just
        # below an integer k is at least 1/c below it), and much cheaper than int division
        cells.append(np.floor(whole[axis] / c) - region.first[axis])
        # the +1 neighbour only matters with a non-zero weight (and then it exists)
        nexts.append((np.floor((whole[axis] + 1.0) / c) - region.first[axis]
                      != cells[axis]) & (frac[axis] > 0))
    key = (cells[0] * grid[1] + cells[1]) * grid[2] + cells[2]
    wanted.reshape(-1)[key.astype(np.intp)] = True
    some = np.flatnonzero(nexts[0] | nexts[1] | nexts[2])
    if some.size:
        cell = [c[some].astype(np.intp) for c in cells]
        cross = [n[some] for n in nexts]
        for step in ((0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0),
                     (1, 1, 1)):
            use = np.ones(some.size, dtype=bool)
            for axis, d in enumerate(step):
                if d:
                    use &= cross[axis]
            if use.any():
                wanted[cell[0][use] + step[0], cell[1][use] + step[1],
                       cell[2][use] + step[2]] = True
    return wanted


def render_tile(ppm: Ppm, volume: Volume, cache: ChunkCache, v0: int, v1: int, u0: int,
                u1: int, offsets: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, int]:
    """Render every layer of the pixels ``v0:v1`` x ``u0:u1`` of ``ppm``.

    ``offsets`` (N,) are the layer offsets along the normal in scroll voxels. Returns
    ``(layers, mapped)``: ``layers`` of shape ``(N, v1 - v0, u1 - u0)`` and ``dtype``
    (0 for unmapped pixels and out-of-volume samples), and the number of mapped pixels.
    """
    data, mapped = ppm.read_tile(v0, v1, u0, u1)
    n_layers = offsets.shape[0]
    out = np.zeros((n_layers, v1 - v0, u1 - u0), dtype=dtype)
    pixels = np.flatnonzero(mapped.reshape(-1))
    if pixels.size == 0:
        return out, 0
    points = data.reshape(-1, 6)[pixels]
    base = volume.to_index(points[:, 2::-1])  # (x, y, z) -> (z, y, x) array indices
    # to_index is affine: a direction scales by the level's factor only
    normal = points[:, 5:2:-1] * np.asarray(volume.factor, dtype=np.float64)
    base_axes = [np.ascontiguousarray(base[:, a]) for a in range(3)]
    normal_axes = [np.ascontiguousarray(normal[:, a]) for a in range(3)]
    region = _tile_region(cache, base_axes, normal_axes, offsets)
    flat_out = out.reshape(n_layers, -1)
    per_batch = max(1, BATCH_SAMPLES // pixels.size)
    for k0 in range(0, n_layers, per_batch):
        k1 = min(k0 + per_batch, n_layers)
        for p0 in range(0, pixels.size, BATCH_SAMPLES):  # huge tiles: pixel slices too
            p1 = min(p0 + BATCH_SAMPLES, pixels.size)
            # (layers, pixels) per axis, flattened layer-major
            axes = [(b[None, p0:p1] + offsets[k0:k1, None] * n[None, p0:p1]).reshape(-1)
                    for b, n in zip(base_axes, normal_axes)]
            values = sample_axes(cache, *axes, region=region)
            flat_out[k0:k1, pixels[p0:p1]] = to_dtype(values, dtype).reshape(k1 - k0, -1)
    return out, int(pixels.size)


def _tile_region(cache: ChunkCache, base: list[np.ndarray], normal: list[np.ndarray],
                 offsets: np.ndarray) -> Region | None:
    """One box around every in-volume sample of a tile (samples lie on the segments
    ``base + offset * normal``, so the extreme offsets bound them), or None when that box
    would exceed :data:`MAX_BOX_VOXELS` (batches then get boxes of their own)."""
    lo, hi = [], []
    for b, n, size in zip(base, normal, cache.shape):
        ends = [b + offsets.min() * n, b + offsets.max() * n]
        low = min(float(np.nanmin(e)) for e in ends)
        high = max(float(np.nanmax(e)) for e in ends)
        # clip to the volume: samples outside it are never interpolated
        lo.append(max(0, math.floor(low)) if math.isfinite(low) else 0)
        hi.append(min(size - 1, math.floor(high)) + 2 if math.isfinite(high) else size + 1)
    if any(h - l <= 1 for l, h in zip(lo, hi)):
        return None  # the tile misses the volume: nothing to load
    if math.prod(h - l for l, h in zip(lo, hi)) > MAX_BOX_VOXELS:
        return None
    return Region(cache, lo, hi)


# --- output files ---------------------------------------------------------------------------

class _TiffOutputs:
    """Uncompressed 2-D TIFFs created up front (sparse) under ``<name>.partial`` and
    filled tile by tile with ``os.pwrite`` at their pixel offsets. Written with pwrite,
    not a memmap: dirty and cached pages of a mapping count in the resident set, so
    memmap'd outputs would make peak RSS grow with the segment."""

    def __init__(self, paths: Sequence[Path], height: int, width: int, dtype: np.dtype):
        self.final = [Path(p) for p in paths]
        self.partial = [p.with_name(p.name + PARTIAL) for p in self.final]
        self.width = width
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.fds: list[int] = []
        self.offsets: list[int] = []
        bigtiff = height * width * self.dtype.itemsize > 2**32 - 2**25
        try:
            for path in self.partial:
                result = tifffile.imwrite(path, data=None, shape=(height, width),
                                          dtype=self.dtype, byteorder="<", bigtiff=bigtiff,
                                          photometric="minisblack", returnoffset=True)
                if result is None:
                    raise ScrollError(f"{path}: tifffile did not write contiguous pixels")
                self.offsets.append(int(result[0]))
                self.fds.append(os.open(path, os.O_WRONLY))
        except OSError as exc:
            self.abort()
            raise ScrollError(f"{exc.filename or self.partial[len(self.fds)]}: cannot "
                              f"create output ({exc.strerror})") from None
        except BaseException:
            self.abort()
            raise

    def write(self, which: int, v0: int, u0: int, block: np.ndarray) -> None:
        """Write the 2-D ``block`` at rows ``v0..`` and columns ``u0..`` of output
        ``which``."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        fd, start = self.fds[which], self.offsets[which]
        itemsize = self.dtype.itemsize
        if block.shape[1] == self.width:  # full rows are one contiguous range
            os.pwrite(fd, block, start + v0 * self.width * itemsize)
            return
        for r in range(block.shape[0]):
            os.pwrite(fd, block[r], start + ((v0 + r) * self.width + u0) * itemsize)

    def finish(self) -> None:
        """Flush every file to disk, then give it its final name."""
        for fd in self.fds:
            os.fsync(fd)
        self._close()
        for partial, final in zip(self.partial, self.final):
            os.replace(partial, final)

    def abort(self) -> None:
        """Close and delete every partial file."""
        self._close()
        for path in self.partial:
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def _close(self) -> None:
        while self.fds:
            os.close(self.fds.pop())


# --- the whole render -----------------------------------------------------------------------

@dataclass
class RenderStats:
    """What a render did: segment ``width`` x ``height`` pixels, ``layers``, ``tiles``,
    ``samples`` (layers x pixels, all written), ``mapped_samples`` (interpolated),
    ``seconds`` of rendering, and the chunk cache's ``chunk_fetches``,
    ``unique_chunks`` and ``cache_hits``."""

    width: int
    height: int
    layers: int
    tiles: int
    samples: int
    mapped_samples: int
    seconds: float
    chunk_fetches: int
    unique_chunks: int
    cache_hits: int

    @property
    def reads_per_chunk(self) -> float:
        return self.chunk_fetches / self.unique_chunks if self.unique_chunks else 0.0


def check_options(number_of_layers: int, number_of_stacked_layers: int, block_size: int,
                  zarr_cache_max_size_gb: float, interval: float, direction: str) -> None:
    """Raise :class:`ScrollError` naming the first invalid option."""
    if number_of_layers < 1:
        raise ScrollError(f"--number_of_layers {number_of_layers}: must be at least 1")
    if number_of_stacked_layers < 1:
        raise ScrollError(f"--number_of_stacked_layers {number_of_stacked_layers}: "
                          "must be at least 1")
    if number_of_stacked_layers > number_of_layers:
        raise ScrollError(f"--number_of_stacked_layers {number_of_stacked_layers} is more "
                          f"than the {number_of_layers} rendered layers "
                          "(--number_of_layers)")
    if block_size < 1:
        raise ScrollError(f"--block_size {block_size}: must be at least 1 pixel")
    if not (math.isfinite(zarr_cache_max_size_gb) and zarr_cache_max_size_gb >= 0):
        raise ScrollError(f"--zarr_cache_max_size_gb {zarr_cache_max_size_gb}: must be a "
                          "number >= 0")
    if not (math.isfinite(interval) and interval > 0):
        raise ScrollError(f"--interval {interval}: must be a positive number of voxels")
    if direction not in DIRECTIONS:
        raise ScrollError(f"--direction {direction}: must be one of {', '.join(DIRECTIONS)}")


def render_layers(ppm_path: str | Path, store: str | Path, out_dir: str | Path,
                  stack_path: str | Path | None = None, number_of_layers: int = 65,
                  number_of_stacked_layers: int = 25, block_size: int = 100,
                  zarr_cache_max_size_gb: float = 8.0, interval: float = 1.0,
                  direction: str = "both", level: int | None = None, quiet: bool = True,
                  workers: int = 2) -> RenderStats:
    """Render the layers of the segment ``ppm_path`` from ``store`` into ``out_dir``.

    ``store`` is an OME-Zarr root (level ``level``, default 0) or a plain (z, y, x) zarr
    array. Writes ``out_dir/<k>.tif`` for every layer (and ``stack_path`` when given), all
    2-D ``(height, width)`` of the store's dtype, uncompressed; existing files of those
    names are replaced. Tiles of ``block_size`` x ``block_size`` pixels are rendered by
    ``workers`` threads in Hilbert order; the first error in any of them stops the run,
    removes the partial outputs and is raised as :class:`ScrollError`. Returns
    :class:`RenderStats`.
    """
    check_options(number_of_layers, number_of_stacked_layers, block_size,
                  zarr_cache_max_size_gb, interval, direction)
    offsets = layer_offsets(number_of_layers, interval, direction)
    out_dir = Path(out_dir)
    with Ppm(ppm_path) as ppm:
        volume = store if isinstance(store, Volume) else open_volume(str(store), level)
        dtype = np.dtype(volume.array.dtype)
        if dtype.kind not in "uif":
            raise ScrollError(f"{store}: dtype {dtype} cannot be written as layer TIFFs")
        dtype = dtype.newbyteorder("<")
        paths = [out_dir / name for name in layer_names(number_of_layers)]
        if stack_path is not None:
            paths.append(Path(stack_path))
        _prepare_outputs(out_dir, paths, ppm.height * ppm.width * dtype.itemsize)
        cache = ChunkCache(volume.array, int(zarr_cache_max_size_gb * 2**30))
        outputs = _TiffOutputs(paths, ppm.height, ppm.width, dtype)
        try:
            stats = _render(ppm, volume, cache, outputs, offsets, dtype, block_size,
                            stacked_layers(number_of_layers, number_of_stacked_layers)
                            if stack_path is not None else None, quiet, workers, str(store))
            outputs.finish()
        except BaseException:
            outputs.abort()
            raise
    return stats


def _prepare_outputs(out_dir: Path, paths: list[Path], bytes_each: int) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ScrollError(f"{out_dir}: output exists and is not a directory")
    for path in paths:
        if path.is_dir():
            raise ScrollError(f"{path}: is a directory, cannot write a TIFF there")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ScrollError(f"{path.parent}: cannot create directory ({exc.strerror})"
                              ) from None
    need = len(paths) * bytes_each
    free = shutil.disk_usage(out_dir).free
    if need > free:
        raise ScrollError(f"{out_dir}: the layers need {need / 2**30:.1f} GiB, only "
                          f"{free / 2**30:.1f} GiB free")


def _render(ppm: Ppm, volume: Volume, cache: ChunkCache, outputs: _TiffOutputs,
            offsets: np.ndarray, dtype: np.dtype, block_size: int, stack: range | None,
            quiet: bool, workers: int, store: str) -> RenderStats:
    tiles_u = -(-ppm.width // block_size)
    tiles_v = -(-ppm.height // block_size)
    order = tile_order(tiles_u, tiles_v)
    n_layers = offsets.shape[0]
    stop = threading.Event()

    def work(tile: np.ndarray) -> tuple[int, int]:
        if stop.is_set():
            return 0, 0
        iu, iv = int(tile[0]), int(tile[1])
        u0, v0 = iu * block_size, iv * block_size
        u1, v1 = min(u0 + block_size, ppm.width), min(v0 + block_size, ppm.height)
        try:
            layers, mapped = render_tile(ppm, volume, cache, v0, v1, u0, u1, offsets, dtype)
            if mapped == 0:  # the outputs are sparse files: an unwritten tile reads as 0
                return (u1 - u0) * (v1 - v0) * n_layers, 0
            for k in range(n_layers):
                outputs.write(k, v0, u0, layers[k])
            if stack is not None:
                outputs.write(n_layers, v0, u0, layers[stack.start:stack.stop].max(axis=0))
        except ScrollError:
            raise
        except OSError as exc:
            raise ScrollError(f"tile u={u0}:{u1} v={v0}:{v1}: {exc.filename or store}: "
                              f"{exc.strerror or exc}") from exc
        except Exception as exc:
            first = (str(exc).splitlines() or [""])[0]
            raise ScrollError(f"tile u={u0}:{u1} v={v0}:{v1} of {store}: "
                              f"{type(exc).__name__}: {first}") from exc
        return (u1 - u0) * (v1 - v0) * n_layers, mapped * n_layers

    started = time.perf_counter()
    samples = mapped_samples = 0
    bar = tqdm(total=len(order), unit="tile", disable=quiet, desc="layers",
               dynamic_ncols=True)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="layers")
    pending: set[Future] = set()
    try:
        tiles = iter(order)
        window = 2 * workers  # a few tiles ahead keeps both workers busy, memory bounded
        while True:
            while len(pending) < window:
                tile = next(tiles, None)
                if tile is None:
                    break
                pending.add(pool.submit(work, tile))
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                n, m = future.result()  # re-raises a worker's error here
                samples += n
                mapped_samples += m
                bar.update(1)
            elapsed = time.perf_counter() - started
            if elapsed > 0:
                bar.set_postfix_str(f"{samples / elapsed:.3g} samples/s", refresh=False)
    except BaseException:
        stop.set()
        for future in pending:
            future.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return RenderStats(ppm.width, ppm.height, n_layers, len(order), samples, mapped_samples,
                       time.perf_counter() - started, cache.fetches, cache.unique_chunks,
                       cache.hits)
