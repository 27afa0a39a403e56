"""--window: the uint8 mapping against a plain numpy reference, the option's text, and
the auto window's percentiles on volumes whose sampled histogram is known."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
import tifffile
import zarr

from conftest import random_volume, run_script
from reference import ref_pyramid
from scrollzarr.convert import Options, convert
from scrollzarr.errors import ScrollError
from scrollzarr.sources.volume_grid import open_volume_grid
from scrollzarr.window import (AutoWindow, Window, apply_window, auto_window,
                               histogram_percentile, parse_window)
from test_resume import store_bytes


def reference(values, lo, hi):
    """The issue's formula, written once in the plainest numpy."""
    v = np.asarray(values, dtype=np.float64)
    mapped = np.clip(np.round((v - lo) * 255 / (hi - lo)), 0, 255)  # np.round: half even
    mapped[v == 0] = 0
    return mapped.astype(np.uint8)


def windowed(values, lo, hi):
    values = np.asarray(values)
    return apply_window(values, lo, hi, np.empty(values.shape, np.uint8))


def test_every_uint16_value_maps_as_the_reference():
    values = np.arange(65536, dtype=np.uint16).reshape(16, 64, 64)
    for lo, hi in [(1000.5, 40000.0), (-300.0, 300.0), (0.0, 65535.0), (5000.0, 5000.25)]:
        np.testing.assert_array_equal(windowed(values, lo, hi), reference(values, lo, hi))


def test_edges_zero_lo_hi_below_and_above():
    lo, hi = 1000.0, 3000.0
    got = windowed(np.array([0, 1, 999, 1000, 2000, 3000, 3001, 65535], np.uint16), lo, hi)
    assert got.tolist() == [0, 0, 0, 0, 128, 255, 255, 255]  # 2000 -> 127.5 -> 128


def test_zero_stays_zero_where_the_window_maps_it_higher():
    # 0 lies mid-window: the formula gives 127.5 -> 128, masked background stays 0
    assert windowed(np.array([0, 1], np.int16), -1000.0, 1000.0).tolist() == [0, 128]
    assert windowed(np.array([0.0, -0.0, 1.0], np.float32), -1000.0, 1000.0).tolist() == \
        [0, 0, 128]


def test_halves_round_to_even():
    # (v - 0) * 255 / 510 = v / 2: odd v land on halves
    got = windowed(np.array([1, 3, 5, 7, 9], np.uint16), 0.0, 510.0)
    assert got.tolist() == [0, 2, 2, 4, 4]


def test_float_input_and_a_window_narrower_than_one():
    values = np.array([100.0, 100.125, 100.25, 100.375, 100.5, 99.9, 101.0, np.nan],
                      np.float64)
    got = windowed(values, 100.0, 100.5)
    assert got.tolist() == [0, 64, 128, 191, 255, 0, 255, 0]  # 63.75, 127.5, 191.25
    rng = np.random.default_rng(3)
    floats = rng.normal(500, 300, size=(7, 33, 65)).astype(np.float32)
    floats[0, 0, :5] = 0
    np.testing.assert_array_equal(windowed(floats, 100.0, 900.5),
                                  reference(floats, 100.0, 900.5))


def test_table_and_float_paths_agree_bit_for_bit():
    values = np.arange(65536, dtype=np.uint16)
    as_float = values.astype(np.float64)
    for lo, hi in [(17.3, 40123.9), (-1e6, 1e6), (65000.0, 65000.5)]:
        np.testing.assert_array_equal(windowed(values, lo, hi), windowed(as_float, lo, hi))
    values8 = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(windowed(values8, 10.0, 200.0), reference(values8, 10.0, 200.0))


def test_out_must_be_uint8_of_the_same_shape():
    with pytest.raises(ValueError):
        apply_window(np.zeros(4, np.uint16), 0, 1, np.empty(4, np.uint16))


@pytest.mark.parametrize("text, parsed", [
    ("100:2000", Window(100.0, 2000.0)), ("-5:3.5", Window(-5.0, 3.5)),
    ("10:10.5", Window(10.0, 10.5)), ("auto", AutoWindow(0.5, 99.5)),
    ("auto:1:99", AutoWindow(1.0, 99.0)), ("auto:0:100", AutoWindow(0.0, 100.0)),
])
def test_window_text_parses(text, parsed):
    assert parse_window(text) == parsed


