#!/usr/bin/env python3
"""scroll_to_ome on dask.distributed: throughput with 1 and 2 workers against the local
executor, and the scheduling overhead per task (issue 8).

    python bench/bench_distributed.py [--size 256,1024,1024] [--chunk_size 128]
                                      [--algorithm mean] [--repeats 3] [--workdir DIR]

Generates a synthetic uint16 stack (cached in the work directory), warms the page cache,
starts two LocalClusters (1 and 2 worker processes, one thread each; their start-up time
is reported apart), then converts the stack repeatedly, in turn, with

* the local executor, 1 thread (the baseline) and 2 threads;
* dask, 1 worker and 2 workers (``--scheduler tcp://...`` of those clusters);

and prints medians, input MB/s and ratios against the baseline, after checking that
every output is byte-identical to the baseline's. Scheduling overhead per task is given
twice: end to end ((dask 1 worker - local 1 thread) / tasks) and for empty tasks
submitted the way run_dask submits them. Finally it plans a real 1.8 TB scroll
(14376 x 7888 x 8096 uint16, chunk 128) to show its number of tasks, and estimates the
wall time on N workers from the measured per-worker rate.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import distributed  # noqa: E402
import numpy as np  # noqa: E402

from scrollzarr import plan as planning  # noqa: E402
from scrollzarr.convert import Options, convert, default_budget_gb  # noqa: E402
from scrollzarr.distributed import run_dask  # noqa: E402
from scrollzarr.sources import SliceSource, open_input  # noqa: E402
from synthetic import make_stack, warm  # noqa: E402


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def noop(*args) -> int:
    return 0


def empty_task_overhead(client, n: int) -> float:
    """Seconds per empty task, submitted as run_dask submits tasks (scattered job, a
    function pickled by value, a dict argument, dependencies, retries) and awaited with
    as_completed."""
    job = {"slice_paths": tuple(f"/scroll/{z:05d}.tif" for z in range(14376))}
    [job_future] = client.scatter([job], broadcast=True, hash=False)
    start = time.perf_counter()
    futures, previous = [], None
    for i in range(n):
        after = [previous] if previous is not None and i % 8 else []
        fut = client.submit(noop, job_future, {"level": 0, "z": (i, i + 1)}, "run", *after,
                            key=f"bench-{i}-{time.perf_counter_ns()}", pure=False,
                            retries=2)
        futures.append(fut)
        previous = fut
    for _ in distributed.as_completed(futures):
        pass
    return (time.perf_counter() - start) / n


def real_scroll_plan(chunk: int, budget_gb: float, threads: int) -> planning.Plan:
    """The plan of a 14376 x 7888 x 8096 uint16 scroll (no files needed to plan)."""
    shapes = [(14376, 7888, 8096)]
    for _ in range(5):
        shapes.append(tuple(-(-s // 2) for s in shapes[-1]))
    source = SliceSource("/scroll", (shapes[0][0] - 1,), ("/scroll/14375.tif",), 7888, 8096,
                         "<u2")  # planning reads no file
    job = planning.Job(source=source, arrays=tuple(f"/out/{i}" for i in range(6)),
                       shapes=tuple(shapes), algorithms=("none",) + ("mean",) * 5,
                       chunk=chunk, dtype="<u2")
    return planning.make_plan(job, 0, budget_gb * 2**30, threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="256,1024,1024", help="z,y,x of the synthetic stack")
    ap.add_argument("--chunk_size", type=int, default=128)
    ap.add_argument("--algorithm", default="mean",
                    help="pyramid algorithm (gaussian: more computation per byte)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default=None,
                    help="where to keep the stack and outputs (default: a temp dir)")
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.size.split(","))
    work = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir()) / "bench_dask"
    work.mkdir(parents=True, exist_ok=True)
    stack = make_stack(work / "slices", shape)
    warm(stack)
    nbytes = np.prod(shape) * 2

    t0 = time.perf_counter()
    one = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=None,
                                   scheduler_kwargs={"dashboard": False,
                                                     "dashboard_address": "127.0.0.1:0"},
                                   silence_logs=logging.ERROR)
    t_start = time.perf_counter() - t0
    two = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=None,
                                   scheduler_kwargs={"dashboard": False,
                                                     "dashboard_address": "127.0.0.1:0"},
                                   silence_logs=logging.ERROR)
    runs = {
        "local, 1 thread": dict(num_threads=1),
        "local, 2 threads": dict(num_threads=2),
        "dask, 1 worker": dict(num_threads=1, scheduler=one.scheduler_address),
        "dask, 2 workers": dict(num_threads=2, scheduler=two.scheduler_address),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    digests: dict[str, str] = {}
    try:
        for r in range(args.repeats):
            for name, kw in runs.items():
                out = work / f"out-{len(digests) % 2}" / "scroll.zarr"
                shutil.rmtree(out.parent, ignore_errors=True)
                out.parent.mkdir()
                start = time.perf_counter()
                convert(stack, out, Options(quiet=True, chunk_size=args.chunk_size,
                                            algorithm=args.algorithm, **kw))
                times[name].append(time.perf_counter() - start)
                if r == 0:
                    digests[name] = tree_digest(out)
                shutil.rmtree(out.parent)
        with distributed.Client(one) as c1:
            per_empty_1 = empty_task_overhead(c1, 2000)
        # what every run pays once: connect, check the workers' code, scatter the job
        job = real_small_job(stack, shape, args.chunk_size, args.algorithm)
        fixed = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run_dask(planning.Plan(job), one.scheduler_address, quiet=True)
            fixed.append(time.perf_counter() - start)
        with distributed.Client(two) as c2:
            per_empty_2 = empty_task_overhead(c2, 2000)
    finally:
        one.close()
        two.close()

    same = len(set(digests.values())) == 1
    budget = default_budget_gb()
    small = planning.make_plan(
        real_small_job(stack, shape, args.chunk_size, args.algorithm), 0, budget * 2**30, 1)
    n_tasks = len(small.tasks)
    base = statistics.median(times["local, 1 thread"])
    print(f"\nstack {shape[2]}x{shape[1]}x{shape[0]} (x,y,z) uint16 = {nbytes / 1e6:.0f} MB, "
          f"chunk {args.chunk_size}, 6 levels, {args.algorithm}, {n_tasks} tasks "
          "(1 thread's plan), "
          f"{args.repeats} runs each, medians")
    print(f"{'executor':<18} {'seconds':>8} {'MB/s':>7} {'vs local 1 thread':>18}")
    for name in runs:
        t = statistics.median(times[name])
        print(f"{name:<18} {t:8.2f} {nbytes / 1e6 / t:7.0f} {base / t:17.2f}x")
    print(f"outputs byte-identical across executors: {same}")
    print(f"LocalCluster start-up (1 worker): {t_start:.2f} s (not in the times above)")
    d1 = statistics.median(times["dask, 1 worker"])
    run_cost = statistics.median(fixed)
    print(f"fixed cost per dask run (connect, check workers' code, scatter the job): "
          f"{run_cost * 1e3:.0f} ms")
    print(f"overhead per task, end to end: ({d1:.2f} - {base:.2f} - {run_cost:.2f}) s / "
          f"{n_tasks} tasks = {(d1 - base - run_cost) / n_tasks * 1e3:.0f} ms "
          f"(mean task {base / n_tasks * 1e3:.0f} ms)")
    print(f"overhead per empty task: {per_empty_1 * 1e3:.2f} ms (1 worker), "
          f"{per_empty_2 * 1e3:.2f} ms (2 workers)")

    rate = nbytes / d1  # bytes of input per second and worker, pyramid included
    real = real_scroll_plan(128, budget, 1)
    per_stage = {s: len(t) for s, t in real.levels.items()}
    real_bytes = 14376 * 7888 * 8096 * 2
    print(f"\na 1.8 TB scroll (8096x7888x14376 uint16, chunk 128, budget {budget:.1f} GB, 1 "
          f"thread): {len(real.tasks)} tasks, per stage {per_stage}")
    print(f"estimate from {rate / 1e6:.0f} MB/s per worker (measured above, input read from "
          "the page cache):")
    for n in (1, 4, 16, 64):
        compute = real_bytes / rate / n
        overhead = len(real.tasks) * per_empty_1 / n
        print(f"  {n:3d} workers: {compute / 3600:6.2f} h + {overhead:5.2f} s of scheduling "
              "(empty-task cost)")

def real_small_job(stack: Path, shape: tuple[int, int, int], chunk: int,
                   algorithm: str) -> planning.Job:
    """The job convert builds for the benchmark stack (to count its tasks)."""
    shapes = [shape]
    for _ in range(5):
        shapes.append(tuple(-(-s // 2) for s in shapes[-1]))
    return planning.Job(source=open_input(stack), arrays=tuple(f"/out/{i}" for i in range(6)),
                        shapes=tuple(shapes), algorithms=("none",) + (algorithm,) * 5,
                        chunk=chunk, dtype="<u2")


if __name__ == "__main__":
    main()
