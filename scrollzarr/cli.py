"""Command-line plumbing shared by the scripts: common flags and exit codes.

Exit codes: 0 success, 1 a reported error (one line on stderr), 2 bad usage (argparse),
130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Callable, Sequence

from .errors import ScrollError


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--quiet`` and ``--debug`` to a script's parser."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars or notes")
    parser.add_argument(
        "--debug", action="store_true", help="show a full traceback on errors"
    )


def run(main: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser,
        argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, call ``main(args)`` and map what it raises to an exit code.

    After an error the process ends at once (``os._exit``) once the message is out:
    zarr's I/O thread may still hold writes of the failed run, and letting the
    interpreter shut down normally would print pages of asyncio warnings after the
    one line the user needs.
    """
    args = parser.parse_args(argv)
    code = _call(main, args)
    if code != 0:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _call(main: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> int:
    try:
        main(args)
    except ScrollError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure is still one line unless --debug
        if args.debug:
            traceback.print_exc()
        else:
            msg = str(exc).splitlines()[0] if str(exc) else ""
            print(f"error: {type(exc).__name__}: {msg} (run with --debug for details)",
                  file=sys.stderr)
        return 1
    return 0


def note(message: str, quiet: bool = False) -> None:
    """Print a one-line note to stderr unless quiet."""
    if not quiet:
        print(message, file=sys.stderr)
