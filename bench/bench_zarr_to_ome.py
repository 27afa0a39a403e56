#!/usr/bin/env python3
"""zarr_to_ome of a zarr v2 store against scroll_to_ome of the same data as slices.

    python bench/bench_zarr_to_ome.py [--size 256,2048,2048] [--repeats 3] [--workdir DIR]
        [-- OPTIONS]

Makes the synthetic uint16 stack of bench_convert (once, kept in the work directory) and
our own zarr v2 store of it (128^3 chunks, no compressor: 2 GiB at the default size),
warms the page cache, then alternates `scroll_to_ome.py SLICES OUT` and `zarr_to_ome.py
STORE OUT` with the same OPTIONS (default: v3, 256^3 shards, zstd) and prints the median
times, their ratio (same run), CPU/wall, bytes read per input byte (the source's own
counter, which zarr_to_ome prints, and the kernel's rchar of the process tree) and
whether both outputs have the same chunk files.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_convert import run_measured, stack_arguments, stack_dirs  # puts ROOT on sys.path
from synthetic import make_stack, warm

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OPTIONS = ["--zarr_format", "3", "--shard_size", "256", "--compression", "zstd"]
#: the line zarr_to_ome ends with: "input: read N bytes of chunks (...)"
READ_LINE = re.compile(r"input: read (\d+) bytes of chunks")


def input_store(slices: Path, work: Path) -> Path:
    """Our own v2 store of ``slices`` (made once and kept)."""
    out = work / f"input-{slices.name}.zarr"
    marker = work / f".{out.name}.complete"
    if not marker.exists():
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([sys.executable, str(ROOT / "scroll_to_ome.py"), str(slices),
                        str(out), "--quiet"], check=True)
        marker.touch()
    return out


def chunk_bytes(level: Path) -> int:
    return sum(p.stat().st_size for p in level.rglob("*") if p.is_file()
               and p.name not in (".zarray", ".zattrs", "zarr.json"))


def same_chunks(a: Path, b: Path) -> bool:
    """Whether stores ``a`` and ``b`` hold the same chunk files, byte for byte."""
    files = lambda root: sorted(p.relative_to(root) for p in root.rglob("*")  # noqa: E731
                                if p.is_file() and not p.name.startswith(".")
                                and p.name != "zarr.json")
    names = files(a)
    return names == files(b) and all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def main() -> None:
    ap = stack_arguments(__doc__.splitlines()[0])
    ap.add_argument("options", nargs="*", help="conversion options for both (after --)")
    args = ap.parse_args()
    shape, work = stack_dirs(args)
    options = args.options or DEFAULT_OPTIONS
    slices = make_stack(work / f"slices-{'x'.join(map(str, shape))}", shape)
    store = input_store(slices, work)
    size = chunk_bytes(store / "0")
    warm(slices)
    warm_store = lambda: [p.read_bytes() for p in (store / "0").rglob("*")  # noqa: E731
                          if p.is_file()]
    out_slices, out_zarr = work / "from-slices.zarr", work / "from-zarr.zarr"
    runs: dict[str, list[dict]] = {"slices": [], "zarr": []}
    commands = {
        "slices": [sys.executable, str(ROOT / "scroll_to_ome.py"), str(slices),
                   str(out_slices), *options],
        "zarr": [sys.executable, str(ROOT / "zarr_to_ome.py"), str(store), str(out_zarr),
                 *options],
    }
    for i in range(args.repeats):
        for name, cmd in commands.items():
            out = Path(cmd[3])
            shutil.rmtree(out, ignore_errors=True)
            warm_store() if name == "zarr" else None
            subprocess.run(["sync"])
            t0 = time.perf_counter()
            m = run_measured(cmd)
            subprocess.run(["sync"], check=True)
            m["wall_sync"] = time.perf_counter() - t0
            found = READ_LINE.search(m.get("stderr", ""))
            m["counted"] = float(found.group(1)) if found else float("nan")
            runs[name].append(m)
        s, z = runs["slices"][-1], runs["zarr"][-1]
        print(f"run {i + 1}: slices {s['wall_sync']:.2f} s, zarr {z['wall_sync']:.2f} s "
              f"(ratio {z['wall_sync'] / s['wall_sync']:.2f}), zarr read "
              f"{z['counted'] / size:.3f} x input", flush=True)
    med = lambda name, key: statistics.median(r[key] for r in runs[name])  # noqa: E731
    ts, tz = med("slices", "wall_sync"), med("zarr", "wall_sync")
    print(f"\ninput {shape} uint16: {size / 2**30:.2f} GiB of v2 chunks; options "
          f"{' '.join(options)}; {args.repeats} runs, medians; load {os.getloadavg()[0]:.1f}")
    print(f"  scroll_to_ome (slices) + sync : {ts:.2f} s, CPU/wall "
          f"{med('slices', 'cpu') / med('slices', 'wall'):.2f}")
    print(f"  zarr_to_ome (v2 store) + sync : {tz:.2f} s, CPU/wall "
          f"{med('zarr', 'cpu') / med('zarr', 'wall'):.2f}")
    print(f"  ratio zarr / slices           : {tz / ts:.2f}")
    print(f"  bytes read / input, counter   : {med('zarr', 'counted') / size:.4f}")
    print(f"  bytes read / input, rchar     : {med('zarr', 'read') / size:.4f}")
    print(f"  peak RSS slices / zarr        : {med('slices', 'rss'):.2f} / "
          f"{med('zarr', 'rss'):.2f} GiB")
    print(f"  same chunk files              : {same_chunks(out_slices, out_zarr)}")


if __name__ == "__main__":
    main()
