"""scroll_to_ome on dask.distributed: real schedulers and workers on 127.0.0.1, a real
S3-compatible server, and the output compared byte for byte with the local executor's."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from conftest import ROOT, run_script
from scrollzarr import __version__, plan as planning, store
from scrollzarr.distributed import run_dask
from scrollzarr.errors import ScrollError
from scrollzarr.sample import write_scroll
from scrollzarr.slices import find_slices
from scrollzarr.sources import open_input

distributed = pytest.importorskip("distributed")

DASK = [sys.executable, "-m", "dask"]
BASE = ["--nlevels", "3", "--quiet"]
OPTS = [*BASE, "--chunk_size", "32"]
# workers start without scrollzarr (no PYTHONPATH, not installed, cwd elsewhere): the
# client sends them its own
WORKER_ENV: dict[str, str] = {}


def store_bytes(root: Path) -> dict[str, bytes]:
    """Every file under a store (chunks, .zarray, .zgroup, .zattrs) by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same_store(got: dict[str, bytes], expected: dict[str, bytes]) -> None:
    assert sorted(got) == sorted(expected)
    differ = [k for k in expected if got[k] != expected[k]]
    assert not differ, f"{len(differ)} files differ, e.g. {differ[:5]}"


def local_reference(src: Path, directory: Path, opts: list[str] = OPTS) -> dict[str, bytes]:
    """Convert with the default (local threads) executor; the store is named scroll.zarr
    like the others, since the multiscales name is the store's name."""
    out = directory / "scroll.zarr"
    run_script("scroll_to_ome.py", src, out, *opts, check=True)
    return store_bytes(out)


class Cluster:
    """A real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1."""

    def __init__(self, directory: Path, workers: int = 2, nanny: bool = False,
                 worker_env: dict[str, str] | None = WORKER_ENV):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.file = directory / "scheduler.json"
        self.procs: list[subprocess.Popen] = []
        self.scheduler = self._start(["scheduler", "--host", "127.0.0.1", "--port", "0",
                                      "--scheduler-file", self.file, "--no-dashboard"],
                                     "scheduler")
        deadline = time.monotonic() + 60
        while not self.file.exists():
            assert self.scheduler.poll() is None, "dask scheduler exited"
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.05)
        self.workers = [self.add_worker(f"w{i}", nanny, worker_env) for i in range(workers)]
        with self.client() as client:
            client.wait_for_workers(workers, timeout=60)
            self.address = client.scheduler.address

    def _start(self, args, name, env=None) -> subprocess.Popen:
        log = open(self.directory / f"{name}.log", "w")
        cwd = self.directory / name
        cwd.mkdir(exist_ok=True)  # not the repository: workers must not find it by cwd
        proc = subprocess.Popen([*DASK, *map(str, args)], stdout=log, stderr=log, cwd=cwd,
                                env={**os.environ, **(env or {})})
        log.close()
        self.procs.append(proc)
        return proc

    def add_worker(self, name: str, nanny: bool = False,
                   env: dict[str, str] | None = WORKER_ENV) -> subprocess.Popen:
        base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        return self._start(["worker", "--scheduler-file", self.file, "--nthreads", "1",
                            "--name", name, "--no-dashboard", "--host", "127.0.0.1",
                            "--nanny" if nanny else "--no-nanny",
                            "--local-directory", self.directory / name],
                           name, {**base, **(env or {})})

    def client(self):
        return distributed.Client(scheduler_file=str(self.file), timeout=30)

    def worker_address(self, name: str, client) -> str:
        for address, info in client.scheduler_info(n_workers=-1)["workers"].items():
            if info["name"] == name:
                return address
        raise AssertionError(f"no worker {name}")

    def close(self) -> None:
        # workers first: a worker whose scheduler is already gone may hang on exit
        for group in (self.procs[1:], self.procs[:1]):
            for proc in group:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
            for proc in group:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.close()


@pytest.fixture(scope="module")
def scroll(tmp_path_factory):
    """A synthetic scroll (masked outside, so some chunks are all zero) and its local
    conversion."""
    base = tmp_path_factory.mktemp("scroll")
    src = base / "slices"
    write_scroll(src, shape=(70, 96, 80))
    (base / "ref").mkdir()
    return src, local_reference(src, base / "ref")


