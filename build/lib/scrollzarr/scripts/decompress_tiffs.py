"""Decompress slice TIFFs (LZW, deflate, zstd, packbits, ...) once, so that repeated
conversions read them at disk speed.

    python decompress_tiffs.py IN_DIR OUT_DIR [--workers N] [--verify] [--overwrite]

Writes every .tif/.tiff of IN_DIR to OUT_DIR under the same name as an uncompressed,
memory-mappable TIFF (same shape, dtype and descriptive tags). Safe to interrupt: re-run
the same command to finish; complete outputs are skipped. Exits 1 if any file failed.
"""

from __future__ import annotations

import argparse
import sys

from .. import cli
from ..decompress import decompress_tiffs, default_workers, failure_message
from ..errors import ScrollError


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog="decompress_tiffs.py",
        description="Write uncompressed, memory-mappable copies of the slice TIFFs of "
                    "IN_DIR into OUT_DIR (same file names). Interrupted runs resume "
                    "where they stopped.")
    parser.add_argument("in_dir", help="directory of (compressed) TIFFs; not recursive")
    parser.add_argument("out_dir", help="directory for the uncompressed TIFFs (created "
                        "if needed; must not be IN_DIR)")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo outputs that are already complete")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"files decoded at once (default: cores, here "
                             f"{default_workers()}); each holds one slice in memory")
    parser.add_argument("--verify", action="store_true",
                        help="re-read every output and compare its pixels with the "
                             "input (also checks outputs of earlier runs)")
    parser.add_argument("--ignore_free_space", action="store_true",
                        help="start even if the free disk space looks too small")
    cli.add_common_flags(parser)
    return parser


def main(args: argparse.Namespace) -> None:
    summary = decompress_tiffs(args.in_dir, args.out_dir, overwrite=args.overwrite,
                               workers=args.workers, verify=args.verify,
                               quiet=args.quiet,
                               ignore_free_space=args.ignore_free_space)
    seconds = max(summary.seconds, 1e-9)
    done = summary.decompressed + summary.copied + summary.verified
    parts = [f"{summary.decompressed} decompressed", f"{summary.copied} copied"]
    if summary.verified:
        parts.append(f"{summary.verified} verified")
    if summary.skipped:
        parts.append(f"{summary.skipped} already complete")
    cli.note(f"{', '.join(parts)} of {summary.total} files into {args.out_dir} in "
             f"{summary.seconds:.1f} s ({done / seconds:.3g} files/s, "
             f"{summary.nbytes / 1e6 / seconds:.0f} MB/s)", args.quiet)
    if summary.failed:
        raise ScrollError(failure_message(summary))


def entry(argv: list[str] | None = None) -> int:
    """Run the program on ``argv`` (default: the command line); return the exit code."""
    return cli.run(main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(entry())
