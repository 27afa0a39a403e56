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
``64``), 2-D, the store's dtype, uncompressed (``layers=START:STOP`` renders only those
indices, files keep their names); optionally a stack image, the per-pixel maximum (or
min, mean, median) over the central ``number_of_stacked_layers`` layers (layers
``h - S // 2 .. h - S // 2 + S - 1``; 20..44 for N = 65, S = 25), and previews. See
:mod:`scrollzarr.layer_outputs` for how a render replaces an earlier one.

The parts: the *surface* gives positions and normals per tile (:class:`Ppm`, or any
object with its interface), the *sampler* (:mod:`scrollzarr.sampler`) interpolates them in
compiled kernels, the *outputs* (:mod:`scrollzarr.layer_outputs`) write them; this module
checks the request and prepares the outputs, and :mod:`scrollzarr.layer_tiles` runs the
tiles: an I/O pool reads each tile's surface and chunks ahead, compute threads sample it
into full-width strips.

Safety: no output path may equal, contain or lie inside an input (the surface, its mask,
the store), symlinks resolved. Unless ``allow_outside``, a render whose segment mostly
misses the volume (fewer than half of the mapped surface points in the level's extent:
checked on sampled rows before anything is written, exactly after rendering) or whose
every sample reads 0 is an error naming both bounding boxes, and leaves no output.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from . import workers
from .cache import ChunkCache
from .errors import ScrollError
from .layer_checks import precheck_surface, resolved, store_input, surface_inputs
from .layer_outputs import (PARTIAL, STACK_METHODS, Previews, TiffOutputs, ZarrOutput,
                            check_replaceable, check_replaceable_elsewhere, read_elsewhere,
                            read_manifest, remove_stale, signature, write_manifest)
from .layer_tiles import RenderStats, render_tiles, tile_order  # noqa: F401 (public here)
from .ngff import Volume, open_volume
from .ppm import Ppm
from .safety import check_output_paths

DIRECTIONS = ("both", "positive", "negative")
#: Largest dense box (voxels) copied for one group of a tile's samples (64 MB of
#: uint16); tiles spanning more are split (see :func:`scrollzarr.sampler.plan_tile`).
MAX_BOX_VOXELS = 1 << 25
PREVIEW_NAMES = ("preview_surface.png", "preview_stack.png")


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


# --- checks ---------------------------------------------------------------------------------

def parse_layers(text: str, number_of_layers: int) -> range:
    """``START:STOP`` (0-based, STOP exclusive, either may be empty, like a Python slice
    without step or negative values) -> the range of layer indices."""
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError
        first = int(start) if start.strip() else 0
        end = int(stop) if stop.strip() else number_of_layers
    except ValueError:
        raise ScrollError(f"--layers {text}: expected START:STOP (0-based, STOP exclusive)"
                          ) from None
    if not 0 <= first < end <= number_of_layers:
        raise ScrollError(f"--layers {text}: must select at least one of the "
                          f"{number_of_layers} layers 0..{number_of_layers - 1} "
                          "(--number_of_layers)")
    return range(first, end)


def check_options(number_of_layers: int, number_of_stacked_layers: int, block_size: int,
                  zarr_cache_max_size_gb: float, interval: float, direction: str,
                  stack: bool = True, layers: range | None = None,
                  stack_method: str = "max", num_threads: int | None = None) -> None:
    """Raise :class:`ScrollError` naming the first invalid option. The stacked layers
    are checked only when a ``stack`` image is made (they must lie in ``layers``)."""
    if number_of_layers < 1:
        raise ScrollError(f"--number_of_layers {number_of_layers}: must be at least 1")
    if stack:
        if number_of_stacked_layers < 1:
            raise ScrollError(f"--number_of_stacked_layers {number_of_stacked_layers}: "
                              "must be at least 1")
        if number_of_stacked_layers > number_of_layers:
            raise ScrollError(f"--number_of_stacked_layers {number_of_stacked_layers} is "
                              f"more than the {number_of_layers} rendered layers "
                              "(--number_of_layers)")
        wanted = stacked_layers(number_of_layers, number_of_stacked_layers)
        if layers is not None and not (layers.start <= wanted.start
                                       and wanted.stop <= layers.stop):
            raise ScrollError(f"--layers {layers.start}:{layers.stop} leaves out stacked "
                              f"layers of {wanted.start}..{wanted.stop - 1} "
                              "(--number_of_stacked_layers)")
    if block_size < 1:
        raise ScrollError(f"--block_size {block_size}: must be at least 1 pixel")
    if not (math.isfinite(zarr_cache_max_size_gb) and zarr_cache_max_size_gb >= 0):
        raise ScrollError(f"--zarr_cache_max_size_gb {zarr_cache_max_size_gb}: must be a "
                          "number >= 0")
    if not (math.isfinite(interval) and interval > 0):
        raise ScrollError(f"--interval {interval}: must be a positive number of voxels")
    if direction not in DIRECTIONS:
        raise ScrollError(f"--direction {direction}: must be one of {', '.join(DIRECTIONS)}")
    if stack_method not in STACK_METHODS:
        raise ScrollError(f"--stack_method {stack_method}: must be one of "
                          f"{', '.join(STACK_METHODS)}")
    if num_threads is not None and num_threads < 1:
        raise ScrollError(f"--num_threads {num_threads}: must be at least 1")


# --- the whole render -----------------------------------------------------------------------

def render_layers(surface: Any, store: str | Path | Volume, out_dir: str | Path | None,
                  stack_path: str | Path | None = None, number_of_layers: int = 65,
                  number_of_stacked_layers: int = 25, block_size: int = 100,
                  zarr_cache_max_size_gb: float = 8.0, interval: float = 1.0,
                  direction: str = "both", level: int | None = None, quiet: bool = True,
                  num_threads: int | None = None, layers: range | str | None = None,
                  stack_method: str = "max", preview: bool = False,
                  allow_outside: bool = False,
                  zarr_output: str | Path | None = None) -> RenderStats:
    """Render the layers of ``surface`` from ``store`` into ``out_dir``.

    ``surface`` is a .ppm path (opened with :class:`Ppm`, its ``_mask.png`` honoured) or
    an opened surface with Ppm's interface (``height``, ``width``, ``read_tile``). ``store``
    is an OME-Zarr root (level ``level``, default 0), a plain (z, y, x) zarr array, or an
    opened :class:`Volume`. Writes ``out_dir/<k>.tif`` for the layers ``layers`` (a
    ``range`` or ``"START:STOP"`` of indices among ``number_of_layers``; default all),
    ``stack_path`` when given (``stack_method`` over the central
    ``number_of_stacked_layers``), and with ``preview`` ``preview_surface.png`` and
    ``preview_stack.png``; all TIFFs 2-D ``(height, width)`` of the store's dtype,
    uncompressed. ``zarr_output``: also the rendered layers as an OME-Zarr (see
    :class:`ZarrOutput`); ``out_dir`` may then be ``"-"`` (or None) to write no layer
    TIFFs. An earlier render into ``out_dir`` is replaced as a whole (see
    :mod:`scrollzarr.layer_outputs`). Tiles of ``block_size`` pixels are rendered by
    ``num_threads`` threads (default: all cores); the first error stops the run,
    removes the partial outputs and is raised as :class:`ScrollError`. Unless
    ``allow_outside``, it is an error when fewer than half of the surface's mapped
    points lie in the level's extent or every sample reads 0. Returns :class:`RenderStats`.
    """
    stack_wanted = stack_path is not None or preview
    if isinstance(layers, str):
        if number_of_layers < 1:
            check_options(number_of_layers, 1, 1, 0, 1, "both", False)
        layers = parse_layers(layers, number_of_layers)
    check_options(number_of_layers, number_of_stacked_layers, block_size,
                  zarr_cache_max_size_gb, interval, direction, stack_wanted, layers,
                  stack_method, num_threads)
    selected = layers if layers is not None else range(number_of_layers)
    offsets = np.ascontiguousarray(layer_offsets(number_of_layers, interval, direction)[
        selected.start:selected.stop])
    stack = None
    if stack_wanted:
        wanted = stacked_layers(number_of_layers, number_of_stacked_layers)
        stack = range(wanted.start - selected.start, wanted.stop - selected.start)
    out = None if out_dir is None or str(out_dir) == "-" else Path(out_dir)
    if out is None and zarr_output is None:
        raise ScrollError("OUT_DIR - (no layer TIFFs) needs --zarr_output")
    if out is None and preview:
        raise ScrollError("--preview writes into OUT_DIR: give one instead of -")
    about = {"layers": [selected.start, selected.stop], "number_of_layers": number_of_layers,
             "interval": interval, "direction": direction}
    surface_path = surface if isinstance(surface, (str, Path)) else None
    opened = Ppm(surface) if surface_path is not None else None
    try:
        return _render_surface(opened or surface, surface_path, store, out, stack_path,
                               number_of_layers, selected, offsets, stack, stack_method,
                               block_size, zarr_cache_max_size_gb, level, quiet,
                               num_threads or workers.default_threads(), preview,
                               allow_outside,
                               None if zarr_output is None else Path(zarr_output), about)
    finally:
        if opened is not None:
            opened.close()


def _render_surface(surface: Any, surface_path: str | Path | None,
                    store: str | Path | Volume, out_dir: Path | None, stack_path,
                    n_all: int, selected: range, offsets: np.ndarray, stack: range | None,
                    stack_method: str, block_size: int, cache_gb: float,
                    level: int | None, quiet: bool, threads: int, preview: bool,
                    allow_outside: bool, zarr_output: Path | None, about: dict
                    ) -> RenderStats:
    volume = store if isinstance(store, Volume) else open_volume(str(store), level)
    store_name = str(store) if not isinstance(store, Volume) else str(
        getattr(store, "location", "") or store_input(store) or store.store_path)
    dtype = np.dtype(volume.dtype)
    if dtype.kind not in "uif":
        raise ScrollError(f"{store_name}: dtype {dtype} cannot be written as layer TIFFs")
    dtype = dtype.newbyteorder("<")

    names = layer_names(n_all)[selected.start:selected.stop]
    layer_paths = [out_dir / name for name in names] if out_dir is not None else []
    paths = layer_paths + ([Path(stack_path)] if stack_path is not None else [])
    preview_paths = [out_dir / n for n in PREVIEW_NAMES] if preview and out_dir else []
    inputs = surface_inputs(surface, surface_path)
    store_dir = store_input(store)
    if store_dir is not None:
        inputs["store"] = store_dir
    outputs_named: dict[str, Path] = {}
    if out_dir is not None:
        outputs_named["OUT_DIR"] = out_dir
    if stack_path is not None:
        outputs_named["STACK"] = Path(stack_path)
    if zarr_output is not None:
        outputs_named["--zarr_output"] = zarr_output
    outputs_named.update({f"layer file {p.name}": p for p in layer_paths})
    check_output_paths(outputs_named, inputs)

    if not allow_outside:
        precheck_surface(surface, volume, store_name)

    earlier: list[str] = []
    ours: list[str] = []
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise ScrollError(f"{out_dir}: output exists and is not a directory")
        earlier = read_manifest(out_dir) if out_dir.is_dir() else []
        ours = [p.name for p in paths + preview_paths
                if resolved(p.parent) == resolved(out_dir)]
        check_replaceable(out_dir, ours, earlier)
    # a STACK.tif outside OUT_DIR: replaced only if the last render into OUT_DIR wrote it
    recorded = read_elsewhere(out_dir)
    elsewhere = [p for p in paths if out_dir is None or resolved(p.parent) != resolved(out_dir)]
    for path in elsewhere:
        check_replaceable_elsewhere(path, recorded)
    _prepare_dirs(out_dir, paths, surface.height * surface.width * dtype.itemsize)

    cache = ChunkCache(volume, int(cache_gb * 2**30))
    zarr_out = None
    if zarr_output is not None:
        zarr_out = ZarrOutput(zarr_output, offsets.shape[0], surface.height, surface.width,
                              dtype, about)
    try:
        tiffs = TiffOutputs(paths, surface.height, surface.width, dtype)
    except BaseException:
        if zarr_out is not None:
            zarr_out.abort()
        raise
    previews = Previews(surface.height, surface.width, dtype) if preview_paths else None
    try:
        # MAX_BOX_VOXELS read at call time: tests shrink it
        stats = render_tiles(surface, volume, cache, tiffs, zarr_out, previews, offsets,
                             dtype, block_size, stack, stack_method, quiet, threads,
                             store_name, allow_outside, bool(layer_paths),
                             stack_path is not None, MAX_BOX_VOXELS)
        partial = [p.with_name(p.name + PARTIAL) for p in preview_paths]
        if previews is not None:
            previews.save(*partial)
        if zarr_out is not None:
            zarr_out.finish()
        if out_dir is not None:
            # while old files give way to new ones, the manifest covers both sets
            write_manifest(out_dir, sorted(set(earlier) | set(ours)),
                           {"complete": False, "elsewhere": recorded})
        tiffs.finish(also=zip(partial, preview_paths))
    except BaseException:
        tiffs.abort()
        if zarr_out is not None:
            zarr_out.abort()
        for p in preview_paths:
            p.with_name(p.name + PARTIAL).unlink(missing_ok=True)
        raise
    if out_dir is not None:
        remove_stale(out_dir, earlier, ours)
        made = {os.path.realpath(p): signature(p) for p in elsewhere}
        write_manifest(out_dir, ours, {"complete": True, **about, "elsewhere": made})
    return stats


def _prepare_dirs(out_dir: Path | None, paths: list[Path], bytes_each: int) -> None:
    for path in paths:
        if path.is_dir():
            raise ScrollError(f"{path}: is a directory, cannot write a TIFF there")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ScrollError(f"{path.parent}: cannot create directory ({exc.strerror})"
                              ) from None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    if not paths:
        return
    need = len(paths) * bytes_each
    free = shutil.disk_usage(paths[0].parent).free
    if need > free:
        raise ScrollError(f"{paths[0].parent}: the layers need {need / 2**30:.1f} GiB, only "
                          f"{free / 2**30:.1f} GiB free")

