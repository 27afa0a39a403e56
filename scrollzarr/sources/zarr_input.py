"""A zarr array or one level of an OME-Zarr store as the input of a conversion.

:class:`ZarrSource` implements :class:`~scrollzarr.sources.base.Source` over a store that
lives anywhere :func:`scrollzarr.remote.open_store` reaches (a local path, ``http(s)://``,
``s3://``; the same credentials, endpoint and disk-cache rules as the renderer), zarr v2
or v3 (sharded or not), any codec zarr decodes. The level is picked through the store's
NGFF metadata (:func:`scrollzarr.ngff.open_volume`: ``datasets[].path``, never "0".."n").

Coordinates: the level's own voxels, (z, y, x). ``origin`` is the level's translation
divided by its scale (voxels of that level), ``voxel_size`` its scale when the axes carry
a length unit (micrometers; other length units are converted), else None.

Reading: chunks are decoded through :class:`~.chunk_rows.RowCache` (each chunk once per
process within its byte bound); ``bytes_read`` counts the stored bytes of chunks fetched
by this process (local disk, disk cache or network), so a run can state bytes read per
input byte. Pickling keeps the location and options only; each process opens the store
again on its first read.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import WrapperStore

from .. import ngff
from ..errors import ScrollError
from ..remote import RemoteOptions, is_remote
from ..remote.cached import METADATA_NAMES, CachedStore
from .base import Span
from .chunk_rows import RowCache

#: Decoded chunk rows kept per process when the caller gives no bound (bytes).
DEFAULT_CACHE_BYTES = 1 << 30

#: Micrometers per NGFF length unit.
MICROMETERS = {"angstrom": 1e-4, "nanometer": 1e-3, "micrometer": 1.0, "millimeter": 1e3,
               "centimeter": 1e4, "meter": 1e6}


class _Counter:
    """Bytes handed out by a store (thread-safe)."""

    def __init__(self) -> None:
        self.bytes = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.bytes += n


class CountingStore(WrapperStore[Store]):
    """A read-only store that counts the bytes of chunk (and shard) objects read through
    it into ``counter``; metadata documents are not counted."""

    def __init__(self, store: Store, counter: _Counter):
        super().__init__(store)
        self.counter = counter

    def _with_store(self, store: Store) -> "CountingStore":
        return type(self)(store, self.counter)

    def _count(self, key: str, value: Buffer | None) -> Buffer | None:
        if value is not None and key.rsplit("/", 1)[-1] not in METADATA_NAMES:
            self.counter.add(len(value))
        return value

    async def get(self, key: str, prototype: BufferPrototype,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        return self._count(key, await self._store.get(key, prototype, byte_range))

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        values = await self._store.get_partial_values(prototype, key_ranges)
        return [self._count(key, v) for (key, _), v in zip(key_ranges, values)]


class ZarrSource:
    """The level ``level`` (a dataset path; None: the finest) of the OME-Zarr store, or
    the plain 3-D array, at ``location`` (path or URL; ``options``: credentials and disk
    cache of remote stores). ``cache_bytes`` bounds the decoded chunks kept per process.

    Opening checks the store at once (one line naming the store, level or codec at
    fault). ``notes`` holds one-line remarks for the user (declared levels that are
    missing, a voxel size that cannot be carried over).
    """

    def __init__(self, location: str | os.PathLike, level: str | int | None = None,
                 options: RemoteOptions | None = None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES):
        text = str(location)
        self._location = text.rstrip("/") if is_remote(text) else os.path.abspath(text)
        self._options = options or RemoteOptions()
        self._cache_bytes = int(cache_bytes)
        volume = ngff.open_volume(self._location, level, self._options)
        array = volume.array
        dtype = np.dtype(array.dtype)
        if dtype.kind not in "uif":
            raise ScrollError(f"{self._where(volume.level)}: dtype {dtype} is not a number "
                              "type (integers and floats convert)")
        self._level = volume.level
        self._shape = tuple(int(n) for n in array.shape)
        self._dtype = dtype.newbyteorder("=")
        self._chunks = tuple(int(c) for c in array.chunks)
        self._zarr_format = int(array.metadata.zarr_format)
        self._origin = tuple(ngff.tidy(-o) + 0.0 for o in volume.offset)
        # the level's scale and units as open_volume read them (no second metadata read)
        self._voxel_size, voxel_note = _voxel_size(
            list(volume.scale) if volume.scale else None, list(volume.units),
            self._where(self._level))
        self.notes: tuple[str, ...] = tuple(volume.notes) + voxel_note
        self._fingerprint: str | None = None
        self._reader: tuple[RowCache, _Counter] | None = (
            self._reader_of(array))
        self._open_lock = threading.Lock()

    # -- the Source interface ----------------------------------------------------------

    @property
    def location(self) -> str:
        return self._location

    @property
    def level(self) -> str:
        """The dataset path of the level read ("" for a plain array)."""
        return self._level

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def origin(self) -> tuple[float, float, float]:
        return self._origin  # type: ignore[return-value]

    @property
    def voxel_size(self) -> float | None:
        return self._voxel_size

    @property
    def cache_bytes(self) -> int:
        """Bound of the decoded chunk rows kept per process (bytes); a conversion sets
        it to its share of the memory budget."""
        return self._cache_bytes

    @cache_bytes.setter
    def cache_bytes(self, value: int) -> None:
        self._cache_bytes = max(0, int(value))
        if self._reader is not None:
            self._reader[0].set_max_bytes(self._cache_bytes)

    @property
    def chunks(self) -> tuple[int, int, int]:
        """The (z, y, x) edge of the input's chunks (inner chunks of a sharded array)."""
        return self._chunks  # type: ignore[return-value]

    def filled(self) -> Span:
        return (0, self._shape[0])  # absent chunks are found while reading, not listed

    def fingerprint(self) -> str:
        """A hash of the location, the level and its metadata documents (the level's
        array document and the root's attributes), plus, for a remote store, the server's
        ETag / Last-Modified of the level's document. Reads no chunk."""
        if self._fingerprint is None:
            store = self._open()[0].array.store
            h = hashlib.sha256()
            h.update(f"{self._location}\n{self._level}\n".encode())
            for key in (_array_document(self._level, self._zarr_format),
                        ".zattrs" if self._zarr_format == 2 else "zarr.json"):
                h.update(_document(store, key) or b"-")
                h.update(b"\n")
            base = getattr(store, "_store", None)
            if isinstance(base, CachedStore):
                key = _array_document(self._level, self._zarr_format)
                h.update(sync(base.version(key)).encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def describe(self) -> str:
        nz, ny, nx = self._shape
        where = f"level {self._level!r} of " if self._level else ""
        chunks = "x".join(str(c) for c in self._chunks)
        return (f"{where}{self._location}: {nz}x{ny}x{nx} (z, y, x) {self._dtype} zarr "
                f"v{self._zarr_format}, chunks {chunks}")

    def read(self, z: Span, y: Span, x: Span, out: np.ndarray) -> np.ndarray:
        """Voxels ``[z0:z1, y0:y1, x0:x1]`` into ``out``. Absent chunks read as the
        array's fill value (0 in every store we know); a chunk that cannot be read or
        decoded raises :class:`ScrollError` naming its key."""
        return self._open()[0].read(z, y, x, out)

    # -- reading -------------------------------------------------------------------------

    @property
    def bytes_read(self) -> int:
        """Stored bytes of chunks (or shard parts) this process read so far."""
        return 0 if self._reader is None else self._reader[1].bytes

    def _open(self) -> tuple[RowCache, _Counter]:
        if self._reader is None:
            with self._open_lock:
                if self._reader is None:
                    volume = ngff.open_volume(self._location, self._level or None,
                                              self._options)
                    if tuple(volume.array.shape) != self._shape:
                        raise ScrollError(f"{self._where(self._level)}: the array changed "
                                          f"shape since the conversion started")
                    self._reader = self._reader_of(volume.array)
        return self._reader

    def _reader_of(self, array: zarr.Array) -> tuple[RowCache, _Counter]:
        """A row cache over ``array`` reopened on a counting wrapper of its store."""
        counter = _Counter()
        counted = zarr.open_array(store=CountingStore(array.store, counter),
                                  path=array.path, mode="r", zarr_format=self._zarr_format)
        return RowCache(counted, self._cache_bytes, self._chunk_error), counter

    def _chunk_error(self, exc: Exception, index: tuple[int, int, int]) -> Exception:
        if isinstance(exc, ScrollError):  # a remote read already names URL and key
            return exc
        array = self._open()[0].array
        shards = array.shards or array.chunks
        key = array.metadata.encode_chunk_key(
            tuple(i * c // s for i, c, s in zip(index, array.chunks, shards)))
        path = f"{self._level}/{key}" if self._level else key
        first = (str(exc).splitlines() or [""])[0]
        return ScrollError(f"{self._location}: chunk {path} cannot be read "
                           f"({type(exc).__name__}: {first})")

    def _where(self, level: str) -> str:
        return f"{self._location}: level {level!r}" if level else self._location

    # -- pickling: location and options, opened again where it is used -------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_reader"] = None
        state["_open_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ZarrSource({self._location!r}, level={self._level!r})"


def _array_document(level: str, zarr_format: int) -> str:
    name = "zarr.json" if zarr_format == 3 else ".zarray"
    return f"{level}/{name}" if level else name


def _document(store: Store, key: str) -> bytes | None:
    buf = sync(store.get(key, default_buffer_prototype()))
    return None if buf is None else buf.to_bytes()


def _voxel_size(scale: list[float] | None, units: list | None,
                where: str) -> tuple[float | None, tuple[str, ...]]:
    """The level's voxel edge in micrometers (None when the axes carry no length unit)
    and a note when it cannot be carried over (anisotropic voxels, unknown units)."""
    if scale is None or not units or not any(units):
        return None, ()
    if len(set(units)) != 1 or units[0] not in MICROMETERS:
        return None, (f"note: {where}: axis units {units} not carried over; give "
                      "--voxel_size",)
    sizes = [s * MICROMETERS[units[0]] for s in scale]
    if not all(math.isclose(s, sizes[0], rel_tol=1e-9) for s in sizes):
        return None, (f"note: {where}: voxels are not cubic ({sizes} micrometers, z, y, x); "
                      "voxel size not carried over; give --voxel_size",)
    return ngff.tidy(sizes[0]), ()
