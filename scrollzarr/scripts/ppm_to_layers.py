"""Render a segment (.ppm per-pixel map from volume-cartographer) into flattened layer
TIFFs for ink detection.

Layer k of N samples each mapped pixel at point + (k - N//2) * interval * normal
(--direction both), trilinear, rounded to nearest; 0 outside the volume and for unmapped
pixels. Writes OUT_DIR/00.tif .. and, if given, STACK.tif (maximum over the central
--number_of_stacked_layers layers).
"""

from __future__ import annotations

import argparse
import sys

from .. import cli, remote
from ..errors import ScrollError
from ..layers import DIRECTIONS, render_layers
from ..ngff import open_volume


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog="ppm_to_layers.py",
        description="Render flattened layers of a .ppm segment from an OME-Zarr store.")
    parser.add_argument("ppm", metavar="PPM",
                        help="segment .ppm file (a <stem>_mask.png beside it is honoured)")
    parser.add_argument("store", metavar="STORE",
                        help="OME-Zarr root (finest level unless --level) or a plain "
                        "(z, y, x) zarr array: a path, http(s):// or s3:// URL")
    parser.add_argument("out_dir", metavar="OUT_DIR",
                        help="directory for the layer TIFFs (created if needed)")
    parser.add_argument("stack", metavar="STACK.tif", nargs="?", default=None,
                        help="optional stack image: max over the central layers")
    parser.add_argument("--number_of_layers", type=int, default=65, metavar="N",
                        help="layers to render (default 65)")
    parser.add_argument("--number_of_stacked_layers", type=int, default=25, metavar="N",
                        help="central layers in the stack image (default 25)")
    parser.add_argument("--block_size", type=int, default=100, metavar="PIXELS",
                        help="tile size in pixels (default 100)")
    parser.add_argument("--zarr_cache_max_size_gb", type=float, default=8.0, metavar="GB",
                        help="chunk cache size in GiB (default 8, fractions allowed)")
    parser.add_argument("--interval", type=float, default=1.0, metavar="VOXELS",
                        help="layer spacing along the normal, in scroll voxels (default 1)")
    parser.add_argument("--direction", choices=DIRECTIONS, default="both",
                        help="layers on both sides of the surface (default), or only "
                        "along (positive) / against (negative) the normal")
    parser.add_argument("--level", default=None, metavar="PATH",
                        help="dataset path of an OME-Zarr store's level, as its metadata "
                        "names it (quick preview; default the finest level)")
    remote.add_remote_arguments(parser)
    cli.add_common_flags(parser)
    return parser


def main(args: argparse.Namespace) -> None:
    try:
        store = open_volume(args.store, args.level, remote.remote_options(args))
    except ScrollError:
        if remote.is_remote(args.store):
            raise
        # render_layers reports a bad local store again, after the options and the
        # segment (the order of errors users see)
        store = args.store
    for note in getattr(store, "notes", ()):
        cli.note(note, args.quiet)
    stats = render_layers(
        args.ppm, store, args.out_dir, args.stack,
        number_of_layers=args.number_of_layers,
        number_of_stacked_layers=args.number_of_stacked_layers,
        block_size=args.block_size, zarr_cache_max_size_gb=args.zarr_cache_max_size_gb,
        interval=args.interval, direction=args.direction, level=args.level,
        quiet=args.quiet)
    cli.note(f"wrote {stats.layers} layers of {stats.width}x{stats.height} pixels to "
             f"{args.out_dir} ({stats.samples / max(stats.seconds, 1e-9):.3g} samples/s, "
             f"{stats.chunk_fetches} chunk reads of {stats.unique_chunks} chunks)",
             args.quiet)


def entry(argv: list[str] | None = None) -> int:
    """Run the program on ``argv`` (default: the command line); return the exit code."""
    return cli.run(main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(entry())
