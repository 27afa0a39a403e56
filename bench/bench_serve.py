#!/usr/bin/env python3
"""Benchmark of serve_ome.py (not a test): how fast a viewer gets its chunks.

Every server runs as its own process, started the way a user starts it; the client is
this process with 6 concurrent keep-alive connections (a browser's limit per host), each
fetching whole chunk files or byte ranges. Baseline, measured in the same run:
``python -m http.server`` (what users ran before; HTTP/1.0, no Range, no CORS).

* v2 chunks: GET every chunk file of a zarr v2 store; MB/s and ratio = baseline time /
  our time.
* v3 shard ranges: GET 64 inner chunks of a sharded zarr v3 store (shards of 4^3
  chunks, at most 256^3 voxels) by byte range, as Neuroglancer does; http.server ignores Range and sends the
  whole shard each time, so the bytes received are shown too.
* proxy: the same v2 chunk GETs through ``serve_ome.py --proxy`` (cold: every request
  goes upstream; warm: from a ``--cache_gb`` disk cache filled by a first pass), against
  GETs straight from our server.

Each timing is the median of --repeat runs; MB are 10^6 bytes of body received. On a
2-core machine client and server share the cores, so the ratios matter, not the MB/s.

Usage: python bench/bench_serve.py [--size 256] [--chunk 64] [--repeat 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import zarr  # noqa: E402

CONNECTIONS = 6


def shard_edge(size: int, chunk: int) -> int:
    # 64 chunks per shard, at most 32 MB: http.server sends the whole shard per range
    return max(chunk, min(size, 4 * chunk, 256))


def make_stores(workdir: Path, size: int, chunk: int) -> tuple[Path, Path]:
    """A zarr v2 store (chunk^3 chunk files) and a sharded zarr v3 store
    (:func:`shard_edge`), both of random uint16 (nothing compresses or is skipped)."""
    v2, v3 = workdir / "v2.zarr", workdir / "v3.zarr"
    marker = workdir / f".complete_{size}_{chunk}"
    if marker.exists():
        return v2, v3
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    data = np.random.default_rng(0).integers(1, 65535, size=(size,) * 3, dtype=np.uint16)
    a = zarr.create_array(store=str(v2), shape=data.shape, chunks=(chunk,) * 3,
                          dtype=data.dtype, zarr_format=2, fill_value=0, compressors=None,
                          chunk_key_encoding={"name": "v2", "separator": "/"})
    a[...] = data
    b = zarr.create_array(store=str(v3), shape=data.shape, chunks=(chunk,) * 3,
                          shards=(shard_edge(size, chunk),) * 3, dtype=data.dtype,
                          zarr_format=3,
                          fill_value=0, compressors=None)
    b[...] = data
    marker.touch()
    return v2, v3


class Client(threading.local):
    """One keep-alive connection per thread; reconnects when the server closes it."""

    def __init__(self, host: str, port: int):
        self.host, self.port, self.conn = host, port, None

    def get(self, path: str, headers: dict | None = None) -> tuple[int, int]:
        """(status, body length); the body is read and dropped (bodies of whole shards
        would not fit in memory together)."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request("GET", path, headers=headers or {})
                resp = self.conn.getresponse()
                nbytes = 0
                while block := resp.read(1 << 20):
                    nbytes += len(block)
                if resp.will_close:
                    self.conn.close()
                    self.conn = None
                return resp.status, nbytes
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def timed(base_url: str, requests: list[tuple[str, dict]], repeat: int) -> tuple[float, int]:
    """Median seconds to fetch all ``requests`` (path, headers) over CONNECTIONS
    connections, and the body bytes of one pass."""
    parts = urllib.parse.urlsplit(base_url)
    prefix = parts.path.rstrip("/")
    times, nbytes = [], 0
    for _ in range(repeat):
        client = Client(parts.hostname, parts.port)
        started = time.perf_counter()
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            answers = list(pool.map(lambda r: client.get(prefix + r[0], r[1]), requests))
        times.append(time.perf_counter() - started)
        bad = [s for s, _ in answers if s not in (200, 206)]
        if bad:
            raise SystemExit(f"{base_url}: unexpected statuses {sorted(set(bad))}")
        nbytes = sum(n for _, n in answers)
    return statistics.median(times), nbytes


