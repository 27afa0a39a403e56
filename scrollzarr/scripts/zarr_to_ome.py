"""Convert a zarr array or one level of an OME-Zarr store (local, http(s)://, s3://) to
our multi-resolution OME-Zarr: rechunk, recompress, crop, rebuild the pyramid, change
the dtype, with the options, task plan, journal and executors of scroll_to_ome.py.

    python zarr_to_ome.py INPUT OUT.zarr [--level PATH] [options]

See docs/zarr_to_ome.md.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import cli, progress, remote
from ..convert import convert
from ..sources.zarr_input import ZarrSource
from .scroll_to_ome import add_conversion_arguments, options_of


def build_parser() -> argparse.ArgumentParser:
    p = cli.Parser(prog="zarr_to_ome.py", description=__doc__.split("\n\n")[0])
    for name, metavar, text in (
            ("input", "INPUT", "zarr array or OME-Zarr root: a path, http(s):// or s3:// "
                               "URL; zarr v2 or v3"),
            ("output", "OUT.zarr", "output store")):
        p.add_argument(name, metavar=metavar, help=text)
    p.add_argument("--level", default=None, metavar="PATH",
                   help="dataset path of the input's level to convert, as its metadata "
                        "names it (default: the finest level)")
    add_conversion_arguments(p, slices=False)
    remote.add_remote_arguments(p)
    cli.add_common_flags(p)
    return p


def main(args: argparse.Namespace) -> None:
    source = ZarrSource(args.input, args.level, remote.remote_options(args))
    for line in source.notes:
        cli.note(line, args.quiet)
    if source.voxel_size is not None and args.voxel_size is None:
        cli.note(f"note: voxel size {source.voxel_size:g} micrometers from the input's "
                 "metadata (--voxel_size to change)", args.quiet)
    options = options_of(args, program="zarr_to_ome.py", input_label="INPUT",
                         program_args=tuple(_own_arguments(args)))
    convert(source, args.output, options)
    if source.bytes_read:
        cli.note(f"input: read {source.bytes_read} bytes of chunks "
                 f"({progress.size(source.bytes_read)}) from {source.location}", args.quiet)


def _own_arguments(args: argparse.Namespace) -> list[str]:
    """This script's options that a resume command must repeat (the conversion options
    are added by convert)."""
    words = []
    if args.level is not None:
        words += ["--level", args.level]
    if args.user is not None:
        words += ["--user", args.user]
    if args.cache_dir is not None:
        words += ["--cache_dir", os.path.abspath(args.cache_dir)]
    for name, default in (("cache_gb", remote.options.DEFAULT_CACHE_GB),
                          ("cache_ttl", remote.options.DEFAULT_CACHE_TTL)):
        if getattr(args, name) != default:
            words += [f"--{name}", f"{getattr(args, name):g}"]
    return words


def entry(argv: list[str] | None = None) -> int:
    """Run the program on ``argv`` (default: the command line); return the exit code."""
    return cli.run(main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(entry())
