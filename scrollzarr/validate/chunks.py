"""Chunk presence of each level of an OME-Zarr store, found with a bounded listing (or,
where a store cannot list, by probing a few chunk keys)."""

from __future__ import annotations

import re

import zarr
from zarr.abc.store import Store
from zarr.core.sync import sync

from .findings import ERROR, WARNING, Finding
from .header import Level

#: Most list_dir calls spent looking for one chunk of a level (the search is bounded).
LIST_BUDGET = 200
_CHUNK_NAME = re.compile(r"^\d+([.]\d+)*$")


def check_chunks(store: Store, levels: list[Level], findings: list[Finding]) -> None:
    """A level without any chunk while level 0 has some is an error."""
    if not levels:
        return
    found = {lv.path: _has_chunk(store, lv) for lv in levels}
    base = levels[0]
    if found[base.path] is False:
        findings.append(Finding(base.path, WARNING, "no-chunks",
                                "no chunk stored: the whole volume is the fill value"))
        return
    for lv in levels[1:]:
        if found[lv.path] is False and found[base.path]:
            findings.append(Finding(lv.path, ERROR, "level-no-chunks",
                                    f"array metadata but no chunk, while level {base.path} "
                                    "has chunks"))
        elif found[lv.path] is None:
            findings.append(Finding(lv.path, WARNING, "chunks-unlisted",
                                    "the store cannot be listed and no probed chunk exists"))


def _has_chunk(store: Store, level: Level) -> bool | None:
    """Whether the level stores at least one chunk (or shard).

    Descends the key hierarchy with ``list_dir`` (a handful of calls, at most
    :data:`LIST_BUDGET`) to the depth of the array's chunk keys. Where the store cannot
    list (plain HTTP), probes the keys of a few chunks instead; None when none of them
    exists (unknown)."""
    sample = level.array.metadata.encode_chunk_key((0,) * level.array.ndim)
    depth = sample.count("/") + 1
    budget = [LIST_BUDGET]
    listed = [False]

    def search(prefix: str, remaining: int) -> bool:
        if budget[0] <= 0:
            return False
        budget[0] -= 1
        try:
            names = sync(_collect(store.list_dir(prefix)))
        except Exception:  # e.g. NotImplementedError: the store cannot list
            return False
        listed[0] = listed[0] or bool(names)
        for name in sorted(names, key=lambda n: (len(n), n)):
            name = name.strip("/")
            if remaining == 1:
                if _CHUNK_NAME.match(name):
                    return True
            elif not name.startswith(".") and name != "zarr.json" and search(
                    f"{prefix}/{name}", remaining - 1):
                return True
        return False

    if search(level.path, depth):
        return True
    if listed[0]:
        return False
    return True if _probe(store, level) else None


async def _collect(iterator) -> list[str]:
    return [name async for name in iterator]


def _probe(store: Store, level: Level) -> bool:
    """Whether any of the chunks at the corners and the centre of the grid exists."""
    grid = _grid(level.array)
    picks = {tuple(min(g - 1, max(0, int(g * f))) for g in grid)
             for f in (0.0, 0.25, 0.5, 0.75, 0.99)}
    for coords in picks:
        key = f"{level.path}/{level.array.metadata.encode_chunk_key(coords)}"
        if sync(store.exists(key)):
            return True
    return False


def _grid(array: zarr.Array) -> tuple[int, ...]:
    """Grid of stored objects: shards if sharded, else chunks."""
    outer = array.shards or array.chunks
    return tuple(-(-n // c) for n, c in zip(array.shape, outer))

