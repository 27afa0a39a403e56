"""Fixtures that build tiny real scans on disk and run the real scripts."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

# scrollzarr and the helpers here (reference.py) are importable through pytest's
# ``pythonpath`` setting in pyproject.toml
ROOT = Path(__file__).resolve().parent.parent


def write_stack(directory: Path, volume: np.ndarray, first: int = 0,
                pattern: str = "{:05d}.tif", **imwrite_kwargs) -> Path:
    """Write ``volume`` (z, y, x) as one TIFF per slice named by ``pattern``."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, plane in enumerate(volume):
        tifffile.imwrite(directory / pattern.format(first + i), plane, **imwrite_kwargs)
    return directory


def random_volume(shape, seed=0, dtype=np.uint16, high=65536) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, size=shape, dtype=np.int64).astype(dtype)


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file below root with its hash and mtime, to prove nothing changed."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p)] = (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        else:
            out[str(p)] = ("dir", 0)
    return out


def run_script(script: str, *args, check: bool = False, env=None, timeout=600):
    """Run one of our scripts as a real process; return the CompletedProcess."""
    cmd = [sys.executable, str(ROOT / script), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture
def stack_dir(tmp_path):
    """A factory: ``stack_dir(volume, **kw)`` writes a stack and returns its directory."""
    counter = iter(range(1000))

    def make(volume, **kwargs):
        return write_stack(tmp_path / f"slices{next(counter)}", volume, **kwargs)
    return make


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server(log_dir: Path):
    """A real moto S3 server on 127.0.0.1 in its own process: yields ``(endpoint,
    process)`` once it accepts connections; stopped on exit."""
    port = free_port()
    with open(log_dir / "moto.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto failed"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def s3_server(tmp_path):
    """A moto S3 server with a bucket "scrolls"; yields the environment that points
    boto3/s3fs (and our scripts) at it."""
    with moto_server(tmp_path) as (endpoint, _):
        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
        import boto3
        boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint,
                     aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="scrolls")
        yield env


@pytest.fixture
def running():
    """Start servers in threads; stop them all at the end of the test."""
    started = []

    def start(server):
        server.start()
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()
