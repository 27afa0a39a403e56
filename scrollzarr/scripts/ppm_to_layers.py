"""Render a segment (a .ppm per-pixel map from volume-cartographer, a VC3D tifxyz
directory or an .obj mesh with UVs) into flattened layer TIFFs for ink detection.

Layer k of N samples each mapped pixel at point + (k - N//2) * interval * normal
(--direction both), trilinear, rounded to nearest; 0 outside the volume and for unmapped
pixels. Writes OUT_DIR/00.tif .. (or the --layers START:STOP among them) and, if given,
STACK.tif (--stack_method over the central --number_of_stacked_layers layers); with
--preview also OUT_DIR/preview_surface.png and preview_stack.png; with --zarr_output
OUT.zarr the layers as an OME-Zarr (OUT_DIR may then be -). A render into an
OUT_DIR holding an earlier render replaces that render as a whole (only files it wrote,
listed in OUT_DIR/.scrollzarr-layers.json).
"""

from __future__ import annotations

import argparse
import sys

from .. import cli, remote
from ..errors import ScrollError
from ..layer_outputs import STACK_METHODS
from ..surfaces import add_surface_arguments, open_surface, surface_options
from ..layers import DIRECTIONS, render_layers
from ..ngff import open_volume


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog="ppm_to_layers.py",
        description="Render flattened layers of a segment (.ppm, tifxyz or .obj) from an "
                    "OME-Zarr store (local, http(s):// or s3://).")
    for name, text in (
            ("surface", "the segment: a .ppm file (a <stem>_mask.png beside it is "
                        "honoured), a tifxyz directory (x.tif, y.tif, z.tif, meta.json) "
                        "or an .obj mesh with vt texture coordinates"),
            ("store", "OME-Zarr root (finest level unless --level) or a plain (z, y, x) "
                      "zarr array: a path, http(s):// or s3:// URL"),
            ("out_dir", "directory for the layer TIFFs (created if needed); - for none "
                        "(with --zarr_output)")):
        parser.add_argument(name, metavar=name.upper(), help=text)
    parser.add_argument("stack", metavar="STACK.tif", nargs="?", default=None,
                        help="optional stack image of the central layers")
    parser.add_argument("--number_of_layers", type=cli.number(int, minimum=1), default=65,
                        metavar="N", help="layers to render (default 65)")
    parser.add_argument("--number_of_stacked_layers", type=cli.number(int, minimum=1),
                        default=25, metavar="N",
                        help="central layers in the stack image (default 25; checked only "
                        "when a stack image or --preview is asked for)")
    parser.add_argument("--layers", metavar="START:STOP",
                        help="render only these layers: 0-based indices among "
                        "--number_of_layers, STOP exclusive (files keep their index)")
    parser.add_argument("--stack_method", choices=STACK_METHODS, default="max",
                        help="how the stack image combines layers (default max; mean and "
                        "median are rounded half to even)")
    parser.add_argument("--block_size", type=cli.number(int, minimum=1), default=100,
                        metavar="PIXELS", help="tile size in pixels (default 100)")
    parser.add_argument("--zarr_cache_max_size_gb", type=cli.number(float, minimum=0),
                        default=8.0, metavar="GB",
                        help="chunk cache size in GiB (default 8, fractions allowed)")
    parser.add_argument("--interval", type=cli.number(float, above=0), default=1.0,
                        metavar="VOXELS",
                        help="layer spacing along the normal, in scroll voxels (default 1)")
    parser.add_argument("--direction", choices=DIRECTIONS, default="both",
                        help="layers on both sides of the surface (default), or only "
                        "along (positive) / against (negative) the normal")
    parser.add_argument("--level", metavar="PATH",
                        help="dataset path of an OME-Zarr store's level, as its metadata "
                        "names it (quick preview; default the finest level)")
    parser.add_argument("--num_threads", type=cli.number(int, minimum=1), default=None,
                        metavar="N", help="compute threads (default: all cores)")
    parser.add_argument("--zarr_output", default=None, metavar="OUT.zarr",
                        help="also write the rendered layers as an OME-Zarr: axes z (layer), "
                        "y, x; chunks (all layers, 128, 128); a pyramid halving y and x")
    cli.add_switches(
        parser,
        preview="also write OUT_DIR/preview_surface.png and preview_stack.png (8-bit, "
                "contrast-stretched)",
        allow_outside="render even when most of the segment lies outside the volume or "
                      "every sample reads 0 (otherwise an error)")
    add_surface_arguments(parser)
    remote.add_remote_arguments(parser)
    cli.add_common_flags(parser)
    return parser


def main(args: argparse.Namespace) -> None:
    with open_surface(args.surface, **surface_options(args)) as surface:
        _render(args, surface)


def _render(args: argparse.Namespace, surface) -> None:
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
    _skip_numba_blas_check()
    stats = render_layers(
        surface, store, args.out_dir, args.stack,
        number_of_layers=args.number_of_layers,
        number_of_stacked_layers=args.number_of_stacked_layers,
        block_size=args.block_size, zarr_cache_max_size_gb=args.zarr_cache_max_size_gb,
        interval=args.interval, direction=args.direction, level=args.level,
        quiet=args.quiet, num_threads=args.num_threads, layers=args.layers,
        stack_method=args.stack_method, preview=args.preview,
        allow_outside=args.allow_outside, zarr_output=args.zarr_output)
    where = " and ".join(p for p in (None if args.out_dir == "-" else args.out_dir,
                                     args.zarr_output) if p)
    cli.note(f"wrote {stats.layers} layers of {stats.width}x{stats.height} pixels to "
             f"{where} ({stats.samples / max(stats.seconds, 1e-9):.3g} samples/s, "
             f"{stats.chunk_fetches} chunk reads of {stats.unique_chunks} chunks)",
             args.quiet)


def _skip_numba_blas_check() -> None:
    """Let numba load its numpy support without importing scipy.linalg.

    Before the first compiled kernel runs, numba imports ``numba.np.arraymath``, which
    checks for a BLAS by importing ``scipy.linalg.cython_blas``: all of scipy.linalg and
    numpy.f2py, 0.1-0.35 s of a render's start-up. Our kernels use no linear algebra, so
    this process answers the check "no BLAS" (numba then only computes np.convolve and
    np.correlate with its own loop) and lifts the block at once: numba's linear algebra
    still imports scipy when something compiles it. Only here, in the command: a library
    user's own numba code must see the real answer.
    """
    name = "scipy.linalg.cython_blas"
    if name in sys.modules or "numba.np.arraymath" in sys.modules:
        return  # scipy is loaded already, or numba has checked already
    sys.modules[name] = None  # importing it now raises ImportError
    try:
        import numba.np.arraymath  # noqa: F401  (runs the check)
    finally:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]


def entry(argv: list[str] | None = None) -> int:
    """Run the program on ``argv`` (default: the command line); return the exit code."""
    return cli.run(main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(entry())
