"""What a store location names, without loading zarr: a URL this package fetches, or a
local directory (checked to exist). :func:`.store.open_store` builds on it; a reader
that can take a local store's files directly (the layer render) needs nothing more.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from ..errors import ScrollError


def is_remote(location: str | os.PathLike) -> bool:
    """Whether ``location`` is a URL this module fetches (http, https, s3)."""
    return urllib.parse.urlsplit(str(location)).scheme in ("http", "https", "s3")


def local_path(location: str | os.PathLike) -> Path | None:
    """The directory a local ``location`` (a path or ``file://`` URL) names; None for a
    URL of any other scheme. Raises :class:`ScrollError` naming the location when the
    path does not exist or is not a directory."""
    text = str(location)
    parts = urllib.parse.urlsplit(text)
    if "://" in text and parts.scheme != "file":
        return None
    path = Path(urllib.parse.unquote(parts.path) if parts.scheme == "file" else text)
    if not path.exists():
        raise ScrollError(f"{text}: no such file or directory")
    if not path.is_dir():
        raise ScrollError(f"{text}: not a zarr store (not a directory)")
    return path
