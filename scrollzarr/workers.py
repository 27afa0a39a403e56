"""One bounded worker pool with one cancellation rule, for every parallel loop.

:func:`map_unordered` runs ``fn`` over ``items`` on ``threads`` threads with at most
``window`` calls submitted at a time (items are pulled lazily, so memory stays bounded
whatever the number of items) and yields results as they complete. The rule: the first
error in any call stops the loop: calls not started yet are cancelled, running ones are
waited for, and that first error is raised in the caller. The same happens when the
caller stops iterating (an error of its own, Ctrl-C).

:func:`prefetch` is the separate I/O pool beside it: it runs ``fn`` ahead on its own
threads and hands out futures in item order, so a compute loop can wait for exactly the
item it needs while later reads (disk, network) overlap its work.

Compute threads help only where the work releases the GIL (numba ``nogil`` kernels,
large numpy copies, file and network I/O).
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_threads() -> int:
    """Number of cores this process may run on (its CPU affinity, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def map_unordered(fn: Callable[[T], R], items: Iterable[T], threads: int,
                  window: int | None = None, name: str = "worker") -> Iterator[R]:
    """Yield ``fn(item)`` for every item, in completion order, computed on ``threads``
    threads with at most ``window`` (default ``2 * threads``) calls in flight.

    The first exception raised by a call is raised here once the calls already running
    have ended; calls not yet started are cancelled and no more items are pulled.
    """
    threads = max(1, int(threads))
    window = max(threads, int(window or 2 * threads))
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
    pending: set[Future] = set()
    source = iter(items)
    try:
        exhausted = False
        while True:
            while not exhausted and len(pending) < window:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                pending.add(pool.submit(fn, item))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()  # the first error leaves through the finally below
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def prefetch(fn: Callable[[T], R], items: Iterable[T], threads: int, ahead: int,
             name: str = "io") -> Iterator[Future]:
    """Yield, in item order, a future of ``fn(item)`` per item, keeping up to ``ahead``
    later items already submitted to a separate pool of ``threads`` threads.

    Meant to feed :func:`map_unordered`: its calls wait on the futures they are given
    (``future.result()`` re-raises a failed read there, where the one cancellation rule
    applies). When the consumer stops, queued reads are cancelled and running ones
    waited for.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, int(threads)), thread_name_prefix=name)
    queue: deque[Future] = deque()
    source = iter(items)
    handed_out_all = False
    try:
        exhausted = False
        while True:
            while not exhausted and len(queue) <= ahead:
                try:
                    queue.append(pool.submit(fn, next(source)))
                except StopIteration:
                    exhausted = True
            if not queue:
                handed_out_all = True
                return
            yield queue.popleft()
    finally:
        if handed_out_all:
            # every future is the consumer's now: let the pool finish them, and let its
            # threads end when they have
            pool.shutdown(wait=False)
        else:  # the consumer stopped early: drop what it will never ask for
            for future in queue:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
