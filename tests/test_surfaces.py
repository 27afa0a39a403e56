"""open_surface across formats, --transform, the surface options, and the synthetic
sample's segment rendered from .ppm, tifxyz (scale 0.05 and 1.0) and .obj."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from conftest import run_script
from scrollzarr import cli, layers, sample
from scrollzarr.cache import ChunkCache
from scrollzarr.errors import ScrollError
from scrollzarr.ngff import open_volume
from scrollzarr.ppm import Ppm, write_mask, write_ppm
from scrollzarr.segment import write_sample_surfaces
from scrollzarr.surfaces import add_surface_arguments, open_surface, surface_options
from scrollzarr.surfaces.transform import read_transform


def analytic_segment(height=9, width=11):
    """(height, width, 6) .ppm data of the surface z = f(x, y) with exact unit normals,
    and its tangents along u and v ((h, w, 3) each)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = 20 + u, 30 + v
    z = 40 + 3 * np.sin(u / 3) + 0.2 * v * v
    t_u = np.stack([np.ones_like(u), np.zeros_like(u), np.cos(u / 3)], axis=-1)
    t_v = np.stack([np.zeros_like(u), np.ones_like(u), 0.4 * v], axis=-1)
    n = np.cross(t_u, t_v)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return np.concatenate([np.stack([x, y, z], axis=-1), n], axis=-1), t_u, t_v


MATRIX = np.array([[0.9, -0.3, 0.1, 12.5], [0.25, 1.1, 0.05, -7.0], [-0.1, 0.2, 1.3, 3.25]])


