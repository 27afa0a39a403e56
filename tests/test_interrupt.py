"""Ctrl-C (SIGINT) and SIGTERM: every finished task is journaled before the exit, the
message says how many were saved and prints the command that continues, and that
command finishes the store byte for byte like an uninterrupted run."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, random_volume, run_script, write_stack

OPTS = ["--chunk_size", "8", "--nlevels", "3", "--max_gb", "0.00005", "--num_threads", "1"]


def store_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    base = tmp_path_factory.mktemp("interrupt")
    src = write_stack(base / "in", random_volume((96, 128, 128), seed=5))
    (base / "ref").mkdir()
    run_script("scroll_to_ome.py", src, base / "ref" / "o.zarr", *OPTS, "--quiet",
               check=True)
    return src, store_bytes(base / "ref" / "o.zarr")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_journals_finished_tasks_and_prints_the_continue_command(
        tmp_path, scan, signum, code):
    src, reference = scan
    out = tmp_path / "o.zarr"
    # no timed journal batch: only the signal handler can have saved what is done
    env = {**os.environ, "SCROLLZARR_JOURNAL_SECONDS": "100000"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "scroll_to_ome.py"), str(src),
                             str(out), *OPTS, "--quiet"], env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        # two level-0 tasks written (256 chunk files each: 4 chunks deep, 4 high, 16 wide)
        if len(list((out / "0").glob("*/*/*"))) >= 700:
            break
        time.sleep(0.005)
    proc.send_signal(signum)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == code, stderr
    line = stderr.strip().splitlines()[-1]
    name = signal.Signals(signum).name
    head = f"interrupted ({name}): {out}: "
    assert line.startswith(head) and "Traceback" not in stderr, stderr
    saved, _, rest = line[len(head):].partition(" of ")
    total, _, command = rest.partition(" tasks saved; continue with: ")
    assert 0 < int(saved) < int(total)
    # every saved task is in the journal, written by the handler
    journaled = set()
    for batch in (out / ".scrollzarr_journal").glob("done-*"):
        journaled.update(batch.read_text().split())
    assert len(journaled) == int(saved)
    words = shlex.split(command)
    assert words[:2] == [sys.executable, str(ROOT / "scroll_to_ome.py")]
    assert words[-1] == "--resume"
    resumed = subprocess.run(words, capture_output=True, text=True, timeout=300,
                             cwd=tmp_path.parent)  # copy-pasteable from anywhere
    assert resumed.returncode == 0, resumed.stderr
    assert f"{saved} of {total} tasks already done" in resumed.stderr
    assert store_bytes(out) == reference


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_decompress_signal_keeps_finished_files_and_prints_the_continue_command(
        tmp_path, signum, code):
    from scrollzarr import sample
    src, out = tmp_path / "in", tmp_path / "out"
    sample.write_scroll(src, (80, 384, 384), compression="lzw")
    proc = subprocess.Popen([sys.executable, str(ROOT / "decompress_tiffs.py"), str(src),
                             str(out), "--workers", "1", "--quiet"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and len(list(out.glob("*.tif"))) >= 3:
            break
        time.sleep(0.005)
    proc.send_signal(signum)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == code, stderr
    line = stderr.strip().splitlines()[-1]
    head = f"interrupted ({signal.Signals(signum).name}): {out}: "
    assert line.startswith(head) and "Traceback" not in stderr, stderr
    assert " of 80 files complete (each output is written whole); continue with: " in line
    words = shlex.split(line.partition("; continue with: ")[2])
    assert words[:2] == [sys.executable, str(ROOT / "decompress_tiffs.py")]
    finished = subprocess.run(words, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert sorted(p.name for p in out.glob("*.tif")) == sorted(p.name for p in src.iterdir())
    assert not list(out.glob("*.partial"))
