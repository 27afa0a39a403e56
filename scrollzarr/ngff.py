"""OME-NGFF multiscales metadata: writing it for our stores and reading it back.

Writer side: :func:`multiscales` builds the ``multiscales`` block (NGFF 0.4 for zarr v2
stores, 0.5 for zarr v3). Reader side: :func:`open_volume` opens an OME-Zarr root or a
plain array, local or remote, and tells how scroll voxel coordinates map to array indices
at a level (found through ``datasets[].path``, never by position).

Conventions: arrays are (z, y, x); level ``l`` holds the volume downsampled ``2**l`` times
on every axis. A level whose voxels each stand for a whole ``2**l`` block (mean, gaussian,
max, mode) has its voxel centres at the block centres, shifted by ``(2**l - 1) / 2``
level-0 voxels; one built by picking the block's low corner (nearest) has not. A store cropped
with ``--ranges`` records its crop origin (in level-0 voxels) as a translation, so every
level keeps absolute scroll coordinates.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from . import __version__
from .errors import ScrollError
from .remote import RemoteOptions, open_store

AXES = ("z", "y", "x")

#: Downsampling algorithms whose level voxels stand for whole blocks (mean, gaussian: the
#: block's average; max, mode: its maximum, its most frequent value), so the centre shift
#: applies; nearest picks the block's low-corner voxel.
AVERAGING = {"mean": True, "gaussian": True, "nearest": False, "max": True, "mode": True}

#: Key of our own attributes (crop origin of a plain ``--zarr_only`` array, provenance).
OWN_KEY = "scrollzarr"


def level_transform(level: int, algorithm: str, origin: Sequence[float] = (0, 0, 0),
                    voxel_size: float | None = None) -> tuple[list[float], list[float]]:
    """Return ``(scale, translation)`` of ``level`` in (z, y, x), in micrometers when
    ``voxel_size`` (micrometers per level-0 voxel) is known, else in level-0 voxels.

    ``origin`` is the (z, y, x) position of level-0 voxel (0, 0, 0) in scroll voxels.
    """
    if voxel_size is not None and not (math.isfinite(voxel_size) and voxel_size > 0):
        raise ScrollError(f"--voxel_size {voxel_size}: must be a positive finite number "
                          "(micrometers)")
    factor = 2.0 ** level
    unit = 1.0 if voxel_size is None else float(voxel_size)
    shift = (factor - 1) / 2 if AVERAGING.get(algorithm, True) else 0.0
    scale = [factor * unit] * 3
    translation = [(float(o) + shift) * unit for o in origin]
    return scale, translation


def tidy(value: float) -> float:
    """``value`` rounded to 12 significant digits: transforms computed in binary floating
    point (``27.685000000000002``) are written as the decimal a person means (27.685)."""
    return float(f"{float(value):.12g}")


def multiscales(levels: Sequence[tuple[str, str]], origin: Sequence[float] = (0, 0, 0),
                voxel_size: float | None = None, name: str = "scroll",
                version: str = "0.4") -> dict[str, Any]:
    """Build one NGFF ``multiscales`` entry.

    ``levels`` lists ``(path, algorithm)`` for every level present, level 0 first; the
    algorithm decides each level's translation (levels added later with
    ``--first_new_level`` may use another algorithm than the first ones). ``metadata``
    names the downsampling function, our version and its arguments (NGFF's
    ``method``/``version``/``kwargs``); ``metadata.algorithms`` lists each level's.
    """
    axes = []
    for ax in AXES:
        entry: dict[str, Any] = {"name": ax, "type": "space"}
        if voxel_size is not None:
            entry["unit"] = "micrometer"
        axes.append(entry)
    datasets = []
    for path, algorithm in levels:
        scale, translation = level_transform(int(path), algorithm, origin, voxel_size)
        datasets.append({
            "path": path,
            "coordinateTransformations": [
                {"type": "scale", "scale": [tidy(v) for v in scale]},
                {"type": "translation", "translation": [tidy(v) for v in translation]},
            ],
        })
    algorithms = sorted({a for _, a in levels[1:]}) or ["none"]
    method = algorithms[0] if len(algorithms) == 1 else "mixed"
    entry = {
        "name": name,
        "axes": axes,
        "datasets": datasets,
        "type": method,
        "metadata": {
            "description": "each level from the one above, 2x2x2 blocks (scrollzarr)",
            "method": "scrollzarr.pyramid.downsample",
            "version": __version__,
            "args": [],
            "kwargs": {"algorithm": method, "factor": [2, 2, 2]},
            "algorithms": [a for _, a in levels],
        },
    }
    if version == "0.4":
        entry = {"version": "0.4", **entry}
    return entry


#: Percentiles of the non-zero voxels of a coarse level that bound the display window.
WINDOW_PERCENTILES = (0.5, 99.5)

#: At most about this many voxels of the coarse level are read for the window.
_WINDOW_SAMPLE = 2**27


def display_window(array: Any) -> tuple[float, float]:
    """``(start, end)`` of a grey display window in stored units: the
    :data:`WINDOW_PERCENTILES` of the non-zero voxels of ``array`` (a coarse level,
    (z, y, x); masked background is 0 and must not pull the window down). An array
    larger than about 2**27 voxels (a single-level store) is sampled by whole chunks on
    a regular grid, so only those chunks are read. An all-zero array gives the whole
    dtype range."""
    shape, chunks = tuple(array.shape), tuple(array.chunks)
    if int(np.prod(shape)) <= _WINDOW_SAMPLE:
        values = np.asarray(array[...]).ravel()
    else:
        grid = [-(-s // c) for s, c in zip(shape, chunks)]
        wanted = max(1, _WINDOW_SAMPLE // int(np.prod(chunks)))
        stride = max(1, round((int(np.prod(grid)) / wanted) ** (1 / 3)))
        parts = []
        for iz in range(stride // 2 % grid[0], grid[0], stride):
            for iy in range(stride // 2 % grid[1], grid[1], stride):
                for ix in range(stride // 2 % grid[2], grid[2], stride):
                    block = np.asarray(array[iz * chunks[0]:(iz + 1) * chunks[0],
                                             iy * chunks[1]:(iy + 1) * chunks[1],
                                             ix * chunks[2]:(ix + 1) * chunks[2]])
                    parts.append(block[block != 0])
        values = np.concatenate(parts) if parts else np.zeros(0, array.dtype)
    values = values[values != 0]
    info = np.iinfo(array.dtype) if np.dtype(array.dtype).kind in "ui" else None
    if values.size == 0:
        return (float(info.min), float(info.max)) if info else (0.0, 1.0)
    lo, hi = np.percentile(values, WINDOW_PERCENTILES)
    if hi <= lo:
        hi = lo + 1
    return tidy(lo), tidy(hi)


def omero(name: str, dtype: Any, window: tuple[float, float], default_z: int,
          version: str | None = "0.4") -> dict[str, Any]:
    """The ``omero`` block: one grey channel named ``name`` whose window ``start``/``end``
    (stored units, from :func:`display_window`) lies within ``min``/``max`` (the dtype's
    range), and ``rdefs`` (greyscale, ``defaultZ`` a level-0 z index) for napari and
    iohub. ``version`` None leaves it out (NGFF 0.5 versions the whole ``ome`` block)."""
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype) if dtype.kind in "ui" else np.finfo(dtype)
    block: dict[str, Any] = {
        "name": name,
        "channels": [{
            "label": name, "color": "FFFFFF", "active": True, "inverted": False,
            "coefficient": 1.0, "family": "linear",
            "window": {"min": float(info.min), "max": float(info.max),
                       "start": float(window[0]), "end": float(window[1])},
        }],
        "rdefs": {"model": "greyscale", "defaultT": 0, "defaultZ": int(default_z)},
    }
    if version is not None:
        block["version"] = version
    return block


def image_attributes(levels: Sequence[tuple[str, str]], origin: Sequence[float] = (0, 0, 0),
                     voxel_size: float | None = None, name: str = "scroll",
                     zarr_format: int = 2, omero: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
    """The NGFF part of an image group's attributes: ``{"multiscales": [...]}`` (NGFF
    0.4, zarr v2) or ``{"ome": {"version": "0.5", "multiscales": [...]}}`` (zarr v3),
    with the ``omero`` block (see :func:`omero`) when given."""
    extra = {} if omero is None else {"omero": omero}
    if zarr_format == 2:
        return {"multiscales": [multiscales(levels, origin, voxel_size, name, "0.4")],
                **extra}
    return {"ome": {"version": "0.5",
                    "multiscales": [multiscales(levels, origin, voxel_size, name, "0.5")],
                    **extra}}


@dataclass(frozen=True)
class Volume:
    """An opened level of a store: the array and how scroll coordinates map onto it.

    ``index = scroll_voxel * factor + offset`` per axis, (z, y, x) order, where
    ``scroll_voxel`` is in level-0 voxels of the original scroll (as in .ppm files).
    ``level`` is the dataset path of the opened level as the metadata writes it ("" for
    a plain array), ``location`` the store as given, ``notes`` one-line remarks for the
    user (declared levels found missing and skipped).
    """

    array: zarr.Array
    level: str
    factor: tuple[float, float, float]
    offset: tuple[float, float, float]
    location: str = ""
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        # messages that name "the store" may be handed a Volume: name its location
        return self.location or str(self.array.store_path)

    def to_index(self, zyx: np.ndarray) -> np.ndarray:
        """Map an ``(..., 3)`` array of (z, y, x) scroll voxel coordinates to array
        indices (float64) of this level."""
        return np.asarray(zyx, dtype=np.float64) * np.asarray(self.factor) + np.asarray(
            self.offset)


def multiscales_of(attrs: dict) -> list | None:
    """The ``multiscales`` list of a group's attributes (NGFF 0.4 or 0.5), or None."""
    if "ome" in attrs and isinstance(attrs["ome"], dict):
        return attrs["ome"].get("multiscales")
    return attrs.get("multiscales")


