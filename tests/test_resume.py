"""Crash-safe, resumable conversion: kill -9 anywhere, --resume, identical bytes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, random_volume, run_script, write_stack

JOURNAL = ".scrollzarr_journal"
# small chunks and a small budget: many tasks per level, one thread: a fixed task order
OPTS = ["--chunk_size", "8", "--nlevels", "4", "--max_gb", "0.00005", "--num_threads", "1",
        "--quiet"]


def store_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A stack with masked (all-zero) regions, and its uninterrupted conversion."""
    base = tmp_path_factory.mktemp("resume")
    (base / "ref").mkdir()
    vol = random_volume((37, 40, 44), seed=21)
    vol[:, :, 30:] = 0
    src = write_stack(base / "in", vol)
    # the multiscales name is the store's file name: the reference has the same name
    run_script("scroll_to_ome.py", src, base / "ref" / "o.zarr", *OPTS, check=True)
    return src, store_bytes(base / "ref" / "o.zarr")


def listed_levels(store: Path) -> list[str]:
    import json
    attrs = json.loads((store / ".zattrs").read_text())
    if "multiscales" not in attrs:
        return []
    return [d["path"] for d in attrs["multiscales"][0]["datasets"]]


def stage_plan(src: Path, out: Path) -> tuple[list[int], list[str]]:
    """Number of tasks of each stage of the conversion OPTS plan (from the real planner),
    and the levels the first stage writes."""
    from scrollzarr import spec as specs
    from scrollzarr.convert import Options, _make_plan
    from scrollzarr.sources import open_input
    options = Options(chunk_size=8, nlevels=4, max_gb=0.00005, num_threads=1, quiet=True)
    source = open_input(src)
    job = specs.job(specs.full_spec(options, source, str(out)), source)
    plan = _make_plan(job, 0, options.max_gb, 1, lambda s: None)
    first = [str(level) for level in plan.written(0)]
    assert len(plan.levels[0]) >= 2 and len(first) >= 2 and len(plan.levels) >= 2
    return [len(tasks) for tasks in plan.levels.values()], first


# (kill point, levels listed when killed) from the plan's stage sizes and the levels its
# first stage writes
KILLS = {
    "during level 0": (lambda n, first: ("task:2", [])),  # written but not yet recorded
    "between levels": (lambda n, first: ("level:2", ["0", "1"])),
    "during a pyramid level": (lambda n, first: (f"task:{n[0] + 1}", first)),
    "right after a journal write": (lambda n, first: (f"journal:{min(3, n[0] - 1)}", [])),
    "before the last level is listed": (lambda n, first: ("level:3", ["0", "1", "2"])),
}


