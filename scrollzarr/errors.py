"""The one exception type our scripts report to users, and :func:`reading` and
:func:`read_errors`, which word the failures of reading an input file as one of them."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


class ScrollError(Exception):
    """A problem with the user's input or options.

    The message is one line that names the file or option at fault; the scripts print it
    as ``error: <message>`` and exit with status 1, without a traceback.
    """


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT = Ctrl-C, or SIGTERM).

    ``signum`` is the signal number (the scripts exit with ``128 + signum``: 130 for
    SIGINT, 143 for SIGTERM); ``message`` says what was saved and how to continue (one
    line, may be empty). A subclass of KeyboardInterrupt, so every cleanup written for
    Ctrl-C also runs for SIGTERM.
    """

    def __init__(self, signum: int, message: str = ""):
        super().__init__(signum, message)
        self.signum = signum
        self.message = message


@contextmanager
def reading(path: str | Path, suffix: str) -> Iterator[None]:
    """Turn the OSError of reading the ``suffix`` file (".ppm", ".obj") at ``path`` into
    a one-line :class:`ScrollError` naming it: missing, a directory, or unreadable (with
    the system's reason)."""
    article = "an" if suffix[1:2] in "aeiou" else "a"
    try:
        yield
    except FileNotFoundError:
        raise ScrollError(f"{path}: {suffix} file does not exist") from None
    except IsADirectoryError:
        raise ScrollError(f"{path}: is a directory, not {article} {suffix} file") from None
    except OSError as exc:
        raise ScrollError(f"{path}: cannot read {suffix} file ({exc.strerror})") from None


@contextmanager
def read_errors(path: object, unreadable: str, missing: str = "",
            describe: Callable[[BaseException], str] = str) -> Iterator[None]:
    """Turn whatever reading the file ``path`` raises inside the block (the readers raise
    many kinds on a damaged file) into one :class:`ScrollError` naming it:
    ``PATH: permission denied``, ``PATH: <missing>`` for an absent file (if ``missing``
    is given), else ``PATH: <unreadable> (<describe(exc)>)``. ``path`` None leaves the
    ``PATH: `` out. A ScrollError raised in the block passes unchanged."""
    try:
        yield
    except ScrollError:
        raise
    except Exception as exc:
        if isinstance(exc, PermissionError):
            why = "permission denied"
        elif missing and isinstance(exc, FileNotFoundError):
            why = missing
        else:
            why = f"{unreadable} ({describe(exc)})"
        raise ScrollError(why if path is None else f"{path}: {why}") from None
