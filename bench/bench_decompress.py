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

With ``--original PATH`` (the serial, Pillow-based decompress_tiffs.py of
KhartesViewer/scroll2zarr, not part of this project) it also times that script against
ours as whole processes, alternating, each followed by ``sync`` (the original does not
flush its files, ours does per file). ``--decoders`` prints the decode speed per core
(one thread) and on all cores of each decoder for the codecs LZW and deflate on the
first slices: tifffile's own strip codecs, libtiff through imagecodecs and libtiff
through Pillow.

Usage: python bench/bench_decompress.py [--workdir DIR] [--slices 64] [--size 1024]
       [--repeat 3] [--input DIR] [--original PATH] [--decoders]
The input stack is generated once into WORKDIR (or taken from --input) and reused.
"""

from __future__ import annotations

import argparse
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

import imagecodecs  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402
from PIL import Image  # noqa: E402

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
        if summary.failed or summary.files["decompressed"] != summary.total:
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


def time_processes(src: Path, out: Path, original: Path, repeat: int) -> tuple[float, float]:
    """Median wall seconds (incl. sync) of the original script and of ours, alternating."""
    ours_cmd = [sys.executable, str(ROOT / "decompress_tiffs.py"), str(src), str(out),
                "--quiet"]
    theirs_cmd = [sys.executable, str(original), str(src), str(out)]
    times: dict[str, list[float]] = {"original": [], "ours": []}
    # the original tool makes only the last directory and exits 0 when it cannot
    # (a first run then timed nothing): give it the parent
    out.parent.mkdir(parents=True, exist_ok=True)
    slices = len(list(src.glob("*.tif*")))
    for _ in range(repeat):
        for name, cmd in (("original", theirs_cmd), ("ours", ours_cmd)):
            shutil.rmtree(out, ignore_errors=True)
            subprocess.run(["sync"], check=True)
            started = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["sync"], check=True)
            times[name].append(time.perf_counter() - started)
            if len(list(out.glob("*.tif*"))) != slices:
                raise SystemExit(f"{name} wrote {len(list(out.glob('*.tif*')))} of "
                                 f"{slices} slices into {out}")
        print(f"  original {times['original'][-1]:.2f} s, ours {times['ours'][-1]:.2f} s "
              f"(ratio {times['ours'][-1] / times['original'][-1]:.2f})", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    return statistics.median(times["original"]), statistics.median(times["ours"])


def _decoders() -> dict:
    def with_tifffile(data: bytes) -> np.ndarray:
        with tifffile.TiffFile(__import__("io").BytesIO(data)) as tif:
            return tif.pages.first.asarray(maxworkers=1)

    def with_pillow(data: bytes) -> np.ndarray:
        with Image.open(__import__("io").BytesIO(data)) as image:
            return np.asarray(image)

    return {"tifffile (imagecodecs strip codecs)": with_tifffile,
            "libtiff via imagecodecs.tiff_decode": imagecodecs.tiff_decode,
            "libtiff via Pillow": with_pillow}


def time_decoders(src: Path, count: int, repeat: int, cores: int) -> None:
    """Decode speed (MB/s of pixels) per decoder and codec, one thread and all cores,
    from bytes in memory (no file system)."""
    files = sorted(src.glob("*.tif"))[:count]
    images = [tifffile.imread(f) for f in files]
    megabytes = sum(i.nbytes for i in images) / 1e6
    for codec in ("lzw", "deflate"):
        blobs = []
        for image in images:
            buffer = __import__("io").BytesIO()
            tifffile.imwrite(buffer, image, compression=codec, photometric="minisblack")
            blobs.append(buffer.getvalue())
        for name, decode in _decoders().items():
            assert all(np.array_equal(decode(b), i) for b, i in zip(blobs, images)), name
            speeds = []
            for threads in (1, cores):
                best = float("inf")
                for _ in range(repeat):
                    started = time.perf_counter()
                    with ThreadPoolExecutor(threads) as pool:
                        list(pool.map(decode, blobs * threads))
                    best = min(best, (time.perf_counter() - started) / threads)
                speeds.append(megabytes / best)
            print(f"  {codec:8s} {name:38s} {speeds[0]:6.0f} MB/s per core, "
                  f"{speeds[1]:6.0f} MB/s on {cores} threads", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir())
                        / "scrollzarr_bench_decompress")
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--size", type=int, default=1024, help="slice edge, pixels")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--input", type=Path, help="an existing directory of LZW slices")
    parser.add_argument("--original", type=Path,
                        help="the original serial decompress_tiffs.py to compare with")
    parser.add_argument("--decoders", action="store_true",
                        help="only time the decoders per codec")
    args = parser.parse_args()

    src, out = args.input or args.workdir / "lzw", args.workdir / "out"
    if args.input is None:
        make_stack(src, args.slices, args.size)
    files = sorted(src.glob("*.tif"))
    megabytes = sum(tifffile.TiffFile(f).pages.first.nbytes for f in files) / 1e6
    compressed = sum(p.stat().st_size for p in files) / 1e6
    cores = default_workers()
    print(f"stack: {len(files)} slices in {src}, {megabytes:.0f} MB uncompressed, "
          f"{compressed:.0f} MB on disk; {cores} cores; median of {args.repeat}")
    if args.decoders:
        time_decoders(src, 8, args.repeat, cores)
        return
    if args.original:
        theirs, ours = time_processes(src, out, args.original, args.repeat)
        print(f"  original serial tool {theirs:7.2f} s, ours {ours:7.2f} s, "
              f"ratio ours / original {ours / theirs:.2f} (median, with sync)")
        return

    base = time_decompress(src, out, 1, args.repeat)
    ours = time_decompress(src, out, cores, args.repeat)
    for label, seconds in (("1 worker (baseline)", base), (f"{cores} workers", ours)):
        print(f"  decompress, {label:20s} {seconds:7.2f} s  {len(files) / seconds:7.1f} "
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
