"""Which files a server may show: zarr stores on disk and the allowlist of names in them.

Serving is an allowlist. Inside a zarr store (a directory holding ``.zgroup``,
``.zarray`` or ``zarr.json``) only the zarr metadata files and chunk keys are readable;
never the resume journal (a dot directory), ``*.partial`` files, other dotfiles, or
anything outside a store. Symbolic links are followed only when they stay inside the
store. Everything here is pure path logic over ``os.stat``; the servers decide the HTTP
answer.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

#: Files that mark the root of a zarr store, and the Neuroglancer scheme each one means.
STORE_MARKERS = ((".zgroup", "zarr2"), (".zarray", "zarr2"), ("zarr.json", "zarr3"))

#: The zarr metadata files (v2 and v3): served as JSON.
METADATA_NAMES = frozenset({".zgroup", ".zattrs", ".zarray", ".zmetadata", "zarr.json"})

#: How deep :func:`detect_stores` (and a request path) looks for stores under the root.
SEARCH_DEPTH = 3

#: Longest file name component (bytes) any common file system allows; longer is 404.
NAME_MAX = 255

# Chunk keys: v2 "0.1.2" (or the last name of "0/1/2"), v3 "c/0/1/2" (the last name),
# "c" alone for a 0-d v3 array. Shard files have the same names.
_CHUNK_KEY = re.compile(r"\d{1,20}(?:\.\d{1,20})*|c")


@dataclass(frozen=True)
class StoreInfo:
    """A zarr store found on disk: ``path`` relative to the served root (POSIX, "" for
    the root itself) and Neuroglancer ``scheme`` (``"zarr2"`` or ``"zarr3"``)."""

    path: str
    scheme: str


def store_scheme(directory: str | Path) -> str | None:
    """``"zarr2"`` if ``directory`` holds ``.zgroup`` or ``.zarray``, ``"zarr3"`` if it
    holds ``zarr.json``, else None (also when it cannot be read)."""
    for marker, scheme in STORE_MARKERS:
        try:
            if stat.S_ISREG(os.stat(os.path.join(directory, marker)).st_mode):
                return scheme
        except (OSError, ValueError):  # ENAMETOOLONG, ELOOP, NUL...: not a store
            continue
    return None


def detect_stores(root: str | Path, depth: int = SEARCH_DEPTH) -> list[StoreInfo]:
    """Find the zarr stores at or under ``root`` (at most ``depth`` directories down),
    sorted by path. A store's own sub-directories (its levels) are not searched, nor are
    dot directories."""
    root = Path(root)
    scheme = store_scheme(root)
    if scheme:
        return [StoreInfo("", scheme)]
    found: list[StoreInfo] = []
    if depth <= 0:
        return found
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return found
    for entry in entries:
        try:
            if not plain_name(entry.name) or not entry.is_dir():
                continue
        except OSError:
            continue
        for sub in detect_stores(entry.path, depth - 1):
            found.append(StoreInfo(posixpath.join(entry.name, sub.path).rstrip("/"),
                                   sub.scheme))
    return found


def source_url(scheme: str, base_url: str, path: str = "") -> str:
    """The Neuroglancer source for a store: ``SCHEME://BASE/PATH/`` (one trailing slash).

    ``base_url`` is the server's ``http://host:port/`` (plus its mount prefix); ``path``
    the store's path under it, URL-quoted here.
    """
    url = base_url.rstrip("/") + "/"
    if path:
        url += urllib.parse.quote(path.strip("/")) + "/"
    return f"{scheme}://{url}"


def plain_name(name: str) -> bool:
    """A directory or file name that may appear in a served path: not empty, no dot
    first (dotfiles, the journal, ``.``/``..``), not ``*.partial``, no separator or NUL,
    at most :data:`NAME_MAX` bytes."""
    return (bool(name) and not name.startswith(".") and not name.endswith(".partial")
            and "/" not in name and "\\" not in name and "\0" not in name
            and len(name.encode("utf-8", "surrogateescape")) <= NAME_MAX)


def allowed_key(parts: Sequence[str]) -> bool:
    """True when ``parts`` (a path inside a store, as names) may be served: every
    directory a :func:`plain_name`, the file a zarr metadata file or a chunk key."""
    if not parts:
        return False
    *dirs, name = parts
    return all(plain_name(d) for d in dirs) and (
        name in METADATA_NAMES or bool(_CHUNK_KEY.fullmatch(name)))


def content_type(name: str) -> str:
    """The neutral content type of a served file: JSON for metadata, else bytes."""
    return "application/json" if name in METADATA_NAMES else "application/octet-stream"


@dataclass(frozen=True)
class Target:
    """What a request path names under a served root.

    ``kind``: ``"file"`` (a served file at ``path``, inside ``store``), ``"missing"`` (an
    allowlisted key that does not exist: an absent chunk), ``"store_dir"`` (a directory
    inside a store or the store itself), ``"dir"`` (a directory above stores; ``stores``
    lists them relative to it) or ``"refused"`` (anything else: answered like a missing
    file, and without CORS).
    """

    kind: str
    path: Path | None = None
    store: Path | None = None
    stores: tuple[StoreInfo, ...] = ()


REFUSED = Target("refused")


def locate(root: Path, parts: Sequence[str], depth: int = SEARCH_DEPTH) -> Target:
    """Classify the request path ``parts`` (names below ``root``, a resolved directory).

    The first directory on the way down (at most ``depth`` below ``root``) that is a
    zarr store is the store; the rest of the path must be an :func:`allowed_key`, and
    once symbolic links are resolved the file must still be inside that store, still be
    an allowed key, and be a regular file (never a FIFO or device).
    """
    try:
        return _locate(root, list(parts), depth)
    except (OSError, ValueError, RuntimeError):  # too long, loops, NUL: nothing there
        return REFUSED


def _locate(root: Path, parts: list[str], depth: int) -> Target:
    here = root
    for i in range(len(parts) + 1):
        if store_scheme(here):
            return _in_store(root, here, parts[i:])
        if i == len(parts):
            stores = tuple(detect_stores(here, depth - i))
            return Target("dir", here, stores=stores) if stores else REFUSED
        if i >= depth or not plain_name(parts[i]):
            return REFUSED
        here = here / parts[i]
    return REFUSED


def _in_store(root: Path, store: Path, key: list[str]) -> Target:
    real_store = store.resolve()
    if not _inside(real_store, root):
        return REFUSED  # a link that leads the store out of the served root
    if not key:
        return Target("store_dir", real_store, real_store)
    if not all(plain_name(p) for p in key[:-1]) or not (
            allowed_key(key) or plain_name(key[-1])):
        return REFUSED
    real = (store / Path(*key)).resolve()
    if not _inside(real, real_store):
        return REFUSED
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return Target("missing", real, real_store) if allowed_key(key) else REFUSED
    if stat.S_ISDIR(mode):
        return Target("store_dir", real, real_store)
    inner = real.relative_to(real_store).parts
    if stat.S_ISREG(mode) and allowed_key(inner) and allowed_key(key):
        return Target("file", real, real_store)
    return REFUSED


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def store_listing(directory: Path) -> list[str]:
    """Names the listing of a directory inside a store shows: its plain sub-directories
    (with a trailing "/") and allowlisted files, sorted."""
    names = []
    with os.scandir(directory) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            try:
                if entry.is_dir() and plain_name(entry.name):
                    names.append(entry.name + "/")
                elif entry.is_file() and allowed_key([entry.name]):
                    names.append(entry.name)
            except OSError:
                continue
    return names
