#!/usr/bin/env python3
"""Benchmark of ppm_to_layers (not a test): the compiled sampler against references,
threads against processes, the whole command against the original tool, peak RSS.

On a synthetic scroll of ~2 GiB (uint16, 128^3 chunks, zarr v2) and a segment of
WIDTH x HEIGHT pixels on one winding, 65 layers (defaults: the 1117 x 256 test segment,
18.6 M samples), every ratio measured in the same run (median of --repeat runs):

* per core: ours with one thread against a straightforward single-thread renderer (tiles
  row-major, each tile's box read from zarr, scipy.ndimage.map_coordinates(order=1) in
  float64); goal >= 5x;
* threads: ours with 2 threads against 1 thread, set against two separate one-thread
  processes rendering at the same time against one alone; goal: the thread speed-up
  >= 85% of the process speed-up. "1 thread" is one compute thread (``--num_threads
  1``) with the I/O pool beside it, in every run alike; the child processes render one
  layer first (kernels loaded) and start their timed renders together;
* whole command: ``ppm_to_layers.py`` (compile cache warm) against the original tool's
  ``ppm_to_layers.py`` (scroll2zarr, run from a checkout with its own zarr 2 venv:
  ``--orig_dir`` and ``--orig_python``; skipped when not given) on the same files;
  goal <= 0.4x; both run with their bytecode caches (PYTHONDONTWRITEBYTECODE dropped);
* first-run compile cost: the command with an empty numba cache against a warm one;
* peak RSS (VmHWM of a fresh process) at 1x and 4x the segment (2x per side).

Usage: python bench/bench_layers.py [--workdir DIR] [--width 1117] [--height 256]
       [--orig_dir DIR --orig_python PYTHON] [--repeat 3]
The volume is generated once into WORKDIR and reused by later runs. Other jobs on the
machine skew wall-clock figures: the load average is printed first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
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


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def ours(ppm_path: Path, store: Path, out: Path, cache_gb: float = 8.0,
         threads: int = 2) -> dict:
    cpu = cpu_seconds()
    stats = render_layers(ppm_path, store, fresh(out), out / "stack.tif",
                          number_of_layers=LAYERS, zarr_cache_max_size_gb=cache_gb,
                          quiet=True, num_threads=threads)
    return {"seconds": stats.seconds, "samples": stats.samples, "cpu": cpu_seconds() - cpu,
            "reads": stats.chunk_fetches, "unique": stats.unique_chunks}


def child(args: argparse.Namespace) -> None:
    """Render in this fresh process and print its result with the peak RSS. With
    ``--ready DIR``: first a one-layer render (loads the compiled kernels, starts
    zarr), then wait at a barrier of ``--ready_count`` processes, so that what is timed
    is the steady state the in-process runs measure and the timed renders start together."""
    if args.ready:
        render_layers(Path(args.ppm), Path(args.store), fresh(Path(args.out)),
                      number_of_layers=LAYERS, layers=f"{LAYERS // 2}:{LAYERS // 2 + 1}",
                      quiet=True, num_threads=args.threads)
        Path(args.ready).mkdir(parents=True, exist_ok=True)
        (Path(args.ready) / str(os.getpid())).touch()
        while len(list(Path(args.ready).iterdir())) < args.ready_count:
            time.sleep(0.001)
    result = ours(Path(args.ppm), Path(args.store), Path(args.out), args.cache_gb,
                  args.threads)
    # VmHWM, not ru_maxrss: after fork + exec, ru_maxrss starts at the parent's RSS
    status = Path("/proc/self/status").read_text()
    result["peak_rss_mb"] = int(status.split("VmHWM:")[1].split()[0]) / 1024
    print(json.dumps(result))


def child_cmd(ppm_path: Path, store: Path, out: Path, cache_gb: float = 8.0,
              threads: int = 2, ready: tuple[Path, int] | None = None) -> list[str]:
    return [sys.executable, __file__, "--child", "--ppm", str(ppm_path), "--store",
            str(store), "--out", str(out), "--cache_gb", str(cache_gb), "--threads",
            str(threads)] + ([] if ready is None else
                             ["--ready", str(ready[0]), "--ready_count", str(ready[1])])


def in_child(*args, **kwargs) -> dict:
    proc = subprocess.run(child_cmd(*args, **kwargs), capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def two_processes(ppm_path: Path, store: Path, work: Path) -> dict:
    """Two one-thread renders in separate processes at the same time: the samples of
    both over the wall time from the first start to the last end (setup excluded: each
    child reports its render seconds, and both renders overlap almost entirely)."""
    ready = fresh(work / "ready")
    ready.mkdir()
    procs = [subprocess.Popen(child_cmd(ppm_path, store, work / f"proc{i}", threads=1,
                                        ready=(ready, 2)),
                              stdout=subprocess.PIPE, text=True) for i in range(2)]
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {"seconds": max(r["seconds"] for r in results),
            "samples": sum(r["samples"] for r in results),
            "cpu": sum(r["cpu"] for r in results), "reads": 0, "unique": 1}


def command_seconds(cmd: list[str], env: dict | None = None) -> float:
    """Wall seconds of ``cmd``, run as an installed tool runs: bytecode caches written
    once and reused (pip compiles them at install), also where the calling environment
    sets PYTHONDONTWRITEBYTECODE, which would recompile every module of every run."""
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**base, **(env or {})})
    return time.perf_counter() - started


def rate(r: dict) -> float:
    return r["samples"] / r["seconds"]


def median_run(fn, repeat: int) -> dict:
    runs = [fn() for _ in range(repeat)]
    return sorted(runs, key=rate)[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/bench_layers")
    parser.add_argument("--width", type=int, default=1117)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--orig_dir", default=None,
                        help="directory holding the original tool's ppm_to_layers.py")
    parser.add_argument("--orig_python", default=None,
                        help="python with zarr 2 to run the original tool")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ppm", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--cache_gb", type=float, default=8.0, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--ready", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ready_count", type=int, default=0, help=argparse.SUPPRESS)
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
    print(f"segment {args.width}x{args.height} pixels x {LAYERS} layers "
          f"({LAYERS * args.width * args.height / 1e6:.1f} M samples); 4x segment "
          f"{2 * args.width}x{2 * args.height}", flush=True)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(other jobs skew wall-clock figures)", flush=True)

    # first-run compile cost: the whole command with an empty numba cache, then warm
    script = [sys.executable, str(ROOT / "ppm_to_layers.py"), str(small), str(store)]
    with tempfile.TemporaryDirectory() as empty:
        cold = command_seconds(script + [str(fresh(work / "cmd_cold")), "--quiet"],
                               {"NUMBA_CACHE_DIR": empty})
        warm_cache = command_seconds(script + [str(fresh(work / "cmd_cold")), "--quiet"],
                                     {"NUMBA_CACHE_DIR": empty})

    ours(small, store, work / "warm")  # warm the page cache and this process's kernels
    base = median_run(lambda: baseline(small, store), max(1, args.repeat - 1))
    one = median_run(lambda: ours(small, store, work / "out1", threads=1), args.repeat)
    two = median_run(lambda: ours(small, store, work / "out2", threads=2), args.repeat)
    alone = median_run(lambda: in_child(small, store, work / "alone", threads=1,
                                        ready=(fresh(work / "ready1"), 0)), args.repeat)
    pair = median_run(lambda: two_processes(small, store, work), args.repeat)
    tight = ours(small, store, work / "out_tight", 0.1)

    def line(name: str, r: dict) -> str:
        return (f"{name:<36} {rate(r) / 1e6:6.2f} M samples/s  x{rate(r) / rate(base):5.2f}  "
                f"cpu/wall {r['cpu'] / r['seconds']:4.2f}")

    print(line("baseline: map_coordinates, 1 thread", base))
    print(line("ours, 1 thread", one))
    print(line("ours, 2 threads", two))
    print(line("ours, 1 thread, separate process", alone))
    print(line("ours, 2 processes x 1 thread", pair))
    print(line("ours, 2 threads, cache 0.1 GiB", tight) +
          f"  {tight['reads']} chunk reads / {tight['unique']} chunks")
    threads_gain = rate(two) / rate(one)
    procs_gain = rate(pair) / rate(alone)
    print(f"per core vs baseline: {rate(one) / rate(base):.2f}x (goal >= 5)")
    print(f"threads speed-up {threads_gain:.2f}x, processes {procs_gain:.2f}x: "
          f"{100 * threads_gain / procs_gain:.0f}% (goal >= 85%)")
    print(f"first run with an empty compile cache: {cold:.2f} s, warm: {warm_cache:.2f} s "
          f"(compile cost {cold - warm_cache:.2f} s)")

    if args.orig_dir and args.orig_python:
        ours_cmd = lambda: command_seconds(  # noqa: E731
            script + [str(fresh(work / "cmd_ours")), str(work / "cmd_ours" / "stack.tif"),
                      "--quiet"])
        orig_cmd = lambda: command_seconds(  # noqa: E731
            [args.orig_python, str(Path(args.orig_dir) / "ppm_to_layers.py"), str(small),
             str(store), str(fresh(work / "cmd_orig")), str(work / "cmd_orig_stack.tif")])
        pairs = [(ours_cmd(), orig_cmd()) for _ in range(args.repeat)]
        ratios = [a / b for a, b in pairs]
        print("whole command, ours vs the original tool (paired runs, s): " +
              ", ".join(f"{a:.2f}/{b:.2f}" for a, b in pairs) +
              f"; median ratio {statistics.median(ratios):.2f}x (goal <= 0.4)")

    # a fixed cache bound for both, so the RSS difference is what the segment size adds
    rss1 = in_child(small, store, work / "rss1", RSS_CACHE_GB)
    rss4 = in_child(large, store, work / "rss4", RSS_CACHE_GB)
    print(f"(peak RSS runs: fresh process each, --zarr_cache_max_size_gb {RSS_CACHE_GB})")
    print(f"peak RSS ours, 1x segment: {rss1['peak_rss_mb']:7.0f} MB "
          f"({rate(rss1) / 1e6:.2f} M samples/s)")
    print(f"peak RSS ours, 4x segment: {rss4['peak_rss_mb']:7.0f} MB "
          f"({rate(rss4) / 1e6:.2f} M samples/s)  ratio 4x/1x "
          f"{rss4['peak_rss_mb'] / rss1['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
