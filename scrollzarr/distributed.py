"""Run a conversion's task plan on dask.distributed (``scroll_to_ome.py --scheduler``).

The plan of :mod:`scrollzarr.plan` is submitted as it is: one dask task per plan
:class:`~scrollzarr.plan.Task`, each depending only on the tasks whose regions it reads
(:func:`~scrollzarr.plan.dependencies`), so a stage of the pyramid starts where its
input is ready instead of waiting for the whole stage above (no global barrier). The
graph carries no arrays: the :class:`~scrollzarr.plan.Job` (paths, shapes) is sent once
to every worker, and every worker reads slices and writes chunks itself.
Tasks write disjoint, chunk-aligned regions, so re-running one (a worker died, dask
retried it) rewrites the same bytes and the output is identical to the local executor's.

What the machines must share: the slice paths (same absolute paths on every worker,
e.g. one network file system), the output location (the same path, or an object-store
URL such as ``s3://bucket/scroll.zarr`` with credentials on every worker), and the same
``scrollzarr`` source: checked before anything is submitted; workers without scrollzarr
receive the client's (its dependencies, numpy, zarr, tifffile..., must be installed there).

This module imports dask; the default local executor never imports it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import importlib.resources
import logging
import os
import re
import sys
import tempfile
import threading
import uuid
import zipfile
from pathlib import Path
from typing import Callable, Iterator

from . import chunkio, plan as planning, progress, store
from .errors import ScrollError
from .remote import auth

_HOST_PORT = re.compile(r"^[\w.\-\[\]:]+:\d+$")
_PROTOCOLS = ("tcp://", "tls://", "ws://", "wss://", "ucx://")


def check_scheduler(scheduler: str, workers: int | None = None) -> None:
    """Check ``--scheduler`` and ``--workers`` without importing dask.

    ``scheduler`` is ``local`` (start a LocalCluster of ``workers`` processes), the
    address of a running scheduler (``tcp://HOST:PORT``, or ``HOST:PORT``), or the JSON
    file a scheduler wrote with ``--scheduler-file``. Raises :class:`ScrollError`.
    """
    if workers is not None and workers < 1:
        raise ScrollError(f"--workers {workers}: must be at least 1")
    if scheduler == "local":
        return
    if scheduler.endswith(".json"):
        if not Path(scheduler).is_file():
            raise ScrollError(f"--scheduler {scheduler}: scheduler file does not exist")
        return
    if scheduler.startswith(_PROTOCOLS) or _HOST_PORT.match(scheduler):
        return
    raise ScrollError(f"--scheduler {scheduler}: use 'local', tcp://HOST:PORT or a "
                      "scheduler file (*.json)")


def run_dask(plan: planning.Plan, scheduler: str, workers: int | None = None,
             quiet: bool = False,
             on_level_done: Callable[[int], None] = lambda level: None,
             skip: Callable[[planning.Task], bool] = lambda task: False,
             on_task_done: Callable[[planning.Task], None] = lambda task: None) -> None:
    """Run ``plan`` on a dask.distributed cluster; same contract as
    :func:`scrollzarr.plan.run_local`.

    ``scheduler``: see :func:`check_scheduler`; ``workers`` is the number of worker
    processes (one thread each) of a ``local`` cluster, ignored otherwise.
    ``skip(task)`` tasks are not submitted (and count as done for the tasks that read
    them); ``on_task_done(task)`` is called here, in the client, as each task finishes;
    ``on_level_done(level)`` for every level a stage writes, in level order, once every
    task of that stage and of all stages before it has finished. A task that still
    fails after dask's retries stops the run: the remaining tasks are cancelled and its
    exception is raised here. With ``local`` the tasks in flight keep within the plan's
    memory budget (all workers share this machine). Returns None; the workers write.
    """
    check_scheduler(scheduler, workers)
    job = _absolute_paths(plan.job)
    with _client(scheduler, workers, quiet) as client:
        _check_worker_code(client, scheduler, quiet)
        _run_plan(client, plan, job, quiet, on_level_done, skip, on_task_done,
                  share_memory=scheduler == "local")


# ---- what runs on the workers

def _by_value(name: str) -> Callable:
    """A stand-in for this module's function ``name`` that cloudpickle sends by value
    (it is a closure) and that imports scrollzarr only when it runs. The scheduler
    unpickles the task graph, so with it and with builtin arguments only the workers,
    not the scheduler, need scrollzarr."""
    def call(*args):
        import importlib
        return getattr(importlib.import_module("scrollzarr.distributed"), name)(*args)
    return call


_run = threading.local()


def _run_after(job: planning.Job, task: dict, run_id: str, *done_before: int) -> int:
    """Run the plan task with fields ``task`` on a worker and return the bytes it
    counts for progress. ``done_before`` (results of the tasks whose regions it reads)
    is unused: passing them makes dask start this task only after those."""
    if getattr(_run, "id", None) != run_id:
        # chunkio caches open level arrays (shape, chunks) per thread and by path; a
        # long-lived worker that wrote an earlier conversion to the same path
        # (--overwrite, another shape) must not reuse them
        chunkio.forget()
        _run.id = run_id
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in task.items()}
    return planning.run_task(job, planning.Task(**fields))


def _package_digest() -> tuple[str, str, str]:
    """(sha256 of the scrollzarr sources, where they are, the version) of the process it
    runs in (a directory, or the zip a client sent)."""
    from . import __version__

    h = hashlib.sha256()
    for name, data in _sources():
        h.update(name.encode() + b"\0" + data + b"\0")
    return h.hexdigest(), str(Path(__file__).resolve().parent), __version__


def _sources() -> list[tuple[str, bytes]]:
    """(path relative to the package, bytes) of every source file of the package, in a
    fixed order; read through importlib.resources, so also from a zip on sys.path."""
    found = []

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                if child.name != "__pycache__":
                    walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".py"):
                found.append((prefix + child.name, child.read_bytes()))
    walk(importlib.resources.files(__package__), "")
    return sorted(found)


# ---- the client side

@contextlib.contextmanager
def _client(scheduler: str, workers: int | None, quiet: bool) -> Iterator:
    """A connected ``distributed.Client`` (and, for ``local``, its own LocalCluster)."""
    import distributed

    cluster = None
    try:
        if scheduler == "local":
            # processes, not threads: tasks hold the GIL in numpy/zarr code paths; one
            # thread per worker keeps each task within its memory budget
            cluster = distributed.LocalCluster(
                n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                processes=True, host="127.0.0.1", dashboard_address=None,
                # the scheduler's HTTP routes still listen: on a free loopback port, not
                # 8787 (taken by a second conversion or a user's own cluster)
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.ERROR if quiet else logging.WARNING,
                # a password typed at the prompt: the workers cannot ask for it
                env=auth.worker_environment())
            client = distributed.Client(cluster)
        elif scheduler.endswith(".json"):
            client = distributed.Client(scheduler_file=scheduler)
        else:
            client = distributed.Client(scheduler)
    except (OSError, ValueError) as exc:  # TimeoutError is an OSError
        if cluster is not None:
            cluster.close()
        raise ScrollError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _check_worker_code(client, scheduler: str, quiet: bool) -> None:
    """Make sure every worker runs this client's scrollzarr: workers that cannot import
    it receive it (a zip of the package through ``client.upload_file``, which workers
    joining later get too); a worker with other sources installed is refused, naming
    both versions, since its output could differ from the local executor's."""
    expected, here, version = _package_digest()
    answers = client.run(_by_value("_package_digest"), on_error="return")
    if not answers:
        if not quiet:
            print(f"note: no workers connected to {scheduler} yet; tasks wait for them",
                  file=sys.stderr)
        return
    missing = _compare(answers, scheduler, expected, here, version)
    if not missing:
        return
    with tempfile.TemporaryDirectory() as tmp:
        archive = _package_zip(Path(tmp), version, expected)
        try:
            client.upload_file(str(archive), load=True)
        except Exception as exc:  # the worker's own error, e.g. a missing dependency
            raise ScrollError(f"--scheduler {scheduler}: sending scrollzarr to the workers "
                              f"failed ({type(exc).__name__}: {exc})") from None
    if not quiet:
        print(f"note: sent scrollzarr {version} to {len(missing)} worker(s) that could not "
              "import it", file=sys.stderr)
    answers = client.run(_by_value("_package_digest"), on_error="return")
    still = _compare(answers, scheduler, expected, here, version)
    if still:
        address, answer = still[0]
        raise ScrollError(f"--scheduler {scheduler}: worker {address} cannot import "
                          f"scrollzarr even after it was sent ({type(answer).__name__}: "
                          f"{answer}); install it there (pip install scrollzarr=={version})")


def _compare(answers: dict, scheduler: str, expected: str, here: str,
             version: str) -> list[tuple[str, BaseException]]:
    """The workers (address, error) that cannot import scrollzarr; raise
    :class:`ScrollError` for one that runs other sources."""
    missing = []
    for address, answer in sorted(answers.items()):
        if isinstance(answer, BaseException):
            missing.append((address, answer))
            continue
        digest, where, theirs = answer
        if digest != expected:
            same = " (same version number, other sources)" if theirs == version else ""
            raise ScrollError(f"--scheduler {scheduler}: worker {address} has scrollzarr "
                              f"{theirs} ({where}) but this client runs scrollzarr {version} "
                              f"({here}){same}; install the same version on every worker "
                              "or uninstall it there (the client then sends its own)")
    return missing


def _package_zip(into: Path, version: str, digest: str) -> Path:
    """A zip of the package's sources (importable from ``sys.path``), named by version
    and digest so that a worker never mixes two uploads."""
    archive = into / f"scrollzarr-{version}-{digest[:12]}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in _sources():
            z.writestr("scrollzarr/" + name, data)
    return archive


def _absolute_paths(job: planning.Job) -> planning.Job:
    """The job with local output paths made absolute: workers do not share our working
    directory (a relative output would land in each worker's own). Sources hold
    absolute paths already (see :func:`scrollzarr.sources.open_input`)."""
    def absolute(p: str) -> str:
        return p if store.is_url(p) else os.path.abspath(p)

    return dataclasses.replace(job, arrays=tuple(absolute(p) for p in job.arrays))


def _run_plan(client, plan: planning.Plan, job: planning.Job, quiet: bool,
              on_level_done: Callable[[int], None],
              skip: Callable[[planning.Task], bool],
              on_task_done: Callable[[planning.Task], None],
              share_memory: bool) -> None:
    """Submit the plan's tasks and wait for them (see :func:`run_dask`).

    With ``share_memory`` (a LocalCluster: every worker on this machine) the tasks in
    flight keep within the plan's memory budget, which fits ``parallel`` tasks of a stage
    at once: a task of that stage takes ``1 / parallel`` of it. Otherwise every task is
    submitted at once and the cluster's workers decide how many run.
    """
    import distributed

    run_id = uuid.uuid4().hex[:12]
    deps = planning.dependencies(plan.job, plan)
    stages = sorted(plan.levels)
    share = {stage: 1.0 / _parallel(plan, stage) if share_memory else 0.0
             for stage in stages}
    waiting = {stage: collections.deque() for stage in stages}
    remaining = {stage: 0 for stage in stages}
    skipped_tasks: set[planning.Task] = set()
    total = skipped = 0
    for stage in stages:
        for task in plan.levels[stage]:
            nbytes = planning.task_bytes(job, task)
            total += nbytes
            if skip(task):
                skipped += nbytes
                skipped_tasks.add(task)
            else:
                waiting[stage].append(task)
                remaining[stage] += 1
    # the job on every worker: a task depending on data held by one worker would be
    # placed on that worker (dask's locality rule), and a single copy would be lost
    # with its worker
    [job_future] = client.scatter([job], broadcast=True, hash=False)
    run_after = _by_value("_run_after")
    futures: dict[planning.Task, object] = {}
    task_of: dict[str, planning.Task] = {}
    in_use = 0.0
    running = distributed.as_completed()

    def submit_ready() -> None:
        nonlocal in_use
        # later stages first: they read what was just written, while it is still in
        # the page cache, rather than after the whole stage above
        for stage in reversed(stages):
            queue = waiting[stage]
            while queue and in_use + share[stage] <= 1.0 + 1e-9:
                task = queue[0]
                if any(d not in futures and d not in skipped_tasks for d in deps[task]):
                    break  # its inputs are not submitted yet
                queue.popleft()
                after = [futures[d] for d in deps[task] if d in futures]
                # the graph holds only builtins (see _by_value): the task as a dict
                fut = client.submit(run_after, job_future, dataclasses.asdict(task), run_id,
                                    *after, key=f"scrollzarr-{run_id}-{task.key}",
                                    pure=False, retries=2, priority=stage)
                futures[task] = fut
                task_of[fut.key] = task
                in_use += share[stage]
                running.add(fut)

    next_stage = 0

    def finish_stages() -> None:
        nonlocal next_stage
        while next_stage < len(stages) and remaining[stages[next_stage]] == 0:
            for level in plan.written(stages[next_stage]):
                # no task writes this level any more: drop what killed workers left
                chunkio.remove_partial_files(job.arrays[level])
                on_level_done(level)
            next_stage += 1

    with progress.bar(total, "tasks (dask)", initial=skipped, quiet=quiet) as bar:
        finish_stages()  # stages whose tasks were all skipped
        try:
            submit_ready()
            for fut in running:
                task = task_of[fut.key]
                if fut.status != "finished":
                    _raise_failure(fut, task)
                in_use -= share[task.level]
                bar.update(planning.task_bytes(job, task))
                on_task_done(task)
                remaining[task.level] -= 1
                finish_stages()
                submit_ready()
        except BaseException:
            client.cancel(list(futures.values()) + [job_future])
            raise


def _parallel(plan: planning.Plan, stage: int) -> int:
    """How many tasks of ``stage`` fit the plan's memory budget at once."""
    band = plan.bands.get(stage, ())
    return max(int(band[2]), 1) if len(band) > 2 else 1


def _raise_failure(fut, task: planning.Task) -> None:
    """Raise the exception of a failed task (the worker's own, with its traceback)."""
    from distributed import KilledWorker

    try:
        fut.result()
    except KilledWorker:
        raise ScrollError(f"task {task.key} killed its worker several times (out of "
                          "memory? lower --max_gb or raise the workers' memory limit)"
                          ) from None
    raise ScrollError(f"task {task.key}: {fut.status}")  # cancelled from outside