def test_tcp_scheduler_output_is_byte_identical_to_local(tmp_path, cluster, scroll):
    src, reference = scroll
    # relative paths from a directory the workers do not share as their cwd
    (tmp_path / "out").mkdir()
    os.symlink(src, tmp_path / "slices")
    proc = subprocess.run([sys.executable, str(ROOT / "scroll_to_ome.py"), "slices",
                           "out/scroll.zarr", *OPTS, "--max_gb", "0.02",
                           "--scheduler", cluster.address],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert_same_store(store_bytes(tmp_path / "out" / "scroll.zarr"), reference)


def test_killed_client_resumes_on_the_cluster_to_identical_bytes(tmp_path, cluster, scroll):
    src, reference = scroll
    out = tmp_path / "scroll.zarr"
    dask_opts = [*OPTS, "--max_gb", "0.02", "--scheduler", cluster.address]
    killed = run_script("scroll_to_ome.py", src, out, *dask_opts,
                        env={"SCROLLZARR_KILL_AT": "level:1",
                             "SCROLLZARR_JOURNAL_SECONDS": "0"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run_script("scroll_to_ome.py", src, out, *dask_opts, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_store(store_bytes(out), reference)


def _small_plan(tmp_path: Path, name: str, threads: int = 2) -> planning.Plan:
    """A three-level plan over a fresh store, with several tasks per level."""
    src = tmp_path / "slices"
    if not src.exists():
        write_scroll(src, shape=(40, 64, 48))
    source = open_input(src)
    out = tmp_path / name
    shapes = [(40, 64, 48), (20, 32, 24), (10, 16, 12)]
    store.create_group(out)
    arrays = tuple(store.join(out, str(level)) for level in range(3))
    for path, shape in zip(arrays, shapes):
        store.create_array(path, shape, 8, np.dtype("<u2"))
    job = planning.Job(source=source, arrays=arrays, shapes=tuple(shapes),
                       algorithms=("none", "mean", "mean"), chunk=8, dtype="<u2")
    # a budget of a few chunk rows per task: several bands per stage
    return planning.make_plan(job, 0, 0.75e6 * threads, threads)


def test_hooks_follow_level_order_and_skipped_tasks_are_not_run(tmp_path, cluster):
    full = _small_plan(tmp_path, "local.zarr")
    planning.run_local(full, 2, quiet=True)
    plan = _small_plan(tmp_path, "dask.zarr")
    assert all(len(tasks) > 1 for tasks in plan.levels.values())
    skipped = {t for t in plan.levels[0] if t.z[0] == 0}
    events = []
    run_dask(plan, cluster.address, quiet=True, skip=lambda t: t in skipped,
             on_task_done=lambda t: events.append(("task", t)),
             on_level_done=lambda level: events.append(("level", level)))
    assert [e[1] for e in events if e[0] == "level"] == [0, 1, 2]
    done = [e[1] for e in events if e[0] == "task"]
    assert sorted(done) == sorted(set(plan.tasks) - skipped)  # each once, none skipped
    for i, (kind, level) in enumerate(events):
        if kind == "level":
            before = {e[1] for e in events[:i] if e[0] == "task"}
            assert {t for t in plan.tasks if t.level <= level} - skipped <= before
    # the skipped slab is unwritten (in both levels its tasks write), every other chunk
    # is identical to run_local's
    for level in plan.written(0):
        got = store_bytes(tmp_path / "dask.zarr" / str(level))
        ref = store_bytes(tmp_path / "local.zarr" / str(level))
        spans = [t.region(level)[0] for t in skipped]  # z spans at this level
        unwritten = {str(iz) for z0, z1 in spans for iz in range(z0 // 8, -(-z1 // 8))}
        assert unwritten and not any(k.split("/")[0] in unwritten for k in got)
        assert got == {k: v for k, v in ref.items() if k.split("/")[0] not in unwritten}


def test_local_cluster_keeps_tasks_in_flight_within_the_memory_budget(tmp_path, cluster):
    # with --scheduler local every worker shares this machine's budget: a plan that fits
    # one task at a time must never run two at once, although two workers are idle
    from scrollzarr.distributed import _run_plan
    plan = _small_plan(tmp_path, "o.zarr", threads=1)
    assert {band[2] for band in plan.bands.values()} == {1}
    with cluster.client() as client:
        _run_plan(client, plan, plan.job, True, lambda level: None, lambda t: False,
                  lambda t: None, share_memory=True)
        # the scheduler's own ordered log of state changes: no clocks involved
        log = client.run_on_scheduler(lambda dask_scheduler: [
            (str(e[0]), e[1], e[2]) for e in dask_scheduler.transition_log])
    ours = [e for e in log if e[0].startswith("scrollzarr-")]
    run = ours[-1][0].split("-")[1]  # keys are scrollzarr-RUN-TASK; other tests ran too
    running, most, ran = 0, 0, set()
    for key, start, finish in ours:
        if key.split("-")[1] != run:
            continue
        if finish == "processing":
            running += 1
            ran.add(key)
        elif start == "processing":
            running -= 1
        most = max(most, running)
    assert len(ran) == len(plan.tasks) and most == 1


def test_failing_task_stops_the_run_with_its_error(tmp_path, cluster):
    plan = _small_plan(tmp_path, "o.zarr")
    broken = tmp_path / "slices" / "00017.tif"
    broken.write_bytes(b"not a tiff any more")
    done_levels = []
    with pytest.raises(ScrollError, match="00017.tif"):
        run_dask(plan, cluster.address, quiet=True, on_level_done=done_levels.append)
    assert done_levels == []


def test_worker_killed_mid_run_output_still_identical(tmp_path):
    src = tmp_path / "slices"
    write_scroll(src, shape=(192, 256, 224))
    # small chunks and budget: hundreds of tasks, so the run outlasts the kill
    opts = [*BASE, "--chunk_size", "16", "--max_gb", "0.001"]
    reference = local_reference(src, tmp_path, opts)
    c = Cluster(tmp_path / "cluster")
    try:
        out = tmp_path / "dask" / "scroll.zarr"
        out.parent.mkdir()
        log = open(tmp_path / "run.log", "w")
        run = subprocess.Popen([sys.executable, str(ROOT / "scroll_to_ome.py"), src, out,
                                *opts, "--scheduler", c.address],
                               stdout=log, stderr=log)
        with c.client() as watcher:
            victim = c.worker_address("w0", watcher)
            deadline = time.monotonic() + 120
            # kill w0 while it holds a task and level 0 is under way (some chunks written)
            while not (watcher.processing(workers=[victim]).get(victim)
                       and any((out / "0").glob("*/*/*"))):
                assert run.poll() is None, "the run ended before the worker was killed"
                assert time.monotonic() < deadline
                time.sleep(0.01)
            os.kill(c.workers[0].pid, signal.SIGKILL)
            assert run.poll() is None  # the run goes on without w0
        assert run.wait(timeout=300) == 0, (tmp_path / "run.log").read_text()
        log.close()
        assert_same_store(store_bytes(out), reference)
    finally:
        c.close()


def test_workers_without_scrollzarr_receive_it_and_write_identical_bytes(tmp_path, scroll):
    src, reference = scroll
    c = Cluster(tmp_path / "cluster", workers=2, worker_env={})
    try:
        with c.client() as client:  # the workers really cannot import it by themselves
            assert all(isinstance(r, ImportError) for r in client.run(
                lambda: __import__("scrollzarr"), on_error="return").values())
        out = tmp_path / "scroll.zarr"
        proc = run_script("scroll_to_ome.py", src, out, *OPTS, "--scheduler", c.address)
        assert proc.returncode == 0, proc.stderr
        assert_same_store(store_bytes(out), reference)
        with c.client() as client:  # ... and a worker joining later gets it too
            c.add_worker("late")
            client.wait_for_workers(3, timeout=60)
            late = c.worker_address("late", client)
            [where] = client.run(lambda: __import__("scrollzarr").__file__,
                                 workers=[late]).values()
            assert ".zip" in where
    finally:
        c.close()


def test_worker_with_another_scrollzarr_version_is_one_clear_error(tmp_path, scroll):
    src, _ = scroll
    other = tmp_path / "other"
    shutil.copytree(ROOT / "scrollzarr", other / "scrollzarr",
                    ignore=shutil.ignore_patterns("__pycache__"))
    init = other / "scrollzarr" / "__init__.py"
    init.write_text(init.read_text().replace(f'"{__version__}"', '"0.0.9"'))
    c = Cluster(tmp_path / "cluster", workers=1, worker_env={"PYTHONPATH": str(other)})
    try:
        proc = run_script("scroll_to_ome.py", src, tmp_path / "o.zarr", *OPTS,
                          "--scheduler", c.address)
        assert proc.returncode == 1
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "has scrollzarr 0.0.9" in proc.stderr
        assert f"this client runs scrollzarr {__version__}" in proc.stderr
        # the check runs once the store is created: it must not look finished
        assert not store.get_attributes(tmp_path / "o.zarr")["scrollzarr"]["complete"]
    finally:
        c.close()


@pytest.mark.parametrize("scheduler, message", [
    ("banana", "--scheduler banana: use 'local'"),
    ("tcp://127.0.0.1:{closed}", "cannot connect"),
    ("missing.json", "scheduler file does not exist"),
])
def test_bad_scheduler_is_a_one_line_error(tmp_path, scroll, scheduler, message):
    src, _ = scroll
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    proc = run_script("scroll_to_ome.py", src, tmp_path / "o.zarr", *OPTS,
                      "--scheduler", scheduler.format(closed=closed),
                      env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"})
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_output_to_s3_url_reads_back_identical(tmp_path, scroll, s3_server):
    src, reference = scroll
    # a LocalCluster: its worker processes inherit the credentials and endpoint
    proc = run_script("scroll_to_ome.py", src, "s3://scrolls/scans/scroll.zarr", *OPTS,
                      "--scheduler", "local", "--workers", "2", env=s3_server)
    assert proc.returncode == 0, proc.stderr
    import s3fs
    opts = {"key": "testing", "secret": "testing",
            "client_kwargs": {"endpoint_url": s3_server["AWS_ENDPOINT_URL"],
                              "region_name": "us-east-1"}}
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **opts)
    root = "scrolls/scans/scroll.zarr"
    objects = {p[len(root) + 1:]: fs.cat_file(p) for p in fs.find(root)}
    assert_same_store(objects, reference)
    group = zarr.open_group(f"s3://{root}", mode="r", storage_options=opts)
    assert [d["path"] for d in group.attrs["multiscales"][0]["datasets"]] == ["0", "1", "2"]
    level0 = group["0"][:]
    assert level0.shape == (70, 96, 80) and level0.dtype == np.uint16
    stack = find_slices(src)
    expected = np.stack([tifffile.imread(stack.paths[z]) for z in sorted(stack.paths)])
    np.testing.assert_array_equal(level0, expected)
