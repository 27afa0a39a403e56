"""CPU time per million render pixels of Surface.read_tile for .ppm, tifxyz and .obj
surfaces of the same grid (a wavy sheet, one vertex every 20 voxels), in 100 x 100 tiles
as the renderer reads them; and the time to open each.

    python bench/bench_surfaces.py [--grid ROWS,COLS] [--pixels N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scrollzarr.ppm import write_ppm  # noqa: E402
from scrollzarr.surfaces import open_surface  # noqa: E402
from scrollzarr.surfaces.obj import write_obj  # noqa: E402
from scrollzarr.surfaces.tifxyz import write_tifxyz  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="300,600", help="tifxyz grid ROWS,COLS")
    parser.add_argument("--pixels", type=int, default=1000,
                        help="read the first N x N render pixels (default 1000)")
    args = parser.parse_args()
    rows, cols = (int(v) for v in args.grid.split(","))
    n = args.pixels
    j, i = np.mgrid[0:rows, 0:cols].astype(np.float64)
    grid = np.stack([1000 + 20 * i, 2000 + 5 * np.sin(i / 10) + 2 * np.cos(j / 7),
                     500 + 20 * j], axis=-1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_tifxyz(tmp / "seg", grid, (0.05, 0.05))
        write_obj(tmp / "seg.obj", grid, (0.05, 0.05))
        with open_surface(tmp / "seg") as s:
            write_ppm(tmp / "seg.ppm", s.read_tile(0, n, 0, n)[0])
        print(f"grid {rows}x{cols} (render {20 * rows}x{20 * cols}), {n}x{n} pixels read "
              "in 100x100 tiles")
        for name in ("seg.ppm", "seg", "seg.obj"):
            start = time.process_time()
            surface = open_surface(tmp / name)
            opened = time.process_time() - start
            start = time.process_time()
            for v0 in range(0, n, 100):
                for u0 in range(0, n, 100):
                    surface.read_tile(v0, min(v0 + 100, n), u0, min(u0 + 100, n))
            per = (time.process_time() - start) / (n * n / 1e6)
            surface.close()
            print(f"{name:8s} open {opened:6.2f} s CPU, read {per:6.3f} s CPU per Mpixel")


if __name__ == "__main__":
    main()
