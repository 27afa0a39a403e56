"""Make the built-in synthetic scroll: slice TIFFs and a matching segment .ppm.

    python make_sample.py OUT_DIR [--shape Z,Y,X] [--compression lzw]

Writes OUT_DIR/slices/00000.tif ... (uint16, one per z) and a segment lying on one
winding of the rolled sheet (see scrollzarr/sample.py) in every surface format the
renderer reads: OUT_DIR/segment.ppm, OUT_DIR/segment_tifxyz/ (tifxyz, one vertex every
20 voxels), OUT_DIR/segment_tifxyz_1/ (tifxyz, one vertex per voxel) and
OUT_DIR/segment.obj (the 20-voxel grid as a mesh with pixel UVs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import cli, progress, sample
from ..errors import ScrollError


def parse_shape(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"--shape {text!r}: expected Z,Y,X")
    axis = cli.number(int, minimum=8)  # the one numeric check, per axis
    try:
        z, y, x = (axis(v.strip()) for v in parts)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"--shape {text!r}: {exc} (each of Z,Y,X)") from None
    return z, y, x


def main(args: argparse.Namespace) -> None:
    out = Path(args.out_dir)
    slices = out / "slices"
    if slices.exists() and any(slices.iterdir()):
        raise ScrollError(f"{slices}: already exists; remove it or pick another OUT_DIR")
    slices.mkdir(parents=True, exist_ok=True)
    z, y, x = args.shape
    with progress.bar(z, "synthetic slices", unit="slice", quiet=args.quiet) as bar:
        for i in range(z):
            sample.write_slice(slices, i, args.shape, compression=args.compression)
            bar.update(1)
    try:
        from .. import segment
    except ImportError:
        return
    paths, _ = segment.write_sample_surfaces(out, args.shape)
    cli.note(f"wrote {z} slices of {x}x{y} to {slices} and the segment as "
             f"{', '.join(str(p) for p in paths.values())}", args.quiet)


def build_parser() -> argparse.ArgumentParser:
    p = cli.Parser(prog="make_sample.py", description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--shape", type=parse_shape, default=(256, 512, 512),
                   help="Z,Y,X of the volume (default 256,512,512: 128 MB)")
    p.add_argument("--compression", default=None,
                   help="TIFF compression of the slices, e.g. lzw (default none)")
    cli.add_common_flags(p)
    return p


def entry(argv: list[str] | None = None) -> int:
    """Run the program on ``argv`` (default: the command line); return the exit code."""
    return cli.run(main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(entry())