@pytest.mark.parametrize("where", list(KILLS))
def test_kill_then_resume_gives_identical_store(tmp_path, scan, where):
    src, reference = scan
    out = tmp_path / "o.zarr"
    kill_at, listed = KILLS[where](*stage_plan(src, out))
    proc = run_script("scroll_to_ome.py", src, out, *OPTS,
                      env={"SCROLLZARR_KILL_AT": kill_at, "SCROLLZARR_JOURNAL_SECONDS": "0"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (out / JOURNAL / "params.json").is_file()
    assert listed_levels(out) == listed  # a viewer never sees an unfinished level
    # without --resume the store is reported as unfinished, with the command to resume
    again = run_script("scroll_to_ome.py", src, out, *OPTS)
    assert again.returncode == 1
    assert "an unfinished conversion" in again.stderr and "--resume" in again.stderr
    resumed = run_script("scroll_to_ome.py", src, out, *OPTS, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert not (out / JOURNAL).exists()
    assert store_bytes(out) == reference


def test_resume_refuses_other_options_or_changed_input(tmp_path, scan):
    src, _ = scan
    local = tmp_path / "in"
    shutil.copytree(src, local)
    out = tmp_path / "o.zarr"
    proc = run_script("scroll_to_ome.py", local, out, *OPTS,
                      env={"SCROLLZARR_KILL_AT": "task:3"})
    assert proc.returncode == -signal.SIGKILL
    other = run_script("scroll_to_ome.py", local, out, *OPTS, "--algorithm", "max",
                       "--resume")
    assert other.returncode == 1
    assert "cannot --resume: algorithm was 'mean', now 'max'" in other.stderr
    os.utime(local / "00003.tif", ns=(1, 1))
    changed = run_script("scroll_to_ome.py", local, out, *OPTS, "--resume")
    assert changed.returncode == 1
    assert "cannot --resume: the input slices changed" in changed.stderr


def test_resume_with_another_memory_budget_keeps_the_first_tasks(tmp_path, scan):
    src, reference = scan
    out = tmp_path / "o.zarr"
    sizes, _ = stage_plan(src, out)
    proc = run_script("scroll_to_ome.py", src, out, *OPTS,  # killed within level 0
                      env={"SCROLLZARR_KILL_AT": f"task:{sizes[0] - 1}",
                           "SCROLLZARR_JOURNAL_SECONDS": "0"})
    assert proc.returncode == -signal.SIGKILL
    opts = [o if o != "0.00005" else "2" for o in OPTS]
    resumed = run_script("scroll_to_ome.py", src, out, *opts, "--resume", "--num_threads", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert store_bytes(out) == reference


def test_external_kill_at_a_random_moment(tmp_path):
    vol = random_volume((96, 128, 128), seed=22)
    src = write_stack(tmp_path / "in", vol)
    (tmp_path / "ref").mkdir()
    opts = ["--chunk_size", "8", "--nlevels", "3", "--max_gb", "0.0003", "--quiet"]
    run_script("scroll_to_ome.py", src, tmp_path / "ref" / "o.zarr", *opts, check=True)
    out = tmp_path / "o.zarr"
    cmd = [sys.executable, str(ROOT / "scroll_to_ome.py"), str(src), str(out), *opts]
    proc = subprocess.Popen(cmd, env={**os.environ, "SCROLLZARR_JOURNAL_SECONDS": "0"},
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((out / JOURNAL).glob("done-*"))) >= 3:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the conversion finished before the kill"
    resumed = run_script("scroll_to_ome.py", src, out, *opts, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert store_bytes(out) == store_bytes(tmp_path / "ref" / "o.zarr")


def test_resume_of_a_finished_store_is_a_no_op(tmp_path, scan):
    src, reference = scan
    out = tmp_path / "o.zarr"
    run_script("scroll_to_ome.py", src, out, *OPTS, check=True)
    loud = [o for o in OPTS if o != "--quiet"]
    again = run_script("scroll_to_ome.py", src, out, *loud, "--resume")
    assert again.returncode == 0 and "already complete" in again.stderr
    assert store_bytes(out) == reference


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                        capture_output=True).returncode == 0
    return ok


def test_disk_full_then_resume_after_freeing_space(tmp_path, scan):
    src, reference = scan
    mnt = Path("/tmp") / f"scrollzarr-full-{uuid.uuid4().hex[:8]}"
    if not _mount_tmpfs(mnt, "64k"):
        mnt.rmdir()
        pytest.skip("mounting a tmpfs is not permitted here (needs root)")
    try:
        out = mnt / "o.zarr"
        proc = run_script("scroll_to_ome.py", src, out, *OPTS)
        assert proc.returncode == 1
        assert proc.stderr.strip().splitlines()[-1] == (
            f"error: {out}: disk full (No space left on device); free some space and run "
            "the same command with --resume")
        assert "Traceback" not in proc.stderr
        subprocess.run(["mount", "-o", "remount,size=16m", str(mnt)], check=True)
        resumed = run_script("scroll_to_ome.py", src, out, *OPTS, "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert store_bytes(out) == reference
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
        shutil.rmtree(mnt, ignore_errors=True)
