#!/usr/bin/env python3
"""Benchmark of decompress_tiffs (not a test): throughput with 1 worker against all
cores, and what decompressing buys when the slices are read again.

On a synthetic LZW stack (default 64 slices of 1024 x 1024 uint16, the synthetic scroll
of scrollzarr.sample, which is masked outside the papyrus like a real masked volume):

* baseline, measured in the same run: ``decompress_tiffs`` with 1 worker;
* ours with ``--workers`` = all cores; ratio = baseline time / our time;
* reading every slice with tifffile.imread from the LZW inputs against from the
  uncompressed outputs (both from the page cache, so this is the decoding cost a later
  conversion pays per pass).

Each timing is the median of --repeat runs; every decompress run writes a fresh output
directory (fsync included). MB are 10^6 bytes of uncompressed pixels.

Usage: python bench/bench_decompress.py [--workdir DIR] [--slices 64] [--size 1024]
       [--repeat 3]
The input stack is generated once into WORKDIR and reused by later runs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tifffile  # noqa: E402

from scrollzarr import sample  # noqa: E402
from scrollzarr.decompress import decompress_tiffs, default_workers  # noqa: E402


def make_stack(directory: Path, slices: int, size: int) -> None:
    marker = directory / f".complete_{slices}_{size}"
    if marker.exists():
        return
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    shape = (slices, size, size)
    with ThreadPoolExecutor(default_workers()) as pool:
        list(pool.map(lambda z: sample.write_slice(directory, z, shape, compression="lzw"),
                      range(slices)))
    marker.touch()


def time_decompress(src: Path, out: Path, workers: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        summary = decompress_tiffs(src, out, workers=workers, quiet=True)
        times.append(time.perf_counter() - started)
        if summary.failed or summary.decompressed != summary.total:
            raise SystemExit(f"benchmark run failed: {summary}")
    return statistics.median(times)


def time_reads(directory: Path, repeat: int) -> float:
    files = sorted(directory.glob("*.tif"))
    for path in files:  # warm the page cache so both sides measure decoding only
        path.read_bytes()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for path in files:
            tifffile.imread(path, maxworkers=1)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir())
                        / "scrollzarr_bench_decompress")
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--size", type=int, default=1024, help="slice edge, pixels")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    src, out = args.workdir / "lzw", args.workdir / "out"
    make_stack(src, args.slices, args.size)
    megabytes = args.slices * args.size * args.size * 2 / 1e6
    compressed = sum(p.stat().st_size for p in src.glob("*.tif")) / 1e6
    cores = default_workers()
    print(f"stack: {args.slices} LZW slices of {args.size}x{args.size} uint16, "
          f"{megabytes:.0f} MB uncompressed, {compressed:.0f} MB on disk; {cores} cores; "
          f"median of {args.repeat}")

    base = time_decompress(src, out, 1, args.repeat)
    ours = time_decompress(src, out, cores, args.repeat)
    for label, seconds in (("1 worker (baseline)", base), (f"{cores} workers", ours)):
        print(f"  decompress, {label:20s} {seconds:7.2f} s  {args.slices / seconds:7.1f} "
              f"files/s  {megabytes / seconds:7.0f} MB/s")
    print(f"  ratio {cores} workers / 1 worker: {base / ours:.2f}x")

    read_lzw, read_raw = time_reads(src, args.repeat), time_reads(out, args.repeat)
    print(f"  read all slices, LZW inputs:          {read_lzw:7.2f} s  "
          f"{megabytes / read_lzw:7.0f} MB/s")
    print(f"  read all slices, uncompressed outputs: {read_raw:6.2f} s  "
          f"{megabytes / read_raw:7.0f} MB/s")
    print(f"  ratio uncompressed / LZW read speed: {read_lzw / read_raw:.1f}x")


if __name__ == "__main__":
    main()
