"""Wavefront .obj meshes with texture coordinates as surfaces: parsing, rasterising in
UV space per tile, writing.

The mesh's ``v x y z`` are level-0 voxels, ``vt u v`` place each face corner in the
render, ``vn`` (optional) give normals; faces ``f v/vt[/vn] ...`` (polygons are split
into fans; negative indices count back from the last element read so far). Every face
corner needs a ``vt``.

Placement: ``u`` is the render column and ``v`` grows with the render row (image
convention; OpenGL's textures run v the other way, hence ``flip_v``). When every UV a
face uses lies in [0, 1] they are normalised and map to ``u * (W - 1)``, ``v * (H - 1)``
with W and H from the ``width``/``height`` arguments or the size of the image the
``.mtl`` (``mtllib``) names in ``map_Kd``; otherwise UVs are pixels, and the render
spans ``floor(max u) + 1`` x ``floor(max v) + 1`` pixels unless ``width``/``height``
say otherwise. ``flip_v`` replaces ``v`` by ``1 - v`` (normalised) or ``H - 1 - v``
(pixels) first.

Render pixel ``(r, c)`` samples the mesh at UV ``(c, r)``: the triangle that contains that
point (edges included; where triangles overlap in UV the one listed first in the file
wins) gives the position and normal by barycentric interpolation of its corners.
Corner normals are the ``vn`` when every face corner has one, else each vertex's
area-weighted sum of the normals ``(b - a) x (c - a)`` of the faces around it (so a face
listed ``a b c`` counter-clockwise seen from outside gives outward normals). The
interpolated normal is renormalised; pixels no triangle covers, or where it is zero, are
unmapped.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ScrollError, reading
from .base import ReadWhole

#: Triangles are binned by the render blocks of this many pixels they touch, so a tile
#: only looks at the triangles near it.
BIN = 64
#: Barycentric tolerance: points on an edge belong to the triangle.
EDGE = 1e-9


def _index(path: Path, lineno: int, text: str, count: int, what: str) -> int:
    try:
        i = int(text)
    except ValueError:
        raise ScrollError(f"{path}: line {lineno}: face index {text!r} is not an integer"
                          ) from None
    i = i - 1 if i > 0 else count + i if i < 0 else -1
    if not 0 <= i < count:
        raise ScrollError(f"{path}: line {lineno}: face refers to {what} {text}, only "
                          f"{count} defined before it")
    return i


def parse_obj(path: str | Path) -> dict:
    """Parse the .obj at ``path``: returns a dict with ``v`` (N, 3), ``vt`` (T, 2),
    ``vn`` (M, 3) float64 arrays, ``faces`` (F, 3, 3) int64 (per corner: v, vt, vn
    indices, vn -1 when absent), and ``mtllib`` (str or None). Raises
    :class:`ScrollError` naming the file and line for anything it cannot use."""
    path = Path(path)
    with reading(path, ".obj"):
        text = path.read_text(encoding="utf-8", errors="replace")
    v: list[list[str]] = []
    vt: list[list[str]] = []
    vn: list[list[str]] = []
    # triangles "a/b c/d e/f" or "a/b/c ..." with positive indices (what meshes of
    # millions of faces hold) are converted in bulk; anything else face by face
    bulk: list[str] = []
    bulk_info: list[tuple[int, int, int, int]] = []  # line, v, vt, vn defined before it
    bulk_slashes = None
    faces: list[tuple[tuple[int, int, int], ...]] = []
    face_lines: list[int] = []
    mtllib = None
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        key = parts[0]
        if key in ("v", "vn"):
            if len(parts) < 4:
                raise ScrollError(f"{path}: line {lineno}: '{key}' needs three numbers")
            (v if key == "v" else vn).append(parts[1:4])
        elif key == "vt":
            if len(parts) < 3:
                raise ScrollError(f"{path}: line {lineno}: 'vt' needs two numbers (u v)")
            vt.append(parts[1:3])
        elif key == "f":
            if len(parts) == 4 and "-" not in line and "//" not in line:
                slashes = line.count("/")
                if bulk_slashes is None and slashes in (3, 6):
                    bulk_slashes = slashes
                if slashes == bulk_slashes and all(p.count("/") == slashes // 3
                                                   for p in parts[1:]):
                    bulk.extend(parts[1:])
                    bulk_info.append((lineno, len(v), len(vt), len(vn)))
                    continue
            if len(parts) < 4:
                raise ScrollError(f"{path}: line {lineno}: a face needs three corners")
            corners = []
            for ref in parts[1:]:
                fields = ref.split("/")
                if len(fields) < 2 or not fields[1]:
                    raise ScrollError(f"{path}: line {lineno}: face corner {ref!r} has no "
                                      "texture coordinate (vt); a surface needs UVs")
                corners.append((
                    _index(path, lineno, fields[0], len(v), "vertex"),
                    _index(path, lineno, fields[1], len(vt), "texture coordinate"),
                    _index(path, lineno, fields[2], len(vn), "normal")
                    if len(fields) > 2 and fields[2] else -1))
            for k in range(1, len(corners) - 1):  # a fan over polygons
                faces.append((corners[0], corners[k], corners[k + 1]))
                face_lines.append(lineno)
        elif key == "mtllib" and len(parts) > 1:
            mtllib = line.split(None, 1)[1].strip()
    if not faces and not bulk:
        raise ScrollError(f"{path}: .obj has no faces ('f' lines)")
    all_faces = np.array(faces, dtype=np.int64).reshape(-1, 3, 3)
    lines = np.array(face_lines, dtype=np.int64)
    if bulk:
        got, bulk_lines = _bulk_faces(path, bulk, bulk_slashes // 3 + 1, bulk_info)
        all_faces = np.concatenate([got, all_faces])
        lines = np.concatenate([bulk_lines, lines])
    # file order decides which face wins where faces overlap in UV
    all_faces = all_faces[np.argsort(lines, kind="stable")]

    def numbers(rows: list[list[str]], what: str, n: int) -> np.ndarray:
        try:
            arr = np.array(rows, dtype=np.float64).reshape(len(rows), n)
        except ValueError:
            raise ScrollError(f"{path}: a '{what}' line holds something that is not a "
                              "number") from None
        if not np.isfinite(arr).all():
            raise ScrollError(f"{path}: a '{what}' line holds a non-finite number")
        return arr

    return {"v": numbers(v, "v", 3), "vt": numbers(vt, "vt", 2), "vn": numbers(vn, "vn", 3),
            "faces": all_faces, "mtllib": mtllib}


def _bulk_faces(path: Path, tokens: list[str], fields: int,
                info: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Triangles from corner tokens ``a/b`` (``fields`` 2) or ``a/b/c`` (3) with positive
    1-based indices: (F, 3, 3) 0-based (v, vt, vn; vn -1 when absent) and their lines.
    Checks every index against what was defined before its line, as the face-by-face
    parser does."""
    known = np.array(info, dtype=np.int64)  # (F, 4): line, v, vt, vn counts
    try:
        idx = np.array("/".join(tokens).split("/"), dtype=np.int64).reshape(-1, 3, fields)
    except ValueError:
        for n, token in enumerate(tokens):  # rare: find the line to name
            for field in token.split("/"):
                try:
                    int(field)
                except ValueError:
                    raise ScrollError(f"{path}: line {info[n // 3][0]}: face index "
                                      f"{field!r} is not an integer") from None
        raise ScrollError(f"{path}: a face line holds an index that is not an integer"
                          ) from None
    names = ("vertex", "texture coordinate", "normal")
    for f in range(fields):
        count = known[:, 1 + f, None]
        bad = (idx[:, :, f] < 1) | (idx[:, :, f] > count)
        if bad.any():
            face, corner = np.argwhere(bad)[0]
            raise ScrollError(f"{path}: line {known[face, 0]}: face refers to {names[f]} "
                              f"{idx[face, corner, f]}, only {known[face, 1 + f]} defined "
                              "before it")
    out = np.full((idx.shape[0], 3, 3), -1, dtype=np.int64)
    out[:, :, :fields] = idx - 1
    return out, known[:, 0]


