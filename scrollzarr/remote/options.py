"""The command-line options of every script that reads a remote store: one definition, so
``ppm_to_layers.py`` now and ``serve_ome.py --proxy`` and ``zarr_to_ome.py`` later spell
and default them the same way.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from .. import cli
from .auth import PASSWORD_ENV

#: Default bound of the on-disk chunk cache, GiB (shared by every store under the root).
DEFAULT_CACHE_GB = 20.0
#: Default time (seconds) for which metadata and missing chunks are trusted without asking.
DEFAULT_CACHE_TTL = 3600.0
#: Attempts per request before a network error ends the run (transient errors only).
DEFAULT_ATTEMPTS = 4


def default_cache_dir(name: str = "stores") -> Path:
    """``$XDG_CACHE_HOME/scrollzarr/<name>`` (``~/.cache/scrollzarr/<name>`` without it):
    ``stores`` for the readers, ``proxy`` for ``serve_ome.py --proxy`` (a root of its own,
    since each root has one bound)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".cache")
    return Path(base) / "scrollzarr" / name


@dataclass(frozen=True)
class RemoteOptions:
    """How remote stores are reached and cached.

    ``user``: HTTP basic-auth user (password from ``SCROLL_PASSWORD`` or ~/.netrc).
    ``cache_dir``: cache root (None = :func:`default_cache_dir`); every store gets its
    own place under it. ``cache_gb``: bound of everything under the root, GiB (0 = no disk
    cache). ``cache_ttl``: seconds for which metadata and absent chunks (HTTP 404) are
    reused without a request; chunk data never expires (it is evicted least recently used
    first). ``attempts``: tries per request on connection errors, timeouts and 5xx answers.
    ``interactive``: prompt for a missing password (None = when stdin is a terminal).
    """

    user: str | None = None
    cache_dir: Path | None = None
    cache_gb: float = DEFAULT_CACHE_GB
    cache_ttl: float = DEFAULT_CACHE_TTL
    attempts: int = DEFAULT_ATTEMPTS
    interactive: bool | None = None

    @property
    def cache_root(self) -> Path:
        return default_cache_dir() if self.cache_dir is None else Path(self.cache_dir)

    @property
    def cache_bytes(self) -> int:
        return int(self.cache_gb * 2**30)


def add_remote_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--user``, ``--cache_dir``, ``--cache_gb`` and ``--cache_ttl`` to ``parser``
    (read them back with :func:`remote_options`)."""
    group = parser.add_argument_group("remote stores (http://, https://, s3:// URLs)")
    add_user_argument(group)
    group.add_argument("--cache_dir", default=None, metavar="DIR",
                       help=f"root of the on-disk chunk cache (default "
                       f"{default_cache_dir()}); each store gets its own place in it")
    group.add_argument("--cache_gb", type=cli.number(float, minimum=0),
                       default=DEFAULT_CACHE_GB, metavar="GIB",
                       help=f"bound of the on-disk cache, GiB, kept across processes "
                       f"(default {DEFAULT_CACHE_GB:g}; 0 = no disk cache)")
    group.add_argument("--cache_ttl", type=cli.number(float, minimum=0),
                       default=DEFAULT_CACHE_TTL, metavar="SECONDS",
                       help=f"reuse metadata and absent chunks this long without asking "
                       f"the server (default {DEFAULT_CACHE_TTL:g})")


def add_user_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add ``--user NAME`` (the HTTP user of a remote store) alone, for a script that
    reads remote stores without the disk cache."""
    parser.add_argument("--user", default=None, metavar="NAME",
                        help=f"HTTP user; the password comes from ${PASSWORD_ENV} or "
                        "~/.netrc, never from the command line")


def remote_options(args: argparse.Namespace) -> RemoteOptions:
    """The :class:`RemoteOptions` of parsed arguments (see :func:`add_remote_arguments`)."""
    return RemoteOptions(user=args.user,
                         cache_dir=None if args.cache_dir is None else Path(args.cache_dir),
                         cache_gb=args.cache_gb, cache_ttl=args.cache_ttl)