def start(cmd: list[str], ready: str | None = None) -> tuple[subprocess.Popen, str]:
    """Start a server process; return it and the first stdout line (its URL)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, cwd=ROOT)
    line = proc.stdout.readline().strip()
    if not line:
        raise SystemExit(f"{cmd}: no URL printed")
    return proc, line


def http_server(directory: Path) -> tuple[subprocess.Popen, str]:
    # python -m http.server prints its address on stdout ("Serving HTTP on ...").
    proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind",
                             "127.0.0.1", "--directory", str(directory)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    port = int(line.split(" port ")[1].split()[0])
    return proc, f"http://127.0.0.1:{port}/"


def serve_ome(*args) -> tuple[subprocess.Popen, str]:
    proc, line = start([sys.executable, "serve_ome.py", *map(str, args), "--port", "0",
                        "--quiet"])
    url = urllib.parse.urlsplit(line.split("://", 1)[1])  # zarr2://http://h:p/v2.zarr/
    return proc, f"http://{url.netloc}/"  # the served directory's root


def shard_ranges(v3: Path, size: int, chunk: int, count: int) -> list[tuple[str, dict]]:
    """(path, Range header) of ``count`` inner chunks spread over all shards, from the
    shard indexes (16 bytes per chunk plus a crc32c at the end of each shard file).
    Few of them: http.server answers each with the whole shard."""
    n = (shard_edge(size, chunk) // chunk) ** 3
    ranges = []
    for shard in sorted(p for p in (v3 / "c").rglob("*") if p.is_file()):
        with open(shard, "rb") as f:
            f.seek(-(16 * n + 4), os.SEEK_END)
            index = np.frombuffer(f.read(16 * n), dtype="<u8").reshape(n, 2)
        path = "/v3.zarr/" + shard.relative_to(v3).as_posix()
        ranges += [(path, {"Range": f"bytes={off}-{off + length - 1}"})
                   for off, length in index]
    step = max(1, len(ranges) // count)
    return ranges[::step][:count]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256, help="volume edge, voxels")
    p.add_argument("--chunk", type=int, default=64, help="chunk edge, voxels")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench_serve")
    args = p.parse_args()
    v2, v3 = make_stores(args.workdir, args.size, args.chunk)
    n = args.size // args.chunk
    chunks = [(f"/v2.zarr/{z}/{y}/{x}", {}) for z in range(n) for y in range(n)
              for x in range(n)]
    ranges = shard_ranges(v3, args.size, args.chunk, count=64)
    print(f"{len(chunks)} chunks of {args.chunk}^3 uint16 "
          f"({args.chunk ** 3 * 2 / 1e6:.2f} MB each), {CONNECTIONS} connections, "
          f"median of {args.repeat}, {os.cpu_count()} cores")

    procs = []
    try:
        base_proc, base = http_server(args.workdir)
        ours_proc, ours = serve_ome(args.workdir)
        procs += [base_proc, ours_proc]

        def row(name, seconds, nbytes, baseline=None):
            ratio = f"{baseline / seconds:6.2f}x" if baseline else "      -"
            print(f"{name:<44} {seconds:7.3f} s  {nbytes / 1e6 / seconds:8.1f} MB/s  "
                  f"{nbytes / 1e6:7.1f} MB  {ratio}")

        print(f"{'':<44} {'time':>9}  {'throughput':>13}  {'received':>10}  ratio")
        t0, b0 = timed(base, chunks, args.repeat)
        row("v2 chunks, python -m http.server (baseline)", t0, b0)
        t1, b1 = timed(ours, chunks, args.repeat)
        row("v2 chunks, serve_ome.py", t1, b1, t0)
        t2, b2 = timed(base, ranges, args.repeat)
        row("v3 shard ranges, python -m http.server", t2, b2)
        t3, b3 = timed(ours, ranges, args.repeat)
        row("v3 shard ranges, serve_ome.py", t3, b3, t2)

        cold_proc, cold = serve_ome("--proxy", ours)
        cache = args.workdir / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        warm_proc, warm = serve_ome("--proxy", ours, "--cache_gb", 1, "--cache_dir", cache)
        procs += [cold_proc, warm_proc]
        t4, b4 = timed(cold, chunks, args.repeat)
        row("v2 chunks, --proxy, no cache (vs direct)", t4, b4, t1)
        timed(warm, chunks, 1)  # fills the cache
        t5, b5 = timed(warm, chunks, args.repeat)
        row("v2 chunks, --proxy, warm cache (vs direct)", t5, b5, t1)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
