"""scroll_to_ome: slices -> multi-resolution OME-Zarr.

:func:`convert` checks everything it can before writing (slices, options, output), builds
the task plan (:mod:`scrollzarr.plan`), runs it, and writes the NGFF metadata. The
multiscales metadata lists only levels that are complete, and a store whose conversion
has not finished carries ``"scrollzarr": {"complete": false}`` in its attributes.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import psutil

from . import chunkio, cli, journal, ngff, plan as planning, progress, pyramid, safety, store
from .errors import Interrupted, ScrollError
from .slices import SliceStack, find_slices

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


def _executor(o: Options) -> Callable[..., None]:
    """The function that runs a plan: ``run(plan, num_threads, quiet, on_level_done=...)``.

    The default runs tasks on local threads; ``--scheduler`` hands the same plan to a
    dask.distributed cluster (imported only then, so dask is needed only for that).
    """
    if o.scheduler is None:
        return planning.run_local
    from . import distributed

    def run(plan, num_threads, quiet, **hooks):
        distributed.run_dask(plan, o.scheduler, workers=o.workers or num_threads,
                             quiet=quiet, **hooks)
    return run


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


def _check_options(o: Options) -> None:
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


def _output_dtype(stack_dtype: np.dtype, obytes: int | None) -> tuple[np.dtype, int]:
    """Return (output dtype, right shift) for ``--obytes``."""
    if obytes is None or obytes == stack_dtype.itemsize:
        return stack_dtype, 0
    if obytes == 1 and stack_dtype == np.uint16:
        return np.dtype(np.uint8), 8
    raise ScrollError(f"--obytes {obytes}: cannot convert {stack_dtype} slices "
                      "(only uint16 -> uint8 with --obytes 1)")


def _name(output: str) -> str:
    return Path(output.rstrip("/")).stem


@dataclass
class _Target:
    """What a conversion writes: its job, where the plan starts, the per-level metadata,
    the parameters the resume journal checks, and how to create the empty store."""

    job: planning.Job
    first_level: int
    levels_meta: list[tuple[str, str]]
    origin: tuple[float, float, float]
    voxel_size: float | None
    name: str
    zarr_format: int
    zarr_only: bool
    params: dict
    create: Callable[[], None]
    summary: str
    unit_option: str = "--chunk_size"  # the option that sets a task's write unit


def convert(input_dir: str | Path, output: str | Path, options: Options = Options(),
            note: Callable[[str], None] | None = None) -> str:
    """Convert the slices in ``input_dir`` to an OME-Zarr store at ``output``.

    Returns the output location. Raises :class:`ScrollError` for bad input or options,
    before anything is written whenever the problem can be seen in advance. With
    ``options.resume`` an interrupted conversion continues where its journal says.
    """
    o = options
    say = note or (lambda s: None if o.quiet else print(s, file=sys.stderr))
    _check_options(o)
    store.check_layout(o.zarr_format, o.chunk_size, o.shard_size, o.compression)
    output = str(output)
    if o.first_new_level is not None:
        target = _new_levels_target(output, o)  # reads the store itself; TIFF_DIR unused
    else:
        # --overwrite deletes OUTPUT: never when the slices lie in it (or it in them)
        safety.check_output_paths({"OUTPUT": output}, {"TIFF_DIR": input_dir})
        target = _full_target(input_dir, output, o, say)
    target.params["command"] = _command_line(input_dir, output, o)
    return _execute(output, o, target, say)


def _full_target(input_dir: str | Path, output: str, o: Options,
                 say: Callable[[str], None]) -> _Target:
    stack = find_slices(input_dir, allow_missing=o.allow_missing, note=say)
    ny, nx = stack.shape
    (x0, x1), (y0, y1), (z0, z1) = parse_ranges(o.ranges, (nx, ny, stack.z_stop))
    dtype, shift = _output_dtype(stack.dtype, o.obytes)
    if z1 <= stack.z_first or not any(z0 <= z < z1 for z in stack.paths):
        raise ScrollError(f"--ranges: z range {z0}:{z1} holds no slices "
                          f"(slices {stack.z_first}..{stack.z_stop - 1})")
    shape0 = (z1 - z0, y1 - y0, x1 - x0)
    o = _clamp_chunks(o, shape0, say)
    nlevels = 1 if o.zarr_only else o.nlevels
    shapes = [shape0]
    for _ in range(1, nlevels):
        shapes.append(pyramid.reduced_shape(shapes[-1]))
    origin = (z0, y0, x0)
    # only the z range that holds files: zeros before the first slice cost nothing
    lo, hi = max(min(stack.paths), z0), min(max(stack.paths) + 1, z1)
    _refuse_mostly_missing(stack, lo, hi)
    slice_paths = tuple(str(stack.paths[z]) if z in stack.paths else None
                        for z in range(lo, hi))
    if o.zarr_only:
        arrays = (output,)
    else:
        arrays = tuple(store.join(output, str(level)) for level in range(nlevels))
    # a task writes whole shards (or whole chunks), never part of one another task writes
    job = planning.Job(slice_paths=slice_paths, crop_y=(y0, y1), crop_x=(x0, x1),
                       arrays=arrays, shapes=tuple(shapes),
                       algorithms=("none",) + (o.algorithm,) * (nlevels - 1),
                       chunk=o.shard_size or o.chunk_size, dtype=dtype.str, shift=shift,
                       filled=_filled_spans(stack, z0, z1, nlevels, o.algorithm),
                       slice_width=nx, slice_first=lo - z0)
    layout = dict(zarr_format=o.zarr_format, shard=o.shard_size, compression=o.compression)
    own = _own(origin, complete=False)

    def create() -> None:
        if o.zarr_only:
            store.create_array(output, shape0, o.chunk_size, dtype,
                               attributes={ngff.OWN_KEY: own}, **layout)
            return
        store.create_group(output, o.zarr_format)
        store.set_attributes(output, {ngff.OWN_KEY: own})
        for level, shape in enumerate(shapes):
            store.create_array(arrays[level], shape, o.chunk_size, dtype, **layout)

    params = {
        "input": str(Path(input_dir).resolve()), "fingerprint": journal.fingerprint(slice_paths),
        "shapes": [list(s) for s in shapes], "dtype": dtype.str, "origin": list(origin),
        "chunk_size": o.chunk_size, "algorithm": o.algorithm, "zarr_only": o.zarr_only,
        "voxel_size": o.voxel_size, "zarr_format": o.zarr_format,
        "shard_size": o.shard_size, "compression": o.compression,
    }
    return _Target(job, 0, [(str(lv), "none" if lv == 0 else o.algorithm)
                            for lv in range(nlevels)],
                   origin, o.voxel_size, _name(output), o.zarr_format, o.zarr_only, params,
                   create,
                   f"{len(stack.paths)} slices of {nx}x{ny} {stack.dtype} -> {output} "
                   f"(level 0 shape z,y,x = {shape0}, {nlevels} level(s), {o.algorithm})",
                   "--shard_size" if o.shard_size else "--chunk_size")


def _refuse_mostly_missing(stack: SliceStack, lo: int, hi: int) -> None:
    """With --allow_missing, refuse a z range ``lo:hi`` holding more zero-filled slices
    than real ones (and over 1000): a stray number (a date in a name) would make a
    volume, and a task list, as long as the gap."""
    present = sum(1 for z in stack.paths if lo <= z < hi)
    missing = (hi - lo) - present
    if missing > max(present, 1000):
        numbers = sorted(z for z in stack.paths if lo <= z < hi)
        a, b = max(zip(numbers, numbers[1:]), key=lambda p: p[1] - p[0])
        raise ScrollError(f"{stack.directory}: --allow_missing would fill {missing} slices "
                          f"with zeros but only {present} exist; the largest gap, "
                          f"{b - a - 1} slices, ends at {stack.paths[b]} (move that file "
                          "away or crop z with --ranges)")


def _clamp_chunks(o: Options, shape0: tuple[int, int, int],
                  say: Callable[[str], None]) -> Options:
    """Options with ``chunk_size`` (and ``shard_size``) no larger than the smallest power
    of two that covers the largest axis of level 0 (voxels): a bigger chunk only costs
    memory (a --chunk_size of 10^5 would allocate terabytes). Chunks stay cubic and the
    same on every level."""
    cover = 1 << max(max(shape0) - 1, 0).bit_length()
    if o.chunk_size <= cover:
        return o
    say(f"note: --chunk_size {o.chunk_size} is larger than the volume (largest axis "
        f"{max(shape0)} voxels); using {cover}")
    shard = o.shard_size
    if shard is not None and shard > cover:
        say(f"note: --shard_size {shard} is larger than the volume; using {cover}")
        shard = cover
    return dataclasses.replace(o, chunk_size=cover, shard_size=shard)


def _own(origin: Sequence[float], complete: bool) -> dict:
    """Our attributes: whether the conversion finished, and the crop origin (z, y, x)."""
    return {"complete": complete, "origin_zyx": list(origin)}


def _execute(output: str, o: Options, t: _Target, say: Callable[[str], None]) -> str:
    """Run a target's plan with its journal: create or resume, record, finish."""
    started = time.monotonic()
    existing = journal.Journal.open(output) if store.is_zarr_store(output) else None
    threads = o.num_threads or os.cpu_count() or 1
    if existing is not None and o.resume:
        existing.check_matches(t.params)
        bands = {int(k): v for k, v in existing.params.get("bands", {}).items()}
        plan = _make_plan(t.job, t.first_level, o.max_gb, threads, say, bands, t.unit_option)
        record = existing
        chunkio.remove_partial_files(output)
        store.drop_consolidated(output)  # may list levels this run rewrites
        say(f"resuming {output}: {len(record.done & {x.key for x in plan.tasks})} of "
            f"{len(plan.tasks)} tasks already done")
    else:
        if existing is not None and not o.overwrite:
            command = existing.params.get("command", t.params["command"])
            raise ScrollError(f"{output}: an unfinished conversion ({len(existing.done)} "
                              f"tasks done); continue it with: {command} --resume "
                              "(or start again with --overwrite)")
        if o.resume and existing is None and _is_complete(output):
            say(f"note: {output}: conversion already complete, nothing to resume")
            return output
        if t.first_level == 0:
            _refuse_unfinished(output, o)
            store.prepare_output(output, o.overwrite)
        elif existing is not None:
            existing.remove()
        plan = _make_plan(t.job, t.first_level, o.max_gb, threads, say,
                          unit_option=t.unit_option)
        store.drop_consolidated(output)  # --first_new_level: it lists the old levels
        t.create()
        record = journal.Journal.create(output, {**t.params, "bands": plan.bands})
    say(f"{t.summary}; {store.describe(t.job.arrays[t.first_level])}, crop origin z,y,x = "
        f"{tuple(int(v) if float(v).is_integer() else v for v in t.origin)}")
    last = len(t.job.shapes) - 1

    def level_done(level: int) -> None:
        record.flush()  # the level's tasks are durable before the metadata lists it
        if not t.zarr_only:
            store.set_attributes(output, {
                **ngff.image_attributes(t.levels_meta[:level + 1], t.origin, t.voxel_size,
                                        t.name, t.zarr_format,
                                        _omero(t, level) if level == last else None),
                ngff.OWN_KEY: _own(t.origin, complete=level == last)})
            store.write_consolidated(output)
        journal.crash_point("level")

    if t.first_level > 0:
        level_done(t.first_level - 1)  # list only the complete levels while writing
    try:
        _executor(o)(plan, threads, o.quiet, on_level_done=level_done,
                     skip=lambda task: task.key in record.done,
                     on_task_done=lambda task: record.record(task.key))
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (cli turns it into Interrupted)
        raise _interrupted(output, record, plan, exc, t.params["command"]) from None
    except MemoryError:
        raise _memory_error(output, o) from None
    except OSError as exc:
        raise _disk_error(output, exc, o) from None
    except Exception as exc:
        if _is_disk_full(exc):
            raise _disk_error(output, exc, o) from None
        raise
    if t.zarr_only:
        store.set_attributes(output, {ngff.OWN_KEY: _own(t.origin, complete=True)})
    record.remove()
    level0 = int(np.prod(t.job.shapes[0])) * np.dtype(t.job.dtype).itemsize
    for line in progress.finished(output, len(t.job.shapes), time.monotonic() - started,
                                  level0, store.disk_usage(output), not t.zarr_only):
        say(line)
    return output


