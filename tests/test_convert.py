"""scroll_to_ome: the store's pixels, layout and metadata, against independent references."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr_models.v04 import Image

from conftest import random_volume, run_script, write_stack
from reference import ref_pyramid
from scrollzarr import ngff
from scrollzarr.convert import Options, convert
from scrollzarr.errors import ScrollError


def read_level(store: Path, level: int | str) -> np.ndarray:
    return zarr.open_array(str(store / str(level)), mode="r")[:]


def convert_quiet(src, out, **kw) -> Path:
    convert(src, out, Options(quiet=True, **kw))
    return Path(out)


def chunk_files(array_dir: Path) -> list[Path]:
    return [p for p in array_dir.rglob("*") if p.is_file() and not p.name.startswith(".")]


@pytest.mark.parametrize("algorithm", ["mean", "nearest", "gaussian", "max", "mode"])
def test_every_level_matches_reference_on_odd_shape(tmp_path, stack_dir, algorithm):
    shape = (37, 45, 71) if algorithm != "mode" else (19, 23, 29)
    high = 65536 if algorithm != "mode" else 4  # labels: few values, many ties
    vol = random_volume(shape, seed=1, high=high)
    out = convert_quiet(stack_dir(vol), tmp_path / "o.zarr", chunk_size=16, nlevels=4,
                        algorithm=algorithm)
    for level, ref in enumerate(ref_pyramid(vol, 4, algorithm)):
        got = read_level(out, level)
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref, err_msg=f"level {level} ({algorithm})")


@pytest.mark.parametrize("algorithm", ["mean", "nearest", "max", "mode"])
def test_level0_tasks_that_also_write_level2_match_the_reference(tmp_path, stack_dir,
                                                                algorithm):
    from scrollzarr import spec as specs
    from scrollzarr.convert import _make_plan
    from scrollzarr.sources import open_input

    # odd edges on every axis, two level-1 parts per slab, a short odd last slab, several
    # bands per slab
    vol = random_volume((69, 90, 61), seed=11, high=65536 if algorithm != "mode" else 4)
    src = stack_dir(vol)
    options = Options(quiet=True, chunk_size=8, nlevels=5, algorithm=algorithm,
                      num_threads=2)
    source = open_input(src)
    job = specs.job(specs.full_spec(options, source, str(tmp_path / "o.zarr")), source)
    assert list(_make_plan(job, 0, None, 2, lambda s: None).written(0)) == [0, 1, 2]
    out = convert_quiet(src, tmp_path / "o.zarr", chunk_size=8, nlevels=5,
                        algorithm=algorithm, num_threads=2)
    for level, ref in enumerate(ref_pyramid(vol, 5, algorithm)):
        np.testing.assert_array_equal(read_level(out, level), ref,
                                      err_msg=f"level {level} ({algorithm})")


def test_large_odd_volume_level0_bit_exact_and_pyramid(tmp_path, stack_dir):
    vol = random_volume((130, 257, 301), seed=2)
    out = convert_quiet(stack_dir(vol), tmp_path / "o.zarr", chunk_size=64, nlevels=5)
    for level, ref in enumerate(ref_pyramid(vol, 5, "mean")):
        np.testing.assert_array_equal(read_level(out, level), ref)
    z = zarr.open_array(str(out / "0"), mode="r")
    assert z.chunks == (64, 64, 64) and z.shape == (130, 257, 301)
    assert [zarr.open_array(str(out / str(i)), mode="r").shape for i in range(5)] == [
        (130, 257, 301), (65, 129, 151), (33, 65, 76), (17, 33, 38), (9, 17, 19)]


def test_gaussian_has_no_seams_at_task_borders(tmp_path, stack_dir):
    # a small budget forces many y-bands: every band border must be invisible
    vol = random_volume((40, 200, 50), seed=3)
    out = convert_quiet(stack_dir(vol), tmp_path / "o.zarr", chunk_size=8, nlevels=3,
                        algorithm="gaussian", max_gb=0.002, num_threads=2)
    for level, ref in enumerate(ref_pyramid(vol, 3, "gaussian")):
        np.testing.assert_array_equal(read_level(out, level), ref)


def test_volume_smaller_than_one_chunk(tmp_path, stack_dir):
    vol = random_volume((3, 5, 7), seed=4)
    out = convert_quiet(stack_dir(vol), tmp_path / "o.zarr", chunk_size=16, nlevels=4)
    for level, ref in enumerate(ref_pyramid(vol, 4, "mean")):
        np.testing.assert_array_equal(read_level(out, level), ref)
    assert read_level(out, 3).shape == (1, 1, 1)


def test_v2_layout_matches_spec(tmp_path, stack_dir):
    vol = random_volume((20, 30, 40), seed=5)
    out = convert_quiet(stack_dir(vol), tmp_path / "o.zarr", chunk_size=16, nlevels=2)
    assert json.loads((out / ".zgroup").read_text()) == {"zarr_format": 2}
    meta = json.loads((out / "1" / ".zarray").read_text())
    assert meta["chunks"] == [16, 16, 16]
    assert meta["dtype"] == "<u2" and meta["fill_value"] == 0 and meta["order"] == "C"
    assert meta["compressor"] is None and meta["dimension_separator"] == "/"
    assert (out / "0" / "1" / "1" / "2").is_file()  # LEVEL/IZ/IY/IX
    assert (out / "0" / "1" / "1" / "2").stat().st_size == 16 ** 3 * 2


def test_masked_volume_writes_no_zero_chunks(tmp_path, stack_dir):
    vol = np.zeros((32, 48, 48), dtype=np.uint16)
    vol[18:30, 20:30, 5:12] = random_volume((12, 10, 7), seed=6)  # inside chunk (1,1,0)
    out = convert_quiet(stack_dir(vol), tmp_path / "o.zarr", chunk_size=16, nlevels=3)
    files = sorted(p.relative_to(out / "0").as_posix() for p in chunk_files(out / "0"))
    assert files == ["1/1/0"]
    np.testing.assert_array_equal(read_level(out, 0), vol)
    assert len(chunk_files(out / "1")) == 1


def test_ngff_metadata_validates_and_places_levels(tmp_path, stack_dir):
    vol = random_volume((20, 30, 40), seed=7)
    out = convert_quiet(stack_dir(vol), tmp_path / "o.zarr", chunk_size=16, nlevels=3,
                        voxel_size=7.91)
    Image.from_zarr(zarr.open_group(str(out), mode="r"))
    ms = json.loads((out / ".zattrs").read_text())["multiscales"][0]
    assert ms["version"] == "0.4"
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert all(a["unit"] == "micrometer" and a["type"] == "space" for a in ms["axes"])
    for level, ds in enumerate(ms["datasets"]):
        scale, trans = ds["coordinateTransformations"]
        assert ds["path"] == str(level)
        assert scale["scale"] == pytest.approx([7.91 * 2 ** level] * 3)
        assert trans["translation"] == pytest.approx([7.91 * (2 ** level - 1) / 2] * 3)


def test_nearest_levels_have_no_half_voxel_shift(tmp_path, stack_dir):
    vol = random_volume((8, 8, 8), seed=8)
    out = convert_quiet(stack_dir(vol), tmp_path / "o.zarr", chunk_size=4, nlevels=3,
                        algorithm="nearest")
    ms = json.loads((out / ".zattrs").read_text())["multiscales"][0]
    for ds in ms["datasets"]:
        assert ds["coordinateTransformations"][1]["translation"] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("ranges, crop", [
    ("3:20,,", (slice(None), slice(None), slice(3, 20))),
    (",5:17,", (slice(None), slice(5, 17), slice(None))),
    (",,2:9", (slice(2, 9), slice(None), slice(None))),
    ("-10:,:7,4:", (slice(4, None), slice(None, 7), slice(-10, None))),
])
def test_ranges_crop_each_axis_and_record_the_origin(tmp_path, stack_dir, ranges, crop):
    vol = random_volume((12, 21, 25), seed=9)
    out = convert_quiet(stack_dir(vol), tmp_path / "o.zarr", chunk_size=8, nlevels=2,
                        ranges=ranges)
    expected = vol[crop]
    np.testing.assert_array_equal(read_level(out, 0), expected)
    # the translation maps scroll voxel coordinates back onto the crop
    origin = [s.indices(n)[0] for s, n in zip(crop, vol.shape)]
    volume = ngff.open_volume(str(out))
    assert volume.to_index(np.array(origin, dtype=float)).tolist() == [0.0, 0.0, 0.0]
    level1 = ngff.open_volume(str(out), level=1)
    # level-1 voxel 0 is centred on scroll voxel origin + 0.5
    assert level1.to_index(np.array(origin, dtype=float) + 0.5).tolist() == [0.0, 0.0, 0.0]


def test_slice_numbers_are_absolute_z(tmp_path, stack_dir):
    vol = random_volume((5, 9, 10), seed=10)
    out = convert_quiet(stack_dir(vol, first=1000), tmp_path / "o.zarr", chunk_size=8,
                        nlevels=2)
    level0 = zarr.open_array(str(out / "0"), mode="r")
    assert level0.shape == (1005, 9, 10)
    np.testing.assert_array_equal(level0[1000:1005], vol)
    assert not level0[:1000].any()
    assert all(p.parts[-3] in {"125"} for p in chunk_files(out / "0"))  # z chunks 1000/8


def test_file_names_in_any_case_with_prefixes(tmp_path):
    vol = random_volume((4, 6, 7), seed=11)
    d = tmp_path / "s"
    d.mkdir()
    for i, name in enumerate(["slice_0010.tif", "slice_0011.TIF", "slice_0012.tiff",
                              "slice_0013.TIFF"]):
        tifffile.imwrite(d / name, vol[i])
    (d / "notes.txt").write_text("not a slice")
    out = convert_quiet(d, tmp_path / "o.zarr", chunk_size=4, nlevels=1)
    np.testing.assert_array_equal(read_level(out, 0)[10:14], vol)


@pytest.mark.parametrize("kwargs", [
    {"compression": "lzw", "rowsperstrip": 5},
    {"compression": "zlib", "tile": (16, 16)},
    {"compression": "zstd"},
    {"byteorder": ">"},
])
def test_compressed_and_big_endian_slices_read_exactly(tmp_path, stack_dir, kwargs):
    vol = random_volume((9, 37, 41), seed=12)
    # a tiny budget makes 8-row bands: strips and tiles are read partially
    out = convert_quiet(stack_dir(vol, **kwargs), tmp_path / "o.zarr", chunk_size=8,
                        nlevels=1, max_gb=0.00003)
    np.testing.assert_array_equal(read_level(out, 0), vol)


def test_obytes_1_divides_by_256(tmp_path, stack_dir):
    vol = random_volume((6, 10, 12), seed=13)
    out = convert_quiet(stack_dir(vol), tmp_path / "o.zarr", chunk_size=4, nlevels=2,
                        obytes=1)
    level0 = read_level(out, 0)
    assert level0.dtype == np.uint8
    np.testing.assert_array_equal(level0, (vol // 256).astype(np.uint8))
    np.testing.assert_array_equal(read_level(out, 1), ref_pyramid(vol // 256, 2, "mean")[1]
                                  .astype(np.uint8))


def test_zarr_only_writes_one_plain_array(tmp_path, stack_dir):
    vol = random_volume((6, 10, 12), seed=14)
    out = convert_quiet(stack_dir(vol), tmp_path / "o.zarr", chunk_size=4, zarr_only=True,
                        ranges=",,1:")
    assert (out / ".zarray").is_file() and not (out / ".zgroup").exists()
    arr = zarr.open_array(str(out), mode="r")
    np.testing.assert_array_equal(arr[:], vol[1:])
    assert ngff.open_volume(str(out)).to_index(np.array([1.0, 0, 0])).tolist() == [0, 0, 0]


def test_first_new_level_adds_levels_from_existing_store(tmp_path, stack_dir):
    vol = random_volume((33, 40, 50), seed=15)
    src = stack_dir(vol)
    out = convert_quiet(src, tmp_path / "o.zarr", chunk_size=8, nlevels=2)
    before = (out / "0" / "0" / "0" / "0").read_bytes()
    convert_quiet(src, out, chunk_size=8, nlevels=5, first_new_level=2)
    for level, ref in enumerate(ref_pyramid(vol, 5, "mean")):
        np.testing.assert_array_equal(read_level(out, level), ref)
    assert (out / "0" / "0" / "0" / "0").read_bytes() == before
    ms = json.loads((out / ".zattrs").read_text())["multiscales"][0]
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2", "3", "4"]
    Image.from_zarr(zarr.open_group(str(out), mode="r"))



def test_first_new_level_refuses_a_store_whose_levels_are_not_numbered(tmp_path):
    # another tool's store names its levels s0, s1, s2: levels are never looked up as
    # "0".."n", and adding ours would list them with numbering and transforms it lacks
    from zarr_inputs import write_store

    vol = random_volume((20, 24, 28), seed=17)
    out = write_store(tmp_path / "other.zarr", vol, paths=("s0", "s1", "s2"), chunks=8)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(ScrollError, match="named s0, s1, s2"):
        convert_quiet(tmp_path / "unused", out, nlevels=4, first_new_level=3)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_first_new_level_with_another_algorithm_keeps_per_level_placement(tmp_path, stack_dir):
    vol = random_volume((16, 16, 16), seed=16)
    src = stack_dir(vol)
    out = convert_quiet(src, tmp_path / "o.zarr", chunk_size=8, nlevels=2, voxel_size=2.0)
    convert_quiet(src, out, chunk_size=8, nlevels=3, first_new_level=2, algorithm="nearest")
    levels = ref_pyramid(vol, 2, "mean")
    np.testing.assert_array_equal(read_level(out, 2), levels[1][::2, ::2, ::2])
    ms = json.loads((out / ".zattrs").read_text())["multiscales"][0]
    assert ms["datasets"][1]["coordinateTransformations"][1]["translation"] == [1.0] * 3
    assert ms["datasets"][2]["coordinateTransformations"][1]["translation"] == [0.0] * 3
    assert ms["datasets"][2]["coordinateTransformations"][0]["scale"] == [8.0] * 3


def test_missing_slices_fail_unless_allowed(tmp_path):
    vol = random_volume((6, 5, 5), seed=17)
    d = write_stack(tmp_path / "s", vol)
    (d / "00002.tif").unlink()
    (d / "00003.tif").unlink()
    proc = run_script("scroll_to_ome.py", d, tmp_path / "o.zarr")
    assert proc.returncode == 1
    assert "missing slices 2-3" in proc.stderr and str(d) in proc.stderr
    assert not (tmp_path / "o.zarr").exists()
    proc = run_script("scroll_to_ome.py", d, tmp_path / "o.zarr", "--allow_missing",
                      "--chunk_size", "4", "--nlevels", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    got = read_level(tmp_path / "o.zarr", 0)
    assert not got[2:4].any()
    np.testing.assert_array_equal(got[[0, 1, 4, 5]], vol[[0, 1, 4, 5]])


def test_store_reads_back_with_plain_zarr_and_is_marked_complete(tmp_path, stack_dir):
    vol = random_volume((10, 10, 10), seed=18)
    out = convert_quiet(stack_dir(vol), tmp_path / "o.zarr", chunk_size=4, nlevels=2)
    group = zarr.open_group(str(out), mode="r")
    np.testing.assert_array_equal(group["0"][:], vol)
    assert group.attrs["scrollzarr"]["complete"] is True
