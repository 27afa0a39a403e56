"""The one bounded worker pool (scrollzarr.workers): every item once, bounded in flight,
the first error cancels the rest and is raised, prefetch hands out futures in order."""

from __future__ import annotations

import threading
import time

import pytest

from scrollzarr import workers


def test_map_unordered_returns_every_result_with_a_bounded_number_in_flight():
    lock = threading.Lock()
    state = {"now": 0, "most": 0, "pulled": 0}

    def items():
        for i in range(200):
            state["pulled"] += 1
            assert state["pulled"] - done_count() <= 5  # lazily: never more than window
            yield i

    finished = []

    def done_count():
        return len(finished)

    def work(i):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.001)
        with lock:
            state["now"] -= 1
        return i * i

    for r in workers.map_unordered(work, items(), threads=3, window=5):
        finished.append(r)
    assert sorted(finished) == [i * i for i in range(200)]
    assert state["most"] <= 3


def test_the_first_error_cancels_the_rest_and_is_raised():
    started = []

    def work(i):
        started.append(i)
        if i == 3:
            raise ValueError("item 3 is bad")
        time.sleep(0.01)
        return i

    with pytest.raises(ValueError, match="item 3 is bad"):
        for _ in workers.map_unordered(work, range(10_000), threads=2, window=4):
            pass
    assert len(started) < 20  # nothing queued after the error ran


def test_an_error_of_the_consumer_stops_the_pool_too():
    started = []

    def work(i):
        started.append(i)
        time.sleep(0.005)
        return i

    with pytest.raises(KeyError):
        for r in workers.map_unordered(work, range(10_000), threads=2, window=4):
            if r >= 2:
                raise KeyError(r)
    count = len(started)
    time.sleep(0.05)
    assert len(started) == count < 20  # the pool is shut down, not running on


def test_prefetch_yields_futures_in_item_order_and_reads_ahead_boundedly():
    calls = []

    def read(i):
        calls.append(i)
        return -i

    gen = workers.prefetch(read, range(100), threads=4, ahead=3)
    first = next(gen)
    assert first.result() == 0
    time.sleep(0.05)
    assert max(calls) <= 4  # the one handed out plus at most `ahead` more
    rest = [f.result() for f in gen]
    assert rest == [-i for i in range(1, 100)]


def test_prefetch_errors_surface_in_the_consumer_through_the_pool():
    def read(i):
        if i == 5:
            raise OSError(5, "disk on fire", f"chunk{i}")
        return i

    def compute(future):
        return future.result() + 1

    with pytest.raises(OSError, match="disk on fire"):
        list(workers.map_unordered(compute, workers.prefetch(read, range(50), 2, 4), 2))


def test_default_threads_is_the_usable_core_count():
    assert workers.default_threads() >= 1


def test_prefetched_futures_handed_out_before_the_end_still_complete():
    # the source runs dry while reads handed out are still queued behind slow ones:
    # they must complete, not be cancelled with the pool
    gate = threading.Event()

    def read(i):
        gate.wait(5)
        return i

    gen = workers.prefetch(read, range(6), threads=1, ahead=10)
    futures = list(gen)  # exhausts the generator while everything is still queued
    gate.set()
    assert [f.result(timeout=10) for f in futures] == list(range(6))
