#!/usr/bin/env python3
"""Conversion speed and memory against copying the slices (issue: conversion at disk speed).

    python bench/bench_convert.py [--size 256,2048,2048] [--repeats 3] [--workdir DIR]

Generates a synthetic uint16 stack of the given z,y,x size (once, cached in the work
directory), warms the page cache, then alternates `cp -r SLICES COPY && sync` (the
reference) and `scroll_to_ome.py SLICES OUT.zarr` with default options (6 levels), and
prints medians, the ratio, peak RSS of the converter's process tree, CPU/wall and bytes
read / input size. Then runs once more with --max_gb set to a quarter of the unlimited
peak RSS and reports its peak RSS and time ratio.

With ``--input DIR`` it converts an existing directory of slices instead (e.g. LZW
slices) and, with ``--decode_reference``, also times the pure decode of the same files
on all cores (one file per thread, no writes) with two decoders and prints the ratio
convert / decode for each: the fastest decoder of scrollzarr.decode (libtiff for LZW,
the one the conversion uses) and tifffile's own (``tifffile.imread``, the decode the
speed issue measured its 9.9 s reference with).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from synthetic import make_stack, warm  # noqa: E402


def run_measured(cmd: list[str]) -> dict:
    """Run ``cmd``; return wall seconds, CPU seconds, peak RSS (GiB) of the process tree,
    bytes read (rchar) by it and its stderr."""
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    rchar = {}
    cpu = {}
    stop = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not stop.is_set():
            try:
                procs = [proc] + proc.children(recursive=True)
                rss = 0
                for p in procs:
                    try:
                        rss += p.memory_info().rss
                        rchar[p.pid] = p.io_counters().read_chars
                        t = p.cpu_times()
                        cpu[p.pid] = t.user + t.system
                    except psutil.Error:
                        pass
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.02)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    before = os.times()
    _, err = proc.communicate()
    after = os.times()
    stop.set()
    t.join()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err.decode()[-2000:]}")
    child_cpu = (after.children_user - before.children_user
                 + after.children_system - before.children_system)
    return {"wall": wall, "cpu": child_cpu, "rss": peak / 2**30,
            "read": float(sum(rchar.values())), "stderr": err.decode(errors="replace")}


def time_decode(directory: Path, decoder: str = "fastest") -> tuple[float, float]:
    """Wall and CPU seconds to decode every slice of ``directory`` on all cores (no
    writes), with scrollzarr's fastest decoder (``"fastest"``) or tifffile's own
    (``"tifffile"``: ``tifffile.imread``, one thread per file)."""
    from concurrent.futures import ThreadPoolExecutor

    import tifffile

    from scrollzarr import decode

    def one(path: Path) -> None:
        if decoder == "tifffile":
            tifffile.imread(path, maxworkers=1)
            return
        with tifffile.TiffFile(path) as tif:
            decode.decode_page(tif)

    started, cpu = time.perf_counter(), os.times()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(one, sorted(directory.glob("*.tif"))))
    after = os.times()
    return (time.perf_counter() - started,
            after.user - cpu.user + after.system - cpu.system)


def stack_arguments(description: str) -> argparse.ArgumentParser:
    """A parser with the options of every bench on the synthetic stack: --size,
    --repeats, --workdir (read the last two back with :func:`stack_dirs`)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--size", default="256,2048,2048", help="z,y,x of the stack")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default=None, help="where to keep the stack (default: tmp)")
    return ap


def stack_dirs(args: argparse.Namespace) -> tuple[tuple[int, ...], Path]:
    """``(shape, work directory)`` of parsed :func:`stack_arguments` (the directory is
    made if needed)."""
    work = Path(args.workdir or tempfile.gettempdir()) / "scrollzarr-bench"
    work.mkdir(parents=True, exist_ok=True)
    return tuple(int(v) for v in args.size.split(",")), work


