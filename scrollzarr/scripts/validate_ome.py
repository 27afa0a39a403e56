"""Check an OME-Zarr store: metadata, levels, codecs, chunks, and with --deep every chunk
and the pyramid.

    python validate_ome.py STORE [--deep [--seed N] [--samples N]] [--json]

Prints one line per finding, ``LEVEL severity code: message`` (LEVEL "store" for the whole
store), or with ``--json`` a JSON list of {level, severity, code, message}. Exits 1 if any
finding is an error, 0 otherwise (warnings alone do not fail).
"""

from __future__ import annotations

import argparse
import json
import sys

from zarr.abc.store import Store

from .. import cli
from ..errors import ScrollError
from ..remote.options import add_user_argument
from ..validate import ERROR, open_location, validate_store


def build_parser() -> argparse.ArgumentParser:
    p = cli.Parser(
        prog="validate_ome.py",
        description="Check an OME-Zarr store (zarr v2 + NGFF 0.4 or zarr v3 + NGFF 0.5): "
                    "NGFF metadata, every declared level, shapes against scales, "
                    "translations, dtypes and codecs across levels, root group, chunk "
                    "presence. Exit 1 if any error is found.")
    p.add_argument("store", help="OME-Zarr root: a local path, http(s)://... or s3://...")
    p.add_argument("--deep", action="store_true",
                   help="also read every chunk (decode errors per chunk) and recompute "
                        "sampled blocks of each level from the level above with the "
                        "recorded downsampling method")
    p.add_argument("--seed", type=cli.number(int, minimum=0), default=0,
                   help="seed of the --deep block sample (default 0)")
    p.add_argument("--samples", type=cli.number(int, minimum=1), default=4,
                   help="blocks (chunks) recomputed per level with --deep (default 4)")
    add_user_argument(p)  # remote stores are read as they are now: no disk cache options
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of {level, severity, code, message}")
    cli.add_common_flags(p)
    return p


def _open(location: str, user: str | None = None) -> Store:
    """The one place a STORE argument becomes a zarr Store (local, http(s), s3)."""
    return open_location(location, user)


def main(args: argparse.Namespace) -> None:
    progress = None
    if args.deep and not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        def bar(items, total, label):
            return tqdm(items, total=total, desc=label, unit="chunk", leave=False)
        progress = bar
    findings = validate_store(_open(args.store, args.user), deep=args.deep, seed=args.seed,
                              samples=args.samples, progress=progress)
    if args.json:
        print(json.dumps([f.to_dict() for f in findings], indent=1))
    else:
        for finding in findings:
            print(finding.line())
    errors = sum(f.severity == ERROR for f in findings)
    warnings = len(findings) - errors
    if errors:
        raise ScrollError(f"{args.store}: {errors} error(s), {warnings} warning(s)")
    cli.note(f"{args.store}: ok ({warnings} warning(s))", args.quiet)


def entry(argv: list[str] | None = None) -> int:
    """Run the program on ``argv`` (default: the command line); return the exit code."""
    return cli.run(main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(entry())
