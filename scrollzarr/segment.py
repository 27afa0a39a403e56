"""A segment on the synthetic scroll of :mod:`scrollzarr.sample`, written as a .ppm
(and, by :func:`write_sample_surfaces`, also as tifxyz and .obj).

The segment follows the centre line of one winding of the spiral sheet: ``u`` runs along
the spiral (one pixel per voxel of arc length), ``v`` along the scroll axis z (one pixel
per slice). Each pixel's normal is the unit normal of the spiral curve in the slice plane
(pointing outwards, ``nz = 0``). Rendered, the surface layer therefore shows the ink
pattern ``sample.ink(theta, z)`` and layers about ``pitch / 2`` away (between windings)
do not: a check of the whole pipeline that needs no real scroll.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import sample
from .ppm import write_ppm


def write_sample_segment(ppm_path: str | Path, shape: tuple[int, int, int],
                         winding: int = 2, width: int | None = None,
                         height: int | None = None, z0: int = 0,
                         theta0: float = 0.0) -> np.ndarray:
    """Write a .ppm on winding ``winding`` of the synthetic scroll of ``shape`` (z, y, x).

    Pixel ``(u, v)`` lies on the sheet's centre line at arc length ``u`` voxels from the
    angle ``theta0`` (radians) of that winding, in slice ``z0 + v``. ``width`` defaults
    to one full turn, ``height`` to the slices from ``z0`` to the end of the volume.
    Returns the expected ink, a bool array of shape ``(height, width)``: True where
    ``sample.ink`` marks the pixel's (theta, z) as inked.
    """
    data, ink = sample_segment(shape, winding, width, height, z0, theta0)
    write_ppm(ppm_path, data, comment=f"synthetic scroll {shape}, winding {winding}")
    return ink


def sample_segment(shape: tuple[int, int, int], winding: int = 2, width: int | None = None,
                   height: int | None = None, z0: int = 0,
                   theta0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The segment of :func:`write_sample_segment` without writing it: ``(data, ink)``,
    ``data`` float64 ``(height, width, 6)`` = ``(x, y, z, nx, ny, nz)`` per pixel in
    voxels, ``ink`` bool ``(height, width)``."""
    g = sample.geometry(shape)
    pitch = g["pitch"]
    dr = pitch / (2 * math.pi)  # dr / dtheta of the spiral

    def radius(tau: np.ndarray) -> np.ndarray:
        # tau: unwrapped angle, so the curve runs on into the next winding seamlessly
        return sample.R0 + dr * tau

    tau0 = 2 * math.pi * winding + theta0
    # arc length along the curve: ds = sqrt(r^2 + (dr/dtheta)^2) dtheta, integrated finely
    turn_length = 2 * math.pi * float(radius(np.float64(tau0 + math.pi)))
    if width is None:
        width = int(turn_length)
    if height is None:
        height = shape[0] - z0
    if width < 1 or height < 1:
        raise ValueError(f"segment of {width}x{height} pixels: both must be >= 1")
    span = (width + 2) / max(sample.R0, float(radius(np.float64(tau0))))
    tau = tau0 + np.linspace(0.0, span, 64 * (width + 2))
    speed = np.hypot(radius(tau), dr)
    length = np.concatenate([[0.0], np.cumsum((speed[1:] + speed[:-1]) / 2 * np.diff(tau))])
    tau_u = np.interp(np.arange(width, dtype=np.float64), length, tau)

    r = radius(tau_u)
    cos, sin = np.cos(tau_u), np.sin(tau_u)
    x = g["cx"] + r * cos
    y = g["cy"] + r * sin
    # tangent (dx, dy)/dtheta = (dr cos - r sin, dr sin + r cos); normal = tangent turned
    # by -90 degrees, which points outwards (away from the axis)
    tx, ty = dr * cos - r * sin, dr * sin + r * cos
    norm = np.hypot(tx, ty)
    nx, ny = ty / norm, -tx / norm

    z = z0 + np.arange(height, dtype=np.float64)
    data = np.zeros((height, width, 6), dtype=np.float64)
    data[:, :, 0] = x[None, :]
    data[:, :, 1] = y[None, :]
    data[:, :, 2] = z[:, None]
    data[:, :, 3] = nx[None, :]
    data[:, :, 4] = ny[None, :]
    theta = np.mod(tau_u, 2 * math.pi)
    return data, sample.ink(theta[None, :], z[:, None])


#: Grid scales of the sample's tifxyz surfaces: VC3D's usual one vertex every 20 voxels,
#: and one vertex per voxel.
SAMPLE_TIFXYZ_SCALES = (0.05, 1.0)


def sample_winding(shape: tuple[int, int, int], preferred: int = 2) -> int:
    """The winding the sample segment lies on: ``preferred``, or on a volume too small
    for it the outermost winding whose whole turn stays within the spiral's extent (0 at
    the least), so the segment never lies outside the volume it is made for."""
    g = sample.geometry(shape)
    for k in range(preferred, 0, -1):
        if sample.R0 + g["pitch"] * (k + 1) <= g["r_max"]:
            return k
    return 0


def write_sample_surfaces(out_dir: str | Path, shape: tuple[int, int, int],
                          winding: int | None = None, width: int | None = None,
                          height: int | None = None, z0: int = 1,
                          theta0: float = 0.0) -> tuple[dict[str, Path], np.ndarray]:
    """Write the sample segment in every surface format into ``out_dir``.

    ``segment.ppm``; ``segment_tifxyz/`` (scale 0.05: the vertex of grid (j, i) is .ppm
    pixel (20 j, 20 i)); ``segment_tifxyz_1/`` (scale 1.0: every .ppm pixel a vertex);
    ``winding`` defaults to :func:`sample_winding`. Writes ``segment.ppm``;
    ``segment.obj`` (the 0.05 grid as triangles with pixel UVs and the .ppm's normals as
    ``vn``, as VC3D's tifxyz-to-obj writes it). Rendered, each gives the .ppm's pixel grid
    (the 0.05 ones up to their last vertex row and column; they are left out when the
    segment is too small for two vertex rows and columns, under 21 pixels). ``z0`` defaults to 1 because
    tifxyz treats ``Z <= 0`` as invalid: a segment starting at slice 0 would lose its first
    row. Returns ``({"ppm" | "tifxyz" | "tifxyz_1" | "obj": path}, ink)``.
    """
    if winding is None:
        winding = sample_winding(shape)
    from .surfaces.obj import write_obj
    from .surfaces.tifxyz import write_tifxyz

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data, ink = sample_segment(shape, winding, width, height, z0, theta0)
    paths = {"ppm": out / "segment.ppm", "tifxyz": out / "segment_tifxyz",
             "tifxyz_1": out / "segment_tifxyz_1", "obj": out / "segment.obj"}
    write_ppm(paths["ppm"], data, comment=f"synthetic scroll {shape}, winding {winding}")
    for scale, key in zip(SAMPLE_TIFXYZ_SCALES, ("tifxyz", "tifxyz_1")):
        step = round(1 / scale)
        grid = data[::step, ::step]
        if min(grid.shape[:2]) < 2:  # a single vertex row or column renders nothing
            del paths[key]
            if key == "tifxyz":
                del paths["obj"]
            continue
        write_tifxyz(paths[key], grid[..., 0:3], (scale, scale),
                     meta={"source": f"synthetic scroll {list(shape)}, winding {winding}"})
        if key == "tifxyz":  # the tifxyz's float32 vertices: both hold the same grid
            write_obj(paths["obj"], grid[..., 0:3].astype(np.float32), (scale, scale),
                      normals=grid[..., 3:6])
    return paths, ink
