#!/usr/bin/env python3
"""Would compiled kernels help the conversion? (not a test)

The two steps a level-0 task does besides decoding, on one slab of a task (one chunk
deep and one chunk high, the full width; uint16), in the same run:

* the 2x2x2 mean into level 1: ours (``pyramid.downsample(..., out=)``, numpy in 2 MiB
  steps) against a straightforward numba ``nogil`` kernel with the same integer
  arithmetic (round half to even; checked bit-identical, also on odd shapes);
* copying the slab's chunks into chunk order and checking each for a non-zero voxel:
  ours (a numpy copy, then a 64-bit ``max`` as ``chunkio.RawLevel.write`` does) against
  one fused numba loop;
* what numba costs a fresh process before its first kernel runs: ``import numba`` and
  loading the kernels from the compile cache (cache warm, second run).

Every kernel is timed on one thread and on all cores (one slab per thread), best of
--repeats. Usage: python bench/bench_mean.py [--width 2048] [--chunk 128] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scrollzarr import pyramid  # noqa: E402

KERNELS = '''
import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def mean_uint16(block, out):
    """2x2x2 mean of (z, y, x) ``block`` into ``out``, round half to even, odd edges
    replicated (pyramid's rule)."""
    nz, ny, nx = block.shape
    oz, oy, ox = out.shape
    for k in range(oz):
        z0 = 2 * k
        z1 = min(z0 + 1, nz - 1)
        for j in range(oy):
            y0 = 2 * j
            y1 = min(y0 + 1, ny - 1)
            a, b, c, d = block[z0, y0], block[z0, y1], block[z1, y0], block[z1, y1]
            row = out[k, j]
            for i in range(ox):
                x0 = 2 * i
                x1 = min(x0 + 1, nx - 1)
                s = (np.uint32(a[x0]) + a[x1] + b[x0] + b[x1] + c[x0] + c[x1]
                     + d[x0] + d[x1])
                row[i] = (s + 3 + ((s >> 3) & 1)) >> 3


@numba.njit(nogil=True, cache=True)
def copy_nonzero(part, buf):
    """Copy ``part`` into ``buf`` (same shape); True if any voxel is non-zero."""
    seen = np.uint16(0)
    for z in range(part.shape[0]):
        for y in range(part.shape[1]):
            src, dst = part[z, y], buf[z, y]
            for x in range(part.shape[2]):
                dst[x] = src[x]
                seen |= src[x]
    return seen != 0
'''


def ours_copy(slab: np.ndarray, chunk: int, buf: np.ndarray) -> None:
    for x in range(0, slab.shape[2], chunk):
        buf[...] = slab[:, :, x:x + chunk]
        bool(buf.reshape(-1).view(np.uint64).max(initial=0))


def compiled_copy(kernels, slab: np.ndarray, chunk: int, buf: np.ndarray) -> None:
    for x in range(0, slab.shape[2], chunk):
        kernels.copy_nonzero(slab[:, :, x:x + chunk], buf)


def best(fn, slabs: list[np.ndarray], repeats: int, threads: int) -> float:
    """Best wall seconds of ``fn(slab, thread_index)`` over one slab per thread."""
    times = []
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            started = time.perf_counter()
            list(pool.map(fn, slabs[:threads], range(threads)))
            times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=2048, help="slice width (x), voxels")
    ap.add_argument("--chunk", type=int, default=128, help="chunk edge, voxels")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        module = Path(tmp) / "bench_mean_kernels.py"
        module.write_text(KERNELS)
        sys.path.insert(0, tmp)
        for attempt in ("compile", "cached load"):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c",
                            "import bench_mean_kernels as k, numpy as np;"
                            "b = np.ones((3, 3, 3), np.uint16);"
                            "k.mean_uint16(b, np.empty((2, 2, 2), np.uint16));"
                            "k.copy_nonzero(b, b.copy())"], check=True, cwd=tmp)
            print(f"fresh process, import numba + first kernels ({attempt}): "
                  f"{time.perf_counter() - started:.2f} s")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import numpy"], check=True)
        print(f"fresh process, import numpy only (for comparison): "
              f"{time.perf_counter() - started:.2f} s")
        import bench_mean_kernels as kernels

        threads = os.cpu_count() or 1
        rng = np.random.default_rng(0)
        shape = (args.chunk, args.chunk, args.width)
        slabs = [rng.integers(0, 65536, shape, dtype=np.uint16) for _ in range(threads)]
        half = pyramid.reduced_shape(shape)
        outs = [np.empty(half, np.uint16) for _ in range(threads)]
        refs = [np.empty(half, np.uint16) for _ in range(threads)]
        bufs = [np.empty((args.chunk,) * 3, np.uint16) for _ in range(threads)]
        kernels.mean_uint16(slabs[0], outs[0])
        pyramid.downsample(slabs[0], "mean", out=refs[0])
        odd = slabs[0][:7, :9, :13]
        odd_out = np.empty(pyramid.reduced_shape(odd.shape), np.uint16)
        kernels.mean_uint16(odd, odd_out)
        if not (np.array_equal(outs[0], refs[0])
                and np.array_equal(odd_out, pyramid.downsample(odd, "mean"))):
            raise SystemExit("the compiled mean differs from pyramid's")
        mb = slabs[0].nbytes / 2**20
        print(f"slab {shape} uint16 ({mb:.0f} MiB), best of {args.repeats}:")
        cases = {
            "mean, ours (numpy)": lambda s, i: pyramid.downsample(s, "mean", out=refs[i]),
            "mean, numba": lambda s, i: kernels.mean_uint16(s, outs[i]),
            "chunk copy + non-zero, ours (numpy)":
                lambda s, i: ours_copy(s, args.chunk, bufs[i]),
            "chunk copy + non-zero, numba":
                lambda s, i: compiled_copy(kernels, s, args.chunk, bufs[i]),
        }
        results = {}
        for name, fn in cases.items():
            one = best(fn, slabs, args.repeats, 1)
            many = best(fn, slabs, args.repeats, threads)
            results[name] = one
            print(f"  {name:38s} {one * 1e3:7.1f} ms on 1 thread ({mb / one:6.0f} MiB/s), "
                  f"{many * 1e3:7.1f} ms for {threads} slabs on {threads} threads")
        for step in ("mean", "chunk copy + non-zero"):
            ratio = results[f"{step}, ours (numpy)"] / results[f"{step}, numba"]
            print(f"  {step}: numba is {ratio:.2f}x the speed of ours")


if __name__ == "__main__":
    main()