def write_json(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("rows", [3, 4])
def test_transform_maps_positions_by_m_and_normals_stay_perpendicular(tmp_path, rows):
    data, t_u, t_v = analytic_segment()
    write_ppm(tmp_path / "s.ppm", data)
    m = MATRIX if rows == 3 else np.vstack([MATRIX, [0, 0, 0, 1]])
    tf = write_json(tmp_path / "m.json", {"transformation_matrix": m.tolist(),
                                          "fixed": "scan A"})
    with open_surface(tmp_path / "s.ppm", transform=str(tf)) as surface:
        got, mapped = surface.read_tile(0, 9, 0, 11)
        assert tf in surface.inputs and tmp_path / "s.ppm" in surface.inputs
    assert mapped.all()
    a, t = MATRIX[:, :3], MATRIX[:, 3]
    np.testing.assert_allclose(got[..., 0:3], data[..., 0:3] @ a.T + t, rtol=0, atol=1e-12)
    # independent: the normal of the mapped surface is (A t_u) x (A t_v), det(A) > 0
    want = np.cross(t_u @ a.T, t_v @ a.T)
    want /= np.linalg.norm(want, axis=-1, keepdims=True)
    np.testing.assert_allclose(got[..., 3:6], want, rtol=0, atol=1e-12)


def test_transform_inv_applies_the_inverse_and_flip_normals_reverses(tmp_path):
    data, _, _ = analytic_segment()
    write_ppm(tmp_path / "s.ppm", data)
    tf = write_json(tmp_path / "m.json", {"transformation_matrix": MATRIX.tolist()})
    forward, inverse = read_transform(tf), read_transform(f"{tf}:inv")
    full = lambda m: np.vstack([m, [0, 0, 0, 1]])  # noqa: E731
    np.testing.assert_allclose(full(inverse) @ full(forward), np.eye(4), atol=1e-12)
    with open_surface(tmp_path / "s.ppm", transform=f"{tf}:inv", flip_normals=True) as s:
        got, _ = s.read_tile(0, 9, 0, 11)
    a, t = MATRIX[:, :3], MATRIX[:, 3]
    np.testing.assert_allclose(got[..., 0:3] @ a.T + t, data[..., 0:3], atol=1e-10)
    n = -(data[..., 3:6] @ a)  # inverse transpose of A^-1 is A^T: n @ A, then flipped
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    np.testing.assert_allclose(got[..., 3:6], n, atol=1e-12)


def test_transform_and_flip_leave_unmapped_ppm_pixels_alone(tmp_path):
    data, _, _ = analytic_segment()
    data[2:4, 3:6] = 0.0  # unmapped
    write_ppm(tmp_path / "s.ppm", data)
    mapped_png = np.ones((9, 11), dtype=bool)
    mapped_png[0, 0] = False  # the mask decides, not the normal
    write_mask(tmp_path / "s_mask.png", mapped_png & ~((np.arange(9)[:, None] // 2 == 1)
                                                        & (np.arange(11)[None] // 3 == 1)))
    tf = write_json(tmp_path / "m.json", {"transformation_matrix": MATRIX.tolist()})
    with Ppm(tmp_path / "s.ppm") as plain, open_surface(tmp_path / "s.ppm", transform=tf,
                                                        flip_normals=True) as placed:
        (d0, m0), (d1, m1) = plain.read_tile(0, 9, 0, 11), placed.read_tile(0, 9, 0, 11)
        assert tmp_path / "s_mask.png" in placed.inputs
    np.testing.assert_array_equal(m1, m0)
    np.testing.assert_array_equal(d1[~m0], d0[~m0])
    assert not np.array_equal(d1[m0], d0[m0])


BAD_TRANSFORMS = {
    "missing": (None, "--transform file does not exist"),
    "not json": ("[[1, 0", "--transform is not valid JSON"),
    "no key": ({"matrix": np.eye(3, 4).tolist()}, "has no \"transformation_matrix\""),
    "2x4": ({"transformation_matrix": np.eye(2, 4).tolist()}, "has shape 2x4"),
    "ragged": ({"transformation_matrix": [[1, 0, 0, 0], [0, 1, 0], [0, 0, 1, 0]]},
               "must be rows of 4 numbers"),
    "last row": ({"transformation_matrix": np.eye(4)[[0, 1, 2, 0]].tolist()},
                 "fourth row is [1.0, 0.0, 0.0, 0.0]"),
    "singular": ({"transformation_matrix": [[1, 2, 3, 0], [2, 4, 6, 0], [0, 0, 1, 0]]},
                 "is singular"),
    "nan": ('{"transformation_matrix": [[NaN, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]}',
            "non-finite"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRANSFORMS))
@pytest.mark.parametrize("suffix", ["", ":inv"])
def test_a_bad_transform_is_one_line_naming_the_file(tmp_path, case, suffix):
    doc, message = BAD_TRANSFORMS[case]
    write_ppm(tmp_path / "s.ppm", analytic_segment()[0])
    path = tmp_path / "m.json"
    if doc is not None:
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(ScrollError) as err:
        open_surface(tmp_path / "s.ppm", transform=f"{path}{suffix}")
    assert message in str(err.value) and f"{path}:" in str(err.value)
    assert "\n" not in str(err.value)


# --- recognising the format and the options ------------------------------------------------

def test_the_format_is_recognised_from_the_path(tmp_path):
    data, _, _ = analytic_segment()
    write_ppm(tmp_path / "s.ppm", data)
    with open_surface(tmp_path / "s.ppm") as surface:
        assert isinstance(surface, Ppm)  # untouched: the renderer's path today
        assert surface.inputs == (tmp_path / "s.ppm",)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    cases = {
        tmp_path / "gone.ppm": "gone.ppm: .ppm file does not exist",
        tmp_path / "gone.obj": "gone.obj: .obj file does not exist",
        tmp_path / "gone": "gone: surface does not exist",
        tmp_path / "notes.txt": "notes.txt: unknown surface format",
        tmp_path / "empty": "empty/meta.json: missing",
    }
    for path, message in cases.items():
        with pytest.raises(ScrollError, match=message.replace(".", r"\.")):
            open_surface(path)
    (tmp_path / "empty" / "meta.json").write_text("{}")
    with pytest.raises(ScrollError, match=r"give the tifxyz directory .*empty, not its"):
        open_surface(tmp_path / "empty" / "meta.json")
    for option in ({"flip_v": True}, {"width": 10}, {"height": 10}):
        with pytest.raises(ScrollError, match=r"--(flip_v|width|height) applies to .obj "
                                              r"surfaces only, .*s\.ppm is ppm"):
            open_surface(tmp_path / "s.ppm", **option)


def test_surface_arguments_parse_into_open_surface_options():
    parser = cli.Parser(prog="x")
    parser.add_argument("surface")
    add_surface_arguments(parser)
    args = parser.parse_args(["s.obj", "--flip-normals", "--flip_v", "--width", "640",
                              "--height", "480", "--transform", "m.json:inv"])
    assert surface_options(args) == {"flip_normals": True, "flip_v": True, "width": 640,
                                     "height": 480, "transform": "m.json:inv"}
    assert surface_options(parser.parse_args(["s.ppm"])) == {
        "flip_normals": False, "flip_v": False, "width": None, "height": None,
        "transform": None}
    for bad in (["--width", "0"], ["--height", "1.5"], ["--width", "nan"]):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(["s.obj", *bad])
        assert exc.value.code == 2


# --- the synthetic sample in every format ---------------------------------------------------

SHAPE = (22, 384, 384)  # (z, y, x); winding 5 has radii 145..173 voxels
WINDING = 5
LAYERS = 29  # far layers at +-14 voxels, about half the pitch (27.7): between windings


def render_surface_layers(surface, store: Path, number_of_layers: int) -> np.ndarray:
    """Every layer (N, height, width) of ``surface`` rendered from ``store`` by the
    current renderer, whichever of its entry points takes a surface object."""
    offsets = layers.layer_offsets(number_of_layers)
    if hasattr(layers, "render_tile"):  # today's renderer: its per-tile function
        volume = open_volume(str(store), None)
        cache = ChunkCache(volume.array, 1 << 28)
        dtype = np.dtype(volume.array.dtype).newbyteorder("<")
        out, _ = layers.render_tile(surface, volume, cache, 0, surface.height, 0,
                                    surface.width, offsets, dtype)
        return out
    with tempfile.TemporaryDirectory() as out:  # the rewritten one takes the object
        layers.render_layers(surface, store, out, number_of_layers=number_of_layers)
        return np.stack([tifffile.imread(Path(out) / name)
                         for name in layers.layer_names(number_of_layers)])


@pytest.fixture(scope="module")
def sample_renders(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    volume = np.stack([sample.make_slice(z, SHAPE) for z in range(SHAPE[0])])
    arr = zarr.create_array(store=str(root / "scroll.zarr"), shape=SHAPE,
                            chunks=(16, 64, 64), dtype=volume.dtype, zarr_format=2,
                            chunk_key_encoding={"name": "v2", "separator": "/"},
                            compressors=None, fill_value=0)
    arr[...] = volume
    paths, ink = write_sample_surfaces(root, SHAPE, winding=WINDING)
    out = {}
    for kind, path in paths.items():
        with open_surface(path) as surface:
            data, mapped = surface.read_tile(0, surface.height, 0, surface.width)
            out[kind] = (render_surface_layers(surface, root / "scroll.zarr", LAYERS),
                         data, mapped)
    return out, ink


def ink_correlation(layer, ink, where):
    return np.corrcoef(layer[where].astype(np.float64), ink[where])[0, 1]


def test_sample_ppm_surface_layer_shows_the_ink(sample_renders):
    renders, ink = sample_renders
    got, _, mapped = renders["ppm"]
    assert mapped.all()
    assert ink_correlation(got[LAYERS // 2], ink, mapped) < -0.8  # ink darkens the sheet
    for far in (0, LAYERS - 1):
        assert abs(ink_correlation(got[far], ink, mapped)) < 0.15


def test_sample_tifxyz_at_scale_1_matches_the_ppm_render_within_one_count(sample_renders):
    """Every .ppm pixel is a vertex: positions differ only by float32 rounding in x.tif..
    (< 1e-4 voxel), which moves a trilinear value by well under one count, so the surface
    layer may differ by 1 where the rounding crosses a .5. Normals are central differences
    one pixel apart: within 1/(2 R) of the exact ones (R = the spiral's radius of curvature;
    the one-sided ones at the first and last column are the farthest off)."""
    renders, ink = sample_renders
    ref, ref_data, ref_mapped = renders["ppm"]
    got, data, mapped = renders["tifxyz_1"]
    np.testing.assert_array_equal(mapped, ref_mapped)
    assert np.abs(data[..., 0:3] - ref_data[..., 0:3]).max() < 1e-4
    # the radius of curvature of the spiral is a hair below its radius: 0.99 r bounds it
    r_min = 0.99 * (sample.R0 + sample.geometry(SHAPE)["pitch"] * WINDING)
    assert np.abs(data[..., 3:6] - ref_data[..., 3:6]).max() < 1 / (2 * r_min)
    diff = np.abs(got[LAYERS // 2].astype(np.int64) - ref[LAYERS // 2])
    assert diff.max() <= 1
    assert ink_correlation(got[LAYERS // 2], ink, mapped) < -0.8


@pytest.mark.parametrize("kind", ["tifxyz", "obj"])
def test_sample_grid_every_20_voxels_matches_the_ppm_render_within_the_chord_error(
        sample_renders, kind):
    """One vertex every L = 20 voxels of arc: between vertices the surface is the chord
    of the spiral, at most its sagitta L^2 / (8 R) (0.34 voxel here) inside the .ppm's
    curve, and the tifxyz normal (of the chord) turns by at most L / (2 R). On the vertex
    columns positions agree to float32 rounding, so the surface layer there is within 1
    count (as at scale 1). Elsewhere values shift with the sheet's profile over that
    distance; the surface layers still correlate above 0.99, and the ink shows."""
    renders, ink = sample_renders
    ref, ref_data, ref_mapped = renders["ppm"]
    got, data, mapped = renders[kind]
    h, w = ref_mapped.shape
    last_row, last_col = 20 * ((h - 1) // 20), 20 * ((w - 1) // 20)
    expect = np.zeros(mapped.shape, dtype=bool)
    expect[:last_row + 1, :last_col + 1] = True  # up to the last vertex row and column
    np.testing.assert_array_equal(mapped, expect)
    h, w = min(h, mapped.shape[0]), min(w, mapped.shape[1])  # the common pixels
    m = mapped[:h, :w]
    got, data, ref, ref_data = got[:, :h, :w], data[:h, :w], ref[:, :h, :w], ref_data[:h, :w]
    r_min = 0.99 * (sample.R0 + sample.geometry(SHAPE)["pitch"] * WINDING)
    sagitta = 20 ** 2 / (8 * r_min)
    assert np.abs(data[m][:, 0:3] - ref_data[m][:, 0:3]).max() <= 1.05 * sagitta
    turn = 20 / (2 * r_min) if kind == "tifxyz" else 1e-3  # .obj: the .ppm's normals as vn
    assert np.abs(data[m][:, 3:6] - ref_data[m][:, 3:6]).max() <= 1.05 * turn
    surface, ref_surface = got[LAYERS // 2], ref[LAYERS // 2]
    on_vertex = m.copy()
    on_vertex[:, np.arange(w) % 20 != 0] = False  # columns 0, 20, 40, ...
    assert on_vertex.sum() > 500
    assert np.abs(surface[on_vertex].astype(np.int64) - ref_surface[on_vertex]).max() <= 1
    assert np.corrcoef(surface[m].astype(np.float64), ref_surface[m])[0, 1] > 0.99
    assert ink_correlation(surface, ink[:h, :w], m) < -0.8
    for far in (0, LAYERS - 1):
        assert abs(ink_correlation(got[far], ink[:h, :w], m)) < 0.15


def test_sample_obj_and_tifxyz_of_the_same_grid_give_the_same_positions(sample_renders):
    """The sample's grid cells are planar parallelograms, where bilinear (tifxyz) and
    barycentric (.obj) interpolation agree."""
    renders, _ = sample_renders
    _, tif, tif_mapped = renders["tifxyz"]
    _, obj, obj_mapped = renders["obj"]
    h, w = obj_mapped.shape
    np.testing.assert_array_equal(tif_mapped[:h, :w], obj_mapped)
    assert not tif_mapped[h:].any() and not tif_mapped[:, w:].any()
    # (up to the 9 significant digits of the .obj text)
    np.testing.assert_allclose(obj[..., 0:3], tif[:h, :w, 0:3], rtol=0, atol=1e-5)
    np.testing.assert_allclose(obj[..., 3:6], tif[:h, :w, 3:6], rtol=0, atol=0.1)


def test_make_sample_writes_the_segment_in_every_format(tmp_path):
    run_script("make_sample.py", tmp_path / "s", "--shape", "30,96,96", "--quiet",
               check=True)
    sizes = {}
    for name in ("segment.ppm", "segment_tifxyz", "segment_tifxyz_1", "segment.obj"):
        with open_surface(tmp_path / "s" / name) as surface:
            data, mapped = surface.read_tile(0, surface.height, 0, surface.width)
            assert mapped.any() and np.all(data[mapped][:, 2] >= 1)
            sizes[name] = (surface.height, surface.width)
    h, w = sizes["segment.ppm"]
    assert h == 29  # slices 1..29: tifxyz treats z <= 0 as invalid
    assert sizes["segment_tifxyz_1"] == (h, w)
    assert sizes["segment_tifxyz"] == (20 * math.ceil(h / 20), 20 * math.ceil(w / 20))
    assert sizes["segment.obj"] == (20 * ((h - 1) // 20) + 1, 20 * ((w - 1) // 20) + 1)


def test_a_mirroring_transform_keeps_normals_on_the_same_side_of_the_surface(tmp_path):
    """Through the inverse transpose a normal keeps pointing to the side it pointed to:
    the mapped normal and the mapped displacement along the old normal agree."""
    data, _, _ = analytic_segment()
    write_ppm(tmp_path / "s.ppm", data)
    mirror = np.array([[-1.0, 0, 0, 200], [0, 1, 0, 0], [0, 0, 1, 0]])
    tf = write_json(tmp_path / "m.json", {"transformation_matrix": mirror.tolist()})
    with open_surface(tmp_path / "s.ppm", transform=tf) as surface:
        got, _ = surface.read_tile(0, 9, 0, 11)
    moved = data[..., 3:6] @ mirror[:, :3].T  # where "one voxel along the normal" goes
    assert np.all((got[..., 3:6] * moved).sum(axis=-1) > 0.5)
