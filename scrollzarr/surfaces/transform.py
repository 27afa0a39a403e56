"""Affine transforms between scans (VC3D's JSON) and the surface wrapper that applies them.

A segment traced on one scan of a scroll is rendered from another scan of the same scroll
through a 3x4 affine matrix ``M`` in x, y, z: ``p_volume = M @ (x, y, z, 1)``. The JSON
layout is VC3D's: ``{"transformation_matrix": [[m00, m01, m02, t0], [..4], [..4]]}``, a
fourth row ``[0, 0, 0, 1]`` allowed. ``FILE.json:inv`` applies the inverse. Normals go
through the inverse transpose of the linear part and are renormalised, so they stay
perpendicular to the transformed surface and of unit length.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import ScrollError

#: Suffix of a ``--transform`` argument that asks for the inverse matrix.
INVERSE_SUFFIX = ":inv"


def parse_transform_argument(text: str) -> tuple[Path, bool]:
    """Split ``FILE.json[:inv]`` into the file's path and whether to invert."""
    if text.endswith(INVERSE_SUFFIX):
        return Path(text[:-len(INVERSE_SUFFIX)]), True
    return Path(text), False


def read_transform(text: str | Path) -> np.ndarray:
    """Read the transform named by ``text`` (``FILE.json`` or ``FILE.json:inv``).

    Returns the (3, 4) float64 matrix ``M`` with ``p_volume = M[:, :3] @ p + M[:, 3]``
    (x, y, z, in level-0 voxels), already inverted for ``:inv``. Raises
    :class:`ScrollError` naming the file for a missing file, bad JSON, a missing
    ``transformation_matrix``, a wrong shape, non-finite values, a fourth row other than
    ``0 0 0 1`` and a singular matrix.
    """
    path, inverse = parse_transform_argument(str(text))
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScrollError(f"{path}: --transform file does not exist") from None
    except IsADirectoryError:
        raise ScrollError(f"{path}: --transform is a directory, not a JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScrollError(f"{path}: cannot read --transform file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ScrollError(f"{path}: --transform is not valid JSON ({exc.msg}, line "
                          f"{exc.lineno})") from None
    if not isinstance(doc, dict) or "transformation_matrix" not in doc:
        raise ScrollError(f"{path}: --transform has no \"transformation_matrix\" field")
    raw = doc["transformation_matrix"]
    try:
        matrix = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ScrollError(f"{path}: \"transformation_matrix\" must be rows of 4 numbers"
                          ) from None
    if matrix.shape not in ((3, 4), (4, 4)):
        raise ScrollError(f"{path}: \"transformation_matrix\" has shape "
                          f"{'x'.join(map(str, matrix.shape)) or 'scalar'}, expected 3x4 "
                          "(or 4x4 with a last row 0 0 0 1)")
    if not np.isfinite(matrix).all():
        raise ScrollError(f"{path}: \"transformation_matrix\" holds non-finite values")
    if matrix.shape == (4, 4):
        if not np.array_equal(matrix[3], [0.0, 0.0, 0.0, 1.0]):
            raise ScrollError(f"{path}: \"transformation_matrix\" fourth row is "
                              f"{matrix[3].tolist()}, an affine transform needs 0 0 0 1")
        matrix = matrix[:3]
    linear = matrix[:, :3]
    det = float(np.linalg.det(linear))
    scale = float(np.abs(linear).max()) or 1.0
    if not math.isfinite(det) or abs(det) <= 1e-12 * scale ** 3:
        raise ScrollError(f"{path}: \"transformation_matrix\" is singular (determinant "
                          f"{det:.3g}): points would collapse onto a plane")
    if inverse:
        inv = np.linalg.inv(linear)
        matrix = np.concatenate([inv, -(inv @ matrix[:, 3:4])], axis=1)
    return matrix


class PlacedSurface:
    """A surface seen through a transform and/or with its normals reversed.

    Wraps any object with the interface of :class:`scrollzarr.ppm.Ppm` and returns the
    same from :meth:`read_tile`, with mapped pixels' positions mapped by ``matrix``
    ((3, 4), or None for none), their normals by the inverse transpose and renormalised,
    then negated when ``flip_normals``. Unmapped pixels are left as the surface gives
    them. Closing it closes the wrapped surface.
    """

    def __init__(self, surface, matrix: np.ndarray | None = None,
                 flip_normals: bool = False, inputs: tuple[Path, ...] = ()):
        self.surface = surface
        self.width, self.height = surface.width, surface.height
        self.path = surface.path
        self.inputs = tuple(getattr(surface, "inputs", (surface.path,))) + tuple(inputs)
        self.flip_normals = flip_normals
        self._linear = self._translation = self._normal = None
        if matrix is not None:
            self._linear = np.ascontiguousarray(matrix[:, :3].T)  # row vectors: p @ A.T
            self._translation = np.asarray(matrix[:, 3], dtype=np.float64)
            # (A^-T) applied to row vectors is n @ A^-1
            self._normal = np.linalg.inv(matrix[:, :3])

    def close(self) -> None:
        self.surface.close()

    def __enter__(self) -> "PlacedSurface":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_tile(self, v0: int, v1: int, u0: int, u1: int) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`scrollzarr.ppm.Ppm.read_tile`, transformed (see the class)."""
        data, mapped = self.surface.read_tile(v0, v1, u0, u1)
        if not mapped.any():
            return data, mapped
        picked = data[mapped]  # (P, 6) copy
        if self._linear is not None:
            picked[:, 0:3] = picked[:, 0:3] @ self._linear + self._translation
            normal = picked[:, 3:6] @ self._normal
            length = np.linalg.norm(normal, axis=1, keepdims=True)
            # a zero normal stays zero (the renderer then samples the surface only)
            picked[:, 3:6] = np.divide(normal, length, out=np.zeros_like(normal),
                                       where=length > 0)
        if self.flip_normals:
            picked[:, 3:6] *= -1.0
        data[mapped] = picked
        return data, mapped


__all__ = ["INVERSE_SUFFIX", "PlacedSurface", "parse_transform_argument", "read_transform"]