def main() -> None:
    ap = stack_arguments(__doc__.splitlines()[0])
    ap.add_argument("--skip_budget", action="store_true", help="skip the --max_gb run")
    ap.add_argument("--input", type=Path, help="convert this directory of slices")
    ap.add_argument("--decode_reference", action="store_true",
                    help="also time decoding the slices on all cores")
    ap.add_argument("extra", nargs="*", help="extra scroll_to_ome options (after --)")
    args = ap.parse_args()
    shape, work = stack_dirs(args)
    slices = args.input or make_stack(work / f"slices-{'x'.join(map(str, shape))}", shape)
    size = sum(p.stat().st_size for p in slices.glob("*.tif"))
    warm(slices)
    copy, out = work / "copy", work / "out.zarr"
    convert = [sys.executable, str(ROOT / "scroll_to_ome.py"), str(slices), str(out),
               "--quiet", *args.extra]
    copies, convs, decodes, tifffile_decodes = [], [], [], []
    for i in range(args.repeats):
        if args.decode_reference:
            decodes.append(time_decode(slices))
            tifffile_decodes.append(time_decode(slices, "tifffile"))
        shutil.rmtree(copy, ignore_errors=True)
        subprocess.run(["sync"])
        t0 = time.perf_counter()
        subprocess.run(["cp", "-r", str(slices), str(copy)], check=True)
        subprocess.run(["sync"], check=True)
        copies.append(time.perf_counter() - t0)
        shutil.rmtree(copy, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run(["sync"])
        t0 = time.perf_counter()
        m = run_measured(convert)
        subprocess.run(["sync"], check=True)  # the copy is timed with its sync too
        m["wall_sync"] = time.perf_counter() - t0
        convs.append(m)
        print(f"run {i + 1}: copy {copies[-1]:.2f} s, convert {m['wall_sync']:.2f} s "
              f"(ratio {m['wall_sync'] / copies[-1]:.2f}), peak RSS {m['rss']:.2f} GiB, "
              f"CPU/wall {m['cpu'] / m['wall']:.2f}", flush=True)
    med = lambda key: statistics.median(c[key] for c in convs)  # noqa: E731
    copy_med, conv_med = statistics.median(copies), med("wall_sync")
    print(f"\nstack {shape} uint16, {size / 2**30:.2f} GiB, {args.repeats} runs, medians:")
    print(f"  reference cp -r + sync : {copy_med:.2f} s ({size / copy_med / 2**20:.0f} MB/s)")
    print(f"  scroll_to_ome + sync   : {conv_med:.2f} s ({size / conv_med / 2**20:.0f} MB/s)")
    print(f"  ratio convert / copy   : {conv_med / copy_med:.2f}")
    for name, runs in (("fastest decoder", decodes), ("tifffile.imread", tifffile_decodes)):
        if not runs:
            continue
        dec_med = statistics.median(d[0] for d in runs)
        dec_cpu = statistics.median(d[1] for d in runs)
        print(f"  pure decode, {os.cpu_count()} threads, {name}: {dec_med:.2f} s; ratio "
              f"convert / decode {conv_med / dec_med:.2f}")
        # on a busy machine wall times say more about the other jobs than about us
        print(f"    CPU seconds, convert / decode: {med('cpu'):.2f} / {dec_cpu:.2f} = "
              f"{med('cpu') / dec_cpu:.2f}")
    print(f"  peak RSS (tree)        : {med('rss'):.2f} GiB")
    print(f"  CPU time / wall time   : {med('cpu') / med('wall'):.2f}")
    print(f"  bytes read / input     : {med('read') / size:.2f}")
    if args.skip_budget:
        return
    budget = max(med("rss") / 4, 0.05)
    for attempt in range(2):
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run(["sync"])
        t0 = time.perf_counter()
        try:
            m = run_measured(convert + ["--max_gb", f"{budget:.3f}"])
            break
        except SystemExit as exc:
            # a quarter of a small peak may be below the smallest task: then the smallest
            # budget the converter accepts (its error says how much one task needs)
            need = re.search(r"needs (?:at least )?([0-9.]+) GiB", str(exc))
            if not need or attempt:
                raise
            budget = float(need.group(1)) * 1.05
    subprocess.run(["sync"], check=True)
    wall = time.perf_counter() - t0
    print(f"  --max_gb {budget:.3f}       : {wall:.2f} s ({wall / conv_med:.2f}x the "
          f"unlimited run), peak RSS {m['rss']:.2f} GiB "
          f"({m['rss'] - budget:+.2f} GiB over the budget)")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
