"""Fixtures that build tiny real scans on disk and run the real scripts."""

from __future__ import annotations

import os
import subprocess
import sys
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
