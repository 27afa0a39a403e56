"""scroll_to_ome: a source -> multi-resolution OME-Zarr.

:func:`convert` checks everything it can before writing (input, options, output), turns
options and source into a :class:`~scrollzarr.spec.ConversionSpec`, plans the tasks
(:mod:`scrollzarr.plan`), runs them on an executor and writes the NGFF metadata. The
multiscales metadata lists only levels that are complete, and a store whose conversion
has not finished carries ``"scrollzarr": {"complete": false}`` in its attributes.
"""

from __future__ import annotations

import errno
import math
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import chunkio, cli, journal, ngff, plan as planning, progress, safety, spec as specs
from . import store, window
from .errors import Interrupted, ScrollError
from .options import Options, check_options, default_budget_gb, parse_ranges
from .output_state import OutputState, inspect_output
from .sources import Source, open_input

__all__ = ["Options", "convert", "default_budget_gb", "parse_ranges"]


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


def convert(source: Source | str | Path, output: str | Path, options: Options = Options(),
            note: Callable[[str], None] | None = None) -> str:
    """Convert ``source`` (a :class:`~scrollzarr.sources.Source`, or a path that
    :func:`~scrollzarr.sources.open_input` opens) to an OME-Zarr store at ``output``.

    Returns the output location. Raises :class:`ScrollError` for bad input or options,
    before anything is written whenever the problem can be seen in advance. With
    ``options.resume`` an interrupted conversion continues where its journal says.
    """
    o = options
    say = note or (lambda s: None if o.quiet else print(s, file=sys.stderr))
    check_options(o)
    store.check_layout(o.zarr_format, o.chunk_size, o.shard_size, o.compression)
    output = str(output)
    where = source.location if isinstance(source, Source) else source
    if o.first_new_level is not None:
        spec, src = specs.new_levels_spec(o, output), None  # reads the store; no input
    else:
        # --overwrite deletes OUTPUT: never when the input lies in it (or it in them)
        if not store.is_url(where):
            safety.check_output_paths({"OUTPUT": output}, {o.input_label: where})
        src = source if isinstance(source, Source) else open_input(
            source, allow_missing=o.allow_missing, note=say)
        spec = specs.full_spec(o, src, output)
        if spec.chunk < o.chunk_size:
            say(f"note: --chunk_size {o.chunk_size} is larger than the volume (largest "
                f"axis {max(spec.shapes[0])} voxels); using {spec.chunk}")
        if o.shard_size is not None and spec.shard < o.shard_size:
            say(f"note: --shard_size {o.shard_size} is larger than the volume; using "
                f"{spec.shard}")
        if o.window is not None:
            spec = _with_window(o, spec, src, say)
    params = {**specs.journal_params(spec, src), "command": _command_line(where, output, o)}
    return _execute(o, spec, specs.job(spec, src), params, specs.summary(spec, src), say)


def _execute(o: Options, spec: specs.ConversionSpec, job: planning.Job, params: dict,
             summary: str, say: Callable[[str], None]) -> str:
    """Run a spec's plan with its journal: create or resume, record, finish."""
    started = time.monotonic()
    output = spec.output
    threads = o.num_threads or os.cpu_count() or 1
    state = inspect_output(output)
    existing = journal.Journal.open(output) if state is OutputState.RESUMABLE else None
    match state:
        case OutputState.RESUMABLE if o.resume:
            existing.check_matches(params)
            bands = {int(k): v for k, v in existing.params.get("bands", {}).items()}
            plan = _make_plan(job, spec.first_level, o.max_gb, threads, say, bands,
                              spec.unit_option)
            record = existing
            chunkio.remove_partial_files(output)
            store.drop_consolidated(output)  # may list levels this run rewrites
            say(f"resuming {output}: {len(record.done & {x.key for x in plan.tasks})} of "
                f"{len(plan.tasks)} tasks already done")
        case OutputState.RESUMABLE if not o.overwrite:
            command = existing.params.get("command", params["command"])
            raise ScrollError(f"{output}: an unfinished conversion ({len(existing.done)} "
                              f"tasks done); continue it with: {command} --resume "
                              "(or start again with --overwrite)")
        case OutputState.COMPLETE if o.resume:
            say(f"note: {output}: conversion already complete, nothing to resume")
            return output
        case OutputState.UNFINISHED if spec.first_level == 0 and not o.overwrite:
            # killed before its first record: it cannot be resumed, say so
            raise ScrollError(f"{output}: an unfinished conversion that cannot be resumed "
                              "(it stopped before recording any task); start again with "
                              "--overwrite")
        case _:
            if spec.first_level == 0:
                store.prepare_output(output, o.overwrite)
            elif existing is not None:
                existing.remove()
            plan = _make_plan(job, spec.first_level, o.max_gb, threads, say,
                              unit_option=spec.unit_option)
            store.drop_consolidated(output)  # --first_new_level: it lists the old levels
            store.create(spec)
            record = journal.Journal.create(output, {**params, "bands": plan.bands})
    say(f"{summary}; {store.describe(spec.arrays[spec.first_level])}, crop origin z,y,x = "
        f"{tuple(int(v) if float(v).is_integer() else v for v in spec.origin)}")
    last = len(spec.shapes) - 1

    models = None if spec.zarr_only else ngff.load_models_in_background(spec.zarr_format)

    def level_done(level: int) -> None:
        record.flush()  # the level's tasks are durable before the metadata lists it
        if models is not None:
            models.join()
            store.set_attributes(output, {
                **ngff.image_attributes(spec.levels_meta[:level + 1], spec.origin,
                                        spec.voxel_size, spec.name, spec.zarr_format,
                                        _omero(spec, level) if level == last else None),
                ngff.OWN_KEY: store.own_attributes(spec.origin, complete=level == last,
                                                   window=spec.window_attributes)})
            store.write_consolidated(output)
        journal.crash_point("level")

    if spec.first_level > 0:
        level_done(spec.first_level - 1)  # list only the complete levels while writing
    try:
        _executor(o)(plan, threads, o.quiet, on_level_done=level_done,
                     skip=lambda task: task.key in record.done,
                     on_task_done=lambda task: record.record(task.key))
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (cli turns it into Interrupted)
        raise _interrupted(output, record, plan, exc, params["command"]) from None
    except MemoryError:
        raise _memory_error(output, o) from None
    except OSError as exc:
        raise _disk_error(output, exc, o) from None
    except Exception as exc:
        if _is_disk_full(exc):
            raise _disk_error(output, exc, o) from None
        raise
    if spec.zarr_only:
        store.set_attributes(output, {ngff.OWN_KEY: store.own_attributes(
            spec.origin, complete=True, window=spec.window_attributes)})
    record.remove()
    level0 = int(np.prod(spec.shapes[0])) * np.dtype(spec.dtype).itemsize
    for line in progress.finished(output, len(spec.shapes), time.monotonic() - started,
                                  level0, store.disk_usage(output), not spec.zarr_only):
        say(line)
    return output


