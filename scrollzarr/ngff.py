"""OME-NGFF multiscales metadata: writing it for our stores and reading it back.

Writer side: :func:`multiscales` builds the ``multiscales`` block (NGFF 0.4 for zarr v2
stores, 0.5 for zarr v3). Reader side: :func:`open_volume` opens an OME-Zarr root or a
plain array and tells how scroll voxel coordinates map to array indices at a level.

Conventions: arrays are (z, y, x); level ``l`` holds the volume downsampled ``2**l`` times
on every axis. A level whose voxels each stand for a whole ``2**l`` block (mean, gaussian,
max, mode) has its voxel centres at the block centres, shifted by ``(2**l - 1) / 2``
level-0 voxels; one built by picking the block's low corner (nearest) has not. A store cropped
with ``--ranges`` records its crop origin (in level-0 voxels) as a translation, so every
level keeps absolute scroll coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import zarr

from . import __version__
from .errors import ScrollError

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
    """

    array: zarr.Array
    level: int
    factor: tuple[float, float, float]
    offset: tuple[float, float, float]

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


def open_volume(store: str, level: int | None = None) -> Volume:
    """Open ``store`` for reading and return the requested level.

    ``store`` is an OME-Zarr root (v2/NGFF 0.4 or v3/NGFF 0.5; ``level`` defaults to 0)
    or a plain 3-D zarr array (``level`` must be None or 0). Raises :class:`ScrollError`
    naming the store when it is neither.
    """
    try:
        node = zarr.open(store, mode="r")
    except Exception as exc:  # zarr raises several types for "nothing here"
        raise ScrollError(f"{store}: not a zarr store ({exc})") from None
    if isinstance(node, zarr.Array):
        if level not in (None, 0):
            raise ScrollError(f"{store}: --level {level} needs an OME-Zarr root, "
                              "this is a single array")
        if node.ndim != 3:
            raise ScrollError(f"{store}: expected a 3-D (z, y, x) array, got {node.ndim}-D")
        origin = node.attrs.get(OWN_KEY, {}).get("origin_zyx", [0, 0, 0])
        return Volume(node, 0, (1.0, 1.0, 1.0), tuple(-float(o) for o in origin))
    ms = multiscales_of(dict(node.attrs))
    if not ms:
        raise ScrollError(f"{store}: a zarr group without OME-NGFF multiscales metadata")
    datasets = ms[0]["datasets"]
    lev = 0 if level is None else level
    if not 0 <= lev < len(datasets):
        raise ScrollError(f"{store}: --level {lev} not present (levels 0..{len(datasets) - 1})")
    scale0, trans0 = transforms(datasets[0])
    scale, trans = transforms(datasets[lev])
    arr = node[datasets[lev]["path"]]
    # level-0 voxels are the unit of scroll coordinates: physical = voxel * scale0
    factor = tuple(s0 / s for s0, s in zip(scale0, scale))
    offset = tuple(-t / s for t, s in zip(trans, scale))
    return Volume(arr, lev, factor, offset)


def transforms(dataset: dict) -> tuple[list[float], list[float]]:
    """``(scale, translation)`` (z, y, x) of one multiscales dataset entry."""
    scale, trans = [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]
    for t in dataset.get("coordinateTransformations", []):
        if t.get("type") == "scale":
            scale = [float(v) for v in t["scale"]][-3:]
        elif t.get("type") == "translation":
            trans = [float(v) for v in t["translation"]][-3:]
    return scale, trans