@pytest.mark.parametrize("text, why", [
    ("2000:100", "LO must be below HI"), ("5:5", "LO must be below HI"),
    ("1:inf", "finite"), ("nan:3", "finite"), ("auto:5:200", "[0, 100]"),
    ("auto:-1:50", "[0, 100]"), ("auto:60:40", "P_LO must be below P_HI"),
    ("x", "expected LO:HI"), ("1:2:3", "expected LO:HI"), ("auto:1", "expected LO:HI"),
    ("", "expected LO:HI"),
])
def test_bad_window_text_names_the_option_and_the_text(text, why):
    with pytest.raises(ScrollError) as err:
        parse_window(text)
    assert str(err.value).startswith(f"--window {text}:") and why in str(err.value)


def test_histogram_percentile_equals_numpy():
    rng = np.random.default_rng(5)
    for _ in range(200):
        values = rng.integers(1, int(rng.integers(2, 300)), size=int(rng.integers(1, 80)))
        counts = np.bincount(values, minlength=65536)
        for p in [0.0, 0.5, 25.0, 50.0, 99.5, 100.0, float(rng.uniform(0, 100))]:
            assert histogram_percentile(counts, p) == np.percentile(values, p)


def _cells(directory, volume):
    """``volume`` (z, y, x, at most 500 on each axis) as a one-cell volume_grid."""
    directory.mkdir()
    tifffile.imwrite(directory / "cell_yxz_001_001_001.tif", volume, photometric="minisblack")
    return open_volume_grid(directory)


def _known_sample(shape, dtype, crop):
    """A volume whose every-4th voxels from the crop's corner hold 1..N (each once) and
    every other voxel a value far outside that range: only the sample decides."""
    volume = np.full(shape, 60000, dtype)
    (z0, z1), (y0, y1), (x0, x1) = crop
    sample = volume[z0:z1:4, y0:y1:4, x0:x1:4]
    sample[...] = np.arange(1, sample.size + 1).reshape(sample.shape)
    return volume, sample.size


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_auto_window_is_the_percentiles_of_the_sample(tmp_path, dtype):
    crop = ((3, 41), (2, 30), (1, 37))
    volume, n = _known_sample((44, 33, 40), dtype, crop)
    source = _cells(tmp_path / "cells", volume)
    got = auto_window(source, crop, 0.5, 99.5)
    sample = np.arange(1, n + 1)
    assert got == Window(*(float(np.percentile(sample, p)) for p in (0.5, 99.5)))
    assert got.lo == pytest.approx(1 + (n - 1) * 0.005) and got.hi == pytest.approx(n - (n - 1) * 0.005)
    # every 4th plane of the crop's rows (whole rows of the cell, 40 wide): no more
    planes = len(range(3, 41, 4))
    assert source.bytes_read == planes * 28 * 40 * np.dtype(dtype).itemsize


def test_auto_window_ignores_zeros(tmp_path):
    volume = np.zeros((8, 8, 8), np.uint16)
    volume[::4, ::4, ::4] = [[[0, 100], [0, 300]], [[0, 0], [0, 0]]]
    source = _cells(tmp_path / "cells", volume)
    assert auto_window(source, ((0, 8),) * 3, 0.0, 100.0) == Window(100.0, 300.0)


def test_auto_window_refuses_a_sample_without_data(tmp_path):
    volume = np.zeros((8, 8, 8), np.uint16)
    volume[1, 1, 1] = 7  # off the sampling grid
    source = _cells(tmp_path / "cells", volume)
    with pytest.raises(ScrollError, match="--window auto: no non-zero voxel"):
        auto_window(source, ((0, 8),) * 3, 0.5, 99.5)


def test_auto_window_refuses_a_constant_sample(tmp_path):
    source = _cells(tmp_path / "cells", np.full((8, 8, 8), 9, np.uint16))
    with pytest.raises(ScrollError, match="give the window as LO:HI"):
        auto_window(source, ((0, 8),) * 3, 0.5, 99.5)


# ---- conversions with --window

def _level(store, level):
    return zarr.open_array(store / str(level), mode="r")[:]


def _attributes(store):
    return json.loads((store / ".zattrs").read_text())


def _scan(stack_dir):
    volume = random_volume((37, 40, 44), seed=5)
    volume[:, :, 30:] = 0  # masked: stays 0 whatever the window
    return volume, stack_dir(volume)


