"""Opening a level of a store for reading, local or remote, OME-Zarr or plain array.

:func:`open_volume` tells how scroll voxel coordinates map to array indices at a level,
found through the NGFF metadata (``datasets[].path`` and its transforms, read leniently
by :mod:`.formats`), never by position. Arrays are (z, y, x).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from ..errors import ScrollError
from ..remote import RemoteOptions, open_store
from .formats import OWN_KEY, multiscales_of, read_image


@dataclass(frozen=True)
class Volume:
    """An opened level of a store: the array and how scroll coordinates map onto it.

    ``index = scroll_voxel * factor + offset`` per axis, (z, y, x) order, where
    ``scroll_voxel`` is in level-0 voxels of the original scroll (as in .ppm files).
    ``level`` is the dataset path of the opened level as the metadata writes it ("" for
    a plain array), ``location`` the store as given, ``notes`` one-line remarks for the
    user (declared levels found missing and skipped). ``scale`` is the level's (z, y, x)
    scale as the metadata declares it and ``units`` the axes' units (None where an axis
    has none); None and () for a plain array.
    """

    array: zarr.Array
    level: str
    factor: tuple[float, float, float]
    offset: tuple[float, float, float]
    location: str = ""
    notes: tuple[str, ...] = ()
    scale: tuple[float, float, float] | None = None
    units: tuple[str | None, ...] = ()

    def __str__(self) -> str:
        # messages that name "the store" may be handed a Volume: name its location
        return self.location or str(self.array.store_path)

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
    store = open_store(location, options)
    zarr_format, kind, attrs = _root(store, name)
    if kind == "array":
        if level not in (None, "0"):
            raise ScrollError(f"{name}: --level {level} needs an OME-Zarr root, "
                              "this is a single array")
        arr = _open_array(store, name, zarr_format, "")
        origin = (attrs.get(OWN_KEY) or {}).get("origin_zyx", [0, 0, 0])
        return Volume(arr, "", (1.0, 1.0, 1.0), tuple(-float(o) for o in origin), name)
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
    return Volume(arr, dataset.path, factor, offset, name, tuple(notes),
                  tuple(dataset.scale), tuple(image.units[-3:]))


def _json(store, name: str, key: str) -> dict | None:
    """The JSON document ``key`` of ``store``, or None when it does not exist."""
    buf = sync(store.get(key, default_buffer_prototype()))
    if buf is None:
        return None
    try:
        doc = json.loads(buf.to_bytes())
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


def _open_array(store, name: str, zarr_format: int, path: str) -> zarr.Array | None:
    """The 3-D array at ``path`` of ``store``, or None when its metadata is absent."""
    where = f"{name}: level {path!r}" if path else name
    key = f"{path}/" if path else ""
    meta = _json(store, name, key + ("zarr.json" if zarr_format == 3 else ".zarray"))
    if meta is None:
        return None
    unknown = _unknown_codecs(meta, zarr_format)
    if unknown:
        raise ScrollError(f"{where}: codec {unknown!r} cannot be decoded by this zarr "
                          f"{zarr.__version__} / numcodecs installation")
    try:
        arr = zarr.open_array(store=store, path=path, mode="r", zarr_format=zarr_format)
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
        import numcodecs

        for config in [meta.get("compressor"), *(meta.get("filters") or [])]:
            if isinstance(config, dict):
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
