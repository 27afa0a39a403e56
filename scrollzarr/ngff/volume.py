"""Opening a level of a store for reading, local or remote, OME-Zarr or plain array.

:func:`open_volume` tells how scroll voxel coordinates map to array indices at a level,
found through the NGFF metadata (``datasets[].path`` and its transforms, read leniently
by :mod:`.formats`), never by position. Arrays are (z, y, x).

A local store's metadata documents are read straight from its files, and a level whose
array document has the plain form of :mod:`scrollzarr.chunk_layout` is not opened with
zarr at all until someone asks for :attr:`Volume.array` (the layer render reads such
chunk files itself, and importing zarr is a good part of its start-up). Every other
level, and every remote store, is opened with zarr here, as it always was.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np

from ..chunk_layout import Layout, plain_layout
from ..errors import ScrollError
from ..remote import RemoteOptions
from ..remote.location import local_path
from .formats import OWN_KEY, multiscales_of, read_image

if TYPE_CHECKING:
    import zarr
    from zarr.abc.store import Store


@dataclass(frozen=True, eq=False)
class Volume:
    """An opened level of a store: the array and how scroll coordinates map onto it.

    ``index = scroll_voxel * factor + offset`` per axis, (z, y, x) order, where
    ``scroll_voxel`` is in level-0 voxels of the original scroll (as in .ppm files).
    ``level`` is the dataset path of the opened level as the metadata writes it ("" for
    a plain array), ``location`` the store as given, ``notes`` one-line remarks for the
    user (declared levels found missing and skipped). ``scale`` is the level's (z, y, x)
    scale as the metadata declares it and ``units`` the axes' units (None where an axis
    has none); None and () for a plain array.

    The array: ``shape`` and ``chunks`` (z, y, x, voxels) and ``dtype`` as its metadata
    declares them; ``chunk_file`` the path of a chunk's file from its (z, y, x) chunk
    index where the chunks can be read raw from local files (else None);
    ``store_path`` names the array as zarr does (``file:///.../scroll.zarr/0``);
    :attr:`array` is the zarr array, opened at the first access if it was not yet.
    """

    opener: Callable[[], zarr.Array] = field(repr=False)
    level: str
    factor: tuple[float, float, float]
    offset: tuple[float, float, float]
    location: str = ""
    notes: tuple[str, ...] = ()
    scale: tuple[float, float, float] | None = None
    units: tuple[str | None, ...] = ()
    shape: tuple[int, int, int] = (0, 0, 0)
    chunks: tuple[int, int, int] = (1, 1, 1)
    dtype: np.dtype = np.dtype("u1")
    chunk_file: Callable[[tuple[int, int, int]], str] | None = field(default=None,
                                                                      repr=False)
    store_path: str = ""
    _opened: list = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def array(self) -> zarr.Array:
        """The level as a zarr array: opened once, the same object at every access."""
        with self._lock:
            if not self._opened:
                self._opened.append(self.opener())
            return self._opened[0]

    def __str__(self) -> str:
        # messages that name "the store" may be handed a Volume: name its location
        return self.location or self.store_path

    def to_index(self, zyx: np.ndarray) -> np.ndarray:
        """Map an ``(..., 3)`` array of (z, y, x) scroll voxel coordinates to array
        indices (float64) of this level."""
        return np.asarray(zyx, dtype=np.float64) * np.asarray(self.factor) + np.asarray(
            self.offset)


def open_volume(location: str | os.PathLike, level: str | int | None = None,
                options: RemoteOptions | None = None) -> Volume:
    """Open the store at ``location`` (a path, ``http(s)://`` or ``s3://`` URL; see
    :func:`scrollzarr.remote.open_store` for ``options``) and return one level.

    An OME-Zarr root (zarr v2/NGFF 0.4 or v3/NGFF 0.5): ``level`` is a dataset path as
    the metadata writes it (an int means its decimal text), default the dataset with the
    smallest scale. Levels are found only through ``datasets[].path`` and mapped through
    their scale and translation (plus the multiscales-wide transform, if any); scales are
    in scroll voxels when the axes have no unit, else the smallest declared scale is one
    scroll voxel. Parsing is lenient: a declared level whose array is missing is skipped
    (a note in :attr:`Volume.notes`) when ``level`` was not asked for. A plain 3-D array:
    ``level`` must be None or 0.

    Raises :class:`ScrollError` naming the store (and level) when it is none of these,
    the asked level is not there, or a codec cannot be decoded.
    """
    name = str(location)
    if isinstance(level, int) and not isinstance(level, bool):
        level = str(level)
    store = _Source(location, options)
    zarr_format, kind, attrs = _root(store, name)
    if kind == "array":
        if level not in (None, "0"):
            raise ScrollError(f"{name}: --level {level} needs an OME-Zarr root, "
                              "this is a single array")
        arr = _open_array(store, name, zarr_format, "")
        origin = (attrs.get(OWN_KEY) or {}).get("origin_zyx", [0, 0, 0])
        return Volume(level="", factor=(1.0, 1.0, 1.0),
                      offset=tuple(-float(o) for o in origin), location=name,
                      **arr._asdict())
    image = read_image(attrs, name)
    if image is None:
        raise ScrollError(f"{name}: a zarr group without OME-NGFF multiscales metadata")
    notes = list(image.notes)
    datasets = image.usable
    if not datasets:
        raise ScrollError(f"{name}: the multiscales metadata declares no usable dataset")
    paths = ", ".join(repr(d.path) for d in datasets)
    if level is None:
        candidates = sorted(datasets, key=lambda d: math.prod(d.scale))
    else:
        candidates = [d for d in datasets if d.path == level.strip("/")]
        if not candidates:
            raise ScrollError(f"{name}: --level {level} is not a dataset of this store "
                              f"(datasets: {paths})")
    for dataset in candidates:
        arr = _open_array(store, name, zarr_format, dataset.path)
        if arr is not None:
            break
        if level is not None:
            raise ScrollError(f"{name}: --level {level} is declared but its array is "
                              f"missing (datasets: {paths})")
        notes.append(f"note: {name}: declared level {dataset.path!r} is missing, skipped")
    else:
        raise ScrollError(f"{name}: none of the declared levels ({paths}) is present")
    # one scroll voxel in the metadata's unit: 1 without units, else the finest scale
    unitless = not any(image.units)
    unit = (1.0, 1.0, 1.0) if unitless else tuple(min(d.scale[a] for d in datasets)
                                                  for a in range(3))
    factor = tuple(u / s for u, s in zip(unit, dataset.scale))
    offset = tuple(-t / s for t, s in zip(dataset.translation, dataset.scale))
    return Volume(level=dataset.path, factor=factor, offset=offset, location=name,
                  notes=tuple(notes), scale=tuple(dataset.scale),
                  units=tuple(image.units[-3:]), **arr._asdict())


class _Source:
    """Where :func:`open_volume` reads: a local directory's files directly (its zarr
    store made only when an array needs zarr), else the remote zarr store."""

    def __init__(self, location: str | os.PathLike, options: RemoteOptions | None):
        self.location, self.options = location, options
        self.root = local_path(location)  # None for a URL
        self._store = None
        if self.root is None:
            self.store()  # a URL's own checks, before anything is fetched

    def store(self) -> Store:
        """The zarr store (:func:`scrollzarr.remote.open_store`), made once."""
        if self._store is None:
            from ..remote import open_store

            self._store = open_store(self.location, self.options)
        return self._store

    def get(self, key: str) -> bytes | None:
        """The bytes of ``key``, or None when it does not exist (as zarr's stores say)."""
        if self.root is not None:
            try:
                return (self.root / key).read_bytes()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None  # what zarr's LocalStore answers for these
        from zarr.core.buffer import default_buffer_prototype
        from zarr.core.sync import sync

        buf = sync(self.store().get(key, default_buffer_prototype()))
        return None if buf is None else buf.to_bytes()


class _Array(NamedTuple):
    """The array fields of a :class:`Volume`."""

    opener: Callable[[], zarr.Array]
    shape: tuple[int, int, int]
    chunks: tuple[int, int, int]
    dtype: np.dtype
    chunk_file: Callable[[tuple[int, int, int]], str] | None
    store_path: str


def _json(store: _Source, name: str, key: str) -> dict | None:
    """The JSON document ``key`` of ``store``, or None when it does not exist."""
    data = store.get(key)
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        raise ScrollError(f"{name}: {key} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise ScrollError(f"{name}: {key} is not a JSON object")
    return doc


def _root(store, name: str) -> tuple[int, str, dict]:
    """``(zarr_format, "array" | "group", attributes)`` of the store's root, read
    directly (a published v2 store may lack its ``.zgroup``)."""
    doc = _json(store, name, "zarr.json")
    if doc is not None:
        return 3, doc.get("node_type", "group"), doc.get("attributes") or {}
    attrs = _json(store, name, ".zattrs")
    if attrs is not None and multiscales_of(attrs):
        return 2, "group", attrs
    if _json(store, name, ".zarray") is not None:
        return 2, "array", attrs or {}
    if attrs is not None or _json(store, name, ".zgroup") is not None:
        return 2, "group", attrs or {}
    raise ScrollError(f"{name}: not a zarr store (no zarr.json, .zarray, .zgroup or "
                      ".zattrs)")


def _open_array(store: _Source, name: str, zarr_format: int, path: str) -> _Array | None:
    """The 3-D array at ``path`` of ``store``, or None when its metadata is absent: not
    opened yet when it has the plain form :func:`_plain` recognises, else opened with
    zarr now (its errors raised as :class:`ScrollError` naming the level)."""
    where = f"{name}: level {path!r}" if path else name
    key = f"{path}/" if path else ""
    meta = _json(store, name, key + ("zarr.json" if zarr_format == 3 else ".zarray"))
    if meta is None:
        return None
    layout = _plain(store, meta, zarr_format, path)
    if layout is not None:
        root = f"file://{store.root.as_posix()}".rstrip("/")
        return _Array(lambda: _zarr_array(store, where, zarr_format, path, meta),
                      layout.shape, layout.chunks, layout.dtype, layout.chunk_file,
                      f"{root}/{path}".rstrip("/"))  # how zarr's StorePath prints
    from ..chunk_layout import zarr_chunk_files

    arr = _zarr_array(store, where, zarr_format, path, meta)
    return _Array(lambda: arr, tuple(int(n) for n in arr.shape),
                  tuple(int(c) for c in arr.chunks), np.dtype(arr.dtype),
                  zarr_chunk_files(arr), str(arr.store_path))


def _plain(store: _Source, meta: dict, zarr_format: int, path: str) -> Layout | None:
    """The :class:`~scrollzarr.chunk_layout.Layout` of a local array whose documents
    zarr would surely open as they are (see :mod:`scrollzarr.chunk_layout`); else None."""
    segments = path.split("/") if path else []
    if store.root is None or any(s in ("", ".", "..") or "\\" in s for s in segments):
        return None  # remote, or a path zarr would rewrite or refuse
    if zarr_format == 2 and path:
        # zarr reads the level's .zattrs too: a broken one must fail there, as before
        try:
            _json(store, "", f"{path}/.zattrs")
        except ScrollError:
            return None
    return plain_layout(meta, zarr_format, os.path.join(store.root, *segments))


def _zarr_array(store: _Source, where: str, zarr_format: int, path: str,
                meta: dict) -> zarr.Array:
    """The array at ``path`` opened with zarr; :class:`ScrollError` naming ``where``
    for an unknown codec, metadata zarr refuses, or an array that is not 3-D."""
    import zarr

    unknown = _unknown_codecs(meta, zarr_format)
    if unknown:
        raise ScrollError(f"{where}: codec {unknown!r} cannot be decoded by this zarr "
                          f"{zarr.__version__} / numcodecs installation")
    try:
        arr = zarr.open_array(store=store.store(), path=path, mode="r",
                              zarr_format=zarr_format)
    except ScrollError:
        raise
    except Exception as exc:  # zarr's errors for broken metadata vary
        first = (str(exc).splitlines() or [""])[0]
        raise ScrollError(f"{where}: cannot open the array ({type(exc).__name__}: "
                          f"{first})") from None
    if arr.ndim != 3:
        raise ScrollError(f"{where}: expected a 3-D (z, y, x) array, got {arr.ndim}-D")
    return arr


def _unknown_codecs(meta: dict, zarr_format: int) -> str | None:
    """The name of the first codec of an array's metadata that cannot be instantiated."""
    if zarr_format == 2:
        for config in [meta.get("compressor"), *(meta.get("filters") or [])]:
            if isinstance(config, dict):
                import numcodecs

                try:
                    numcodecs.get_codec(dict(config))
                except Exception:  # noqa: BLE001 - unknown id or unusable parameters
                    return str(config.get("id"))
        return None
    from zarr.registry import get_codec_class

    todo = list(meta.get("codecs") or [])
    while todo:
        codec = todo.pop()
        if isinstance(codec, str):
            codec = {"name": codec}
        if not isinstance(codec, dict):
            continue
        try:
            get_codec_class(str(codec.get("name")))
        except Exception:  # noqa: BLE001 - KeyError for an unregistered name
            return str(codec.get("name"))
        config = codec.get("configuration") or {}
        todo += list(config.get("codecs") or []) + list(config.get("index_codecs") or [])
    return None
