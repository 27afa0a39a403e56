"""The hardening rules of issue 12 for scroll_to_ome, decompress_tiffs and the library:
outputs never equal, contain or lie inside inputs; only our own files are replaced; the
slice scan costs memory in files, not in the span of numbers; odd names and entries are
named; numbers are finite; max/mode levels sit at block centres."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from conftest import random_volume, run_script, snapshot, write_stack

from scrollzarr import convert, ngff, safety, slices
from scrollzarr.decompress import MADE_NAME
from scrollzarr.errors import ScrollError


# ------------------------------------------------------------------ check_output_paths
def _layout(t: Path) -> None:
    (t / "in" / "sub").mkdir(parents=True)
    (t / "other").mkdir()
    (t / "link").symlink_to(t / "in")


RELATIONS = [  # output, input, expected words (None: allowed)
    ("in", "in", "is"),
    ("in/sub", "in", "lies inside"),
    ("in/new/deeper", "in", "lies inside"),  # need not exist
    (".", "in", "contains"),
    ("link", "in", "is"),
    ("link/sub/x.zarr", "in", "lies inside"),
    ("in/../other", "in", None),
    ("other/o.zarr", "in", None),
    ("in-2", "in", None),  # a name that starts like the input is no child of it
]


@pytest.mark.parametrize("out, src, words", RELATIONS)
def test_check_output_paths_refuses_equal_inside_and_containing(tmp_path, out, src, words):
    _layout(tmp_path)
    o, i = tmp_path / out, tmp_path / src
    if words is None:
        safety.check_output_paths({"OUT": o}, {"IN": i})
        return
    with pytest.raises(ScrollError) as info:
        safety.check_output_paths({"OUT": o}, {"IN": i})
    assert str(info.value) == f"OUT {o} {words} IN {i}: choose an output outside every input"


def test_check_output_paths_compares_urls_and_outputs_among_themselves(tmp_path):
    with pytest.raises(ScrollError, match="lies inside"):
        safety.check_output_paths({"OUT": "s3://b/scan/o.zarr"}, {"IN": "s3://b/scan/"})
    safety.check_output_paths({"OUT": "s3://b/o.zarr"}, {"IN": tmp_path})
    safety.check_output_paths({"OUT": "s3://b/scan2"}, {"IN": "s3://b/scan"})
    with pytest.raises(ScrollError, match="OUT_DIR .* is also STACK: give each output its own path"):
        safety.check_output_paths({"OUT_DIR": tmp_path / "a", "STACK": tmp_path / "a"}, {})


def test_check_output_paths_sees_a_hard_link_of_an_input_file(tmp_path):
    (tmp_path / "seg.ppm").write_bytes(b"x")
    os.link(tmp_path / "seg.ppm", tmp_path / "other.ppm")
    with pytest.raises(ScrollError, match="other.ppm is PPM"):
        safety.check_output_paths({"STACK": tmp_path / "other.ppm"},
                                  {"PPM": tmp_path / "seg.ppm"})


# ------------------------------------------------------------------ slice scanning
def test_gaps_are_runs_computed_from_the_sorted_numbers():
    assert slices.gaps([0, 1, 4, 5, 9]) == [(2, 3), (6, 8)]
    assert slices.gaps([0, 1, 10**12]) == [(2, 10**12 - 1)]
    assert slices.format_gaps([(2, 3), (6, 6)]) == "2-3, 6"
    runs = [(i * 3, i * 3 + 1) for i in range(30)]
    assert slices.format_gaps(runs, most=2) == "0-1, 3-4, ... (60 in all)"


def _peak(directory: Path) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(ScrollError, match="missing slices"):
            slices.find_slices(directory)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_far_slice_number_costs_no_more_memory_than_an_ordinary_gap(tmp_path):
    near, far = write_stack(tmp_path / "near", random_volume((6, 4, 5))), None
    far = shutil.copytree(near, tmp_path / "far")
    (near / "00005.tif").rename(near / "00009.tif")  # a gap of 3
    (far / "00005.tif").rename(far / "1000000000000.tif")  # a gap of 10^12 - 5
    _peak(near)  # warm up imports and caches
    assert _peak(far) < 2 * _peak(near) + 200_000


def test_a_name_that_is_not_utf8_converts_and_prints(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    volume = random_volume((3, 6, 7), seed=9)
    for z, plane in enumerate(volume):
        tifffile.imwrite(os.fsdecode(os.fsencode(str(src)) + b"/\xff\xfe_%05d.tif" % z),
                         plane)
    out = tmp_path / "o.zarr"
    proc = run_script("scroll_to_ome.py", src, out, "--nlevels", "2",
                      env={"LC_ALL": "C", "PYTHONIOENCODING": ""})
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(zarr.open_array(str(out / "0"), mode="r")[:], volume)
    # an error naming such a file prints its bytes as \xNN, not a UnicodeEncodeError
    tifffile.imwrite(os.fsdecode(os.fsencode(str(src)) + b"/\xfa_00001.tif"), volume[0])
    bad = run_script("scroll_to_ome.py", src, tmp_path / "p.zarr", env={"LC_ALL": "C"})
    assert bad.returncode == 1 and "UnicodeEncodeError" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == (
        f"error: {src}/\\xff\\xfe_00001.tif: duplicate slice number 1 (also "
        "\\xfa_00001.tif)")


# ------------------------------------------------------------------ option values
def test_a_chunk_larger_than_the_volume_is_clamped_with_a_note(tmp_path):
    src = write_stack(tmp_path / "in", random_volume((5, 6, 9), seed=2))
    proc = run_script("scroll_to_ome.py", src, tmp_path / "o.zarr", "--chunk_size",
                      "1000000", "--nlevels", "3", "--max_gb", "1")
    assert proc.returncode == 0, proc.stderr
    assert ("note: --chunk_size 1000000 is larger than the volume (largest axis 9 "
            "voxels); using 16") in proc.stderr
    for level in range(3):
        meta = json.loads((tmp_path / "o.zarr" / str(level) / ".zarray").read_text())
        assert meta["chunks"] == [16, 16, 16]


def test_library_callers_get_a_scroll_error_for_non_finite_numbers(tmp_path):
    src = write_stack(tmp_path / "in", random_volume((2, 4, 4)))
    for field, value in (("voxel_size", float("inf")), ("voxel_size", float("nan")),
                         ("max_gb", float("nan")), ("chunk_size", float("inf"))):
        with pytest.raises(ScrollError, match=f"--{field}"):
            convert.convert(src, tmp_path / "o.zarr", convert.Options(**{field: value}))
    with pytest.raises(ScrollError, match="--voxel_size inf"):
        ngff.level_transform(1, "mean", voxel_size=float("inf"))
    assert not (tmp_path / "o.zarr").exists()


def test_out_of_memory_does_not_advise_a_plain_resume():
    message = str(convert._disk_error("o.zarr", OSError(errno.ENOMEM, "Cannot allocate")))
    assert message.startswith("o.zarr: out of memory; lower --max_gb")
    assert "run the same command with --resume" not in message


# ------------------------------------------------------------------ metadata
@pytest.mark.parametrize("algorithm, shifted", [("max", True), ("mode", True),
                                                ("mean", True), ("nearest", False)])
def test_block_levels_sit_at_block_centres(tmp_path, algorithm, shifted):
    src = write_stack(tmp_path / "in", random_volume((8, 8, 8), seed=1))
    run_script("scroll_to_ome.py", src, tmp_path / "o.zarr", "--algorithm", algorithm,
               "--nlevels", "3", "--quiet", check=True)
    attrs = json.loads((tmp_path / "o.zarr" / ".zattrs").read_text())
    for level, d in enumerate(attrs["multiscales"][0]["datasets"]):
        translation = d["coordinateTransformations"][1]["translation"]
        assert translation == [(2 ** level - 1) / 2 if shifted else 0.0] * 3


# ------------------------------------------------------------------ decompress_tiffs
def _dec_stack(t: Path) -> Path:
    return write_stack(t / "in", random_volume((3, 6, 7), seed=4), compression="zlib")


def dcase_out_inside_in(t):
    d = _dec_stack(t)
    return [d, d / "out"], f"OUT_DIR {d / 'out'} lies inside IN_DIR {d}: choose an " \
        "output outside every input", 1


def dcase_out_contains_in(t):
    d = _dec_stack(t)
    return [d, t], f"OUT_DIR {t} contains IN_DIR {d}: choose an output outside every " \
        "input", 1


def dcase_foreign_file(t):
    d = _dec_stack(t)
    (t / "out").mkdir()
    (t / "out" / "00001.tif").write_text("my own file, not an output")
    return [d, t / "out"], f"{t / 'out' / '00001.tif'}: exists and was not written by " \
        "decompress_tiffs.py; not replacing it (move it away or choose another OUT_DIR)", 1


def dcase_foreign_file_overwrite(t):
    d = _dec_stack(t)
    (t / "out").mkdir()
    tifffile.imwrite(t / "out" / "00002.tif", np.zeros((6, 7), np.uint16))  # complete
    return [d, t / "out", "--overwrite"], f"{t / 'out' / '00002.tif'}: exists and was not " \
        "written by decompress_tiffs.py; not replacing it (move it away or choose " \
        "another OUT_DIR)", 1


def dcase_fifo(t):
    d = _dec_stack(t)
    os.mkfifo(d / "00007.tif")
    return [d, t / "out"], f"{d / '00007.tif'} is a FIFO (named pipe): named like a slice " \
        "but not a regular file (rename or remove it)", 1


def dcase_directory(t):
    d = _dec_stack(t)
    (d / "sub.tif").mkdir()
    return [d, t / "out"], f"{d / 'sub.tif'} is a directory: named like a slice but not " \
        "a regular file (rename or remove it)", 1


DECOMPRESS_CASES = {
    "OUT_DIR inside IN_DIR": dcase_out_inside_in,
    "OUT_DIR containing IN_DIR": dcase_out_contains_in,
    "a file of the user's in OUT_DIR": dcase_foreign_file,
    "--overwrite of a file of the user's": dcase_foreign_file_overwrite,
    "FIFO named like a TIFF": dcase_fifo,
    "directory named like a TIFF": dcase_directory,
}


@pytest.mark.parametrize("name", list(DECOMPRESS_CASES))
def test_decompress_refuses_with_one_line_and_changes_nothing(tmp_path, name):
    args, expected, code = DECOMPRESS_CASES[name](tmp_path)
    before = snapshot(tmp_path)
    proc = run_script("decompress_tiffs.py", *args)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: {expected}"
    after = snapshot(tmp_path)
    if (tmp_path / "out").exists() and not before.get(str(tmp_path / "out")):
        after.pop(str(tmp_path / "out"), None)  # an empty OUT_DIR it created is all
    assert after == before, "a refused run changed files"


def test_decompress_overwrite_replaces_only_its_own_outputs(tmp_path):
    d = _dec_stack(tmp_path)
    out = tmp_path / "out"
    run_script("decompress_tiffs.py", d, out, "--quiet", check=True)
    made = (out / MADE_NAME).read_bytes().split(b"\0")
    assert sorted(n for n in made if n) == [b"00000.tif", b"00001.tif", b"00002.tif"]
    (out / "notes.tif").write_text("mine")  # not an input name: never touched
    before = {n: (out / n).stat().st_ino for n in ("00000.tif", "notes.tif")}
    proc = run_script("decompress_tiffs.py", d, out, "--overwrite", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert (out / "00000.tif").stat().st_ino != before["00000.tif"]  # replaced: ours
    assert (out / "notes.tif").read_text() == "mine"
