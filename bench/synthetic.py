"""The synthetic stack the benchmarks convert, made once and kept between runs."""

from __future__ import annotations

import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scrollzarr import sample  # noqa: E402


def make_stack(directory: Path, shape: tuple[int, int, int]) -> Path:
    """Write the synthetic scroll of ``shape`` (z, y, x) as slice TIFFs into
    ``directory`` unless a complete one is there; return ``directory``. The completion
    marker sits beside the directory, so the converter sees only slices."""
    directory = Path(directory)
    marker = directory.with_name(f".{directory.name}.complete-{'x'.join(map(str, shape))}")
    if marker.exists() and directory.is_dir():
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    started = time.perf_counter()
    print(f"generating a {shape} synthetic stack in {directory} ...", file=sys.stderr,
          flush=True)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(lambda z: sample.write_slice(directory, z, shape), range(shape[0])))
    marker.touch()
    print(f"  done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return directory


def warm(directory: Path) -> None:
    """Read every slice once, so that runs compare with a warm page cache."""
    for path in sorted(Path(directory).glob("*.tif")):
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass
