"""Reading, checking and writing .ppm segments (scrollzarr.ppm)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scrollzarr.errors import ScrollError
from scrollzarr.ppm import Ppm, mask_path, read_header, write_mask, write_ppm

REPO = Path(__file__).resolve().parents[1]

GOOD_HEADER = b"width: 3\nheight: 2\ndim: 6\nordered: true\ntype: double\nversion: 1\n<>\n"


def segment_data(height: int = 2, width: int = 3) -> np.ndarray:
    """A small segment: distinct points, unit normals along +x."""
    data = np.zeros((height, width, 6))
    v, u = np.mgrid[0:height, 0:width]
    data[..., 0] = 10 + u
    data[..., 1] = 20 + v
    data[..., 2] = 30.5
    data[..., 3] = 1.0
    return data


def body(data: np.ndarray) -> bytes:
    return np.ascontiguousarray(data, dtype="<f8").tobytes()


def test_written_segment_reads_back_tile_by_tile(tmp_path):
    data = segment_data(5, 7)
    data[1, 2] = 0  # an unmapped pixel
    path = tmp_path / "seg.ppm"
    write_ppm(path, data)
    with Ppm(path) as ppm:
        assert (ppm.width, ppm.height, ppm.mask) == (7, 5, None)
        tile, mapped = ppm.read_tile(1, 4, 2, 6)
    np.testing.assert_array_equal(tile, data[1:4, 2:6])
    expected = np.ones((3, 4), bool)
    expected[0, 0] = False
    np.testing.assert_array_equal(mapped, expected)


def test_header_is_tolerant_of_order_comments_unknown_keys_and_crlf(tmp_path):
    data = segment_data()
    header = (b"# made by hand\r\n\r\nversion: 1\r\ntype: double\r\nheight: 2\r\n"
              b"some_new_key: whatever\r\nwidth: 3\r\n# no dim or ordered line\r\n<>\n")
    path = tmp_path / "seg.ppm"
    path.write_bytes(header + body(data))
    h = read_header(path)
    assert (h.width, h.height, h.body_offset) == (3, 2, len(header))
    with Ppm(path) as ppm:
        np.testing.assert_array_equal(ppm.read_tile(0, 2, 0, 3)[0], data)


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "binary data in the .ppm header"),
    (b"width: 3\nheight: 2\ndim: 6\n", "no '<>' line"),
    (b"width: 3\nheight 2\n<>\n", "bad .ppm header line"),
    (b"height: 2\n<>\n", "no 'width:' line"),
    (b"width: 3\n<>\n", "no 'height:' line"),
    (b"width: three\nheight: 2\n<>\n", "width: 'three' is not an integer"),
    (b"width: 0\nheight: 2\n<>\n", "width: 0 must be positive"),
    (b"width: 3\nheight: -2\n<>\n", "height: -2 must be positive"),
    (b"width: 3\nheight: 2\nwidth: 4\n<>\n", "gives width twice"),
    (b"width: 3\nheight: 2\ndim: 3\n<>\n", "dim: 3, only dim: 6"),
    (b"width: 3\nheight: 2\ntype: float\n<>\n", "type: float, only type: double"),
    (b"width: 3\nheight: 2\nordered: false\n<>\n", "ordered: false, only ordered: true"),
    (GOOD_HEADER + b"\0" * (288 - 8), "body is 280 bytes, header 3x2 needs exactly 288 "
     "(truncated)"),
    (GOOD_HEADER + b"\0" * (288 + 1), "(trailing data)"),
    (GOOD_HEADER, "body is 0 bytes"),
])
def test_malformed_header_or_body_size_is_a_one_line_error_naming_the_file(
        tmp_path, content, message):
    path = tmp_path / "bad.ppm"
    path.write_bytes(content)
    with pytest.raises(ScrollError) as err:
        read_header(path)
    text = str(err.value)
    assert message in text
    assert str(path) in text and "\n" not in text


def test_missing_ppm_file_is_an_error(tmp_path):
    with pytest.raises(ScrollError, match="does not exist"):
        Ppm(tmp_path / "nope.ppm")


def test_nan_in_a_mapped_pixel_is_an_error_naming_the_pixel(tmp_path):
    data = segment_data(4, 5)
    data[2, 3, 1] = np.nan
    path = tmp_path / "nan.ppm"
    write_ppm(path, data)
    with Ppm(path) as ppm:
        ppm.read_tile(0, 2, 0, 5)  # the rows without the NaN are fine
        with pytest.raises(ScrollError, match=r"nan.ppm: pixel u=3, v=2 holds non-finite"):
            ppm.read_tile(0, 4, 0, 5)


def test_nan_in_a_pixel_the_mask_leaves_unmapped_is_ignored(tmp_path):
    data = segment_data(4, 5)
    data[2, 3] = np.nan
    path = tmp_path / "seg.ppm"
    write_ppm(path, data)
    mapped = np.ones((4, 5), bool)
    mapped[2, 3] = False
    write_mask(mask_path(path), mapped)
    with Ppm(path) as ppm:
        _, got = ppm.read_tile(0, 4, 0, 5)
    np.testing.assert_array_equal(got, mapped)


def test_mask_png_decides_which_pixels_are_mapped(tmp_path):
    data = segment_data(6, 21)  # every normal non-zero
    data[0, 0] = 0  # all zeros, but the mask says mapped: the mask wins
    path = tmp_path / "seg.ppm"
    write_ppm(path, data)
    mapped = np.random.default_rng(1).random((6, 21)) > 0.4
    mapped[0, 0] = True
    write_mask(mask_path(path), mapped)
    assert mask_path(path).name == "seg_mask.png"
    with Ppm(path) as ppm:
        assert ppm.mask_path == mask_path(path)
        # tiles not aligned to the 8-pixel packing
        for v0, v1, u0, u1 in [(0, 6, 0, 21), (1, 4, 3, 13), (2, 3, 9, 10), (0, 6, 16, 21)]:
            np.testing.assert_array_equal(ppm.read_tile(v0, v1, u0, u1)[1],
                                          mapped[v0:v1, u0:u1])


def test_rgba_mask_uses_colour_not_alpha(tmp_path):
    data = segment_data(2, 3)
    path = tmp_path / "seg.ppm"
    write_ppm(path, data)
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 3] = 255  # opaque everywhere
    rgba[0, 1, 0] = 255  # red: mapped
    rgba[1, 2, 2] = 7  # a little blue: mapped
    Image.fromarray(rgba).save(mask_path(path))
    with Ppm(path) as ppm:
        _, mapped = ppm.read_tile(0, 2, 0, 3)
    np.testing.assert_array_equal(mapped, [[False, True, False], [False, False, True]])


def test_mask_of_the_wrong_size_is_an_error(tmp_path):
    path = tmp_path / "seg.ppm"
    write_ppm(path, segment_data(2, 3))
    write_mask(mask_path(path), np.ones((3, 2), bool))
    with pytest.raises(ScrollError, match=r"seg_mask.png: mask is 2x3 .* the .ppm is 3x2"):
        Ppm(path)


def test_unreadable_mask_is_an_error(tmp_path):
    path = tmp_path / "seg.ppm"
    write_ppm(path, segment_data(2, 3))
    mask_path(path).write_bytes(b"not a png")
    with pytest.raises(ScrollError, match="cannot read mask PNG"):
        Ppm(path)


def test_script_reports_a_malformed_ppm_in_one_line_with_exit_1(tmp_path):
    path = tmp_path / "bad.ppm"
    path.write_bytes(b"width: 3\nheight: 2\n<>\n" + b"\0" * 100)
    proc = subprocess.run([sys.executable, str(REPO / "ppm_to_layers.py"), str(path),
                           str(tmp_path / "nostore.zarr"), str(tmp_path / "out"), "--quiet"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "bad.ppm: .ppm body is 100 bytes" in proc.stderr
    assert not (tmp_path / "out").exists()
