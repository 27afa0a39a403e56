""".obj mesh surfaces (scrollzarr.surfaces.obj) against an independent reference: a
per-pixel loop over the faces in file order, solving for barycentric coordinates with
numpy.linalg.solve."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from scrollzarr.errors import ScrollError
from scrollzarr.surfaces import open_surface

# UVs in pixels of an irregular mesh: a quad (split into a fan), triangles of every
# orientation, one overlapping another (the first listed wins) and one partly past u = 0
UV = np.array([[0.0, 0.0], [12.5, 1.0], [13.0, 9.0], [1.0, 10.0], [24.0, 3.0],
               [20.0, 14.0], [6.0, 15.0], [30.0, 15.5], [-3.0, 12.0], [9.0, 13.0]])
FACES = [(0, 1, 2, 3), (1, 4, 2), (2, 4, 5), (3, 2, 6), (5, 4, 7), (3, 6, 8), (2, 5, 9)]


def positions(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([UV[:, 0] * 1.3 + 40, UV[:, 1] * 0.9 + 20,
                            30 + 2 * np.sin(UV[:, 0] / 4)]) + rng.uniform(-1, 1, (10, 3))


def normals(seed: int = 2) -> np.ndarray:
    n = np.random.default_rng(seed).normal(size=(10, 3)) + [0, 0, 3]
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def write_mesh(path, v, uv, vn=None, negative=False, mtllib=None):
    """Write an .obj of FACES; ``negative`` refers to vertices by negative indices."""
    lines = [f"mtllib {mtllib}"] if mtllib else []
    lines += ["# test mesh", "o mesh"]
    lines += [f"v {x:.17g} {y:.17g} {z:.17g}" for x, y, z in v]
    lines += [f"vt {a:.17g} {b:.17g}" for a, b in uv]
    if vn is not None:
        lines += [f"vn {x:.17g} {y:.17g} {z:.17g}" for x, y, z in vn]
    n = len(v)
    for face in FACES:
        refs = []
        for k in face:
            i = k - n if negative else k + 1
            refs.append(f"{i}/{i}/{i}" if vn is not None else f"{i}/{i}")
        lines.append("f " + " ".join(refs))
    path.write_text("\n".join(lines) + "\n")
    return path


def triangles():
    for face in FACES:
        for k in range(1, len(face) - 1):
            yield face[0], face[k], face[k + 1]


def reference(v, uv, corner_normals, height, width):
    """(positions, normals, mapped) by looping over pixels and faces in file order."""
    pos = np.zeros((height, width, 3))
    nrm = np.zeros((height, width, 3))
    mapped = np.zeros((height, width), dtype=bool)
    for r in range(height):
        for c in range(width):
            for tri in triangles():
                a, b, d = (uv[k] for k in tri)
                m = np.column_stack([b - a, d - a])
                if abs(np.linalg.det(m)) < 1e-12:
                    continue
                l1, l2 = np.linalg.solve(m, np.array([c, r], float) - a)
                lam = np.array([1 - l1 - l2, l1, l2])
                if (lam >= -1e-9).all():
                    pos[r, c] = lam @ v[list(tri)]
                    n = lam @ corner_normals[list(tri)]
                    nrm[r, c] = n / np.linalg.norm(n)
                    mapped[r, c] = True
                    break
    return pos, nrm, mapped


def face_normals_per_vertex(v):
    """Area-weighted vertex normals, summed face by face (plain loop)."""
    out = np.zeros_like(v)
    for a, b, d in triangles():
        n = np.cross(v[b] - v[a], v[d] - v[a])
        for k in (a, b, d):
            out[k] += n
    return out


def check(surface, v, uv, corner_normals):
    pos, nrm, want = reference(v, uv, corner_normals, surface.height, surface.width)
    data, mapped = surface.read_tile(0, surface.height, 0, surface.width)
    np.testing.assert_array_equal(mapped, want)
    assert want.sum() > 300 and (~want).sum() > 50
    np.testing.assert_allclose(data[mapped][:, 0:3], pos[want], rtol=0, atol=1e-9)
    np.testing.assert_allclose(data[mapped][:, 3:6], nrm[want], rtol=0, atol=1e-9)
    assert np.all(data[~mapped] == 0)
    # any tiling gives the same pixels (triangles are binned by render block)
    for v0, v1, u0, u1 in [(0, 5, 0, 7), (3, surface.height, 11, 29), (15, 16, 0, 31)]:
        tile, tmapped = surface.read_tile(v0, v1, u0, u1)
        np.testing.assert_array_equal(tmapped, mapped[v0:v1, u0:u1])
        np.testing.assert_array_equal(tile, data[v0:v1, u0:u1])


@pytest.mark.parametrize("negative", [False, True])
def test_pixel_uvs_with_vn_match_the_barycentric_reference(tmp_path, negative):
    v, n = positions(), normals()
    path = write_mesh(tmp_path / "m.obj", v, UV, n, negative=negative)
    with open_surface(path) as surface:
        assert (surface.width, surface.height) == (31, 16)  # floor(max u) + 1, floor(max v) + 1
        check(surface, v, UV, n)


def test_without_vn_normals_come_from_the_faces_around_each_vertex(tmp_path):
    v = positions()
    path = write_mesh(tmp_path / "m.obj", v, UV)
    with open_surface(path) as surface:
        check(surface, v, UV, face_normals_per_vertex(v))


def test_uvs_in_0_1_are_scaled_by_width_and_height_or_the_mtl_texture(tmp_path):
    v, n = positions(), normals()
    unit = (UV - UV.min(axis=0)) / (UV.max(axis=0) - UV.min(axis=0))  # every UV in [0, 1]
    path = write_mesh(tmp_path / "m.obj", v, unit, n, mtllib="m.mtl")
    (tmp_path / "m.mtl").write_text("newmtl papyrus\nKd 1 1 1\nmap_Kd tex.png\n")
    Image.new("L", (41, 23)).save(tmp_path / "tex.png")
    pixels = unit * [40, 22]  # u * (W - 1), v * (H - 1)
    with open_surface(path) as surface:
        assert (surface.width, surface.height) == (41, 23)
        assert tmp_path / "tex.png" in surface.inputs and tmp_path / "m.mtl" in surface.inputs
        check(surface, v, pixels, n)
    with open_surface(path, width=33, height=21) as surface:  # the options win
        assert (surface.width, surface.height) == (33, 21)
        check(surface, v, unit * [32, 20], n)
    with open_surface(path, flip_v=True) as surface:
        check(surface, v, np.column_stack([unit[:, 0], 1 - unit[:, 1]]) * [40, 22], n)


def test_flip_v_on_pixel_uvs_mirrors_the_rows(tmp_path):
    v, n = positions(), normals()
    path = write_mesh(tmp_path / "m.obj", v, UV, n)
    with open_surface(path, flip_v=True) as surface:
        assert surface.height == 16
        check(surface, v, np.column_stack([UV[:, 0], 15 - UV[:, 1]]), n)


# --- bad and partial inputs ---------------------------------------------------------------

GOOD = "v 0 0 1\nv 5 0 1\nv 0 5 1\nvt 0 0\nvt 5 0\nvt 0 5\n"
BAD = {
    "no faces": (GOOD, ".obj has no faces"),
    "face without vt": (GOOD + "f 1 2 3\n", "line 7: face corner '1' has no texture"),
    "face with v//vn": (GOOD + "vn 0 0 1\nf 1//1 2//1 3//1\n", "has no texture coordinate"),
    "vertex out of range": (GOOD + "f 1/1 2/2 4/3\n", "line 7: face refers to vertex 4"),
    "vt before definition": ("vt 0 0\nf 1/1 1/2 1/1\nv 0 0 0\n",
                             "line 2: face refers to vertex 1, only 0 defined"),
    "index zero": (GOOD + "f 0/1 2/2 3/3\n", "face refers to vertex 0"),
    "not a number": (GOOD.replace("v 5 0 1", "v 5 zero 1") + "f 1/1 2/2 3/3\n",
                     "a 'v' line holds something that is not a number"),
    "face index not a number": (GOOD + "f 1/1 2/2 3/3\nf 1/1 2/x 3/3\n",
                                "line 8: face index 'x' is not an integer"),
    "short v": (GOOD + "v 1 2\nf 1/1 2/2 3/3\n", "line 7: 'v' needs three numbers"),
    "two corners": (GOOD + "f 1/1 2/2\n", "a face needs three corners"),
    "unit uvs without size": ("v 0 0 1\nv 5 0 1\nv 0 5 1\nvt 0 0\nvt 1 0\nvt 0 1\n"
                              "f 1/1 2/2 3/3\n", "give --width and --height"),
    "mtl missing": ("mtllib gone.mtl\nv 0 0 1\nv 5 0 1\nv 0 5 1\nvt 0 0\nvt 1 0\nvt 0 1\n"
                    "f 1/1 2/2 3/3\n", "gone.mtl: the .mtl file that m.obj names"),
    "all negative": ("v 0 0 1\nv 5 0 1\nv 0 5 1\nvt -5 -5\nvt -2 -5\nvt -5 -2\n"
                     "f 1/1 2/2 3/3\n", "render of -1x-1 pixels"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_wrong_or_partial_obj_is_one_line_naming_the_file(tmp_path, case):
    text, message = BAD[case]
    (tmp_path / "m.obj").write_text(text)
    with pytest.raises(ScrollError) as err:
        open_surface(tmp_path / "m.obj")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(tmp_path) in str(err.value)


def test_an_mtl_naming_a_missing_texture_names_the_texture(tmp_path):
    (tmp_path / "m.obj").write_text("mtllib m.mtl\nv 0 0 1\nv 5 0 1\nv 0 5 1\nvt 0 0\n"
                                    "vt 1 0\nvt 0 1\nf 1/1 2/2 3/3\n")
    (tmp_path / "m.mtl").write_text("newmtl a\nmap_Kd -s 1 1 1 textures/t.tif\n")
    with pytest.raises(ScrollError, match=r"textures/t\.tif: the texture that m\.mtl names"):
        open_surface(tmp_path / "m.obj")


def test_a_mesh_on_one_slice_stays_exactly_on_it(tmp_path):
    v = positions()
    v[:, 2] = 21.0
    path = write_mesh(tmp_path / "m.obj", v, UV, normals())
    with open_surface(path) as surface:
        data, mapped = surface.read_tile(0, surface.height, 0, surface.width)
    assert mapped.sum() > 300 and np.all(data[mapped][:, 2] == 21.0)


def test_a_huge_render_is_read_tile_by_tile_without_render_sized_memory(tmp_path):
    v, n = positions(), normals()
    path = write_mesh(tmp_path / "m.obj", v, UV * 2000, n)  # 60,000 x 31,000 pixels
    with open_surface(path) as surface:
        assert (surface.width, surface.height) == (60_001, 31_001)
        data, mapped = surface.read_tile(10_000, 10_050, 10_000, 10_040)
    assert data.shape == (50, 40, 6) and mapped.all()