def texture_size(obj_path: Path, mtllib: str | None) -> tuple[tuple[int, int], Path] | None:
    """``((width, height), image path)`` of the first ``map_Kd`` image of the .mtl that
    ``mtllib`` names (relative to the .obj), or None when there is no .mtl or map_Kd."""
    if not mtllib:
        return None
    mtl = obj_path.parent / mtllib
    try:
        lines = mtl.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        raise ScrollError(f"{mtl}: the .mtl file that {obj_path.name} names (mtllib) does "
                          "not exist") from None
    except OSError as exc:
        raise ScrollError(f"{mtl}: cannot read .mtl file ({exc.strerror})") from None
    for line in lines:
        parts = line.split()
        if parts and parts[0] == "map_Kd" and len(parts) > 1:
            image = mtl.parent / parts[-1]  # options (-s ...) come before the file name
            from PIL import Image

            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # real textures exceed pillow's bomb guard
            try:
                with Image.open(image) as img:  # reads the header only
                    return img.size, image
            except FileNotFoundError:
                raise ScrollError(f"{image}: the texture that {mtl.name} names (map_Kd) "
                                  "does not exist") from None
            except Exception as exc:
                raise ScrollError(f"{image}: cannot read the texture's size ({exc})"
                                  ) from None
            finally:
                Image.MAX_IMAGE_PIXELS = old
    return None


