"""Make the built-in synthetic scroll: slice TIFFs and a matching segment .ppm.

    python make_sample.py OUT_DIR [--shape Z,Y,X] [--compression lzw]

Writes OUT_DIR/slices/00000.tif ... (uint16, one per z) and OUT_DIR/segment.ppm, a
surface lying on one winding of the rolled sheet (see scrollzarr/sample.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import cli, progress, sample
from ..errors import ScrollError


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        z, y, x = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shape {text!r}: expected Z,Y,X") from None
    if min(z, y, x) < 8:
        raise argparse.ArgumentTypeError(f"--shape {text!r}: every axis must be >= 8")
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
    segment.write_sample_segment(out / "segment.ppm", args.shape)
    cli.note(f"wrote {z} slices of {x}x{y} to {slices} and {out / 'segment.ppm'}",
             args.quiet)


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
