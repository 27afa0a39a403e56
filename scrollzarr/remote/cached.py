"""A zarr store wrapper that reads a remote store through the on-disk cache.

zarr decodes as usual on top of it (zarr v2 and v3, sharded arrays read with byte
ranges): :class:`CachedStore` only answers ``get`` from :class:`~.diskcache.DiskCache`
when it can, fetches with :func:`~.retry.with_retries` when it cannot, and remembers the
answer. An entry is one (key, byte range): a shard's index and each inner chunk read from
it are separate entries, so nothing is fetched twice.

What is trusted for how long: chunk data forever (stores are published once; eviction
alone removes it); metadata documents and absences (404: masked background, or a level
not written) for ``ttl`` seconds, after which they are fetched again.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, AsyncGenerator, Iterable

from zarr.abc.store import (ByteRequest, OffsetByteRequest, RangeByteRequest, Store,
                            SuffixByteRequest)
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import WrapperStore

from .diskcache import DiskCache, entry_name
from .retry import with_retries

if TYPE_CHECKING:
    from typing import Self

#: Keys holding metadata (zarr v2 and v3): re-fetched after the time-to-live.
METADATA_NAMES = frozenset({".zarray", ".zgroup", ".zattrs", ".zmetadata", "zarr.json"})


@dataclass
class FetchStats:
    """Counters of one store: ``requests`` that reached the network (every attempt),
    ``fetched_bytes`` received (``chunk_bytes`` of them for chunks and shards, the rest
    metadata), ``hits`` served from the disk cache, ``missing`` absent chunks (fetched or
    remembered; absent metadata documents are not counted), ``cache_errors`` entries that
    could not be written (a full disk: the read still succeeds)."""

    requests: int = 0
    fetched_bytes: int = 0
    chunk_bytes: int = 0
    hits: int = 0
    missing: int = 0
    cache_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


def range_text(byte_range: ByteRequest | None) -> str:
    """A text form of a byte request for cache keys: "" (whole), "a-b", "a-", "-n"."""
    if byte_range is None:
        return ""
    if isinstance(byte_range, RangeByteRequest):
        return f"{byte_range.start}-{byte_range.end}"
    if isinstance(byte_range, OffsetByteRequest):
        return f"{byte_range.offset}-"
    if isinstance(byte_range, SuffixByteRequest):
        return f"-{byte_range.suffix}"
    raise ValueError(f"unexpected byte range {byte_range!r}")


def trim_to_range(data: bytes, byte_range: ByteRequest | None) -> bytes:
    """``data`` cut to ``byte_range`` when a server ignored the Range header and sent the
    whole object (RFC 9110 allows it); a ranged answer passes unchanged."""
    if isinstance(byte_range, RangeByteRequest):
        want = byte_range.end - byte_range.start
        if len(data) > want:
            return data[byte_range.start:byte_range.end]
    elif isinstance(byte_range, SuffixByteRequest) and len(data) > byte_range.suffix:
        return data[len(data) - byte_range.suffix:]
    return data


class CachedStore(WrapperStore[Store]):
    """Read-only ``store`` (the remote one, named ``location`` in messages) behind
    ``cache`` (None: no disk cache, every read goes to the network), with ``ttl`` seconds
    for metadata and absences and ``attempts`` tries per request. ``stats`` counts what
    happened."""

    def __init__(self, store: Store, location: str, cache: DiskCache | None,
                 ttl: float, attempts: int, cache_key: str | None = None,
                 stats: FetchStats | None = None):
        super().__init__(store)
        self.location = location.rstrip("/")
        self.cache = cache
        self.ttl = float(ttl)
        self.attempts = int(attempts)
        self.cache_key = cache_key or self.location
        self.stats = stats if stats is not None else FetchStats()
        self._place: Path | None = None if cache is None else cache.place(self.cache_key)

    def _with_store(self, store: Store) -> Self:
        return type(self)(store, self.location, self.cache, self.ttl, self.attempts,
                          self.cache_key, self.stats)

    def __str__(self) -> str:
        return self.location

    def __repr__(self) -> str:
        return f"CachedStore({self.location!r})"

    @property
    def read_only(self) -> bool:
        return True

    async def get(self, key: str, prototype: BufferPrototype,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        name = entry_name(key, range_text(byte_range))
        metadata = key.rsplit("/", 1)[-1] in METADATA_NAMES
        if self._place is not None:
            hit = await asyncio.to_thread(self.cache.lookup, self._place, name,
                                          self.ttl if metadata else None, self.ttl)
            if hit is not None:
                self.stats.add(hits=1, missing=int(hit.data is None and not metadata))
                return None if hit.data is None else prototype.buffer.from_bytes(hit.data)
        data = await self._fetch(key, byte_range, metadata)
        if self._place is not None:
            try:
                await asyncio.to_thread(self.cache.store, self._place, name, data)
            except OSError:
                self.stats.add(cache_errors=1)
        return None if data is None else prototype.buffer.from_bytes(data)

    async def _fetch(self, key: str, byte_range: ByteRequest | None,
                     metadata: bool) -> bytes | None:
        """The object (or range) from the network; None when it does not exist."""
        async def once() -> Buffer | None:
            self.stats.add(requests=1)
            return await self._store.get(key, default_buffer_prototype(), byte_range)

        value = await with_retries(once, f"{self.location}/{key}", self.attempts)
        if value is None:
            self.stats.add(missing=int(not metadata))
            return None
        data = trim_to_range(value.to_bytes(), byte_range)
        self.stats.add(fetched_bytes=len(data), chunk_bytes=0 if metadata else len(data))
        return data

    async def version(self, key: str) -> str:
        """What the server says identifies this version of object ``key`` (its ETag and
        Last-Modified, "" when it sends neither), asked now, past the cache: a changed
        object whose cached copy would still look the same."""
        fs, path = self._store.fs, f"{self._store.path}/{key}"

        async def once() -> dict:
            self.stats.add(requests=1)
            return await fs._info(path)

        info = await with_retries(once, f"{self.location}/{key}", self.attempts)
        return " ".join(str(info.get(name, "")) for name in
                        ("ETag", "Last-Modified", "LastModified")).strip()

    async def get_partial_values(self, prototype: BufferPrototype,
                                 key_ranges: Iterable[tuple[str, ByteRequest | None]]
                                 ) -> list[Buffer | None]:
        return list(await asyncio.gather(*(self.get(key, prototype, byte_range)
                                           for key, byte_range in key_ranges)))

    async def _get_many(self, requests: Iterable[tuple[str, BufferPrototype,
                                                       ByteRequest | None]]
                        ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        for key, prototype, byte_range in requests:
            yield key, await self.get(key, prototype, byte_range)

    async def exists(self, key: str) -> bool:
        # through get, so that the answer is cached like every other
        return await self.get(key, default_buffer_prototype()) is not None
