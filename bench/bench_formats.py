#!/usr/bin/env python3
"""Benchmark of scroll_to_ome output formats (not a test): conversion throughput, file
count and bytes on disk of zarr v2 against zarr v3 sharded and compressed stores.

The synthetic scroll (scrollzarr.sample: papyrus spiral, CT-like noise, zero outside)
is written once as uncompressed uint16 TIFF slices into WORKDIR and reused. Every variant
converts the same slices with the same options (--chunk_size, --nlevels, cores) as a
fresh ``python scroll_to_ome.py`` process; the slices are read once beforehand so every
variant finds them in the page cache. Printed per variant:

* wall seconds (best of --repeats rounds over all variants), MB/s of level-0 voxels,
  and speed relative to the v2 baseline measured in the same run (v2 seconds / variant
  seconds; > 1 is faster); CPU seconds of the conversion process and their ratio to v2
  (the format's own cost: it hardly moves when other jobs share the machine);
* files and bytes on disk (all levels), and the compression ratio against v2
  (v2 bytes / variant bytes; the v2 store keeps all-zero chunks off disk too, so this is
  what the codec gains on the chunks that hold data);
* MB/s of reading level 0 back in full with zarr (page cache warm).

Usage: python bench/bench_formats.py [--size 128x1024x1024] [--workdir DIR]
       [--chunk_size 128] [--shard_size 256] [--nlevels 6] [--repeats 1]
       [--variants v2,v3-sharded,...]
``--size 256x2048x2048`` is the 2 GiB stack of the README figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import zarr  # noqa: E402

from synthetic import make_stack, warm  # noqa: E402

#: name -> extra scroll_to_ome.py options (SHARD is replaced by --shard_size)
VARIANTS = {
    "v2": [],
    "v3": ["--zarr_format", "3"],
    "v3-sharded": ["--zarr_format", "3", "--shard_size", "SHARD"],
    "v3-sharded+zstd": ["--zarr_format", "3", "--shard_size", "SHARD",
                        "--compression", "zstd"],
    "v3-sharded+blosc-lz4": ["--zarr_format", "3", "--shard_size", "SHARD",
                             "--compression", "blosc-lz4"],
    "v3-sharded+blosc-zstd": ["--zarr_format", "3", "--shard_size", "SHARD",
                              "--compression", "blosc-zstd"],
    "v2+blosc-zstd": ["--compression", "blosc-zstd"],
    "v2+blosc-lz4": ["--compression", "blosc-lz4"],
}
DEFAULT_VARIANTS = ("v2,v3-sharded,v3-sharded+zstd,v3-sharded+blosc-lz4,v3-sharded+blosc-zstd,"
                    "v2+blosc-zstd")


def parse_size(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.lower().split("x")]
    if len(parts) != 3 or min(parts) <= 0:
        raise SystemExit(f"--size {text!r}: expected ZxYxX, e.g. 256x2048x2048")
    return parts[0], parts[1], parts[2]


def disk_usage(root: Path) -> tuple[int, int]:
    """(files, bytes) of every file under ``root`` (metadata included)."""
    files = size = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            files += 1
            size += os.path.getsize(os.path.join(dirpath, name))
    return files, size


def convert(slices: Path, out: Path, options: list[str]) -> tuple[float, float] | str:
    """(wall seconds, CPU seconds) of one conversion, or the error line of a failed one.
    CPU seconds (user + system of the process) hardly change when other jobs share the
    machine; wall seconds do."""
    cmd = [sys.executable, str(ROOT / "scroll_to_ome.py"), str(slices), str(out),
           "--overwrite", "--quiet", *options]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return stderr.strip().splitlines()[-1] if stderr.strip() else "failed"
    return seconds, usage.ru_utime + usage.ru_stime


def read_level0(out: Path, chunk: int) -> float:
    """Seconds to read level 0 in full, one chunk-thick z slab per thread task."""
    arr = zarr.open_array(str(out / "0"), mode="r")
    nz = arr.shape[0]
    started = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(lambda z0: arr[z0:z0 + chunk].sum(), range(0, nz, chunk)))
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="128x1024x1024",
                   help="ZxYxX of the synthetic stack (default 128x1024x1024, 256 MiB; "
                        "256x2048x2048 is 2 GiB)")
    p.add_argument("--workdir", default="/tmp/bench_formats")
    p.add_argument("--chunk_size", type=int, default=128)
    p.add_argument("--shard_size", type=int, default=256)
    p.add_argument("--nlevels", type=int, default=6)
    p.add_argument("--max_gb", default=None, help="passed to scroll_to_ome.py")
    p.add_argument("--num_threads", default=None, help="passed to scroll_to_ome.py")
    p.add_argument("--repeats", type=int, default=1,
                   help="rounds over all variants (best of each is shown)")
    p.add_argument("--variants", default=DEFAULT_VARIANTS,
                   help="comma-separated, from " + ", ".join(VARIANTS))
    args = p.parse_args()
    shape = parse_size(args.size)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    if "v2" not in names:
        names.insert(0, "v2")  # the baseline of every ratio
    work = Path(args.workdir)
    slices = work / f"slices_{shape[0]}x{shape[1]}x{shape[2]}"
    make_stack(slices, shape)
    warm(slices)
    raw = shape[0] * shape[1] * shape[2] * 2
    common = ["--chunk_size", str(args.chunk_size), "--nlevels", str(args.nlevels)]
    for flag in ("max_gb", "num_threads"):
        if getattr(args, flag) is not None:
            common += [f"--{flag}", str(getattr(args, flag))]
    # rounds over all variants, so a burst of load elsewhere hits every variant alike
    best: dict[str, list[float]] = {}
    failures: dict[str, str] = {}
    for round_ in range(args.repeats):
        for name in names:
            if name in failures:
                continue
            options = common + [str(args.shard_size) if o == "SHARD" else o
                                for o in VARIANTS[name]]
            out = work / f"{name}.zarr"
            run = convert(slices, out, options)
            if isinstance(run, str):  # e.g. shards too big for the memory budget
                failures[name] = run
                continue
            read_s = read_level0(out, args.chunk_size)
            old = best.get(name, [float("inf")] * 3)
            best[name] = [min(a, b) for a, b in zip(old, (*run, read_s))]
            print(f"  round {round_ + 1}: {name}: {run[0]:.1f} s wall, {run[1]:.1f} s CPU",
                  file=sys.stderr, flush=True)
    if "v2" not in best:
        raise SystemExit(f"the v2 baseline failed: {failures.get('v2')}")

    print(f"# synthetic scroll {shape[0]}x{shape[1]}x{shape[2]} (z,y,x) uint16, "
          f"{raw / 2**30:.2f} GiB; {' '.join(common)}, shards {args.shard_size}^3; "
          f"{os.cpu_count()} cores; best of {args.repeats}")
    print(f"{'variant':<24}{'wall s':>8}{'MB/s':>7}{'speed/v2':>9}{'CPU s':>7}"
          f"{'CPU/v2':>7}{'files':>7}{'MB on disk':>11}{'compr/v2':>9}{'read MB/s':>10}")
    base_wall, base_cpu, _ = best["v2"]
    base_size = disk_usage(work / "v2.zarr")[1]
    for name in names:
        if name in failures:
            print(f"{name:<24}{failures[name]}")
            continue
        wall, cpu, read_s = best[name]
        files, size = disk_usage(work / f"{name}.zarr")
        print(f"{name:<24}{wall:>8.1f}{raw / wall / 1e6:>7.0f}{base_wall / wall:>9.2f}"
              f"{cpu:>7.1f}{cpu / base_cpu:>7.2f}{files:>7}{size / 1e6:>11.1f}"
              f"{base_size / size:>9.3f}{raw / read_s / 1e6:>10.0f}")


if __name__ == "__main__":
    main()
