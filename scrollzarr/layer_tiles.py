"""The tile loop of a layer render (see :mod:`scrollzarr.layers` for the conventions).

An I/O pool reads each tile's surface and plans and fetches its chunks ahead
(:func:`scrollzarr.workers.prefetch`); compute threads interpolate it with the compiled
sampler (:mod:`scrollzarr.sampler`) into full-width strips
(:func:`scrollzarr.workers.map_unordered`); the thread that completes a strip writes it
to the outputs (:mod:`scrollzarr.layer_outputs`). Tiles go band by band in a serpentine,
so consecutive tiles share chunks still in the cache.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import progress, scratch, workers
from .cache import ChunkCache, Region
from .errors import ScrollError
from .layer_checks import Extent, check_inside, outside_error
from .layer_outputs import Previews, Strips, TiffOutputs, ZarrOutput, stack_image
from .ngff import Volume

#: Threads reading chunks ahead of the compute threads (they mostly wait on disk or
#: network, so more of them than cores pays off for remote volumes).
IO_THREADS = 8


def tile_order(tiles_u: int, tiles_v: int) -> np.ndarray:
    """Return every tile ``(iu, iv)`` of a ``tiles_u x tiles_v`` grid once, as an int64
    array of shape ``(tiles_u * tiles_v, 2)``: band by band (``iv`` ascending, so full-width
    output strips complete one after the other), alternating direction along ``iu``
    (a serpentine): consecutive tiles are always neighbours, so the chunks they share are
    still in the cache."""
    iv, iu = np.divmod(np.arange(tiles_u * tiles_v, dtype=np.int64), tiles_u)
    iu = np.where(iv % 2 == 1, tiles_u - 1 - iu, iu)
    return np.stack([iu, iv], axis=1)


@dataclass
class RenderStats:
    """What a render did: segment ``width`` x ``height`` pixels, ``layers`` rendered,
    ``tiles``, ``samples`` (layers x pixels, all written), ``mapped_samples``
    (interpolated or outside the volume), ``nonzero_samples``, ``seconds`` of rendering,
    the chunk cache's ``chunk_fetches``, ``unique_chunks`` and ``cache_hits``, and for
    the surface itself ``surface_mapped`` pixels of which ``surface_inside`` lie in the
    volume."""

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
    nonzero_samples: int = 0
    surface_mapped: int = 0
    surface_inside: int = 0

    @property
    def reads_per_chunk(self) -> float:
        return self.chunk_fetches / self.unique_chunks if self.unique_chunks else 0.0


@dataclass
class _Tile:
    """A tile read and planned by an I/O thread, ready for the sampler."""

    band: int
    u0: int
    u1: int
    v0: int
    v1: int
    base: np.ndarray | None = None
    normal: np.ndarray | None = None
    rows: np.ndarray | None = None
    cols: np.ndarray | None = None
    groups: list | None = None
    fetched: dict | None = None
    extent: Extent | None = None


def render_tiles(surface: Any, volume: Volume, cache: ChunkCache, tiffs: TiffOutputs,
                 zarr_out: ZarrOutput | None, previews: Previews | None,
                 offsets: np.ndarray, dtype: np.dtype, block_size: int,
                 stack: range | None, stack_method: str, quiet: bool, threads: int,
                 store: str, allow_outside: bool, write_layers: bool, write_stack: bool,
                 max_box: int) -> RenderStats:
    """Render every tile of ``surface`` (``block_size`` pixels square) at the layer
    ``offsets`` (scroll voxels along the normals) into the outputs; ``max_box`` bounds
    the voxels copied for one group of samples. See :func:`scrollzarr.layers.render_layers`
    for the rest. Returns :class:`RenderStats`."""
    tiles_u = -(-surface.width // block_size)
    tiles_v = -(-surface.height // block_size)
    order = tile_order(tiles_u, tiles_v)
    n_layers = offsets.shape[0]
    shape = tuple(int(n) for n in volume.shape)
    factor = np.asarray(volume.factor, dtype=np.float64)
    box_dtype = np.dtype(volume.dtype)
    # imported here: loading numba and the compiled kernels takes a second, which option
    # errors and --help need not wait for
    from .sampler import plan_tile, sample_group

    def sink(v0: int, strip: np.ndarray, mapped: int) -> None:
        image = None
        if stack is not None:
            image = stack_image(strip[stack.start:stack.stop], stack_method, dtype)
        if previews is not None:
            centre = int(np.argmin(np.abs(offsets)))  # the surface: offset 0 (or nearest)
            previews.add(v0, strip[centre], image)
        if mapped == 0:  # sparse files and unwritten chunks read as 0
            return
        if zarr_out is not None:
            zarr_out.write_rows(v0, strip)
        if write_layers:
            for k in range(n_layers):
                tiffs.write_rows(k, v0, strip[k])
        if write_stack:
            tiffs.write_rows(n_layers if write_layers else 0, v0, image)

    strips = Strips(n_layers, surface.height, surface.width, block_size, tiles_u, dtype, sink)

    def where(t: _Tile) -> str:
        return f"tile u={t.u0}:{t.u1} v={t.v0}:{t.v1}"

    def prepare(tile: np.ndarray) -> _Tile:
        iu, iv = int(tile[0]), int(tile[1])
        u0, v0 = iu * block_size, iv * block_size
        t = _Tile(iv, u0, min(u0 + block_size, surface.width), v0,
                  min(v0 + block_size, surface.height))
        with _errors_named(where(t), store):
            data, mapped = surface.read_tile(t.v0, t.v1, t.u0, t.u1)
            pixels = np.flatnonzero(mapped.reshape(-1))
            t.extent = Extent()
            if pixels.size == 0:
                return t
            points = data.reshape(-1, data.shape[-1])[pixels]
            t.base = np.ascontiguousarray(volume.to_index(points[:, 2::-1]))
            # to_index is affine: a direction scales by the level's factor only
            t.normal = np.ascontiguousarray(points[:, 5:2:-1] * factor)
            t.extent.add(points, t.base, shape)
            t.rows, t.cols = np.divmod(pixels.astype(np.int64), t.u1 - t.u0)
            t.groups = plan_tile(t.base, t.normal, offsets, shape, cache.chunks, max_box)
            t.fetched = {}
            for g in t.groups:
                for cell in zip(*np.nonzero(g.wanted)):
                    index = tuple(int(f + c) for f, c in zip(g.first, cell))
                    if index not in t.fetched:
                        t.fetched[index] = cache.get(index)
        return t

    def compute(future) -> tuple[int, int, int, Extent]:
        t: _Tile = future.result()  # a failed read is raised here, in a compute thread
        with _errors_named(where(t), store):
            out = strips.tile_view(t.band, t.u0, t.u1)
            nonzero = 0
            mapped = 0 if t.base is None else t.base.shape[0]
            for g in t.groups or ():
                box = None
                if g.lo is not None:
                    size = math.prod(h - l for l, h in zip(g.lo, g.hi))
                    region = Region(cache, g.lo, g.hi, scratch.array("layer_tiles.box", (size,), box_dtype))
                    region.load(g.wanted, t.fetched)
                    box = region.data
                nonzero += sample_group(g, box, t.base, t.normal, offsets, shape, t.rows,
                                        t.cols, out)
            t.fetched = None  # drop the chunk references before the strip write
            strips.tile_done(t.band, mapped)
        return (t.u1 - t.u0) * (t.v1 - t.v0) * n_layers, mapped * n_layers, nonzero, \
            t.extent

    started = time.perf_counter()
    samples = mapped_samples = nonzero_samples = 0
    extent = Extent()
    bar = progress.bar(len(order), "layers", unit="tile", quiet=quiet)
    window = 2 * threads + 2
    reads = workers.prefetch(prepare, iter(order), IO_THREADS, ahead=IO_THREADS)
    results = workers.map_unordered(compute, reads, threads, window, name="layers")
    try:
        for n, m, nz, ext in results:
            samples += n
            mapped_samples += m
            nonzero_samples += nz
            extent.merge(ext)
            bar.update(1)
            elapsed = time.perf_counter() - started
            if elapsed > 0 and hasattr(bar, "set_postfix_str"):  # tqdm on a terminal
                bar.set_postfix_str(f"{samples / elapsed:.3g} samples/s", refresh=False)
    finally:
        # stop both pools now (an error, Ctrl-C), not whenever the generators are freed
        results.close()
        reads.close()
        bar.close()
    if not allow_outside:
        check_inside(extent, volume, store, sampled=False)
        if nonzero_samples == 0:
            raise outside_error("every sample of the segment reads 0", extent, volume,
                                 store)
    return RenderStats(surface.width, surface.height, n_layers, len(order), samples,
                       mapped_samples, time.perf_counter() - started, cache.fetches,
                       cache.unique_chunks, cache.hits, nonzero_samples, extent.mapped,
                       extent.inside)


class _errors_named:
    """Context manager: any error but :class:`ScrollError` becomes one naming the tile
    (and the store, for I/O errors)."""

    def __init__(self, where: str, store: str):
        self.where, self.store = where, store

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or isinstance(exc, ScrollError) or not isinstance(exc, Exception):
            return False
        if isinstance(exc, OSError):
            raise ScrollError(f"{self.where}: {exc.filename or self.store}: "
                              f"{exc.strerror or exc}") from exc
        first = (str(exc).splitlines() or [""])[0]
        raise ScrollError(f"{self.where} of {self.store}: {type(exc).__name__}: {first}"
                          ) from exc
