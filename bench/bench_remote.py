#!/usr/bin/env python3
"""Benchmark of rendering from remote volumes (not a test): cold and warm disk-cache
renders from a local HTTP server and a local S3 server (moto), against the same store
read from the local disk, and bytes fetched per unique chunk (goal 1.0).

The store is laid out like the published ones: zarr v2, NGFF 0.4, uint8, 128^3 chunks,
no compressor, "/" keys, masked background absent (the synthetic scroll of
scrollzarr.sample, windowed to 8 bits). A segment of WIDTH x HEIGHT pixels on one
winding, 65 layers. Each render is a fresh process (ppm_to_layers.py) so that nothing is
shared in memory between renders; the servers run in processes of their own.

"bytes per unique chunk" = data bytes received over the network / (chunks the renderer
read that exist x 2 MiB): 1.0 means every chunk came over the wire exactly once.

Usage: python bench/bench_remote.py [--workdir DIR] [--width 600] [--height 200]
The volume is generated once into WORKDIR and reused by later runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import zarr  # noqa: E402

from scrollzarr import sample  # noqa: E402
from scrollzarr.segment import write_sample_segment  # noqa: E402

SHAPE = (256, 1024, 1024)  # 256 MiB of uint8
CHUNK = 128
LAYERS = 65
WINDING = 3


def make_store(path: Path) -> None:
    """The synthetic scroll as a published-style OME-Zarr (levels 0 and 1)."""
    marker = path / ".complete"
    if marker.exists():
        return
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    arrays = []
    for level in (0, 1):
        shape = tuple(-(-n // 2 ** level) for n in SHAPE)
        arrays.append(group.create_array(
            str(level), shape=shape, chunks=(CHUNK,) * 3, dtype="uint8",
            chunk_key_encoding={"name": "v2", "separator": "/"}, compressors=None,
            fill_value=0, config={"write_empty_chunks": False}))
    group.attrs["multiscales"] = [{
        "version": "0.4", "name": "scroll",
        "axes": [{"name": a, "type": "space"} for a in "zyx"],
        "datasets": [{"path": str(level), "coordinateTransformations": [
            {"type": "scale", "scale": [2.0 ** level] * 3}]} for level in (0, 1)]}]
    with ThreadPoolExecutor(2) as pool:
        for z0 in range(0, SHAPE[0], CHUNK):
            z1 = min(z0 + CHUNK, SHAPE[0])
            block = np.stack(list(pool.map(lambda z: sample.make_slice(z, SHAPE),
                                           range(z0, z1))))
            block = (block // 256).astype(np.uint8)  # 16-bit windowed to 8 bits
            arrays[0][z0:z1] = block
            arrays[1][z0 // 2:-(-z1 // 2)] = block[::2, ::2, ::2]
            print(f"  volume: slices {z0}..{z1 - 1} written", file=sys.stderr, flush=True)
    marker.touch()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on port {port}")
            time.sleep(0.1)


def http_server(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from scrollzarr import serve;"
            "s = serve.StoreServer(sys.argv[2], ('127.0.0.1', int(sys.argv[3]))); s.start()\n"
            "while True: time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(root), str(port)])
    wait_for(port)
    return proc, f"http://127.0.0.1:{port}/"


def s3_server(store: Path, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(port)
    import boto3
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                      aws_access_key_id="bench", aws_secret_access_key="bench")
    s3.create_bucket(Bucket="scrolls")
    for path in store.rglob("*"):
        if path.is_file() and path.name != ".complete":
            s3.put_object(Bucket="scrolls", Key="scroll.zarr/" + path.relative_to(
                store).as_posix(), Body=path.read_bytes())
    env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
               AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    return proc, "s3://scrolls/scroll.zarr"


def child(args: argparse.Namespace) -> None:
    """Render in this fresh process; print timings and the fetch counters as JSON."""
    from scrollzarr.layers import render_layers
    from scrollzarr.ngff import open_volume
    from scrollzarr.remote import RemoteOptions

    started = time.perf_counter()
    volume = open_volume(args.store, None, RemoteOptions(cache_dir=Path(args.cache_dir)))
    opened = time.perf_counter() - started  # imports of aiohttp/s3fs included
    stats = render_layers(args.ppm, volume, args.out, None, number_of_layers=LAYERS,
                          quiet=True)
    result = {"seconds": time.perf_counter() - started, "open": opened,
              "render": stats.seconds, "unique": stats.unique_chunks}
    fetch = getattr(volume.array.store, "stats", None)
    if fetch is not None:
        result.update(requests=fetch.requests, fetched=fetch.fetched_bytes,
                      chunk_bytes=fetch.chunk_bytes,
                      missing=fetch.missing, hits=fetch.hits)
    print(json.dumps(result))


def render(ppm: Path, store: str, out: Path, cache: Path, env: dict) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, __file__, "--child", "--ppm", str(ppm),
                           "--store", store, "--out", str(out), "--cache_dir", str(cache)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/bench_remote")
    parser.add_argument("--width", type=int, default=600)
    parser.add_argument("--height", type=int, default=200)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("--ppm", "--store", "--out", "--cache_dir"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    work = Path(args.workdir)
    data = work / "data"
    store = data / "scroll.zarr"
    make_store(store)
    ppm = work / "segment.ppm"
    write_sample_segment(ppm, SHAPE, winding=WINDING, width=args.width, height=args.height)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    results = {"local": render(ppm, str(store), work / "out", work / "cache-local", env)}
    servers = []
    try:
        http, url = http_server(data)
        servers.append(http)
        s3, s3_url = s3_server(store, env)
        servers.append(s3)
        for name, location in (("http", url + "scroll.zarr"), ("s3", s3_url)):
            cache = work / f"cache-{name}"
            shutil.rmtree(cache, ignore_errors=True)
            results[f"{name} cold"] = render(ppm, location, work / "out", cache, env)
            results[f"{name} warm"] = render(ppm, location, work / "out", cache, env)
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
    local = results["local"]["seconds"]
    print(f"segment {args.width}x{args.height} px, {LAYERS} layers, store {SHAPE} uint8, "
          f"{CHUNK}^3 chunks; {local:.2f} s from the local disk")
    for name, r in results.items():
        line = (f"{name:10s} {r['seconds']:6.2f} s  x{r['seconds'] / local:5.2f} of local "
                f"(open {r['open']:4.2f} s, render {r['render']:5.2f} s "
                f"x{r['render'] / results['local']['render']:5.2f})")
        if "requests" in r:
            present = r["unique"] - r["missing"] if "cold" in name else 0
            per_chunk = r["chunk_bytes"] / (present * CHUNK ** 3) if present else 0.0
            line += (f"  requests {r['requests']:4d}  fetched {r['fetched'] / 2**20:7.1f} "
                     f"MiB  unique chunks {r['unique']} ({r['missing']} absent)  "
                     f"cache hits {r['hits']}")
            if "cold" in name:
                line += f"  bytes per unique chunk {per_chunk:.3f}"
        print(line)


if __name__ == "__main__":
    main()
