"""Checks of a layer render against its inputs (issue 12's rule for ppm_to_layers).

* :func:`surface_inputs` / :func:`store_input`: the inputs (the surface's files, its mask,
  the store) that :func:`scrollzarr.safety.check_output_paths` keeps every output out of.
* :func:`precheck_surface` / :func:`check_inside` with :class:`Extent`: fewer than half of
  the mapped surface points inside the level's extent (in scroll voxels, its translation
  applied) is an error naming the segment's and the volume's bounding boxes in x, y, z;
  checked on sampled rows before anything is written and exactly after the render.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ScrollError
from .ngff import Volume
from .ppm import mask_path

#: Surface rows read by the check made before rendering; the exact check follows the
#: render.
PRECHECK_ROWS = 64


def resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def surface_inputs(surface: Any, given: str | Path | None) -> dict[str, Path]:
    """The files a surface reads: the given path (and its mask), and for an opened
    surface its ``inputs`` (every file it reads, as the surface readers list them: a
    tifxyz surface names its x/y/z/mask files, not its directory, so layers may go into
    a folder inside it), else its ``path`` and ``mask_path`` attributes."""
    found: dict[str, Path] = {}
    if given is not None:
        found["surface"] = Path(given)
        mask = mask_path(given)
        if mask.exists():
            found["mask"] = mask
    listed = getattr(surface, "inputs", None)
    if listed:
        for value in listed:
            found[f"surface input {Path(value).name}"] = Path(value)
        return found
    for attr in ("path", "mask_path"):
        value = getattr(surface, attr, None)
        if value is not None:
            found[f"surface {attr}"] = Path(value)
    return found


def store_input(store: str | Path | Volume) -> Path | None:
    """The local directory of the volume's store, if it has one: the path given, or for
    an opened Volume its ``location`` (where the reader records it) or its local store's
    root."""
    if isinstance(store, Volume):
        where = getattr(store, "location", "") or getattr(store.array.store, "root", None)
        if not where:
            return None
        store = where
    return None if "://" in str(store) else Path(store)


def _volume_box(volume: Volume) -> str:
    """The level's extent in scroll voxels (voxel centres), x, y, z."""
    shape = volume.shape
    parts = []
    for axis, name in ((2, "x"), (1, "y"), (0, "z")):
        a = (0 - volume.offset[axis]) / volume.factor[axis]
        b = (shape[axis] - 1 - volume.offset[axis]) / volume.factor[axis]
        parts.append(f"{name} {min(a, b):.6g}..{max(a, b):.6g}")
    return ", ".join(parts)


def _level_name(volume: Volume) -> str:
    return "" if volume.level in ("", None) else f"level {volume.level} "


def _segment_box(low: np.ndarray, high: np.ndarray) -> str:
    if not np.all(np.isfinite(low)):
        return "no mapped pixel"
    return ", ".join(f"{n} {lo:.6g}..{hi:.6g}" for n, lo, hi in zip("xyz", low, high))


class Extent:
    """Running count of mapped surface points in the volume and their bounding box
    (scroll x, y, z)."""

    def __init__(self) -> None:
        self.mapped = self.inside = 0
        self.low = np.full(3, np.inf)
        self.high = np.full(3, -np.inf)

    def add(self, points: np.ndarray, base: np.ndarray, shape) -> None:
        """``points`` (P, >=3) scroll x, y, z of mapped pixels; ``base`` (P, 3) their
        array indices z, y, x."""
        if points.shape[0] == 0:
            return
        last = np.asarray(shape, dtype=np.float64) - 1
        self.mapped += points.shape[0]
        self.inside += int(np.all((base >= 0) & (base <= last), axis=1).sum())
        self.low = np.minimum(self.low, points[:, :3].min(axis=0))
        self.high = np.maximum(self.high, points[:, :3].max(axis=0))

    def merge(self, other: "Extent") -> None:
        self.mapped += other.mapped
        self.inside += other.inside
        self.low = np.minimum(self.low, other.low)
        self.high = np.maximum(self.high, other.high)


def outside_error(what: str, extent: Extent, volume: Volume, store: str) -> ScrollError:
    return ScrollError(
        f"{store}: {what} (segment {_segment_box(extent.low, extent.high)}; volume "
        f"{_level_name(volume)}{_volume_box(volume)}, scroll voxels): wrong store, crop "
        "or level? --allow_outside renders anyway")


def check_inside(extent: Extent, volume: Volume, store: str, sampled: bool) -> None:
    if extent.mapped and extent.inside * 2 < extent.mapped:
        share = 100.0 * extent.inside / extent.mapped
        rows = " (sampled rows)" if sampled else ""
        raise outside_error(f"only {share:.3g}% of the segment's surface{rows} lies in "
                             "the volume", extent, volume, store)


def precheck_surface(surface: Any, volume: Volume, store: str) -> None:
    """Before anything is written: read up to :data:`PRECHECK_ROWS` evenly spaced rows of
    the surface and fail (see :func:`check_inside`) when fewer than half of their mapped
    points lie in the volume."""
    extent = Extent()
    rows = np.unique(np.linspace(0, surface.height - 1,
                                 min(PRECHECK_ROWS, surface.height)).round().astype(int))
    shape = volume.shape
    for r in rows:
        data, mapped = surface.read_tile(int(r), int(r) + 1, 0, surface.width)
        points = data.reshape(-1, data.shape[-1])[mapped.reshape(-1)]
        extent.add(points, volume.to_index(points[:, 2::-1]), shape)
    check_inside(extent, volume, store, sampled=True)
