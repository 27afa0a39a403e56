"""The conversion plan: independent, chunk-aligned tasks, and a local executor.

A conversion is a list of :class:`Task` s. A task writes one region, a slab of whole
chunk rows in z and y and the full width in x, of one level and, computed from it in
memory, of the levels below it too (a "tower"): level-0 tasks read the slice rows they
need straight from the TIFFs and write levels 0, 1 and, where the scroll is large enough
for at least two such tasks per thread, 2, so neither level 0 nor level 1 is read back;
later tasks read their region of the level above (plus a halo for gaussian) and write the
next one or two levels. Each slice byte is read once, and only 1/64 of the data (1/8
where level-0 tasks stop at level 1) is read back from the store.

Tasks of one stage write disjoint, chunk-aligned (or shard-aligned) regions, so they may
run in any order or in parallel; a task depends only on the tasks whose regions it reads
(:func:`dependencies`). Everything a task needs travels in a small picklable
:class:`Job`, so other executors (a process pool, dask) can run the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from . import chunkio, progress, pyramid, scratch, window, workers
from .sources.base import Source, chunks_of

Span = tuple[int, int]


@dataclass(frozen=True)
class Job:
    """What every task of one conversion needs to know (picklable, no arrays).

    ``source`` is what level 0 is read from and ``crop`` the (z, y, x) voxel of the
    source that is level 0's (0, 0, 0) (the source may be None when the plan starts
    above level 0). ``arrays[l]`` is the path of level ``l``; ``shapes[l]`` its (z, y, x)
    shape; ``algorithms[l]`` how level ``l`` is made from ``l - 1`` (unused for level 0).
    ``chunk`` is the edge of the unit a task writes whole (the chunk, or the shard of a
    sharded store). ``shift`` right-shifts source values (8 for ``--obytes 1`` on uint16
    input) and ``window`` maps them to the output dtype (see :func:`map_values`).
    ``filled[l]`` is the z span of level ``l`` that can hold non-zero data.
    """

    source: Source | None
    arrays: tuple[str, ...]
    shapes: tuple[tuple[int, int, int], ...]
    algorithms: tuple[str, ...]
    chunk: int
    dtype: str
    crop: tuple[int, int, int] = (0, 0, 0)
    shift: int = 0
    filled: tuple[Span, ...] = ()
    window: tuple[float, float] | None = None


class BudgetTooSmall(ValueError):
    """Not even one task of one chunk row fits the memory budget; ``needed`` is the
    working memory of the smallest task, in bytes."""

    def __init__(self, needed: float):
        super().__init__(f"the smallest task needs {needed / 2**30:.3g} GiB")
        self.needed = needed


@dataclass(frozen=True, order=True)
class Task:
    """Write rows ``y`` of slab ``z`` (voxels of ``level``; x is the full width) of
    levels ``level`` to ``top``; the levels below ``level`` get the same region halved."""

    level: int
    z: Span
    y: Span
    top: int

    @property
    def key(self) -> str:
        return f"{self.level}-{self.top}/{self.z[0]}-{self.z[1]}/{self.y[0]}-{self.y[1]}"

    def region(self, level: int) -> tuple[Span, Span]:
        """The task's (z, y) spans at ``level`` (between ``self.level`` and ``self.top``)."""
        f = 1 << (level - self.level)
        return ((self.z[0] // f, -(-self.z[1] // f)), (self.y[0] // f, -(-self.y[1] // f)))


@dataclass
class Plan:
    """All tasks of a conversion, stage by stage, and the job they share.

    ``levels[s]`` lists the tasks of the stage that starts at level ``s`` (possibly none,
    where the levels hold only zeros); ``bands[s]`` is ``(rows, top, parallel)``: the
    height of that stage's task bands at level ``s``, the last level the stage writes
    and how many of its tasks may run at once within the memory budget.
    """

    job: Job
    levels: dict[int, list[Task]] = field(default_factory=dict)
    bands: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    #: Bytes of chunk files the local executor may queue for its writer threads (part
    #: of the budget; 0: one chunk at a time).
    write_behind: int = 0
    #: Bytes of decoded input chunks a chunked source keeps for the next task that
    #: needs them (part of the budget; see :func:`_input_order`).
    source_cache: int = 0

    @property
    def tasks(self) -> list[Task]:
        return [t for level in self.levels.values() for t in level]

    def written(self, stage: int) -> range:
        """The levels the stage starting at ``stage`` writes."""
        return range(stage, self.bands[stage][1] + 1)


#: Working memory of a task relative to the bytes of source it holds (the slice rows it
#: reads, or its region of the level above): the source buffer, the levels it computes
#: and the kernels' temporaries (float64 for gaussian, an 8x8 comparison for mode).
MEMORY_FACTOR = {"gaussian": 9.0, "mode": 8.0}
DEFAULT_FACTOR = 1.25
#: Largest source region of one task: bigger tasks would not be faster, and smaller
#: ones keep both cores busy to the end of a stage.
MAX_TASK_BYTES = 128 << 20


def _halo(job: Job, task: Task) -> int:
    """Context voxels a task reads around its source region (gaussian only)."""
    first = max(task.level, 1)
    return pyramid.halo(job.algorithms[first]) if task.top >= first else 0


def _streams(job: Job, level: int, top: int) -> bool:
    """A level-0 task that also writes level 1 reads its slab one write unit (chunk or
    shard) of planes at a time, so it holds half the slices it would otherwise; from a
    chunked source only when that unit holds whole input chunks in z (else each input
    chunk would be decoded for each unit, or held across the task's whole band)."""
    depth = (chunks_of(job.source) or (1,))[0]
    return level == 0 and top >= 1 and job.chunk % 2 == 0 and job.chunk % depth == 0


def _rows_per_read(job: Job, level: int, top: int, rows: int) -> int:
    """Rows a streaming level-0 task (:func:`_streams`) reads at a time: one chunk row,
    so that its slab buffer is a chunk deep and a chunk high whatever the band's height
    (fresh memory costs more than the work on it: every new page is faulted in and
    zeroed). From a chunked source only when chunk rows hold whole input chunks in y."""
    if not _streams(job, level, top):
        return rows
    chunks = chunks_of(job.source)
    if chunks and (job.chunk % int(chunks[1]) or job.crop[1] % int(chunks[1])):
        return rows
    return min(job.chunk, rows)


def _task_memory(job: Job, level: int, top: int, rows: int) -> tuple[float, float]:
    """``(working bytes, source bytes)`` of one task of a stage starting at ``level``,
    writing up to ``top``, ``rows`` rows high."""
    itemsize = np.dtype(job.dtype).itemsize
    unit = job.chunk << (top - level)
    algorithm = job.algorithms[min(max(level, 1), len(job.shapes) - 1)]
    factor = MEMORY_FACTOR.get(algorithm, DEFAULT_FACTOR)
    if level == 0:
        width = job.shapes[0][2]
        planes = min(job.chunk if _streams(job, level, top) else unit, job.shapes[0][0])
        source = planes * rows * width * itemsize
        read = planes * _rows_per_read(job, level, top, rows) * width * itemsize
        group = _planes_per_read(job)
        # the source-dtype buffer of a chunked source whose values are mapped
        mapped = 0 if group == 1 else min(group, planes) * rows * width * np.dtype(
            job.source.dtype).itemsize
        # the slab being read and the task's level 1 (a quarter of its source: one
        # level-1 chunk of planes in a three-level task too) and level 2 (1/64 of the
        # task's region)
        levels = source / 4 if top > level else 0
        if top > level + 1:
            levels += min(unit, job.shapes[0][0]) * rows * width * itemsize / 64
        working = read * factor + levels
        return working + mapped + _carried(job, top, rows), source
    nz, _, nx = job.shapes[level - 1]
    source = min(2 * unit, nz) * 2.0 * rows * nx * itemsize
    return source * factor, source


def make_plan(job: Job, first_level: int, budget: float, threads: int,
              bands: dict[int, Sequence[int]] | None = None) -> Plan:
    """Split levels ``first_level..`` of ``job`` into stages of tasks so that the tasks
    running at once fit ``budget`` bytes of working memory, or into the given stages
    (``bands[stage] = (rows, top, parallel)``: a resumed conversion keeps its first run's
    tasks). Per stage, as many tasks run in parallel as the budget allows (at most
    ``threads``), and a stage writes two levels when that fits (three for level 0 of a
    scroll large enough for two such tasks per thread; one for gaussian after
    level 0, whose context would otherwise grow). Raises :class:`BudgetTooSmall` if not
    even one task of one chunk row fits."""
    plan = Plan(job)
    # the write-behind queue comes out of the budget, and only from a large one: small
    # budgets keep their tasks (and one queued chunk, as the old per-thread buffer was)
    if budget >= 16 * chunkio.WRITE_BEHIND_BYTES:
        plan.write_behind = chunkio.WRITE_BEHIND_BYTES
        budget -= plan.write_behind
    nlevels = len(job.shapes)
    level = first_level
    while level < nlevels:
        if bands and level in bands:
            band, top, parallel = (int(v) for v in bands[level])
        else:
            band, top, parallel = _choose_stage(job, level, budget, threads)
        unit = job.chunk << (top - level)
        nz, ny, _ = job.shapes[level]
        z_lo, z_hi = job.filled[level] if job.filled else (0, nz)
        tasks = []
        for z0 in range((z_lo // unit) * unit, z_hi, unit):
            for y0 in range(0, ny, band):
                tasks.append(Task(level, (z0, min(z0 + unit, nz)),
                                  (y0, min(y0 + band, ny)), top))
        plan.levels[level] = _input_order(job, tasks, top) if level == 0 else tasks
        plan.bands[level] = (band, top, parallel)
        if level == 0:
            # each running task and the one that finished before them leave chunks behind
            plan.source_cache = int((parallel + 1) * _carried(job, top, band))
        level = top + 1
    return plan


def smallest_budget(job: Job, first_level: int, threads: int) -> float:
    """The smallest budget in bytes for which :func:`make_plan` plans ``job`` (to within
    a thousandth). Not simply the smallest task: a budget that fits only one-level tasks
    at level 0 leaves level 1 to be read back from level 0 at four times the memory."""
    def fits(budget: float) -> bool:
        try:
            make_plan(job, first_level, budget, threads)
            return True
        except BudgetTooSmall:
            return False

    low, high = 0.0, float(1 << 20)
    while not fits(high):
        low, high = high, high * 2
    while high - low > high / 1000:
        middle = (low + high) / 2
        low, high = (low, middle) if fits(middle) else (middle, high)
    return high


def _cuts_input(job: Job, top: int) -> tuple[bool, bool]:
    """``(z, y)``: whether the slabs (z) or the bands (y) of level-0 tasks writing up to
    ``top`` cut the chunks of a chunked source (a source with ``chunks``: its edges are
    not the tasks', the crop shifts them, or the gaussian's context reaches across)."""
    chunks = chunks_of(job.source)
    if not chunks:
        return False, False
    unit = job.chunk << top
    context = top >= 1 and pyramid.halo(job.algorithms[1]) > 0
    return tuple(context or unit % int(c) != 0 or crop % int(c) != 0
                 for c, crop in zip(chunks[:2], job.crop[:2]))


def _carried(job: Job, top: int, rows: int) -> float:
    """Bytes of decoded input chunks a level-0 task of ``rows`` rows leaves to the next
    task that needs them (see :func:`_input_order`): a layer of input chunks across its
    band when slabs cut them, else a row of input chunks across its slab when bands do."""
    cut_z, cut_y = _cuts_input(job, top)
    if not (cut_z or cut_y):
        return 0.0
    depth, height = chunks_of(job.source)[:2]
    plane_row = job.shapes[0][2] * np.dtype(job.source.dtype).itemsize
    if cut_z:
        return depth * (rows + height) * plane_row
    return height * (job.chunk << top) * plane_row


def _input_order(job: Job, tasks: list[Task], top: int) -> list[Task]:
    """Level-0 tasks in the order that reads each chunk of a chunked source once.

    Slab by slab, band by band (the default), a chunk cut by two bands is needed again
    by the next task; but one cut by two slabs only a whole slab of tasks later, so the
    source would have to keep a layer of chunks across the whole volume. When slabs cut
    the input's chunks, tasks therefore go band by band, slab by slab within a band: the
    layer is needed by the next task, and the chunks cut by two bands (if bands cut them
    too) are read twice."""
    if _cuts_input(job, top)[0]:
        return sorted(tasks, key=lambda t: (t.y[0], t.z[0]))
    return tasks


def _choose_stage(job: Job, level: int, budget: float, threads: int
                  ) -> tuple[int, int, int]:
    """``(rows, top, parallel)`` of the stage starting at ``level``: the most parallel
    tasks that fit, more levels per task if possible, then the tallest band."""
    nlevels = len(job.shapes)
    algorithm = job.algorithms[min(level + 1, nlevels - 1)] if level == 0 else \
        job.algorithms[level]
    two = level + 1 < nlevels and (level == 0 or algorithm != "gaussian")
    ny = job.shapes[level][1]
    need = None
    tops = (level + 1, level) if two else (level,)
    # level 0 prefers writing two levels over parallel tasks: otherwise level 1 must be
    # read back from level 0, and its tasks need four times the memory
    if level == 0:
        order = [(top, p) for top in tops for p in range(max(threads, 1), 0, -1)]
        if (two and nlevels > 2 and pyramid.halo(job.algorithms[2]) == 0
                and _rows_per_read(job, 0, 2, job.chunk << 2) <= job.chunk):
            # levels 0-2 at full parallelism first: level 1 is then never read back
            # (1/8 of the input's bytes). Only where the task reads its slices a chunk
            # row at a time (else it would hold its whole region), and not for a
            # gaussian level 2, which would need level 1's context around the task.
            order.insert(0, (2, max(threads, 1)))
    else:
        order = [(top, p) for p in range(max(threads, 1), 0, -1) for top in tops]
    for top, parallel in order:
        unit = job.chunk << (top - level)
        memory, source = _task_memory(job, level, top, unit)
        if level > 0 and top > level and source > MAX_TASK_BYTES:
            # the smallest two-level task is 4 chunk rows deep and high in the source
            # level, which on a deep scroll holds more than a task may: write one level
            # (the next stage reads it back, 1/8 of what this one reads)
            continue
        # at least ``parallel`` bands where the level is tall enough: a stage of one
        # task (levels 2-3 of a small scroll) would leave the other cores idle
        n = min(int(budget / parallel // memory), max(1, int(MAX_TASK_BYTES // source)),
                max(1, -(-(-(-ny // unit)) // parallel)))
        if n > 0 and top == level + 2:
            # the bigger tasks only where there are at least two per thread: fewer would
            # leave a core idle for a whole task at the end of the stage
            nz = job.shapes[level][0]
            if -(-nz // unit) * -(-ny // (n * unit)) < 2 * parallel:
                continue
        if n > 0:
            return n * unit, top, parallel
        need = memory if need is None else min(need, memory)
    raise BudgetTooSmall(need)


def source_region(job: Job, task: Task) -> tuple[Span, Span]:
    """The (z, y) spans a task reads, halo included: of level 0 (slice rows) for a
    level-0 task, else of level ``task.level - 1``."""
    h = _halo(job, task)
    if task.level == 0:
        nz, ny, _ = job.shapes[0]
        (z0, z1), (y0, y1) = task.z, task.y
    else:
        nz, ny, _ = job.shapes[task.level - 1]
        (z0, z1), (y0, y1) = (2 * task.z[0], 2 * task.z[1]), (2 * task.y[0], 2 * task.y[1])
    return (max(z0 - h, 0), min(z1 + h, nz)), (max(y0 - h, 0), min(y1 + h, ny))


def dependencies(job: Job, plan: Plan) -> dict[Task, list[Task]]:
    """For each task, the tasks whose written regions it reads (none for level 0)."""
    deps: dict[Task, list[Task]] = {}
    writer_stage = {lv: stage for stage in plan.levels for lv in plan.written(stage)}
    for tasks in plan.levels.values():
        for task in tasks:
            if task.level == 0:
                deps[task] = []
                continue
            source = task.level - 1
            (sz0, sz1), (sy0, sy1) = source_region(job, task)
            above = plan.levels.get(writer_stage.get(source, -1), [])
            deps[task] = []
            for t in above:
                (tz0, tz1), (ty0, ty1) = t.region(source)
                if tz0 < sz1 and sz0 < tz1 and ty0 < sy1 and sy0 < ty1:
                    deps[task].append(t)
    return deps


def run_task(job: Job, task: Task) -> int:
    """Run one task: read its source, write its levels. Returns the bytes of the task's
    region at its first level (input bytes for level 0), for progress. When it returns,
    the task's chunks are written (the write-behind queue is flushed)."""
    try:
        done = _compute_task(job, task)
    except BaseException:
        chunkio.flush(errors=False)  # the task's own error is the one to report
        raise
    chunkio.flush()
    return done


def _compute_task(job: Job, task: Task) -> int:
    if task.level == 0:
        block, first = _level0(job, task)
    else:
        (sz0, sz1), (sy0, sy1) = source_region(job, task)
        src = chunkio.open_level(job.arrays[task.level - 1])
        region = (slice(sz0, sz1), slice(sy0, sy1), slice(0, src.shape[2]))
        out = scratch.array("plan.source", (sz1 - sz0, sy1 - sy0, src.shape[2]), src.dtype)
        block = src.read(region, out)
        context = ((2 * task.z[0] - sz0, max(sz1 - 2 * task.z[1], 0)),
                   (2 * task.y[0] - sy0, max(sy1 - 2 * task.y[1], 0)), (0, 0))
        block = _write_level(job, task, task.level, block, context)
        first = task.level + 1
    for level in range(first, task.top + 1):
        block = _write_level(job, task, level, block, ((0, 0),) * 3)
    (z0, z1), (y0, y1) = task.z, task.y
    return (z1 - z0) * (y1 - y0) * job.shapes[task.level][2] * np.dtype(job.dtype).itemsize


def _write_level(job: Job, task: Task, level: int, block: np.ndarray,
                 context: tuple[Span, Span, Span]) -> np.ndarray:
    """Downsample ``block`` (level ``level - 1``, with context) into ``level``, write the
    task's region of it and return it (in this thread's scratch buffer for the level)."""
    out = scratch.array(f"plan.level{level}", pyramid.reduced_shape(block.shape, context),
                        block.dtype)
    block = pyramid.downsample(block, job.algorithms[level], context, out=out)
    (z0, _), (y0, _) = task.region(level)
    chunkio.open_level(job.arrays[level]).write(z0, y0, block)
    return block


def _level0(job: Job, task: Task) -> tuple[np.ndarray | None, int]:
    """Write the level-0 region of a task from the slices and, if the task writes level
    1 (and 2) too, compute and write those; return ``(the last level written above 0 or
    None, the next level to compute from it)``. A streaming task reads one slab of
    chunk-deep planes and chunk-high rows at a time (:func:`_rows_per_read`), each read
    with its halo (the gaussian's context). A task that writes level 2 goes through its
    slab in parts of one level-1 chunk in depth, so that it holds that much of level 1,
    not its whole region's."""
    nz, ny = job.shapes[0][:2]
    h = _halo(job, task)
    (z0, z1), (y0, y1) = task.z, task.y
    step = job.chunk if _streams(job, task.level, task.top) else z1 - z0
    ystep = _rows_per_read(job, task.level, task.top, y1 - y0)
    part = 2 * job.chunk if task.top >= 2 else z1 - z0  # level-0 planes per level-1 part
    level1 = level2 = None
    if task.top >= 2:
        (z2, z3), (y2, y3) = task.region(2)
        level2 = scratch.array("plan.level2", (z3 - z2, y3 - y2, job.shapes[2][2]),
                               job.dtype)
    ly0, ly1 = task.region(1)[1]
    for p0 in range(z0, z1, part):
        p1 = min(p0 + part, z1)
        if task.top >= 1:
            level1 = scratch.array("plan.level1", (-(-(p1 - p0) // 2), ly1 - ly0,
                                                   job.shapes[1][2]), job.dtype)
        for a in range(p0, p1, step):
            b = min(a + step, p1)
            sa, sb = max(a - h, 0), min(b + h, nz)
            for ya in range(y0, y1, ystep):
                yb = min(ya + ystep, y1)
                ra, rb = max(ya - h, 0), min(yb + h, ny)
                block = read_slices(job, (sa, sb), (ra, rb))
                inner = block[a - sa:block.shape[0] - (sb - b),
                              ya - ra:block.shape[1] - (rb - yb)]
                chunkio.open_level(job.arrays[0]).write(a, ya, inner)
                if level1 is None:
                    continue
                za, ya1 = (a - p0) // 2, (ya - y0) // 2
                target = level1[za:za + -(-(b - a) // 2), ya1:ya1 + -(-(yb - ya) // 2)]
                context = ((a - sa, sb - b), (ya - ra, rb - yb), (0, 0))
                pyramid.downsample(block, job.algorithms[1], context, out=target)
        if level1 is not None:
            chunkio.open_level(job.arrays[1]).write(p0 // 2, ly0, level1)
        if level2 is not None:
            # a part starts on a level-1 chunk (even): no 2x2x2 cell straddles two parts
            at = (p0 - z0) // 4
            pyramid.downsample(level1, job.algorithms[2],
                               out=level2[at:at + -(-level1.shape[0] // 2)])
    if level2 is not None:
        chunkio.open_level(job.arrays[2]).write(z2, y2, level2)
        return level2, 3
    return level1, 2


def read_slices(job: Job, z: Span, y: Span) -> np.ndarray:
    """Read rows ``y`` of level-0 slabs ``z`` from the job's source into a reused
    (z, y, x) buffer of the job's dtype (zeros outside the source's filled span)."""
    (z0, z1), (y0, y1) = z, y
    cz, cy, cx = job.crop
    nx = job.shapes[0][2]
    out = scratch.array("plan.slab", (z1 - z0, y1 - y0, nx), job.dtype)
    fz0, fz1 = job.source.filled()
    a, b = min(max(fz0 - cz, z0), z1), max(min(fz1 - cz, z1), z0)  # the planes it has
    out[:a - z0] = 0
    out[b - z0:] = 0
    rows, cols = (cy + y0, cy + y1), (cx, cx + nx)
    if a == b:
        return out
    if not _maps_values(job):
        job.source.read((cz + a, cz + b), rows, cols, out[a - z0:b - z0])  # no copy
        return out
    # one plane at a time (the source dtype's buffer stays as small as a slice's rows),
    # or one input chunk of planes from a chunked source (plane by plane, each chunk
    # would be decoded once per plane)
    step = _planes_per_read(job)
    zi = a
    while zi < b:
        end = min(b, ((cz + zi) // step + 1) * step - cz)
        planes = scratch.array("plan.plane", (end - zi, y1 - y0, nx), job.source.dtype)
        job.source.read((cz + zi, cz + end), rows, cols, planes)
        map_values(job, planes, out[zi - z0:end - z0])
        zi = end
    return out


def _maps_values(job: Job) -> bool:
    return job.shift != 0 or job.window is not None


def _planes_per_read(job: Job) -> int:
    """Planes read at once when source values are mapped: the z edge of the source's
    chunks for a chunked source (:func:`scrollzarr.sources.base.chunks_of`), else 1."""
    if job.source is None or not _maps_values(job):
        return 1
    return (chunks_of(job.source) or (1,))[0]


def map_values(job: Job, values: np.ndarray, out: np.ndarray) -> None:
    """Map source voxels ``values`` into ``out`` (the job's dtype): ``--window`` LO:HI to
    uint8 (:func:`scrollzarr.window.apply_window`), or ``--obytes 1``, which keeps the high
    byte of uint16 (value >> 8). The one place where source values change."""
    if job.window is not None:
        window.apply_window(values, *job.window, out)
        return
    np.right_shift(values, job.shift, out=out, casting="unsafe")


def run_local(plan: Plan, num_threads: int, quiet: bool = False,
              on_level_done: Callable[[int], None] = lambda level: None,
              skip: Callable[[Task], bool] = lambda task: False,
              on_task_done: Callable[[Task], None] = lambda task: None) -> None:
    """Run the plan stage by stage on a thread pool of ``num_threads``.

    ``skip(task)`` may leave out tasks already done (resume); ``on_task_done`` is called
    after a task's chunks are written, ``on_level_done(level)`` for every level of a
    stage, in order, after the stage's last task.
    The first failing task stops the run and its exception propagates.
    """
    chunkio.forget()  # single-threaded runs use this thread's cache across conversions
    chunkio.set_write_behind(plan.write_behind)
    try:
        _run_stages(plan, num_threads, quiet, on_level_done, skip, on_task_done)
    finally:
        chunkio.stop_writers()


def _run_stages(plan: Plan, num_threads: int, quiet: bool,
                on_level_done: Callable[[int], None], skip: Callable[[Task], bool],
                on_task_done: Callable[[Task], None]) -> None:
    for stage, tasks in plan.levels.items():
        parallel = min(num_threads, plan.bands[stage][2])
        todo = [t for t in tasks if not skip(t)]
        total = sum(task_bytes(plan.job, t) for t in tasks)
        done_bytes = total - sum(task_bytes(plan.job, t) for t in todo)
        written = plan.written(stage)
        desc = f"level {stage}" if len(written) == 1 else f"levels {stage}-{written[-1]}"
        with progress.bar(total, desc, initial=done_bytes, quiet=quiet) as bar:
            _run_tasks(plan.job, todo, parallel, bar, on_task_done)
        for level in written:
            on_level_done(level)
        chunkio.release_scratch()  # the next stage's buffers differ; this thread may run it


def task_bytes(job: Job, task: Task) -> int:
    """Bytes of a task's region at its first level (what its progress counts)."""
    nx = job.shapes[task.level][2]
    return (task.z[1] - task.z[0]) * (task.y[1] - task.y[0]) * nx * np.dtype(job.dtype).itemsize


def _run_tasks(job: Job, tasks: Sequence[Task], num_threads: int, bar: Any,
               on_task_done: Callable[[Task], None]) -> None:
    if num_threads <= 1:  # in this thread, which keeps its chunkio caches across stages
        for task in tasks:
            bar.update(run_task(job, task))
            on_task_done(task)
        return

    def one(task: Task) -> tuple[Task, int]:
        return task, run_task(job, task)

    # window = threads: a bounded number of tasks in flight keeps memory within the
    # budget; results as they complete, so no core idles behind a slower task
    for task, nbytes in workers.map_unordered(one, tasks, num_threads, window=num_threads,
                                              name="task"):
        bar.update(nbytes)
        on_task_done(task)