def _vertex_normals(v: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (unnormalised sums of face cross products)."""
    a, b, c = (v[faces[:, k, 0]] for k in range(3))
    face_n = np.cross(b - a, c - a)
    out = np.zeros_like(v)
    for k in range(3):
        np.add.at(out, faces[:, k, 0], face_n)
    return out


class ObjSurface(ReadWhole):
    """An open .obj mesh surface: ``width`` x ``height`` render pixels, read per tile with
    :meth:`read_tile` exactly like :class:`scrollzarr.ppm.Ppm` (rules in the module
    docstring). Thread-safe: tiles are computed from immutable arrays."""

    def __init__(self, path: str | Path, *, flip_v: bool = False, width: int | None = None,
                 height: int | None = None):
        self.path = Path(path)
        mesh = parse_obj(self.path)
        faces = mesh["faces"]
        inputs = [self.path]
        uv = mesh["vt"][faces[:, :, 1]]  # (F, 3, 2)
        normalised = bool(((uv >= 0) & (uv <= 1)).all())
        if normalised:
            size = None
            if width is None or height is None:
                found = texture_size(self.path, mesh["mtllib"])
                if found is None:
                    missing = " and ".join(n for n, x in (("--width", width),
                                                           ("--height", height)) if x is None)
                    raise ScrollError(f"{self.path}: every UV lies in [0, 1]: give {missing} "
                                      "(render size in pixels) or a .mtl whose map_Kd names "
                                      "the texture image")
                size, image = found
                inputs += [self.path.parent / mesh["mtllib"], image]
            w = width if width is not None else size[0]
            h = height if height is not None else size[1]
            if flip_v:
                uv[..., 1] = 1.0 - uv[..., 1]
            uv[..., 0] *= w - 1
            uv[..., 1] *= h - 1
        else:
            w = width if width is not None else int(math.floor(uv[..., 0].max())) + 1
            h = height if height is not None else int(math.floor(uv[..., 1].max())) + 1
            if flip_v:
                uv[..., 1] = (h - 1) - uv[..., 1]
        if w < 1 or h < 1:
            raise ScrollError(f"{self.path}: the UVs give a render of {w}x{h} pixels "
                              "(every u or every v is negative)")
        self.width, self.height = int(w), int(h)
        self.inputs = tuple(inputs)

        corners = mesh["v"][faces[:, :, 0]]  # (F, 3, 3)
        if (faces[:, :, 2] >= 0).all():
            normals = mesh["vn"][faces[:, :, 2]]
        else:
            normals = _vertex_normals(mesh["v"], faces)[faces[:, :, 0]]
        # barycentric solve per face: (p - uv0) = l1 * e1 + l2 * e2
        e1, e2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
        det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        lo = np.ceil(uv.min(axis=1) - EDGE)  # (F, 2) first pixel (u, v) of the bbox
        hi = np.floor(uv.max(axis=1) + EDGE)
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, [self.width - 1, self.height - 1])
        keep = (np.abs(det) > 0) & (lo <= hi).all(axis=1)  # zero-area UV faces cover nothing
        keep_idx = np.flatnonzero(keep)
        self._uv0 = uv[keep_idx, 0]
        self._inv = np.stack([e2[keep_idx, 1], -e2[keep_idx, 0],
                              -e1[keep_idx, 1], e1[keep_idx, 0]], axis=1) / det[keep_idx, None]
        self._corners = corners[keep_idx]
        self._normals = normals[keep_idx]
        self._lo = lo[keep_idx].astype(np.int64)
        self._hi = hi[keep_idx].astype(np.int64)
        self._bins_u = -(-self.width // BIN)
        self._bin_faces, self._bin_start = self._bin()

    def _bin(self) -> tuple[np.ndarray, np.ndarray]:
        """Faces per BIN x BIN render block, as (faces sorted by block, start offsets)."""
        blo, bhi = self._lo // BIN, self._hi // BIN  # (F, 2) block (u, v) ranges
        nu, nv = bhi[:, 0] - blo[:, 0] + 1, bhi[:, 1] - blo[:, 1] + 1
        count = nu * nv
        face = np.repeat(np.arange(count.size, dtype=np.int64), count)
        k = np.arange(face.size, dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
        bu = blo[face, 0] + k % nu[face]
        bv = blo[face, 1] + k // nu[face]
        key = bv * self._bins_u + bu
        order = np.argsort(key, kind="stable")  # faces stay in file order within a block
        n_bins = self._bins_u * -(-self.height // BIN)
        start = np.zeros(n_bins + 1, dtype=np.int64)
        np.cumsum(np.bincount(key, minlength=n_bins), out=start[1:])
        return face[order], start

    def read_tile(self, v0: int, v1: int, u0: int, u1: int) -> tuple[np.ndarray, np.ndarray]:
        """Render pixels ``v0:v1`` (rows) x ``u0:u1`` (columns); returns ``(data,
        mapped)`` as :meth:`scrollzarr.ppm.Ppm.read_tile` (zeros where unmapped)."""
        if not (0 <= v0 < v1 <= self.height and 0 <= u0 < u1 <= self.width):
            raise ValueError(f"tile {v0}:{v1} x {u0}:{u1} outside the "
                             f"{self.width}x{self.height} surface")
        rows, cols = v1 - v0, u1 - u0
        out = np.zeros((rows, cols, 6), dtype=np.float64)
        mapped = np.zeros((rows, cols), dtype=bool)
        bins = [bv * self._bins_u + bu for bv in range(v0 // BIN, (v1 - 1) // BIN + 1)
                for bu in range(u0 // BIN, (u1 - 1) // BIN + 1)]
        parts = [self._bin_faces[self._bin_start[b]:self._bin_start[b + 1]] for b in bins]
        faces = np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)
        if faces.size == 0:
            return out, mapped
        lo = np.maximum(self._lo[faces], [u0, v0])
        hi = np.minimum(self._hi[faces], [u1 - 1, v1 - 1])
        nu, nv = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
        use = (nu > 0) & (nv > 0)
        faces, lo, nu, nv = faces[use], lo[use], nu[use], nv[use]
        count = nu * nv
        # every pixel of every candidate face's box, faces in file order; per-face values
        # are repeated (cheaper than gathering them per pixel)
        k = np.arange(int(count.sum()), dtype=np.float64)
        k -= np.repeat((np.cumsum(count) - count).astype(np.float64), count)
        width = np.repeat(nu.astype(np.float64), count)
        row = np.floor((k + 0.5) / width)  # exact: small integers in float64
        pu = k - row * width
        pu += np.repeat(lo[:, 0].astype(np.float64), count)
        pv = row + np.repeat(lo[:, 1].astype(np.float64), count)
        inv, uv0 = self._inv[faces], self._uv0[faces]
        du = pu - np.repeat(uv0[:, 0], count)
        dv = pv - np.repeat(uv0[:, 1], count)
        l1 = np.repeat(inv[:, 0], count) * du + np.repeat(inv[:, 1], count) * dv
        l2 = np.repeat(inv[:, 2], count) * du + np.repeat(inv[:, 3], count) * dv
        inside = (l1 >= -EDGE) & (l2 >= -EDGE) & (l1 + l2 <= 1.0 + EDGE)
        where = np.flatnonzero(inside)
        pixel = (pv[where].astype(np.int64) - v0) * cols + (pu[where].astype(np.int64) - u0)
        pixel, first = np.unique(pixel, return_index=True)  # the first face listed wins
        sel = where[first]
        f = faces[np.searchsorted(np.cumsum(count), sel, side="right")]
        w1, w2 = l1[sel, None], l2[sel, None]
        # p0 + l1 (p1 - p0) + l2 (p2 - p0): exactly p0 where the corners agree (a mesh
        # lying on a slice stays on it, not a rounding error beside it)
        c = self._corners[f]
        pos = c[:, 0] + w1 * (c[:, 1] - c[:, 0]) + w2 * (c[:, 2] - c[:, 0])
        n = self._normals[f]
        normal = n[:, 0] + w1 * (n[:, 1] - n[:, 0]) + w2 * (n[:, 2] - n[:, 0])
        length = np.linalg.norm(normal, axis=1)
        good = length > 0
        flat = out.reshape(-1, 6)
        flat[pixel[good], 0:3] = pos[good]
        flat[pixel[good], 3:6] = normal[good] / length[good, None]
        mapped.reshape(-1)[pixel[good]] = True
        return out, mapped


def write_obj(path: str | Path, points: np.ndarray, scale: tuple[float, float],
              valid: np.ndarray | None = None, normals: np.ndarray | None = None) -> Path:
    """Write a grid surface as an .obj as VC3D's tifxyz-to-obj does: one vertex per valid
    grid point (``points`` (H, W, 3), x, y, z in level-0 voxels), ``vt`` in render pixels
    ``(column / sx, row / sy)``, ``vn`` from ``normals`` (H, W, 3) when given, and two
    triangles per grid cell whose four corners are valid, wound so that the face normal
    is ``dP/dcolumn x dP/drow`` (the tifxyz normal)."""
    points = np.asarray(points, dtype=np.float64)
    h, w = points.shape[:2]
    valid = np.ones((h, w), bool) if valid is None else np.asarray(valid, dtype=bool)
    index = np.full((h, w), -1, dtype=np.int64)
    index[valid] = np.arange(1, int(valid.sum()) + 1)
    rows, cols = np.nonzero(valid)
    sx, sy = scale
    cell = valid[:-1, :-1] & valid[1:, :-1] & valid[:-1, 1:] & valid[1:, 1:]
    a, b = index[:-1, :-1][cell], index[:-1, 1:][cell]  # (row, col), (row, col + 1)
    c, d = index[1:, :-1][cell], index[1:, 1:][cell]  # (row + 1, col), (row + 1, col + 1)
    tris = np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)])
    with open(path, "w", encoding="ascii") as fh:
        fh.write(f"# grid surface {w}x{h}, scale {sx} {sy}\n")
        np.savetxt(fh, points[valid], fmt="v %.9g %.9g %.9g")
        np.savetxt(fh, np.stack([cols / sx, rows / sy], 1), fmt="vt %.9g %.9g")
        if normals is not None:
            np.savetxt(fh, np.asarray(normals, dtype=np.float64)[valid],
                       fmt="vn %.9g %.9g %.9g")
            np.savetxt(fh, np.repeat(tris, 3, axis=1), fmt="f %d/%d/%d %d/%d/%d %d/%d/%d")
        else:
            np.savetxt(fh, np.repeat(tris, 2, axis=1), fmt="f %d/%d %d/%d %d/%d")
    return Path(path)


__all__ = ["ObjSurface", "parse_obj", "texture_size", "write_obj"]
