"""The one rule of every tool about what it may write, replace or delete.

A tool deletes or replaces only what it provably made, and never a path that equals,
contains or lies inside one of its inputs. :func:`check_output_paths` is the second half
of the rule: every script calls it with its outputs and inputs before it writes anything.
The first half is each tool's marker (a store's ``"scrollzarr"`` attributes or journal,
see :func:`scrollzarr.store.is_own_store`; the list of files decompress_tiffs.py made;
the marker file demo.sh leaves in its directory).

Paths are compared after resolving symlinks (``os.path.realpath``) and, where they exist,
by device and inode too, so a second name of the same directory (a bind mount, a hard
link to a file) does not slip through. fsspec URLs (``s3://...``) are compared as text.
"""

from __future__ import annotations

import os
from typing import Mapping

from .errors import ScrollError

PathLike = str | os.PathLike


def _is_url(location: PathLike) -> bool:
    return "://" in os.fsdecode(location)


def _show(location: PathLike) -> str:
    """A path as text that always prints (non-UTF-8 bytes as surrogate escapes repr'd)."""
    text = os.fsdecode(location)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return ascii(text)[1:-1]
    return text


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _chain(path: str) -> list[str]:
    """``path`` (resolved) and all its ancestors, innermost first."""
    out = [path]
    while True:
        parent = os.path.dirname(out[-1])
        if parent == out[-1]:
            return out
        out.append(parent)


def _resolve(location: PathLike) -> tuple:
    """What :func:`relation` compares: a URL as text; a local path resolved, with its
    ancestors (innermost first) and their device and inode where they exist."""
    if _is_url(location):
        return ("url", os.fsdecode(location).rstrip("/"))
    path = os.path.realpath(os.fsdecode(location))
    chain = _chain(path)
    return ("path", path, chain, [_identity(p) for p in chain])


def _relate(a: tuple, b: tuple) -> str | None:
    """:func:`relation` of two :func:`_resolve` results."""
    if a[0] == "url" or b[0] == "url":
        if a[0] != b[0]:
            return None
        x, y = a[1], b[1]
        if x == y:
            return "is"
        if x.startswith(y + "/"):
            return "is inside"
        if y.startswith(x + "/"):
            return "contains"
        return None
    _, x, chain_x, ids_x = a
    _, y, chain_y, ids_y = b
    if x == y or (ids_x[0] is not None and ids_x[0] == ids_y[0]):
        return "is"
    # a's ancestors include b (by name, or by identity through another mount of it)
    if y in chain_x[1:] or (ids_y[0] is not None and ids_y[0] in ids_x[1:]):
        return "is inside"
    if x in chain_y[1:] or (ids_x[0] is not None and ids_x[0] in ids_y[1:]):
        return "contains"
    return None


def relation(a: PathLike, b: PathLike) -> str | None:
    """How location ``a`` relates to ``b``: ``"is"`` (the same path), ``"is inside"``
    (``a`` lies below ``b``), ``"contains"`` (``b`` lies below ``a``) or None (unrelated).

    Local paths are resolved (symlinks, ``..``) and compared by device and inode where
    they exist; two URLs are compared as "/"-separated text; a URL and a local path are
    unrelated.
    """
    return _relate(_resolve(a), _resolve(b))


def check_output_paths(outputs: Mapping[str, PathLike],
                       inputs: Mapping[str, PathLike]) -> None:
    """Refuse outputs that equal, contain or lie inside an input; return None if safe.

    ``outputs`` and ``inputs`` map a label naming the argument or option (``"OUT_DIR"``,
    ``"--mask"``) to its location (a local path, existing or not, or an fsspec URL).
    Entries whose location is None are skipped. Two outputs may not be the same path
    either. Raises :class:`ScrollError` naming both arguments and both paths, e.g.
    ``OUT_DIR /a/b lies inside IN_DIR /a: choose an output outside every input``.
    """
    def fail(label_a: str, a: PathLike, how: str, label_b: str, b: PathLike) -> None:
        raise ScrollError(f"{label_a} {_show(a)} {how} {label_b} {_show(b)}: "
                          "choose an output outside every input")

    words = {"is": "is", "is inside": "lies inside", "contains": "contains"}
    # each location resolved once: a render names every layer file, and comparing them
    # pairwise re-resolved each thousands of times
    outs = [(k, v, _resolve(v)) for k, v in outputs.items() if v is not None]
    ins = [(k, v, _resolve(v)) for k, v in inputs.items() if v is not None]
    for label, out, r_out in outs:
        for in_label, src, r_src in ins:
            how = _relate(r_out, r_src)
            if how is not None:
                fail(label, out, words[how], in_label, src)
    for i, (label, out, r_out) in enumerate(outs):
        for other_label, other, r_other in outs[i + 1:]:
            if _relate(r_out, r_other) == "is":
                raise ScrollError(f"{label} {_show(out)} is also {other_label}: "
                                  "give each output its own path")


def printable(location: PathLike) -> str:
    """``location`` as text that prints on any terminal: a name that is not valid UTF-8
    shows its odd bytes as ``\\xNN`` escapes instead of raising UnicodeEncodeError."""
    return _show(location)


__all__ = ["check_output_paths", "relation", "printable"]
