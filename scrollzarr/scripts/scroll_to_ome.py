"""Convert a directory of scroll slice TIFFs to a multi-resolution OME-Zarr store.

    python scroll_to_ome.py TIFF_DIR OUT.zarr [options]

``python make_sample.py DIR`` makes the built-in synthetic scroll; its ``DIR/slices`` is
a TIFF_DIR to try this on. See README.md for every option.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from .. import cli
from ..convert import Options, convert
from ..pyramid import ALGORITHMS
from ..store import COMPRESSION_HELP


#: The on/off options.
FLAGS = {
    "--zarr_only": "write one plain zarr array (level 0 only), no pyramid",
    "--overwrite": "replace an existing output store (never a non-zarr directory)",
    "--resume": "continue an interrupted conversion with the same options",
    "--allow_missing": "fill missing slice numbers with zeros instead of failing",
}
#: Options only a slice directory has (zarr_to_ome.py leaves them out).
SLICES_ONLY = ("--first_new_level", "--allow_missing")


def build_parser() -> argparse.ArgumentParser:
    p = cli.Parser(
        prog="scroll_to_ome.py",
        description="Convert scroll slice TIFFs (one per z) to OME-Zarr (zarr v2, NGFF 0.4) "
                    "with a resolution pyramid.")
    p.add_argument("tiff_dir", help="directory of slice TIFFs (the last integer in each "
                                    "file name is its z (slice) number) or of volume_grid "
                                    "cells (cell_yxz_YYY_XXX_ZZZ.tif)")
    p.add_argument("output", help="output store, e.g. scroll.zarr")
    add_conversion_arguments(p)
    cli.add_common_flags(p)
    return p


def add_conversion_arguments(p: argparse.ArgumentParser, slices: bool = True) -> None:
    """The options of a conversion, one per :class:`~scrollzarr.options.Options` field,
    shared by scroll_to_ome.py and zarr_to_ome.py (``slices`` False leaves out
    :data:`SLICES_ONLY`)."""
    p.add_argument("--chunk_size", type=cli.number(int, minimum=1), default=128,
                   help="edge of the cubic chunks, voxels (default 128)")
    p.add_argument("--nlevels", type=cli.number(int, minimum=1, maximum=64), default=6,
                   help="resolution levels including level 0 (default 6)")
    p.add_argument("--max_gb", type=cli.number(float, above=0), default=None,
                   help="memory budget in GiB for the conversion's buffers; Python and its "
                        "libraries add about 0.1 GiB (default: half the available RAM)")
    p.add_argument("--algorithm", default="mean", choices=ALGORITHMS,
                   help="how each level is made from the one above (default mean)")
    p.add_argument("--ranges", default=None,
                   help="crop X,Y,Z, each min:max in python slice syntax, empty = all, "
                        "e.g. '1000:3000,,500:' (z in slice numbers)")
    if slices:
        p.add_argument("--first_new_level", type=cli.number(int, minimum=1), default=None,
                       help="add levels N.. to an existing store, built from level N-1")
    p.add_argument("--obytes", type=cli.number(int), default=None, choices=(1, 2),
                   help="bytes per output voxel: 1 converts uint16 to uint8 (value // 256)")
    p.add_argument("--window", default=None, metavar="LO:HI|auto[:P_LO:P_HI]",
                   help="write uint8 through a contrast window: LO..HI maps to 0..255 "
                        "(0 stays 0); auto takes LO, HI from percentiles of the non-zero "
                        "voxels of a sample (default auto:0.5:99.5)")
    p.add_argument("--num_threads", type=cli.number(int, minimum=1), default=None,
                   help="parallel tasks (default: number of cores)")
    p.add_argument("--voxel_size", type=cli.number(float, above=0), default=None,
                   help="voxel size in micrometers, recorded as axis units and scales")
    p.add_argument("--zarr_format", type=cli.number(int), default=2, choices=(2, 3),
                   help="2: zarr v2 + NGFF 0.4 (khartes, zarr2://; default); "
                        "3: zarr v3 + NGFF 0.5 (zarr3://)")
    p.add_argument("--shard_size", type=cli.number(int, minimum=1), default=None,
                   help="zarr v3: edge of the shards in voxels, a multiple of --chunk_size "
                        "(default: no sharding)")
    p.add_argument("--compression", default="none",
                   help=f"chunk compression, both formats: {COMPRESSION_HELP} "
                        "(default none: CT noise compresses poorly)")
    p.add_argument("--scheduler", default=None,
                   help="run on dask.distributed: 'local' (a LocalCluster) or the address "
                        "of a running scheduler, tcp://HOST:8786 (default: local threads)")
    p.add_argument("--workers", type=cli.number(int, minimum=1), default=None,
                   help="workers of the LocalCluster with --scheduler local (default: cores)")
    for flag, text in FLAGS.items():
        if slices or flag not in SLICES_ONLY:
            p.add_argument(flag, action="store_true", help=text)


def options_of(args: argparse.Namespace, **fixed) -> Options:
    """The :class:`Options` of parsed arguments: every option has the name of its field;
    fields that are no option of the script (``program``, ``input_label``, ...) keep
    their defaults unless ``fixed`` gives them."""
    return Options(**{f.name: getattr(args, f.name) for f in fields(Options)
                      if hasattr(args, f.name)}, **fixed)


def main(args: argparse.Namespace) -> None:
    convert(args.tiff_dir, args.output, options_of(args))


def entry(argv: list[str] | None = None) -> int:
    """Run the program on ``argv`` (default: the command line); return the exit code."""
    return cli.run(main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(entry())