def transforms(dataset: dict) -> tuple[list[float], list[float]]:
    """``(scale, translation)`` (z, y, x) of one multiscales dataset entry (or of a
    multiscales entry's own ``coordinateTransformations``); identity when absent."""
    scale, trans = [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]
    for t in dataset.get("coordinateTransformations") or []:
        if t.get("type") == "scale":
            scale = [float(v) for v in t["scale"]][-3:]
        elif t.get("type") == "translation":
            trans = [float(v) for v in t["translation"]][-3:]
    return scale, trans


@dataclass(frozen=True)
class _Dataset:
    path: str
    scale: tuple[float, float, float]
    translation: tuple[float, float, float]


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
    ms = multiscales_of(attrs)
    if not ms or not isinstance(ms, list) or not isinstance(ms[0], dict):
        raise ScrollError(f"{name}: a zarr group without OME-NGFF multiscales metadata")
    notes: list[str] = []
    datasets = _datasets(ms[0], name, notes)
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
    unitless = not any(isinstance(a, dict) and a.get("unit")
                       for a in ms[0].get("axes") or [])
    unit = (1.0, 1.0, 1.0) if unitless else tuple(min(d.scale[a] for d in datasets)
                                                  for a in range(3))
    factor = tuple(u / s for u, s in zip(unit, dataset.scale))
    offset = tuple(-t / s for t, s in zip(dataset.translation, dataset.scale))
    return Volume(arr, dataset.path, factor, offset, name, tuple(notes))


def _datasets(image: dict, name: str, notes: list[str]) -> list[_Dataset]:
    """The usable ``datasets`` of one multiscales entry, composed with the entry's own
    transform; unusable ones (no path, bad transforms) are skipped with a note."""
    try:
        outer_scale, outer_trans = transforms(image)
    except (TypeError, ValueError, KeyError):
        outer_scale, outer_trans = [1.0] * 3, [0.0] * 3
        notes.append(f"note: {name}: unreadable multiscales transform ignored")
    found = []
    for i, entry in enumerate(image.get("datasets") or []):
        try:
            path = entry["path"]
            scale, trans = transforms(entry)
            if not isinstance(path, str) or len(scale) != 3 or len(trans) != 3 or not all(
                    math.isfinite(v) and v > 0 for v in scale):
                raise ValueError(path)
        except (TypeError, ValueError, KeyError, AttributeError):
            notes.append(f"note: {name}: dataset #{i} of the metadata is unusable, skipped")
            continue
        found.append(_Dataset(
            path.strip("/"),
            tuple(o * s for o, s in zip(outer_scale, scale)),
            tuple(o * t + ot for o, t, ot in zip(outer_scale, trans, outer_trans))))
    return found


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
