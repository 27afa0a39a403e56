"""The conversion plan: independent, chunk-aligned tasks, and a local executor.

A conversion is a list of :class:`Task` s. A task writes one region of one level: a slab
one chunk thick in z, a band of whole chunk rows in y, the full width in x. Level-0 tasks
read the slice rows they need straight from the TIFFs; a level-``l`` task reads the region
of level ``l - 1`` below it (plus a halo for gaussian) and downsamples it. Tasks of one
level write disjoint, chunk-aligned regions, so they may run in any order or in parallel;
a task depends only on the tasks of the level above whose regions it reads
(:func:`dependencies`). Everything a task needs travels in a small picklable :class:`Job`,
so other executors (a process pool, dask) can run the same plan.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from . import pyramid, slices, store

Span = tuple[int, int]


@dataclass(frozen=True)
class Job:
    """What every task of one conversion needs to know (picklable, no arrays).

    ``slice_paths[i]`` is the TIFF of level-0 z index ``i`` (None where a slice is
    missing); ``crop_y``/``crop_x`` the slice rows/columns that level 0 holds.
    ``arrays[l]`` is the path of level ``l``; ``shapes[l]`` its (z, y, x) shape;
    ``algorithms[l]`` how level ``l`` is made from ``l - 1`` (unused for level 0).
    ``shift`` right-shifts input values (8 for ``--obytes 1`` on uint16 input).
    ``filled[l]`` is the z span of level ``l`` that can hold non-zero data.
    """

    slice_paths: tuple[str | None, ...]
    crop_y: Span
    crop_x: Span
    arrays: tuple[str, ...]
    shapes: tuple[tuple[int, int, int], ...]
    algorithms: tuple[str, ...]
    chunk: int
    dtype: str
    shift: int = 0
    filled: tuple[Span, ...] = ()


@dataclass(frozen=True, order=True)
class Task:
    """Write rows ``y`` of slab ``z`` (both in voxels of ``level``; x is the full width)."""

    level: int
    z: Span
    y: Span

    @property
    def key(self) -> str:
        return f"{self.level}/{self.z[0]}-{self.z[1]}/{self.y[0]}-{self.y[1]}"


@dataclass
class Plan:
    """All tasks of a conversion, level by level, and the job they share.

    ``levels[l]`` lists the tasks of level ``l`` (possibly none, where the level holds
    only zeros); ``bands[l]`` is the height in rows of that level's task bands.
    """

    job: Job
    levels: dict[int, list[Task]] = field(default_factory=dict)
    bands: dict[int, int] = field(default_factory=dict)

    @property
    def tasks(self) -> list[Task]:
        return [t for level in self.levels.values() for t in level]


def band_rows(width: int, chunk: int, itemsize: int, budget_bytes: float,
              rows: int, factor: float) -> int:
    """Rows (a multiple of ``chunk``, at most ``rows`` rounded up) of a task band whose
    working set, ``factor * chunk * band * width * itemsize`` bytes, fits the budget.
    Returns 0 when not even one chunk row fits."""
    per_chunk_row = factor * chunk * chunk * width * itemsize
    n = int(budget_bytes // per_chunk_row)
    return min(n, -(-rows // chunk)) * chunk


# working set of a task relative to its output band: level 0 holds the band and zarr's
# write copies; a reduce task holds its 8x larger input (float64 for gaussian)
LEVEL0_FACTOR = 2.0
REDUCE_FACTOR = {"gaussian": 8 * 4 + 2, "mode": 8 * 3}


def make_plan(job: Job, first_level: int, task_budget: float,
              bands: dict[int, int] | None = None) -> Plan:
    """Split levels ``first_level..`` of ``job`` into tasks that each fit ``task_budget``
    bytes of working memory, or into bands of the given heights (``bands[level]``, rows;
    a resumed conversion keeps its first run's tasks). Raises ValueError (with the
    needed size in GiB) if one chunk row does not fit."""
    plan = Plan(job)
    itemsize = np.dtype(job.dtype).itemsize
    c = job.chunk
    for level in range(first_level, len(job.shapes)):
        nz, ny, nx = job.shapes[level]
        if level == 0:
            factor = LEVEL0_FACTOR
        else:
            factor = 8.0 * REDUCE_FACTOR.get(job.algorithms[level], 2)
        if bands and level in bands:
            band = int(bands[level])
        else:
            band = band_rows(nx, c, itemsize, task_budget, ny, factor)
        if band == 0:
            need = factor * c * c * nx * itemsize
            raise ValueError(str(need / 2**30))
        z_lo, z_hi = job.filled[level] if job.filled else (0, nz)
        tasks = []
        for z0 in range((z_lo // c) * c, z_hi, c):
            for y0 in range(0, ny, band):
                tasks.append(Task(level, (z0, min(z0 + c, nz)), (y0, min(y0 + band, ny))))
        plan.levels[level] = tasks
        plan.bands[level] = band
    return plan


def source_region(job: Job, task: Task) -> tuple[Span, Span]:
    """The (z, y) spans of level ``task.level - 1`` a reduce task reads, halo included."""
    h = pyramid.halo(job.algorithms[task.level])
    nz, ny, _ = job.shapes[task.level - 1]
    return ((max(2 * task.z[0] - h, 0), min(2 * task.z[1] + h, nz)),
            (max(2 * task.y[0] - h, 0), min(2 * task.y[1] + h, ny)))


def dependencies(job: Job, plan: Plan) -> dict[Task, list[Task]]:
    """For each reduce task, the tasks of the level above whose regions it reads."""
    deps: dict[Task, list[Task]] = {}
    for tasks in plan.levels.values():
        for task in tasks:
            above = plan.levels.get(task.level - 1, [])
            (sz0, sz1), (sy0, sy1) = (source_region(job, task) if task.level else
                                      ((0, 0), (0, 0)))
            deps[task] = [t for t in above
                          if t.z[0] < sz1 and sz0 < t.z[1] and t.y[0] < sy1 and sy0 < t.y[1]]
    return deps


_arrays = threading.local()


def _array(path: str):
    """Open a level array once per thread (zarr array objects are cheap but not free)."""
    cache = getattr(_arrays, "cache", None)
    if cache is None:
        cache = _arrays.cache = {}
    if path not in cache:
        cache[path] = store.open_array(path)
    return cache[path]


def run_task(job: Job, task: Task) -> int:
    """Run one task: compute its region and write it. Returns the bytes it produced."""
    if task.level == 0:
        data = read_level0(job, task)
    else:
        data = reduce_region(job, task)
    dst = _array(job.arrays[task.level])
    # zarr leaves all-zero chunks unwritten and deletes stale ones (a resumed task may
    # overwrite chunks of a killed run), so the region is always written
    dst[task.z[0]:task.z[1], task.y[0]:task.y[1], :] = data
    return data.nbytes


def read_level0(job: Job, task: Task) -> np.ndarray:
    """Read the slice rows of a level-0 task into a (z, y, x) array of the job's dtype."""
    (z0, z1), (y0, y1) = task.z, task.y
    ry0, ry1 = job.crop_y[0] + y0, job.crop_y[0] + y1
    cx0, cx1 = job.crop_x
    out = np.zeros((z1 - z0, y1 - y0, cx1 - cx0), dtype=job.dtype)
    rows = None
    for i, z in enumerate(range(z0, z1)):
        path = job.slice_paths[z] if z < len(job.slice_paths) else None
        if path is None:
            continue
        rows = slices.read_rows(Path(path), ry0, ry1, out=rows)
        part = rows[:, cx0:cx1]
        if job.shift:
            out[i] = part >> job.shift
        else:
            out[i] = part
    return out


