"""One look at a conversion's output before it runs: what is there now.

:func:`inspect_output` is the only place that probes the output; the conversion then
decides with one ``match`` on the :class:`OutputState` it returns.
"""

from __future__ import annotations

import enum
from pathlib import Path

import fsspec

from . import ngff, store
from .journal import DIRNAME as JOURNAL_DIRNAME


class OutputState(enum.Enum):
    ABSENT = "absent"  # nothing at the path
    EMPTY = "empty"  # an empty directory: as good as none
    COMPLETE = "complete"  # our store, conversion finished
    RESUMABLE = "resumable"  # our store with a resume journal
    UNFINISHED = "unfinished"  # our store, not finished, no journal (killed before one)
    FOREIGN = "foreign"  # a zarr store we did not make (or cannot read our mark of)
    NOT_A_STORE = "not a store"  # a file, or a non-empty directory that is no zarr store


def inspect_output(location: str | Path) -> OutputState:
    """The state of the output at ``location`` (a local path or an fsspec URL)."""
    fs, path = fsspec.core.url_to_fs(str(location))
    if not fs.exists(path):
        return OutputState.ABSENT
    if not store.is_zarr_store(location):
        if fs.isdir(path) and not fs.ls(path):
            return OutputState.EMPTY
        return OutputState.NOT_A_STORE
    if fs.exists(path.rstrip("/") + "/" + JOURNAL_DIRNAME + "/params.json"):
        return OutputState.RESUMABLE
    try:
        own = store.get_attributes(location).get(ngff.OWN_KEY)
    except Exception:  # unreadable metadata: not provably ours
        return OutputState.FOREIGN
    if not isinstance(own, dict):
        return OutputState.FOREIGN
    return {True: OutputState.COMPLETE, False: OutputState.UNFINISHED}.get(
        own.get("complete"), OutputState.FOREIGN)
