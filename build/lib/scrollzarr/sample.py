"""A small synthetic scroll: a rolled papyrus sheet with ink, noise and a masked outside.

The volume is made analytically, slice by slice, so any size can be generated without
holding it in memory. Geometry (all in voxels, arrays (z, y, x)):

* the scroll axis runs along z through the slice centre ``(cy, cx)``;
* the sheet is an Archimedean spiral ``r = R0 + PITCH * turn`` where
  ``turn = theta / (2 pi) + k`` for winding ``k``, ``SHEET`` voxels thick;
* ink darkens the sheet where ``ink(theta, z)`` is true (a pattern of letters-like bars),
  so a flattened layer on the sheet shows that pattern and layers off the sheet do not;
* voxels farther than the outer winding plus a margin are 0, as in masked volumes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tifffile

R0 = 6.0  # inner radius of the spiral, voxels
SHEET = 4.0  # sheet thickness, voxels
PAPYRUS = 22000  # mean value inside the sheet
INK = 9000  # how much ink lowers the sheet value
AIR = 3000  # mean value between windings
NOISE = 600  # standard deviation of the noise


def geometry(shape: tuple[int, int, int]) -> dict[str, float]:
    """Return the spiral parameters for a volume of ``shape`` (z, y, x): centre
    ``cy``, ``cx``, ``pitch`` (radial distance between windings) and ``r_max``."""
    _, ny, nx = shape
    r_max = 0.45 * min(ny, nx)
    pitch = max(SHEET * 2.5, (r_max - R0) / 6.0)  # about six windings
    return {"cy": (ny - 1) / 2.0, "cx": (nx - 1) / 2.0, "pitch": pitch, "r_max": r_max}


def ink(theta: np.ndarray, z: np.ndarray) -> np.ndarray:
    """True where the sheet carries ink: bars along the sheet every ~0.3 rad, in lines
    of text 12 slices high with 6-slice gaps. ``theta`` in radians, ``z`` in voxels."""
    bars = np.sin(theta * 20.0) > 0.3
    lines = np.mod(z, 18.0) < 12.0
    return bars & lines


def sheet_offset(z: np.ndarray, y: np.ndarray, x: np.ndarray,
                 shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(distance, theta)``: signed radial distance (voxels) of each point to the
    nearest winding's centre line, and its polar angle (radians, 0..2 pi)."""
    g = geometry(shape)
    dy, dx = y - g["cy"], x - g["cx"]
    r = np.hypot(dy, dx)
    theta = np.mod(np.arctan2(dy, dx), 2 * math.pi)
    phase = (r - R0) / g["pitch"] - theta / (2 * math.pi)
    distance = (phase - np.round(phase)) * g["pitch"]
    del z
    return distance, theta


def make_slice(z: int, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Return slice ``z`` of the synthetic scroll as a uint16 (y, x) array."""
    _, ny, nx = shape
    g = geometry(shape)
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    distance, theta = sheet_offset(np.float64(z), y, x, shape)
    r = np.hypot(y - g["cy"], x - g["cx"])
    # a soft sheet profile so trilinear sampling sees a smooth ridge
    profile = np.clip(1.0 - (np.abs(distance) / (SHEET / 2.0)) ** 2, 0.0, 1.0)
    inked = ink(theta, np.full_like(theta, z))
    value = AIR + profile * (PAPYRUS - AIR - INK * inked)
    rng = np.random.default_rng(seed * 1_000_003 + z)
    value += rng.normal(0.0, NOISE, size=value.shape)
    inside = (r >= R0 - SHEET) & (r <= g["r_max"] + SHEET)
    value[~inside] = 0
    return np.clip(np.rint(value), 0, 65535).astype(np.uint16)


def write_scroll(directory: str | Path, shape: tuple[int, int, int] = (256, 512, 512),
                 first: int = 0, compression: str | None = None, seed: int = 0,
                 digits: int = 5) -> list[Path]:
    """Write the synthetic scroll as one uint16 TIFF per slice, named ``{z:05d}.tif`` from
    ``first`` on, into ``directory``; return the paths. ``shape`` is (z, y, x)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [write_slice(directory, first + i, shape, compression, seed, digits)
            for i in range(shape[0])]


def write_slice(directory: str | Path, z: int, shape: tuple[int, int, int],
                compression: str | None = None, seed: int = 0, digits: int = 5) -> Path:
    """Write slice ``z`` of the synthetic scroll as ``directory/{z:05d}.tif``."""
    path = Path(directory) / f"{z:0{digits}d}.tif"
    tifffile.imwrite(path, make_slice(z, shape, seed), compression=compression,
                     photometric="minisblack")
    return path
