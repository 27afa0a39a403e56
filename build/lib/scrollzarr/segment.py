"""A segment on the synthetic scroll of :mod:`scrollzarr.sample`, written as a .ppm.

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
    write_ppm(ppm_path, data, comment=f"synthetic scroll {shape}, winding {winding}")
    theta = np.mod(tau_u, 2 * math.pi)
    return sample.ink(theta[None, :], z[:, None])