def _omero(t: _Target, level: int) -> dict:
    """The omero block of a finished store: its display window from ``level`` (the
    coarsest, cheap to read) and level 0's middle slice as the default z."""
    coarse = store.open_array(t.job.arrays[level], mode="r")
    return ngff.omero(t.name, coarse.dtype, ngff.display_window(coarse),
                      t.job.shapes[0][0] // 2, "0.4" if t.zarr_format == 2 else None)


def _is_complete(output: str) -> bool:
    if not store.is_zarr_store(output):
        return False
    return store.get_attributes(output).get(ngff.OWN_KEY, {}).get("complete") is True


def _refuse_unfinished(output: str, o: Options) -> None:
    """An unfinished store without a journal (killed before its first record) cannot be
    resumed: say so rather than only "already exists"."""
    if o.overwrite or not store.is_zarr_store(output):
        return
    own = store.get_attributes(output).get(ngff.OWN_KEY, {})
    if own.get("complete") is False:
        raise ScrollError(f"{output}: an unfinished conversion that cannot be resumed "
                          "(it stopped before recording any task); start again with "
                          "--overwrite")


def _is_disk_full(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _interrupted(output: str, record: journal.Journal, plan: planning.Plan,
                 exc: KeyboardInterrupt, command: str) -> Interrupted:
    """Journal every finished task, then say how many are saved and how to continue."""
    signum = getattr(exc, "signum", signal.SIGINT)
    try:
        record.flush()
    except Exception as err:  # the interrupt is still reported; resume redoes more
        return Interrupted(signum, f"{output}: could not save the finished tasks "
                                   f"({err}); continue with: {command} --resume")
    keys = {task.key for task in plan.tasks}
    return Interrupted(signum, f"{output}: {len(record.done & keys)} of {len(keys)} tasks "
                               f"saved; continue with: {command} --resume")


def _memory_error(output: str, o: Options) -> ScrollError:
    # --resume would fail the same way: advise what changes the memory needed
    budget = "the default" if o.max_gb is None else f"{o.max_gb:g}"
    return ScrollError(f"{output}: out of memory; lower --max_gb (now {budget}) or "
                       "--num_threads and continue with --resume, or lower --chunk_size "
                       "and start again with --overwrite")


def _is_out_of_memory(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, MemoryError) or (isinstance(exc, OSError)
                                            and exc.errno == errno.ENOMEM):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _disk_error(output: str, exc: BaseException, o: Options = Options()) -> ScrollError:
    if _is_out_of_memory(exc):
        return _memory_error(output, o)
    if _is_disk_full(exc):
        return ScrollError(f"{output}: disk full (No space left on device); free some "
                           "space and run the same command with --resume")
    return ScrollError(f"{output}: write failed ({exc}); fix the cause and run the same "
                       "command with --resume")


def _command_line(input_dir: str | Path, output: str, o: Options) -> str:
    """The command that reproduces these options (for resume hints): this interpreter,
    the script's absolute path and absolute local paths, shell-quoted, so it can be
    pasted into any shell in any directory."""
    def where(location: str | Path) -> str:
        return str(location) if store.is_url(location) else os.path.abspath(location)
    words = cli.program_command("scroll_to_ome.py") + [where(input_dir), where(output)]
    defaults = Options()
    for name in ("chunk_size", "nlevels", "max_gb", "algorithm", "ranges",
                 "first_new_level", "obytes", "num_threads", "voxel_size", "zarr_format",
                 "shard_size", "compression", "scheduler", "workers"):
        value = getattr(o, name)
        if value != getattr(defaults, name):
            words += [f"--{name}", str(value)]
    for name in ("zarr_only", "allow_missing"):
        if getattr(o, name):
            words.append(f"--{name}")
    return shlex.join(words)


def _filled_spans(stack: SliceStack, z0: int, z1: int, nlevels: int,
                  algorithm: str) -> tuple[Span, ...]:
    """Per level, the z span that can hold non-zero data (level-0 indices start at z0)."""
    lo = max(min(stack.paths), z0) - z0
    hi = min(max(stack.paths) + 1, z1) - z0
    spans = [(lo, hi)]
    h = pyramid.halo(algorithm)
    nz = z1 - z0
    for _ in range(1, nlevels):
        nz = -(-nz // 2)
        lo, hi = max((lo - h) // 2, 0), min(-(-(hi + h) // 2), nz)
        spans.append((lo, hi))
    return tuple(spans)


def _make_plan(job: planning.Job, first_level: int, max_gb: float | None, threads: int,
               say: Callable[[str], None], bands: dict[int, Sequence[int]] | None = None,
               unit_option: str = "--chunk_size") -> planning.Plan:
    """Plan tasks whose parallel runs fit the memory budget (see plan.make_plan)."""
    budget = max_gb if max_gb is not None else default_budget_gb()
    if max_gb is None:
        say(f"memory budget: {budget:.1f} GiB (half the available RAM; --max_gb to change)")
    try:
        plan = planning.make_plan(job, first_level, budget * 2**30, threads, bands)
    except ValueError as exc:
        raise ScrollError(f"--max_gb {budget:g} is too small: one task of one chunk row "
                          f"needs {float(str(exc)):.3g} GiB (raise --max_gb, or lower "
                          f"{unit_option})") from None
    fewer = sorted({p for _, _, p in plan.bands.values() if p < threads})
    if fewer and bands is None:
        say(f"note: --max_gb {budget:g} fits only {fewer[0]} parallel task(s) in some "
            "stages")
    return plan


def _shard_of(array) -> int | None:
    """Edge of the shards of a sharded v3 array, None if it is not sharded."""
    shards = getattr(array, "shards", None)
    return shards[0] if shards else None


def _new_levels_target(output: str, o: Options) -> _Target:
    """``--first_new_level N``: (re)build levels N.. of an existing store from level N-1."""
    if not store.is_zarr_store(output):
        raise ScrollError(f"{output}: --first_new_level needs an existing OME-Zarr store")
    attrs = store.get_attributes(output)
    ms = ngff.multiscales_of(attrs)
    if not ms:
        raise ScrollError(f"{output}: no multiscales metadata; cannot add levels")
    datasets = ms[0]["datasets"]
    n = o.first_new_level
    if n > len(datasets):
        raise ScrollError(f"--first_new_level {n}: beyond the existing levels "
                          f"(store has levels 0..{len(datasets) - 1})")
    if o.nlevels < len(datasets):
        # create() rebuilds only levels n..nlevels-1: the rest would stay on disk unlisted
        left = [d["path"] for d in datasets[o.nlevels:]]
        raise ScrollError(f"--nlevels {o.nlevels}: the store has {len(datasets)} levels; "
                          f"level(s) {', '.join(left)} would be left on disk without "
                          f"being listed (use --nlevels {len(datasets)} or more)")
    replaced = [d["path"] for d in datasets[n:]] + [
        str(lv) for lv in range(len(datasets), o.nlevels)
        if store.is_zarr_store(store.join(output, str(lv)))]
    if replaced and not store.is_own_store(output):
        raise ScrollError(f"{output}: --first_new_level {n} would replace level(s) "
                          f"{', '.join(replaced)} of a store that scroll_to_ome.py did not "
                          f"make; add levels after the last one (--first_new_level "
                          f"{len(datasets)}) or work on a copy")
    src = store.open_array(store.join(output, datasets[n - 1]["path"]), mode="r")
    chunk = src.chunks[0]
    shard = _shard_of(src)
    algorithms_old = ms[0].get("metadata", {}).get("algorithms") or (
        ["none"] + [ms[0].get("type", "mean")] * (len(datasets) - 1))
    shapes = [tuple(store.open_array(store.join(output, d["path"]), mode="r").shape)
              for d in datasets[:n]]
    for _ in range(n, o.nlevels):
        shapes.append(pyramid.reduced_shape(shapes[-1]))
    scale0, trans0 = ngff.transforms(datasets[0])
    voxel = scale0[0] if any(a.get("unit") for a in ms[0]["axes"]) else None
    origin = tuple(attrs.get(ngff.OWN_KEY, {}).get("origin_zyx")
                   or (t / (voxel or 1.0) for t in trans0))
    algorithms = list(algorithms_old[:n]) + [o.algorithm] * (o.nlevels - n)
    arrays = tuple(store.join(output, str(level)) for level in range(o.nlevels))
    zarr_format = src.metadata.zarr_format
    compression = store.compression_of(src)
    job = planning.Job(slice_paths=(), crop_y=(0, 0), crop_x=(0, 0), arrays=arrays,
                       shapes=tuple(shapes), algorithms=tuple(algorithms),
                       chunk=shard or chunk, dtype=np.dtype(src.dtype).str)

    def create() -> None:
        for level in range(n, len(datasets)):
            store.remove(store.join(output, datasets[level]["path"]))
        for level in range(n, o.nlevels):
            store.create_array(arrays[level], shapes[level], chunk, src.dtype,
                               zarr_format=zarr_format, shard=shard, compression=compression)

    params = {"first_new_level": n, "shapes": [list(s) for s in shapes],
              "algorithm": o.algorithm, "nlevels": o.nlevels}
    return _Target(job, n, [(str(lv), algorithms[lv]) for lv in range(o.nlevels)],
                   origin, voxel, ms[0].get("name", _name(output)), zarr_format, False,
                   params, create, f"adding levels {n}..{o.nlevels - 1} to {output}",
                   "--shard_size" if shard else "--chunk_size")