def test_window_writes_uint8_level0_and_its_pyramid(tmp_path, stack_dir):
    volume, src = _scan(stack_dir)
    out = tmp_path / "o.zarr"
    run_script("scroll_to_ome.py", src, out, "--window", "1000:40000", "--chunk_size", "16",
               "--nlevels", "3", "--quiet", check=True)
    for level, expected in enumerate(ref_pyramid(reference(volume, 1000, 40000), 3, "mean")):
        got = _level(out, level)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected)
    attributes = _attributes(out)
    assert attributes["scrollzarr"]["window"] == {"lo": 1000.0, "hi": 40000.0,
                                                  "source_dtype": "uint16"}
    window = attributes["omero"]["channels"][0]["window"]
    assert (window["min"], window["max"]) == (0.0, 255.0) and window["end"] <= 255


def test_auto_window_of_a_crop_is_the_percentiles_of_its_sample(tmp_path, stack_dir):
    volume, src = _scan(stack_dir)
    out = tmp_path / "o.zarr"
    convert(src, out, Options(window="auto:2:98", ranges="3:41,5:,2:30",
                              chunk_size=16, nlevels=2, quiet=True))
    crop = volume[2:30, 5:, 3:41]
    sample = crop[::4, ::4, ::4]
    lo, hi = (float(v) for v in np.percentile(sample[sample != 0], [2, 98]))
    assert _attributes(out)["scrollzarr"]["window"] == {"lo": lo, "hi": hi,
                                                        "source_dtype": "uint16"}
    np.testing.assert_array_equal(_level(out, 0), reference(crop, lo, hi))


def test_resume_keeps_the_auto_window_of_the_first_run(tmp_path, stack_dir):
    _, src = _scan(stack_dir)
    options = ["--window", "auto", "--chunk_size", "8", "--nlevels", "3", "--max_gb",
               "0.00005", "--num_threads", "1"]
    (tmp_path / "ref").mkdir()
    run_script("scroll_to_ome.py", src, tmp_path / "ref" / "o.zarr", *options, "--quiet",
               check=True)
    out = tmp_path / "o.zarr"
    killed = run_script("scroll_to_ome.py", src, out, *options, "--quiet",
                        env={"SCROLLZARR_KILL_AT": "task:1", "SCROLLZARR_JOURNAL_SECONDS": "0"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run_script("scroll_to_ome.py", src, out, *options, "--resume",
                         env={"SCROLLZARR_PROGRESS_SECONDS": "0"})
    assert resumed.returncode == 0, resumed.stderr
    assert "--window auto: LO" in resumed.stderr and "recorded by the first run" in resumed.stderr
    assert "auto window sample" not in resumed.stderr  # not sampled again
    assert store_bytes(out) == store_bytes(tmp_path / "ref" / "o.zarr")


def test_window_with_obytes_2_names_both(tmp_path, stack_dir):
    _, src = _scan(stack_dir)
    refused = run_script("scroll_to_ome.py", src, tmp_path / "o.zarr", "--window", "1:2",
                         "--obytes", "2")
    assert refused.returncode == 1 and not (tmp_path / "o.zarr").exists()
    assert "--window" in refused.stderr and "--obytes 2" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_bad_window_on_the_command_line_is_one_line(tmp_path, stack_dir):
    _, src = _scan(stack_dir)
    refused = run_script("scroll_to_ome.py", src, tmp_path / "o.zarr", "--window", "9:3")
    assert refused.returncode != 0 and not (tmp_path / "o.zarr").exists()
    assert "--window 9:3: LO must be below HI" in refused.stderr


def test_new_levels_keep_the_recorded_window(tmp_path, stack_dir):
    _, src = _scan(stack_dir)
    out = tmp_path / "o.zarr"
    run_script("scroll_to_ome.py", src, out, "--window", "100:3000", "--chunk_size", "16",
               "--nlevels", "2", "--quiet", check=True)
    run_script("scroll_to_ome.py", src, out, "--first_new_level", "2", "--nlevels", "3",
               "--quiet", check=True)
    assert _attributes(out)["scrollzarr"]["window"] == {"lo": 100.0, "hi": 3000.0,
                                                        "source_dtype": "uint16"}
    assert _level(out, 2).dtype == np.uint8
    refused = run_script("scroll_to_ome.py", src, out, "--first_new_level", "2",
                         "--nlevels", "3", "--window", "1:2")
    assert refused.returncode == 1 and "--window cannot be combined with --first_new_level" \
        in refused.stderr
