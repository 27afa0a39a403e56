"""Command-line plumbing shared by the scripts: common flags and exit codes.

Exit codes: 0 success, 1 a reported error (one line on stderr), 2 bad usage (argparse),
130 interrupted by Ctrl-C (SIGINT), 143 stopped by SIGTERM (``kill PID``). After a signal
the script saves what it finished (scroll_to_ome journals every finished task) and prints
one line ``interrupted (SIGINT): ...`` saying how many tasks were saved and the exact
command that continues the run.

Messages go to stderr with an error handler like ``backslashreplace``: a file name that is not valid
UTF-8 prints as ``\\xNN`` escapes instead of aborting with UnicodeEncodeError.
"""

from __future__ import annotations

import argparse
import codecs
import math
import os
import signal
import sys
import threading
import traceback
from typing import Callable, Sequence

from . import __version__
from .errors import Interrupted, ScrollError


def _dashed(names: Sequence[str]) -> list[str]:
    """The ``--chunk-size`` spelling of every ``--chunk_size`` option name."""
    return [n.replace("_", "-") for n in names if n.startswith("--") and "_" in n]


class HelpFormatter(argparse.HelpFormatter):
    """Help that lists each option once, by its underscore spelling: the dashed aliases
    that :class:`Parser` adds are accepted but not shown."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        aliases = getattr(action, "dashed_aliases", ())
        if not aliases:
            return super()._format_action_invocation(action)
        shown = [o for o in action.option_strings if o not in aliases]
        original, action.option_strings = action.option_strings, shown
        try:
            return super()._format_action_invocation(action)
        finally:
            action.option_strings = original


def _with_aliases(add: Callable[..., argparse.Action]) -> Callable[..., argparse.Action]:
    """Wrap an ``add_argument`` so that it also registers the dashed spellings."""
    def add_argument(*names, **kwargs):
        aliases = _dashed(names)
        action = add(*names, *aliases, **kwargs)
        action.dashed_aliases = tuple(aliases)
        return action
    return add_argument


class Parser(argparse.ArgumentParser):
    """The parser of every script: ``--version``, abbreviations off (a script that works
    today must not break when an option is added) and every ``--under_score`` option also
    accepted as ``--under-score`` (not repeated in ``--help``). Usage errors are one line
    and exit 2.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        prog = kwargs.get("prog")
        invoked = os.path.basename(sys.argv[0]) if sys.argv else ""
        if prog and invoked == prog.removesuffix(".py").replace("_", "-"):
            kwargs["prog"] = invoked  # started as the console script scroll-to-ome
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version",
                          version=f"%(prog)s (scrollzarr {__version__})")

    def add_argument(self, *names, **kwargs):
        return _with_aliases(super().add_argument)(*names, **kwargs)

    def add_argument_group(self, *args, **kwargs):
        group = super().add_argument_group(*args, **kwargs)
        group.add_argument = _with_aliases(group.add_argument)
        return group

    def add_mutually_exclusive_group(self, *args, **kwargs):
        group = super().add_mutually_exclusive_group(*args, **kwargs)
        group.add_argument = _with_aliases(group.add_argument)
        return group

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def number(kind: type = float, *, minimum: float | None = None,
           maximum: float | None = None, above: float | None = None) -> Callable[[str], float]:
    """An argparse ``type=`` for a numeric option: the one place where numeric option values
    are checked (finite, in range), so that a bad value is one line naming the option.

    ``minimum``/``maximum`` are inclusive bounds, ``above`` an exclusive lower bound.
    """
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text!r}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be greater than {above}, got {text!r}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {text!r}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--quiet`` and ``--debug`` to a script's parser."""
    add_switches(parser, quiet="no progress bars or notes",
                 debug="show a full traceback on errors")


def add_switches(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                 **helps: str) -> None:
    """Add one on/off option ``--NAME`` (off unless given) per keyword ``NAME="help"``,
    in the order given."""
    for name, text in helps.items():
        parser.add_argument(f"--{name}", action="store_true", help=text)


def run(main: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser,
        argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, call ``main(args)`` and map what it raises to an exit code."""
    _printable_stderr()
    args = parser.parse_args(argv)
    previous = _catch_signals()
    try:
        code = _call(main, args)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code


def _call(main: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> int:
    try:
        main(args)
    except ScrollError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        message = getattr(exc, "message", "")
        print(f"interrupted ({signal.Signals(signum).name})"
              + (f": {message}" if message else ""), file=sys.stderr)
        return 128 + signum
    except Exception as exc:  # an unexpected failure is still one line unless --debug
        if args.debug:
            traceback.print_exc()
        else:
            msg = str(exc).splitlines()[0] if str(exc) else ""
            print(f"error: {type(exc).__name__}: {msg} (run with --debug for details)",
                  file=sys.stderr)
        return 1
    return 0


def _raise_interrupted(signum: int, frame) -> None:
    raise Interrupted(signum)


def _catch_signals() -> dict[int, object]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` in the main thread, so the run
    can save its finished work before it exits; return the previous handlers."""
    previous = {}
    if threading.current_thread() is not threading.main_thread():
        return previous  # signal handlers can only be set from the main thread
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) == signal.SIG_IGN:
            continue  # e.g. started with nohup or in the background: keep ignoring it
        previous[signum] = signal.signal(signum, _raise_interrupted)
    return previous


def _escape_bytes(error: UnicodeError) -> tuple[str, int]:
    """Encoding error handler: a byte that os.fsdecode kept as a surrogate escape
    (U+DC80..U+DCFF) prints as the byte it was (``\\xff``); any other character that
    the terminal cannot show prints as a backslash escape."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start:error.end]
    out = "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF
                  else c.encode("ascii", "backslashreplace").decode() for c in text)
    return out, error.end


codecs.register_error("scrollzarr.escape", _escape_bytes)


def _printable_stderr() -> None:
    """Let stderr print any file name: undecodable bytes become \\xNN escapes."""
    reconfigure = getattr(sys.stderr, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="scrollzarr.escape")
        except (ValueError, OSError):
            pass


def program_command(script: str) -> list[str]:
    """The words that start this program again: the interpreter (``sys.executable``) and
    the script's absolute path, or ``-m MODULE`` when it was not started from a file
    named like ``script`` (e.g. from a library caller or a test)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 and os.path.basename(argv0).split(".")[0] == script.split(".")[0] \
            and os.path.isfile(argv0):
        return [sys.executable, os.path.abspath(argv0)]
    return [sys.executable, "-m", f"scrollzarr.scripts.{script.split('.')[0]}"]


def note(message: str, quiet: bool = False) -> None:
    """Print a one-line note to stderr unless quiet."""
    if not quiet:
        print(message, file=sys.stderr)
