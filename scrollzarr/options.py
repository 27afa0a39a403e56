"""The options of a conversion (scroll_to_ome.py's command line) and their checks.

Axis order: ``--ranges`` is x, y, z on the command line, as every size option; arrays
and shapes are (z, y, x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import psutil

from . import pyramid
from .errors import ScrollError
from .window import parse_window

Span = tuple[int, int]


@dataclass(frozen=True)
class Options:
    """The options of scroll_to_ome.py (see the README for each)."""

    chunk_size: int = 128
    nlevels: int = 6
    max_gb: float | None = None
    zarr_only: bool = False
    overwrite: bool = False
    algorithm: str = "mean"
    ranges: str | None = None
    first_new_level: int | None = None
    obytes: int | None = None
    window: str | None = None  # --window LO:HI | auto[:P_LO:P_HI] (scrollzarr.window)
    num_threads: int | None = None
    voxel_size: float | None = None
    allow_missing: bool = False
    quiet: bool = False
    scheduler: str | None = None  # None: local threads; "local" or tcp://HOST:PORT: dask
    workers: int | None = None  # workers of a LocalCluster with scheduler "local"
    zarr_format: int = 2
    shard_size: int | None = None  # zarr v3: edge of a shard (a multiple of chunk_size)
    compression: str = "none"
    resume: bool = False
    # not options of the command line: who calls convert, for messages and resume hints
    program: str = "scroll_to_ome.py"  # the script a resume hint runs
    input_label: str = "TIFF_DIR"  # what the input argument is called in messages



def parse_ranges(text: str | None, sizes_xyz: tuple[int, int, int]) -> list[Span]:
    """Parse ``--ranges X,Y,Z`` (each ``min:max`` in python slice syntax, step 1, empty =
    all; fewer than three parts leave the rest whole) against the extent ``sizes_xyz``.

    Returns ``[(x0, x1), (y0, y1), (z0, z1)]`` with ``0 <= a < b <= size``; negative
    bounds count from the end as in python. Raises :class:`ScrollError` for malformed,
    empty or out-of-bounds ranges.
    """
    parts = [] if text is None or text.strip() == "" else text.split(",")
    if len(parts) > 3:
        raise ScrollError(f"--ranges {text!r}: at most three comma-separated ranges (x,y,z)")
    parts += [""] * (3 - len(parts))
    spans = []
    for axis, part, size in zip("xyz", parts, sizes_xyz):
        part = part.strip()
        if part in ("", ":"):
            spans.append((0, size))
            continue
        fields = part.split(":")
        if len(fields) == 3 and fields[2].strip() in ("", "1"):
            fields = fields[:2]
        if len(fields) != 2:
            raise ScrollError(f"--ranges: {axis} range {part!r} is not min:max (step 1)")
        bounds = []
        for value, default in zip(fields, (0, size)):
            value = value.strip()
            if value == "":
                bounds.append(default)
                continue
            try:
                v = int(value)
            except ValueError:
                raise ScrollError(f"--ranges: {axis} range {part!r} has a non-integer "
                                  f"bound {value!r}") from None
            if v < 0:
                v += size
            if not 0 <= v <= size:
                raise ScrollError(f"--ranges: {axis} range {part!r} is outside the "
                                  f"volume (0:{size})")
            bounds.append(v)
        if bounds[0] >= bounds[1]:
            raise ScrollError(f"--ranges: {axis} range {part!r} is empty")
        spans.append((bounds[0], bounds[1]))
    return spans


def default_budget_gb() -> float:
    """Half the memory available now, in GiB: leaves room for the page cache."""
    return psutil.virtual_memory().available / 2**30 / 2


def check_options(o: Options) -> None:
    """Defensive checks for library callers (the script's parser checks the same values
    with :func:`scrollzarr.cli.number`): every number finite and in range."""
    for name, value in (("chunk_size", o.chunk_size), ("nlevels", o.nlevels),
                        ("max_gb", o.max_gb), ("num_threads", o.num_threads),
                        ("voxel_size", o.voxel_size), ("workers", o.workers),
                        ("shard_size", o.shard_size), ("first_new_level", o.first_new_level)):
        if value is not None and not (isinstance(value, (int, float))
                                      and math.isfinite(value)):
            raise ScrollError(f"--{name} {value!r}: must be a finite number")
    if o.chunk_size <= 0:
        raise ScrollError(f"--chunk_size {o.chunk_size}: must be a positive integer")
    if o.nlevels <= 0:
        raise ScrollError(f"--nlevels {o.nlevels}: must be at least 1 (level 0)")
    if o.max_gb is not None and o.max_gb <= 0:
        raise ScrollError(f"--max_gb {o.max_gb}: must be positive")
    if o.algorithm not in pyramid.ALGORITHMS:
        raise ScrollError(f"--algorithm {o.algorithm}: choose one of "
                          + ", ".join(pyramid.ALGORITHMS))
    if o.obytes not in (None, 1, 2):
        raise ScrollError(f"--obytes {o.obytes}: must be 1 (uint8) or 2 (uint16)")
    if o.window is not None:
        parse_window(o.window)  # names --window and the text
        if o.obytes == 2:
            raise ScrollError(f"--window {o.window} writes uint8: it cannot be combined "
                              "with --obytes 2")
        if o.first_new_level is not None:
            raise ScrollError("--window cannot be combined with --first_new_level (which "
                              "builds levels from the store, not from the input)")
    if o.num_threads is not None and o.num_threads <= 0:
        raise ScrollError(f"--num_threads {o.num_threads}: must be at least 1")
    if o.scheduler is not None or o.workers is not None:
        from .distributed import check_scheduler  # checks the words; imports no dask

        if o.scheduler is None:
            raise ScrollError("--workers needs --scheduler local")
        check_scheduler(o.scheduler, o.workers)
    if o.workers is not None and o.workers <= 0:
        raise ScrollError(f"--workers {o.workers}: must be at least 1")
    if o.voxel_size is not None and not o.voxel_size > 0:
        raise ScrollError(f"--voxel_size {o.voxel_size}: must be positive (micrometers)")
    if o.first_new_level is not None:
        if o.zarr_only:
            raise ScrollError("--first_new_level cannot be combined with --zarr_only")
        if o.first_new_level < 1:
            raise ScrollError(f"--first_new_level {o.first_new_level}: must be at least 1")
        if o.first_new_level >= o.nlevels:
            raise ScrollError(f"--first_new_level {o.first_new_level}: must be below "
                              f"--nlevels {o.nlevels}")
