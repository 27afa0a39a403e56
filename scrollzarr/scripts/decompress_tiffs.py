"""Decompress slice TIFFs (LZW, deflate, zstd, packbits, ...) once, so that repeated
conversions read them at disk speed.

    python decompress_tiffs.py IN_DIR OUT_DIR [--workers N] [--verify] [--overwrite]

Writes every .tif/.tiff of IN_DIR to OUT_DIR under the same name as an uncompressed,
memory-mappable TIFF (same shape, dtype and descriptive tags). Safe to interrupt: re-run
the same command to finish; complete outputs are skipped. Exits 1 if any file failed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from .. import cli, progress
from ..decompress import decompress_tiffs, default_workers, failure_message
from ..errors import Interrupted, ScrollError


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
    parser.add_argument("--workers", type=cli.number(int, minimum=1), default=None,
                        help=f"files decoded at once (default: cores, here "
                             f"{default_workers()}); each holds one slice in memory")
    parser.add_argument("--verify", action="store_true",
                        help="re-read every output and compare its pixels with the "
                             "input (also checks outputs of earlier runs)")
    parser.add_argument("--ignore_free_space", action="store_true",
                        help="start even if the free disk space looks too small")
    cli.add_common_flags(parser)
    return parser


def continue_command(args: argparse.Namespace) -> str:
    """The command that finishes an interrupted run: this interpreter, the script's
    absolute path and absolute directories, shell-quoted (without --overwrite: complete
    outputs are then skipped)."""
    words = cli.program_command("decompress_tiffs.py") + [
        os.path.abspath(args.in_dir), os.path.abspath(args.out_dir)]
    if args.workers is not None:
        words += ["--workers", str(args.workers)]
    words += [f"--{name}" for name in ("verify", "ignore_free_space") if getattr(args, name)]
    return shlex.join(words)


def main(args: argparse.Namespace) -> None:
    try:
        summary = decompress_tiffs(args.in_dir, args.out_dir, overwrite=args.overwrite,
                                   workers=args.workers, verify=args.verify,
                                   quiet=args.quiet,
                                   ignore_free_space=args.ignore_free_space)
    except Interrupted as exc:
        raise Interrupted(exc.signum, f"{exc.message}; continue with: "
                                      f"{continue_command(args)}") from None
    files = summary.files
    parts = [f"{files['decompressed']} decompressed", f"{files['copied']} copied"]
    if files["verified"]:
        parts.append(f"{files['verified']} verified")
    if files["skipped"]:
        parts.append(f"{files['skipped']} already complete")
    rates = (f"{progress.rate(summary.finished, summary.seconds, 'files')}, "
             f"{progress.rate(summary.nbytes, summary.seconds, 'B')}")
    cli.note(f"{', '.join(parts)} of {summary.total} files into {args.out_dir} in "
             f"{summary.seconds:.1f} s ({rates})", args.quiet)
    if summary.failed:
        raise ScrollError(failure_message(summary))


def entry(argv: list[str] | None = None) -> int:
    """Run the program on ``argv`` (default: the command line); return the exit code."""
    return cli.run(main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(entry())
