"""tifxyz surfaces (VC3D, the current volume-cartographer): reading, rendering per tile,
writing.

A tifxyz surface is a directory holding ``x.tif``, ``y.tif``, ``z.tif`` (one 2-D
single-sample image each, H rows x W columns, float32/64 or 8-32-bit integers) and
``meta.json`` with ``"format": "tifxyz"`` and ``"scale": [sx, sy]`` (grid cells per
level-0 voxel, typically 0.05: one vertex every 20 voxels). Vertex (row j, column i) is
the point ``(X, Y, Z)`` in level-0 voxels; it is invalid when it is ``(-1, -1, -1)`` or
``Z <= 0`` (VC3D's loader rule). An optional ``mask.tif`` (channel 0, ``>= 255`` = keep)
of the grid's size or an integer multiple of it invalidates every vertex one of whose
mask pixels says otherwise.

Rendering (one render pixel per voxel): the render has ``floor(H / sy)`` rows and
``floor(W / sx)`` columns; pixel ``(r, c)`` sits at grid coordinate ``(r * sy, c * sx)``
and its position is the bilinear interpolation of the surrounding vertices. The pixel is
unmapped when a vertex with a non-zero weight is invalid (a pixel exactly on a vertex or
a grid line needs only the vertices it lies on, so valid regions end on their last
vertices symmetrically on every side) or when it lies past the last grid row or column.
Its normal is ``normalize(dP/dc x dP/dr)`` from central differences of the interpolated
surface one render pixel apart, one-sided where a neighbour is unmapped or outside the
render; a pixel with no mapped neighbour along an axis, or a zero cross product, has no
normal and is unmapped. For a standard segment the normal points out of the scroll.

Only the grid is held in memory (H x W x 3, a few hundred MB for the largest segments at
0.05); tiles are computed on demand, so memory does not grow with the render's size.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import tifffile

from ..errors import ScrollError
from .base import ReadWhole

COORDINATE_FILES = ("x.tif", "y.tif", "z.tif")
META_FILE = "meta.json"
MASK_FILE = "mask.tif"
#: Grid coordinates this close to an integer are that integer: ``c * 0.05`` must land
#: exactly on the vertex every 20 pixels despite 0.05 having no exact binary form.
SNAP = 1e-9
_ACCEPTED = {np.dtype(t) for t in ("f4", "f8", "i1", "i2", "i4", "u1", "u2", "u4")}


def is_tifxyz(path: str | Path) -> bool:
    """True when ``path`` is a directory holding a ``meta.json`` (any content)."""
    path = Path(path)
    return path.is_dir() and (path / META_FILE).is_file()


def read_meta(directory: Path) -> tuple[dict, tuple[float, float]]:
    """Read and check ``meta.json``; return the document and ``(sx, sy)``."""
    path = directory / META_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScrollError(f"{path}: missing; a tifxyz surface is a directory with x.tif, "
                          "y.tif, z.tif and meta.json") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScrollError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ScrollError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise ScrollError(f"{path}: must hold a JSON object")
    if "format" not in doc:
        raise ScrollError(f"{path}: has no \"format\" field (a tifxyz surface has "
                          "\"format\": \"tifxyz\")")
    if doc["format"] != "tifxyz":
        raise ScrollError(f"{path}: \"format\" is {doc['format']!r}, not \"tifxyz\"")
    if "scale" not in doc:
        raise ScrollError(f"{path}: has no \"scale\" field ([sx, sy], grid cells per voxel)")
    scale = doc["scale"]
    if (not isinstance(scale, list) or len(scale) != 2
            or not all(isinstance(s, (int, float)) and not isinstance(s, bool)
                       and math.isfinite(s) and s > 0 for s in scale)):
        raise ScrollError(f"{path}: \"scale\" is {scale!r}, expected two positive numbers "
                          "[sx, sy]")
    return doc, (float(scale[0]), float(scale[1]))


def _read_image(path: Path, what: str) -> np.ndarray:
    """Page 0 of the TIFF at ``path`` as an array; channel 0 when ``what`` is 'mask'."""
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            arr = page.asarray()
            samples = page.samplesperpixel
            planar = page.planarconfig
    except FileNotFoundError:
        raise ScrollError(f"{path}: missing; a tifxyz surface needs x.tif, y.tif and "
                          "z.tif") from None
    except Exception as exc:
        raise ScrollError(f"{path}: cannot read TIFF ({type(exc).__name__}: {exc})") from None
    if samples > 1:
        if what != "mask":
            raise ScrollError(f"{path}: has {samples} samples per pixel; a tifxyz "
                              "coordinate image has one")
        arr = arr[..., 0] if planar == tifffile.PLANARCONFIG.CONTIG else arr[0]
    if arr.ndim != 2:
        raise ScrollError(f"{path}: image of shape {arr.shape} is not 2-D")
    return arr


def read_grid(directory: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Read the tifxyz surface in ``directory``.

    Returns ``(points, valid, scale)``: ``points`` (H, W, 3) of (X, Y, Z) in level-0 voxels
    (float32 when every coordinate image is exact in it, else float64; invalid vertices set
    to 0 so that zero weights never meet -1 or NaN), ``valid`` bool (H, W), and ``scale``
    ``(sx, sy)``. Raises :class:`ScrollError` naming the file at fault.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ScrollError(f"{directory}: not a directory; a tifxyz surface is a directory "
                          "with x.tif, y.tif, z.tif and meta.json")
    _, scale = read_meta(directory)
    planes = []
    for name in COORDINATE_FILES:
        path = directory / name
        arr = _read_image(path, "coordinate")
        if arr.dtype.newbyteorder("=") not in _ACCEPTED:
            raise ScrollError(f"{path}: samples of type {arr.dtype} are not accepted "
                              "(float32/64 or 8-32-bit integers)")
        if planes and arr.shape != planes[0].shape:
            raise ScrollError(f"{path}: is {arr.shape[1]}x{arr.shape[0]} (width x height), "
                              f"{COORDINATE_FILES[0]} is {planes[0].shape[1]}x"
                              f"{planes[0].shape[0]}")
        planes.append(arr)
    exact32 = all(p.dtype.itemsize <= 2 or p.dtype == np.float32 for p in planes)
    points = np.stack(planes, axis=-1).astype(np.float32 if exact32 else np.float64)
    del planes
    sentinel = (points == -1).all(axis=-1)
    valid = ~sentinel & ~(points[..., 2] <= 0)  # NaN Z is not <= 0: caught below
    bad = valid & ~np.isfinite(points).all(axis=-1)
    if bad.any():
        j, i = np.argwhere(bad)[0]
        raise ScrollError(f"{directory}: vertex row {j}, column {i} holds non-finite "
                          f"coordinates {tuple(float(v) for v in points[j, i])}")
    mask_path = directory / MASK_FILE
    if mask_path.exists():
        valid &= _mask_keep(mask_path, valid.shape)
    points[~valid] = 0
    return points, valid, scale


def _mask_keep(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Which vertices ``mask.tif`` keeps: all of a vertex's mask pixels ``>= 255``."""
    mask = _read_image(path, "mask")
    h, w = shape
    mh, mw = mask.shape
    if mh % h or mw % w or mh < h or mw < w:
        raise ScrollError(f"{path}: mask is {mw}x{mh} (width x height), not the {w}x{h} "
                          "grid or an integer multiple of it")
    keep = mask if mask.dtype == bool else mask >= 255
    return keep.reshape(h, mh // h, w, mw // w).all(axis=(1, 3))


def _axis(n_render: int, start: int, stop: int, step: float, n_grid: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For render pixels ``start..stop-1`` along one axis: the lower vertex, the upper
    vertex, the fraction (weight of the upper one) and whether the pixel is in range
    (inside the render and not past the last vertex)."""
    pix = np.arange(start, stop, dtype=np.float64)
    g = pix * step
    near = np.rint(g)
    g = np.where(np.abs(g - near) <= SNAP, near, g)
    inside = (pix >= 0) & (pix < n_render) & (g >= 0) & (g <= n_grid - 1)
    g = np.where(inside, g, 0.0)
    lo = np.floor(g)
    frac = g - lo
    lo = lo.astype(np.intp)
    hi = np.minimum(lo + 1, n_grid - 1)
    return lo, hi, frac, inside


class Tifxyz(ReadWhole):
    """An open tifxyz surface: ``width`` x ``height`` render pixels, read per tile with
    :meth:`read_tile` exactly like :class:`scrollzarr.ppm.Ppm` (see the module docstring
    for the rules). Thread-safe: tiles are computed from the immutable grid."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.points, self.valid, self.scale = read_grid(self.path)
        self.grid_height, self.grid_width = self.valid.shape
        sx, sy = self.scale
        self.width = int(math.floor(self.grid_width / sx + SNAP))
        self.height = int(math.floor(self.grid_height / sy + SNAP))
        if self.width < 1 or self.height < 1:
            raise ScrollError(f"{self.path}: a {self.grid_width}x{self.grid_height} grid at "
                              f"scale {list(self.scale)} renders to {self.width}x"
                              f"{self.height} pixels")
        names = [*COORDINATE_FILES, META_FILE]
        if (self.path / MASK_FILE).exists():
            names.append(MASK_FILE)
        self.inputs = tuple(self.path / n for n in names)

    def positions(self, r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        """Interpolated positions of render rows ``r0:r1`` x columns ``c0:c1`` (any
        integers, also outside the render): float64 ``(3, rows, cols)`` (x, y, z planes;
        0 where undefined) and bool ``(rows, cols)``, True where the position is defined.
        """
        sx, sy = self.scale
        jl, jh, fr, ok_r = _axis(self.height, r0, r1, sy, self.grid_height)
        il, ih, fc, ok_c = _axis(self.width, c0, c1, sx, self.grid_width)
        # bilinear is separable: first along the columns on the few grid rows the tile
        # touches, then along the rows
        rows, index = np.unique(np.concatenate([jl, jh]), return_inverse=True)
        lo, hi = index[:jl.size], index[jl.size:]
        grid = self.points[rows]  # (k, W, 3)
        bad = ~self.valid[rows]
        right = fc > 0
        # a vertex takes part iff its weight is non-zero
        bad_c = bad[:, il] | (right & bad[:, ih])
        bad_rc = bad_c[lo] | ((fr > 0)[:, None] & bad_c[hi])
        ok = ok_r[:, None] & ok_c[None, :] & ~bad_rc
        pos = np.empty((3, jl.size, il.size), dtype=np.float64)
        for a in range(3):
            g = grid[:, :, a]
            left = g[:, il].astype(np.float64)
            # a + (b - a) * t is exactly a where a == b: a surface lying on a slice (say
            # the volume's last one) stays on it instead of a rounding error beside it
            along = left + (g[:, ih] - left) * fc
            top = along[lo]
            pos[a] = top + (along[hi] - top) * fr[:, None]
        pos[:, ~ok] = 0.0
        return pos, ok

    def read_tile(self, v0: int, v1: int, u0: int, u1: int) -> tuple[np.ndarray, np.ndarray]:
        """Render pixels ``v0:v1`` (rows) x ``u0:u1`` (columns).

        Returns ``(data, mapped)`` as :meth:`scrollzarr.ppm.Ppm.read_tile`: float64
        ``(v1-v0, u1-u0, 6)`` with ``(x, y, z, nx, ny, nz)`` (level-0 voxels, unit normal;
        zeros where unmapped) and bool ``(v1-v0, u1-u0)``.
        """
        if not (0 <= v0 < v1 <= self.height and 0 <= u0 < u1 <= self.width):
            raise ValueError(f"tile {v0}:{v1} x {u0}:{u1} outside the "
                             f"{self.width}x{self.height} surface")
        # one pixel of halo on every side for the differences
        pos, ok = self.positions(v0 - 1, v1 + 1, u0 - 1, u1 + 1)
        d_c, have_c = _difference(pos[:, 1:-1], ok[1:-1], axis=2)
        d_r, have_r = _difference(pos[:, :, 1:-1], ok[:, 1:-1], axis=1)
        normal = np.empty_like(d_c)
        normal[0] = d_c[1] * d_r[2] - d_c[2] * d_r[1]
        normal[1] = d_c[2] * d_r[0] - d_c[0] * d_r[2]
        normal[2] = d_c[0] * d_r[1] - d_c[1] * d_r[0]
        length = np.sqrt(normal[0] ** 2 + normal[1] ** 2 + normal[2] ** 2)
        mapped = ok[1:-1, 1:-1] & have_c & have_r & (length > 0)
        out = np.zeros((v1 - v0, u1 - u0, 6), dtype=np.float64)
        for a in range(3):
            out[..., a] = pos[a, 1:-1, 1:-1]
            np.divide(normal[a], length, out=out[..., 3 + a], where=mapped)
        out[~mapped] = 0.0
        return out, mapped


def _difference(pos: np.ndarray, ok: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """dP along ``axis`` of the (3, rows, cols) planes ``pos`` at the interior of that
    axis: central where both neighbours are defined, one-sided where one is. Returns the
    differences (one shorter by 2 along ``axis``) and where they exist (bool; ``ok``'s
    axis is ``axis - 1``)."""
    def cut(a: np.ndarray, lo: int, hi: int | None, ax: int) -> np.ndarray:
        index = [slice(None)] * a.ndim
        index[ax] = slice(lo, hi)
        return a[tuple(index)]

    prev_p, here_p, next_p = (cut(pos, 0, -2, axis), cut(pos, 1, -1, axis),
                              cut(pos, 2, None, axis))
    prev_ok, next_ok = cut(ok, 0, -2, axis - 1), cut(ok, 2, None, axis - 1)
    d = (next_p - prev_p) * 0.5
    both = prev_ok & next_ok
    if not both.all():  # borders and holes: one-sided differences, few pixels
        only = next_ok & ~prev_ok
        d[:, only] = next_p[:, only] - here_p[:, only]
        only = prev_ok & ~next_ok
        d[:, only] = here_p[:, only] - prev_p[:, only]
    return d, prev_ok | next_ok


def write_tifxyz(directory: str | Path, points: np.ndarray, scale: tuple[float, float],
                 valid: np.ndarray | None = None, mask: np.ndarray | None = None,
                 meta: dict | None = None) -> Path:
    """Write a tifxyz surface as VC3D does: ``directory/x.tif, y.tif, z.tif`` (float32,
    tiled, LZW), ``meta.json`` (``format``, ``scale``, ``bbox``, ``type``, plus ``meta``),
    and ``mask.tif`` (uint8, 255 = keep) when ``mask`` is given.

    ``points`` is (H, W, 3) of (x, y, z) in level-0 voxels; vertices where ``valid`` is
    False are written as (-1, -1, -1). Returns ``directory``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    points = np.array(points, dtype=np.float32)
    if valid is not None:
        points[~np.asarray(valid, dtype=bool)] = -1.0
    for axis, name in enumerate(COORDINATE_FILES):
        tifffile.imwrite(directory / name, np.ascontiguousarray(points[..., axis]),
                         tile=(256, 256) if min(points.shape[:2]) >= 256 else None,
                         compression="lzw", photometric="minisblack")
    if mask is not None:
        tifffile.imwrite(directory / MASK_FILE,
                         np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8),
                         photometric="minisblack")
    good = points[(points != -1).any(axis=-1) & (points[..., 2] > 0)]
    doc = {"format": "tifxyz", "type": "seg", "scale": [float(scale[0]), float(scale[1])]}
    if good.size:
        doc["bbox"] = [good.min(axis=0).tolist(), good.max(axis=0).tolist()]
    doc.update(meta or {})
    (directory / META_FILE).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return directory


__all__ = ["Tifxyz", "is_tifxyz", "read_grid", "read_meta", "write_tifxyz"]
