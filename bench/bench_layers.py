#!/usr/bin/env python3
"""Benchmark of ppm_to_layers (not a test): samples per second, chunk reads per unique
chunk, and peak RSS against segment size.

On a synthetic scroll of ~2 GiB (uint16, 128^3 chunks, zarr v2) and a segment of
WIDTH x HEIGHT pixels on one winding, 65 layers:

* baseline, measured in the same run: a straightforward renderer, one thread, tiles in
  row-major order, each tile's bounding box read from zarr (no cache) and sampled with
  scipy.ndimage.map_coordinates(order=1) in float64;
* ours (scrollzarr.layers.render_layers, 2 worker threads), with the default cache and
  with a small one;
* peak RSS (VmHWM of a fresh process) of ours for the segment and a 4x larger one.

Usage: python bench/bench_layers.py [--workdir DIR] [--width 1000] [--height 250]
The volume is generated once into WORKDIR and reused by later runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import zarr  # noqa: E402
from scipy import ndimage  # noqa: E402

from scrollzarr import sample  # noqa: E402
from scrollzarr.layers import layer_offsets, render_layers  # noqa: E402
from scrollzarr.ngff import open_volume  # noqa: E402
from scrollzarr.ppm import Ppm  # noqa: E402
from scrollzarr.segment import write_sample_segment  # noqa: E402

SHAPE = (512, 1448, 1448)  # 2.0 GiB of uint16
CHUNK = 128
LAYERS = 65
WINDING = 3
RSS_CACHE_GB = 0.0625  # 16 chunks of 128^3 uint16: below what either segment touches


def make_volume(path: Path) -> None:
    """Write the synthetic scroll as a zarr v2 array, one chunk-thick z band at a time."""
    marker = path / ".complete"
    if marker.exists():
        return
    arr = zarr.create_array(store=str(path), shape=SHAPE, chunks=(CHUNK,) * 3,
                            dtype="uint16", zarr_format=2, overwrite=True,
                            chunk_key_encoding={"name": "v2", "separator": "/"},
                            compressors=None, fill_value=0,
                            config={"write_empty_chunks": False})
    with ThreadPoolExecutor(2) as pool:
        for z0 in range(0, SHAPE[0], CHUNK):
            z1 = min(z0 + CHUNK, SHAPE[0])
            arr[z0:z1] = np.stack(list(pool.map(lambda z: sample.make_slice(z, SHAPE),
                                                range(z0, z1))))
            print(f"  volume: slices {z0}..{z1 - 1} written", file=sys.stderr, flush=True)
    marker.touch()


def baseline(ppm_path: Path, store: Path, block: int = 100) -> dict:
    """The straightforward renderer the ratios compare against (one thread, no cache)."""
    volume = open_volume(str(store))
    arr = volume.array
    shape = np.asarray(arr.shape)
    offsets = layer_offsets(LAYERS)
    reads = 0
    seen: set[tuple[int, int, int]] = set()
    cpu = cpu_seconds()
    started = time.perf_counter()
    with Ppm(ppm_path) as ppm:
        for v0 in range(0, ppm.height, block):
            for u0 in range(0, ppm.width, block):
                v1, u1 = min(v0 + block, ppm.height), min(u0 + block, ppm.width)
                data, mapped = ppm.read_tile(v0, v1, u0, u1)
                p = volume.to_index(data[mapped][:, 2::-1])
                n = data[mapped][:, 5:2:-1]
                idx = (p[None] + offsets[:, None, None] * n[None]).reshape(-1, 3)
                lo = np.clip(np.floor(idx.min(0)).astype(int), 0, shape - 1)
                hi = np.clip(np.floor(idx.max(0)).astype(int) + 2, 1, shape)
                box = arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float64)
                for c in np.ndindex(*((hi - 1) // CHUNK - lo // CHUNK + 1)):
                    seen.add(tuple(int(a) for a in np.asarray(c) + lo // CHUNK))
                    reads += 1
                values = ndimage.map_coordinates(box, (idx - lo).T, order=1, mode="nearest")
                inside = np.all((idx >= 0) & (idx <= shape - 1), axis=1)
                np.rint(np.where(inside, values, 0))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "samples": LAYERS * ppm.width * ppm.height,
            "cpu": cpu_seconds() - cpu, "reads": reads, "unique": len(seen)}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ours(ppm_path: Path, store: Path, out: Path, cache_gb: float, workers: int = 2) -> dict:
    cpu = cpu_seconds()
    stats = render_layers(ppm_path, store, out, out / "stack.tif", number_of_layers=LAYERS,
                          zarr_cache_max_size_gb=cache_gb, quiet=True, workers=workers)
    return {"seconds": stats.seconds, "samples": stats.samples, "cpu": cpu_seconds() - cpu,
            "reads": stats.chunk_fetches, "unique": stats.unique_chunks}


def child(args: argparse.Namespace) -> None:
    """Render in this fresh process and print its result with the peak RSS."""
    result = ours(Path(args.ppm), Path(args.store), Path(args.out), args.cache_gb)
    # VmHWM, not ru_maxrss: after fork + exec, ru_maxrss starts at the parent's RSS
    status = Path("/proc/self/status").read_text()
    result["peak_rss_mb"] = int(status.split("VmHWM:")[1].split()[0]) / 1024
    print(json.dumps(result))


def in_child(ppm_path: Path, store: Path, out: Path, cache_gb: float = 8.0) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", "--ppm", str(ppm_path),
                           "--store", str(store), "--out", str(out),
                           "--cache_gb", str(cache_gb)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rate(r: dict) -> float:
    return r["samples"] / r["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/bench_layers")
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--height", type=int, default=250)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ppm", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--cache_gb", type=float, default=8.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    store = work / "scroll.zarr"
    print(f"volume {SHAPE} uint16 ({np.prod(SHAPE) * 2 / 2**30:.2f} GiB), chunks {CHUNK}^3, "
          f"in {store}", flush=True)
    make_volume(store)
    small, large = work / "seg1.ppm", work / "seg4.ppm"
    write_sample_segment(small, SHAPE, winding=WINDING, width=args.width, height=args.height)
    write_sample_segment(large, SHAPE, winding=WINDING, width=2 * args.width,
                         height=2 * args.height)
    print(f"segment {args.width}x{args.height} pixels x {LAYERS} layers; 4x segment "
          f"{2 * args.width}x{2 * args.height}", flush=True)

    load = os.getloadavg()[0]
    ours(small, store, work / "warm", 8.0)  # warm the page cache for both contenders
    base = baseline(small, store)
    fast = ours(small, store, work / "out1", 8.0)
    single = ours(small, store, work / "out1t", 8.0, workers=1)
    tight = ours(small, store, work / "out1s", 0.1)
    # a fixed cache bound for both, so the RSS difference is what the segment size adds
    rss1 = in_child(small, store, work / "rss1", RSS_CACHE_GB)
    rss4 = in_child(large, store, work / "rss4", RSS_CACHE_GB)

    def line(name: str, r: dict) -> str:
        return (f"{name:<32} {rate(r) / 1e6:6.2f} M samples/s  x{rate(r) / rate(base):5.2f}  "
                f"cpu/wall {r['cpu'] / r['seconds']:4.2f}  {r['reads']:4d} chunk reads / "
                f"{r['unique']:3d} chunks = {r['reads'] / r['unique']:.2f}")

    print(f"load average before: {load:.2f} (other jobs skew wall-clock "
          "figures; cpu/wall 2.00 = both cores busy)")
    print(line("baseline: map_coordinates, 1 thr", base))
    print(line("ours, 1 thread, cache 8 GiB", single))
    print(line("ours, 2 threads, cache 8 GiB", fast))
    print(line("ours, 2 threads, cache 0.1 GiB", tight))
    print(f"(peak RSS runs: fresh process each, --zarr_cache_max_size_gb {RSS_CACHE_GB})")
    print(f"peak RSS ours, 1x segment: {rss1['peak_rss_mb']:7.0f} MB "
          f"({rate(rss1) / 1e6:.2f} M samples/s)")
    print(f"peak RSS ours, 4x segment: {rss4['peak_rss_mb']:7.0f} MB "
          f"({rate(rss4) / 1e6:.2f} M samples/s)  ratio 4x/1x "
          f"{rss4['peak_rss_mb'] / rss1['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