def _with_window(o: Options, spec: specs.ConversionSpec, src: Source,
                 say: Callable[[str], None]) -> specs.ConversionSpec:
    """``spec`` through the ``--window`` of ``o``; an auto window is the one the journal
    recorded when resuming (never sampled again), else sampled from the cropped input."""
    request = window.parse_window(o.window)
    text = (f"auto:{request.p_lo!r}:{request.p_hi!r}" if isinstance(request, window.AutoWindow)
            else f"{request.lo!r}:{request.hi!r}")
    if isinstance(request, window.Window):
        return specs.windowed(spec, request, text, src.dtype)
    recorded = None
    if o.resume and inspect_output(spec.output) is OutputState.RESUMABLE:
        recorded = journal.Journal.open(spec.output).params.get("window")
    if recorded is not None:  # a different request is refused by the journal's check
        lo, hi = recorded["lo"], recorded["hi"]
        how = "recorded by the first run"
    else:
        box = tuple((c, c + n) for c, n in zip(spec.crop, spec.shapes[0]))
        lo, hi = window.auto_window(src, box, request.p_lo, request.p_hi, quiet=o.quiet)
        how = (f"the {request.p_lo:g} and {request.p_hi:g} percentiles of the non-zero "
               f"voxels of every {window.STEP}th voxel")
    say(f"--window {o.window}: LO {lo:g}, HI {hi:g} ({how})")
    return specs.windowed(spec, (lo, hi), text, src.dtype)


def _omero(spec: specs.ConversionSpec, level: int) -> dict:
    """The omero block of a finished store: its display window from ``level`` (the
    coarsest, cheap to read) and level 0's middle slice as the default z."""
    coarse = store.open_array(spec.arrays[level], mode="r")
    return ngff.omero(spec.name, coarse.dtype, ngff.display_window(coarse),
                      spec.shapes[0][0] // 2, "0.4" if spec.zarr_format == 2 else None)


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
    words = cli.program_command(o.program) + [where(input_dir), where(output),
                                              *o.program_args]
    defaults = Options()
    for name in ("chunk_size", "nlevels", "max_gb", "algorithm", "ranges",
                 "first_new_level", "obytes", "window", "num_threads", "voxel_size",
                 "zarr_format", "shard_size", "compression", "scheduler", "workers"):
        value = getattr(o, name)
        if value != getattr(defaults, name):
            words += [f"--{name}", str(value)]
    for name in ("zarr_only", "allow_missing"):
        if getattr(o, name):
            words.append(f"--{name}")
    return shlex.join(words)


def _make_plan(job: planning.Job, first_level: int, max_gb: float | None, threads: int,
               say: Callable[[str], None], bands: dict[int, Sequence[int]] | None = None,
               unit_option: str = "--chunk_size") -> planning.Plan:
    """Plan tasks whose parallel runs fit the memory budget (see plan.make_plan)."""
    budget = max_gb if max_gb is not None else default_budget_gb()
    if max_gb is None:
        say(f"memory budget: {budget:.1f} GiB (half the available RAM; --max_gb to change)")
    try:
        plan = planning.make_plan(job, first_level, budget * 2**30, threads, bands)
    except planning.BudgetTooSmall:
        need = planning.smallest_budget(job, first_level, threads) / 2**30
        scale = 10 ** (2 - math.floor(math.log10(need)))
        need = math.ceil(need * scale) / scale  # 3 digits, rounded up: enough as given
        raise ScrollError(f"--max_gb {budget:g} is too small: this conversion needs at "
                          f"least {need:g} GiB (raise --max_gb, or lower {unit_option})"
                          ) from None
    if hasattr(job.source, "cache_bytes"):  # input chunks that two tasks read
        job.source.cache_bytes = plan.source_cache
    fewer = sorted({p for _, _, p in plan.bands.values() if p < threads})
    if fewer and bands is None:
        say(f"note: --max_gb {budget:g} fits only {fewer[0]} parallel task(s) in some "
            "stages")
    return plan