def reduce_region(job: Job, task: Task) -> np.ndarray:
    """Downsample the level-above region below ``task`` into the task's region."""
    (sz0, sz1), (sy0, sy1) = source_region(job, task)
    src = _array(job.arrays[task.level - 1])
    block = src[sz0:sz1, sy0:sy1, :]
    algorithm = job.algorithms[task.level]
    # context = halo voxels read beyond the task's own 2x region
    context = ((2 * task.z[0] - sz0, max(sz1 - 2 * task.z[1], 0)),
               (2 * task.y[0] - sy0, max(sy1 - 2 * task.y[1], 0)),
               (0, 0))
    return pyramid.downsample(block, algorithm, context)


def run_local(plan: Plan, num_threads: int, quiet: bool = False,
              on_level_done: Callable[[int], None] = lambda level: None,
              skip: Callable[[Task], bool] = lambda task: False,
              on_task_done: Callable[[Task], None] = lambda task: None) -> None:
    """Run the plan level by level on a thread pool of ``num_threads``.

    ``skip(task)`` may leave out tasks already done (resume); ``on_task_done`` is called
    after a task's chunks are written, ``on_level_done(level)`` after its last task.
    The first failing task stops the run and its exception propagates.
    """
    for level, tasks in plan.levels.items():
        todo = [t for t in tasks if not skip(t)]
        total = sum(_task_bytes(plan.job, t) for t in tasks)
        done_bytes = total - sum(_task_bytes(plan.job, t) for t in todo)
        with tqdm(total=total, initial=done_bytes, unit="B", unit_scale=True,
                  unit_divisor=1024, desc=f"level {level}", disable=quiet,
                  leave=True, dynamic_ncols=True) as bar:
            _run_tasks(plan.job, todo, num_threads, bar, on_task_done)
        on_level_done(level)


def _task_bytes(job: Job, task: Task) -> int:
    nx = job.shapes[task.level][2]
    return (task.z[1] - task.z[0]) * (task.y[1] - task.y[0]) * nx * np.dtype(job.dtype).itemsize


def _run_tasks(job: Job, tasks: Sequence[Task], num_threads: int, bar: tqdm,
               on_task_done: Callable[[Task], None]) -> None:
    if num_threads <= 1:
        for task in tasks:
            bar.update(run_task(job, task))
            on_task_done(task)
        return
    with ThreadPoolExecutor(max_workers=num_threads) as pool:
        pending = set()
        queue = iter(tasks)
        futures = {}

        def submit() -> bool:
            task = next(queue, None)
            if task is None:
                return False
            fut = pool.submit(run_task, job, task)
            futures[fut] = task
            pending.add(fut)
            return True

        # keep a bounded number of tasks in flight so memory stays within the budget
        for _ in range(num_threads):
            submit()
        while pending:
            done, _ = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in done:
                pending.discard(fut)
                exc = fut.exception()
                if exc is not None:
                    for other in pending:
                        other.cancel()
                    raise exc
                bar.update(fut.result())
                on_task_done(futures.pop(fut))
                submit()
