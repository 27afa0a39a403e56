"""tifxyz surfaces (scrollzarr.surfaces.tifxyz) against an independent reference:
scipy.ndimage.map_coordinates(order=1) for positions and validity, and a per-pixel loop
for the normals (central differences, one-sided at borders and holes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from scrollzarr.errors import ScrollError
from scrollzarr.surfaces import open_surface
from scrollzarr.surfaces.tifxyz import write_tifxyz


def wavy_grid(h: int = 6, w: int = 8, seed: int = 0) -> np.ndarray:
    """(h, w, 3) float32 points (x, y, z) of a curved, irregular surface, all Z > 0."""
    rng = np.random.default_rng(seed)
    j, i = np.mgrid[0:h, 0:w].astype(np.float64)
    x = 100 + 4.0 * i + 0.5 * j + rng.uniform(-0.4, 0.4, (h, w))
    y = 50 + 3.0 * np.sin(i / 2.0) + 2.5 * j + rng.uniform(-0.4, 0.4, (h, w))
    z = 10 + 2.0 * i + 5.0 * j + rng.uniform(-0.4, 0.4, (h, w))
    return np.stack([x, y, z], axis=-1).astype(np.float32)


def reference(points: np.ndarray, valid: np.ndarray, scale, height: int, width: int):
    """Independent reference render: (positions (h, w, 3), normals (h, w, 3), mapped)."""
    sx, sy = scale
    gr, gc = np.mgrid[0:height, 0:width].astype(np.float64)
    gr, gc = gr * sy, gc * sx
    n_rows, n_cols = valid.shape
    coords = [gr.ravel(), gc.ravel()]
    pos = np.stack([ndimage.map_coordinates(points[..., a].astype(np.float64), coords,
                                            order=1, mode="nearest")
                    for a in range(3)], axis=-1).reshape(height, width, 3)
    # a vertex takes part iff its bilinear weight is non-zero
    touches_bad = ndimage.map_coordinates((~valid).astype(np.float64), coords, order=1,
                                          mode="nearest").reshape(height, width) > 0
    ok = (gr <= n_rows - 1) & (gc <= n_cols - 1) & ~touches_bad
    normals = np.zeros((height, width, 3))
    mapped = np.zeros((height, width), dtype=bool)
    for r in range(height):
        for c in range(width):
            if not ok[r, c]:
                continue

            def derivative(dr: int, dc: int):
                before, after = (r - dr, c - dc), (r + dr, c + dc)
                has_b = 0 <= before[0] < height and 0 <= before[1] < width and ok[before]
                has_a = 0 <= after[0] < height and 0 <= after[1] < width and ok[after]
                if has_b and has_a:
                    return (pos[after] - pos[before]) / 2
                if has_a:
                    return pos[after] - pos[r, c]
                if has_b:
                    return pos[r, c] - pos[before]
                return None

            d_c, d_r = derivative(0, 1), derivative(1, 0)
            if d_c is None or d_r is None:
                continue
            n = np.cross(d_c, d_r)
            if np.linalg.norm(n) > 0:
                normals[r, c] = n / np.linalg.norm(n)
                mapped[r, c] = True
    return pos, normals, mapped


def read_all(surface, block: tuple[int, int] | None = None):
    """The whole render of ``surface``, read in blocks of (rows, cols) when given."""
    if block is None:
        return surface.read_tile(0, surface.height, 0, surface.width)
    data = np.zeros((surface.height, surface.width, 6))
    mapped = np.zeros((surface.height, surface.width), dtype=bool)
    for v0 in range(0, surface.height, block[0]):
        for u0 in range(0, surface.width, block[1]):
            v1, u1 = min(v0 + block[0], surface.height), min(u0 + block[1], surface.width)
            data[v0:v1, u0:u1], mapped[v0:v1, u0:u1] = surface.read_tile(v0, v1, u0, u1)
    return data, mapped


@pytest.mark.parametrize("block", [None, (5, 7), (1, 1)])
def test_positions_normals_and_holes_match_the_independent_reference(tmp_path, block):
    points = wavy_grid()
    valid = np.ones(points.shape[:2], dtype=bool)
    points[2, 3] = -1  # the invalid sentinel
    valid[2, 3] = False
    points[4, 6, 2] = 0.0  # Z <= 0: invalid though X, Y look fine
    valid[4, 6] = False
    mask = np.ones((12, 16), dtype=bool)  # mask.tif at twice the grid's resolution
    mask[1, 9] = False  # one mask pixel of vertex (0, 4) drops it
    valid[0, 4] = False
    scale = (0.25, 0.5)  # 4 render columns and 2 render rows per grid cell
    write_tifxyz(tmp_path / "s", points, scale, mask=mask)
    with open_surface(tmp_path / "s") as surface:
        assert (surface.height, surface.width) == (12, 32)  # floor(6 / 0.5), floor(8 / 0.25)
        data, mapped = read_all(surface, block)
        assert data.dtype == np.float64 and data.shape == (12, 32, 6)
    pos, normals, want = reference(points, valid, scale, 12, 32)
    np.testing.assert_array_equal(mapped, want)
    assert want.sum() > 150 and (~want).sum() > 100  # holes, edges and the far border
    np.testing.assert_allclose(data[mapped][:, 0:3], pos[want], rtol=0, atol=1e-9)
    np.testing.assert_allclose(data[mapped][:, 3:6], normals[want], rtol=0, atol=1e-9)
    assert np.all(data[~mapped] == 0)  # unmapped pixels are zeros, as in a .ppm


def test_scale_0_05_puts_every_20th_pixel_exactly_on_a_vertex_and_ends_at_the_last(tmp_path):
    points = wavy_grid(3, 4)
    write_tifxyz(tmp_path / "s", points, (0.05, 0.05))
    with open_surface(tmp_path / "s") as surface:
        assert (surface.height, surface.width) == (60, 80)
        data, mapped = surface.read_tile(0, 60, 0, 80)
    rows, cols = np.mgrid[0:3, 0:4]
    np.testing.assert_array_equal(data[20 * rows, 20 * cols, 0:3], points)
    assert mapped[:41, :61].all()  # up to and including the last vertex row and column
    assert not mapped[41:].any() and not mapped[:, 61:].any()  # past them: unmapped


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "int32", "uint32",
                                   "float64", "int8"])
def test_integer_and_float64_coordinate_images_render_like_float32(tmp_path, dtype):
    j, i = np.mgrid[0:5, 0:6]
    points = np.stack([3 * i + 1, 2 * j + 5, 4 * j + i + 1], axis=-1).astype(np.float32)
    write_tifxyz(tmp_path / "f32", points, (0.5, 0.5))
    d = tmp_path / dtype
    d.mkdir()
    for axis, name in enumerate("xyz"):  # tiled and compressed, as VC3D writes them
        tifffile.imwrite(d / f"{name}.tif", points[..., axis].astype(dtype), tile=(16, 16),
                         compression="zlib")
    (d / "meta.json").write_text(json.dumps({"format": "tifxyz", "scale": [0.5, 0.5]}))
    with open_surface(tmp_path / "f32") as a, open_surface(d) as b:
        got, want = b.read_tile(0, b.height, 0, b.width), a.read_tile(0, a.height, 0, a.width)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


def test_flip_normals_reverses_the_normals_only(tmp_path):
    write_tifxyz(tmp_path / "s", wavy_grid(), (0.5, 0.5))
    with open_surface(tmp_path / "s") as a, open_surface(tmp_path / "s",
                                                         flip_normals=True) as b:
        (da, ma), (db, mb) = a.read_tile(0, 12, 0, 16), b.read_tile(0, 12, 0, 16)
    np.testing.assert_array_equal(ma, mb)
    np.testing.assert_array_equal(db[..., 0:3], da[..., 0:3])
    np.testing.assert_array_equal(db[ma][:, 3:6], -da[ma][:, 3:6])


# --- bad and partial inputs: one line naming the file or field ---------------------------

def _good(d):
    write_tifxyz(d, wavy_grid(4, 5), (0.5, 0.5))


def _meta(d, doc):
    (d / "meta.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))


BAD = {
    "no meta.json": (lambda d: (d / "meta.json").unlink(), "meta.json: missing"),
    "meta not json": (lambda d: _meta(d, "{format: tifxyz"), "meta.json: not valid JSON"),
    "meta not object": (lambda d: _meta(d, [1, 2]), "meta.json: must hold a JSON object"),
    "no format": (lambda d: _meta(d, {"scale": [1, 1]}), "no \"format\" field"),
    "other format": (lambda d: _meta(d, {"format": "ppm", "scale": [1, 1]}),
                     "\"format\" is 'ppm'"),
    "no scale": (lambda d: _meta(d, {"format": "tifxyz"}), "no \"scale\" field"),
    "one scale": (lambda d: _meta(d, {"format": "tifxyz", "scale": [0.05]}),
                  "\"scale\" is [0.05]"),
    "zero scale": (lambda d: _meta(d, {"format": "tifxyz", "scale": [0, 1]}),
                   "expected two positive numbers"),
    "no y.tif": (lambda d: (d / "y.tif").unlink(), "y.tif: missing"),
    "z.tif other size": (lambda d: tifffile.imwrite(d / "z.tif", np.ones((4, 6), "f4")),
                         "z.tif: is 6x4 (width x height), x.tif is 5x4"),
    "x.tif rgb": (lambda d: tifffile.imwrite(d / "x.tif", np.ones((4, 5, 3), "u1"),
                                             photometric="rgb"),
                  "x.tif: has 3 samples per pixel"),
    "x.tif int64": (lambda d: tifffile.imwrite(d / "x.tif", np.ones((4, 5), "i8")),
                    "x.tif: samples of type int64 are not accepted"),
    "x.tif not tiff": (lambda d: (d / "x.tif").write_bytes(b"not a tiff"),
                       "x.tif: cannot read TIFF"),
    "nan vertex": (lambda d: tifffile.imwrite(
        d / "y.tif", np.where(np.arange(20).reshape(4, 5) == 7, np.nan, 1).astype("f4")),
        "vertex row 1, column 2 holds non-finite"),
    "mask not a multiple": (lambda d: tifffile.imwrite(d / "mask.tif",
                                                      np.full((6, 7), 255, "u1")),
                            "mask.tif: mask is 7x6 (width x height), not the 5x4 grid"),
    "tiny scale": (lambda d: _meta(d, {"format": "tifxyz", "scale": [1000, 1000]}),
                   "renders to 0x0 pixels"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_wrong_or_partial_tifxyz_is_one_line_naming_the_file_or_field(tmp_path, case):
    d = tmp_path / "seg"
    _good(d)
    make_bad, message = BAD[case]
    make_bad(d)
    with pytest.raises(ScrollError) as err:
        open_surface(d)
    text = str(err.value)
    assert message in text and "\n" not in text
    assert str(d) in text


def test_a_surface_on_one_slice_stays_exactly_on_it(tmp_path):
    """Interpolated z is exactly the slice (not a rounding error beside it): a segment
    on the volume's last slice must not fall out of the volume."""
    points = wavy_grid(5, 7)
    points[..., 2] = 21.0
    write_tifxyz(tmp_path / "s", points, (0.05, 0.05))
    with open_surface(tmp_path / "s") as surface:
        data, mapped = surface.read_tile(0, surface.height, 0, surface.width)
    assert mapped.sum() == 81 * 121
    assert np.all(data[mapped][:, 2] == 21.0)


def test_a_huge_render_is_read_tile_by_tile_without_render_sized_memory(tmp_path):
    """A 50 x 60 grid at scale 0.001 renders to 50,000 x 60,000 pixels (144 GB as .ppm
    data): a tile must cost only its own pixels."""
    write_tifxyz(tmp_path / "s", wavy_grid(50, 60), (0.001, 0.001))
    with open_surface(tmp_path / "s") as surface:
        assert (surface.height, surface.width) == (50_000, 60_000)
        data, mapped = surface.read_tile(31_000, 31_050, 45_000, 45_040)
    assert data.shape == (50, 40, 6) and mapped.all()
