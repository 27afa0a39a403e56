"""Bad input: each case gives one exact error line, a non-zero exit, and changes nothing."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import ROOT, random_volume, run_script, snapshot, write_stack


def good_stack(d: Path, n: int = 4, shape=(6, 7)) -> Path:
    return write_stack(d, random_volume((n,) + shape, seed=3))


# each case: (id, setup(tmp) -> (args, expected error line without "error: ", exit code))
def case_missing_dir(t):
    return [t / "nope", t / "o.zarr"], f"{t / 'nope'}: input directory does not exist", 1


def case_empty_dir(t):
    (t / "in").mkdir()
    return [t / "in", t / "o.zarr"], f"{t / 'in'}: no TIFF slices (*.tif, *.tiff) found", 1


def case_no_tiffs(t):
    (t / "in").mkdir()
    (t / "in" / "readme.txt").write_text("x")
    (t / "in" / "0001.png").write_bytes(b"x")
    return [t / "in", t / "o.zarr"], f"{t / 'in'}: no TIFF slices (*.tif, *.tiff) found", 1


def case_duplicate_numbers(t):
    d = good_stack(t / "in")
    shutil.copy(d / "00001.tif", d / "x_1.tif")
    return ([d, t / "o.zarr"],
            f"{d / 'x_1.tif'}: duplicate slice number 1 (also 00001.tif)", 1)


def case_gaps(t):
    d = good_stack(t / "in", n=8)
    for z in (2, 3, 6):
        (d / f"{z:05d}.tif").unlink()
    return ([d, t / "o.zarr"],
            f"{d}: missing slices 2-3, 6 (use --allow_missing to fill them with zeros)", 1)


def case_mixed_shapes(t):
    d = good_stack(t / "in")
    tifffile.imwrite(d / "00002.tif", np.zeros((8, 9), np.uint16))
    return ([d, t / "o.zarr"], f"{d / '00002.tif'}: slice shape 9x8 (width x height) "
            "differs from 7x6 of 00000.tif", 1)


def case_mixed_dtypes(t):
    d = good_stack(t / "in")
    tifffile.imwrite(d / "00003.tif", np.zeros((6, 7), np.uint8))
    return [d, t / "o.zarr"], f"{d / '00003.tif'}: slice dtype uint8 differs from uint16 " \
        "of 00000.tif", 1


def case_truncated_tiff(t):
    d = good_stack(t / "in", shape=(60, 70))
    p = d / "00001.tif"
    data = p.read_bytes()
    # keep the header (tifffile writes it first) but cut the pixel data short
    p.write_bytes(data[:2000])
    return [d, t / "o.zarr"], f"{p}: truncated TIFF (pixel data ends past the file's " \
        "2000 bytes)", 1


def case_zero_byte_tiff(t):
    d = good_stack(t / "in")
    (d / "00002.tif").write_bytes(b"")
    return [d, t / "o.zarr"], f"{d / '00002.tif'}: empty file (0 bytes)", 1


def case_rgb_tiff(t):
    d = good_stack(t / "in")
    tifffile.imwrite(d / "00001.tif", np.zeros((6, 7, 3), np.uint16), photometric="rgb")
    return [d, t / "o.zarr"], f"{d / '00001.tif'}: image of shape (6, 7, 3); slices must " \
        "be 2-D single-channel (not RGB or multi-sample)", 1


def case_multipage_tiff(t):
    d = good_stack(t / "in")
    p = d / "00001.tif"
    with tifffile.TiffWriter(p) as w:
        w.write(np.zeros((6, 7), np.uint16))
        w.write(np.zeros((6, 7), np.uint16))
    return [d, t / "o.zarr"], f"{p}: 2 pages; slices must be single-page TIFFs", 1


def case_not_a_tiff(t):
    d = good_stack(t / "in")
    (d / "00002.tif").write_bytes(b"this is not a tiff file at all")
    out = run_script("scroll_to_ome.py", d, t / "probe.zarr")  # message text from tifffile
    return [d, t / "o.zarr"], out.stderr.strip().splitlines()[-1][len("error: "):], 1


def case_output_exists(t):
    d = good_stack(t / "in")
    run_script("scroll_to_ome.py", d, t / "o.zarr", "--quiet", "--chunk_size", "4",
               check=True)
    return [d, t / "o.zarr"], f"{t / 'o.zarr'}: output already exists (use --overwrite " \
        "to replace it)", 1


def case_output_is_file(t):
    d = good_stack(t / "in")
    (t / "o.zarr").write_text("x")
    return [d, t / "o.zarr"], f"{t / 'o.zarr'}: output exists and is not a directory", 1


def case_overwrite_non_zarr_dir(t):
    d = good_stack(t / "in")
    (t / "precious").mkdir()
    (t / "precious" / "thesis.txt").write_text("do not delete")
    return ([d, t / "precious", "--overwrite"],
            f"{t / 'precious'}: --overwrite refuses to delete a directory that is not a "
            "zarr store", 1)


def _ranges(value, message):
    def case(t):
        d = good_stack(t / "in")
        return [d, t / "o.zarr", "--ranges", value], message, 1
    return case


# numeric options are checked by the parser (cli.number): a usage error, exit 2
def case_chunk_size_zero(t):
    d = good_stack(t / "in")
    return [d, t / "o.zarr", "--chunk_size", "0"], _usage("--chunk_size/--chunk-size",
                                                         "must be at least 1, got '0'"), 2


def case_nlevels_zero(t):
    d = good_stack(t / "in")
    return [d, t / "o.zarr", "--nlevels", "0"], _usage("--nlevels",
                                                     "must be at least 1, got '0'"), 2


def _usage(option, message, script="scroll_to_ome.py"):
    return f"{script}: error: argument {option}: {message} (see {script} --help)"


def case_max_gb_too_small(t):
    d = good_stack(t / "in", shape=(60, 1000))
    # the smallest plan: level-0 tasks that also write level 1, reading 4 slices x one
    # chunk row x 1000 (uint16, x1.25 for the kernels) and holding the level 1 of a
    # two-chunk band (a quarter of 4 slices x 256 rows); one-level tasks need less, but
    # then level 1 is read back from level 0 at more
    need = (1.25 * 4 * 128 * 1000 * 2 + 4 * 256 * 1000 * 2 / 4) / 2**30
    return ([d, t / "o.zarr", "--max_gb", "0.0001"],
            f"--max_gb 0.0001 is too small: this conversion needs at least "
            f"{math.ceil(need * 1e5) / 1e5:g} GiB (raise --max_gb, or lower --chunk_size)", 1)


def case_first_new_level_beyond(t):
    d = good_stack(t / "in")
    run_script("scroll_to_ome.py", d, t / "o.zarr", "--quiet", "--nlevels", "2", check=True)
    return ([d, t / "o.zarr", "--first_new_level", "4", "--nlevels", "6"],
            "--first_new_level 4: beyond the existing levels (store has levels 0..1)", 1)


def case_bad_option_value(t):
    d = good_stack(t / "in")
    return [d, t / "o.zarr", "--chunk_size", "big"], None, 2


def case_unknown_algorithm(t):
    d = good_stack(t / "in")
    return [d, t / "o.zarr", "--algorithm", "median"], None, 2


# ---- destructive paths: --overwrite deletes only our own store, never one holding inputs
def case_overwrite_store_holding_the_slices(t):
    store = t / "o.zarr"
    d = good_stack(store / "slices")  # the slices live inside the store to be replaced
    (store / ".zgroup").write_text('{"zarr_format": 2}')
    (store / ".zattrs").write_text('{"scrollzarr": {"complete": true}}')
    return ([d, store, "--overwrite"],
            f"OUTPUT {store} contains TIFF_DIR {d}: choose an output outside every input", 1)


def case_output_inside_the_slices(t):
    d = good_stack(t / "in")
    return ([d, d / "o.zarr"],
            f"OUTPUT {d / 'o.zarr'} lies inside TIFF_DIR {d}: choose an output outside "
            "every input", 1)


def case_output_is_the_slices_through_a_link(t):
    d = good_stack(t / "in")
    (t / "link").symlink_to(d)
    return ([d, t / "link", "--overwrite"],
            f"OUTPUT {t / 'link'} is TIFF_DIR {d}: choose an output outside every input", 1)


def case_overwrite_someone_elses_store(t):
    import zarr
    d = good_stack(t / "in")
    zarr.open_group(str(t / "theirs.zarr"), mode="w", zarr_format=2)
    zarr.create_array(str(t / "theirs.zarr" / "0"), shape=(2, 2, 2), dtype="u1",
                      zarr_format=2)
    return ([d, t / "theirs.zarr", "--overwrite"],
            f"{t / 'theirs.zarr'}: --overwrite refuses to delete a zarr store that "
            "scroll_to_ome.py did not make (no \"scrollzarr\" attributes); delete it "
            "yourself or choose another output", 1)


# ---- input scanning: cost in files, not in the span of numbers; odd entries named
def case_far_outlier(t):
    d = good_stack(t / "in")
    shutil.copy(d / "00001.tif", d / "1000000000000.tif")
    return ([d, t / "o.zarr"],
            f"{d}: missing slices 4-999999999999; a gap of 999999999996 slices before "
            f"{d / '1000000000000.tif'} (is its number right?) (use --allow_missing to "
            "fill them with zeros)", 1)


def case_far_outlier_allow_missing(t):
    d = good_stack(t / "in")
    shutil.copy(d / "00001.tif", d / "1000000000000.tif")
    return ([d, t / "o.zarr", "--allow_missing"],
            f"{d}: --allow_missing would fill 999999999996 slices with zeros but only 5 "
            f"exist; the largest gap, 999999999996 slices, ends at "
            f"{d / '1000000000000.tif'} (move that file away or crop z with --ranges)", 1)


def _odd_entry(make, what):
    def case(t):
        d = good_stack(t / "in")
        make(d / "00009.tif")
        return ([d, t / "o.zarr"], f"{d / '00009.tif'} is {what}: named like a slice but "
                "not a regular file (rename or remove it)", 1)
    return case


def _loop(p):
    p.symlink_to(p.name)


# ---- option values: one check in the parser, one line naming the option (exit 2)
def _option(option, value, message):
    def case(t):
        d = good_stack(t / "in")
        spelled = option.split("/")[0]
        return [d, t / "o.zarr", spelled, value], _usage(option, message), 2
    return case


def case_first_new_level_hides_levels(t):
    d = good_stack(t / "in")
    run_script("scroll_to_ome.py", d, t / "o.zarr", "--quiet", "--nlevels", "4", check=True)
    return ([d, t / "o.zarr", "--first_new_level", "1", "--nlevels", "2"],
            "--nlevels 2: the store has 4 levels; level(s) 2, 3 would be left on disk "
            "without being listed (use --nlevels 4 or more)", 1)


def case_first_new_level_replaces_levels_not_ours(t):
    import json
    d = good_stack(t / "in")
    run_script("scroll_to_ome.py", d, t / "o.zarr", "--quiet", "--nlevels", "3", check=True)
    attrs = json.loads((t / "o.zarr" / ".zattrs").read_text())
    del attrs["scrollzarr"]  # as another tool would have written it
    (t / "o.zarr" / ".zattrs").write_text(json.dumps(attrs))
    return ([d, t / "o.zarr", "--first_new_level", "1", "--nlevels", "3"],
            f"{t / 'o.zarr'}: --first_new_level 1 would replace level(s) 1, 2 of a store "
            "that scroll_to_ome.py did not make; add levels after the last one "
            "(--first_new_level 3) or work on a copy", 1)


CASES = {
    "missing input dir": case_missing_dir,
    "empty input dir": case_empty_dir,
    "no TIFFs": case_no_tiffs,
    "duplicate slice numbers": case_duplicate_numbers,
    "gaps": case_gaps,
    "mixed shapes": case_mixed_shapes,
    "mixed dtypes": case_mixed_dtypes,
    "truncated TIFF": case_truncated_tiff,
    "zero-byte TIFF": case_zero_byte_tiff,
    "RGB TIFF": case_rgb_tiff,
    "multi-page TIFF": case_multipage_tiff,
    "not a TIFF": case_not_a_tiff,
    "output exists": case_output_exists,
    "output is a file": case_output_is_file,
    "--overwrite on a non-zarr dir": case_overwrite_non_zarr_dir,
    "ranges non-integer": _ranges("a:5", "--ranges: x range 'a:5' has a non-integer bound 'a'"),
    "ranges step": _ranges("0:5:2", "--ranges: x range '0:5:2' is not min:max (step 1)"),
    "ranges no colon": _ranges(",3,", "--ranges: y range '3' is not min:max (step 1)"),
    "ranges four axes": _ranges("1:2,1:2,1:2,1:2",
                                "--ranges '1:2,1:2,1:2,1:2': at most three comma-separated "
                                "ranges (x,y,z)"),
    "ranges empty": _ranges("4:4", "--ranges: x range '4:4' is empty"),
    "ranges reversed": _ranges(",5:2,", "--ranges: y range '5:2' is empty"),
    "ranges out of bounds": _ranges("0:100", "--ranges: x range '0:100' is outside the "
                                             "volume (0:7)"),
    "ranges z without slices": _ranges(",,9:", "--ranges: z range '9:' is outside the "
                                               "volume (0:4)"),
    "chunk_size <= 0": case_chunk_size_zero,
    "nlevels <= 0": case_nlevels_zero,
    "max_gb too small for one chunk row": case_max_gb_too_small,
    "first_new_level beyond the levels": case_first_new_level_beyond,
    "non-integer option (usage)": case_bad_option_value,
    "--overwrite of a store holding the slices": case_overwrite_store_holding_the_slices,
    "output inside the slices directory": case_output_inside_the_slices,
    "output is the slices directory (symlink)": case_output_is_the_slices_through_a_link,
    "--overwrite of a zarr store not ours": case_overwrite_someone_elses_store,
    "slice number 10^12 away": case_far_outlier,
    "slice number 10^12 away, --allow_missing": case_far_outlier_allow_missing,
    "directory named like a slice": _odd_entry(Path.mkdir, "a directory"),
    "broken link named like a slice": _odd_entry(lambda p: p.symlink_to("nowhere"),
                                                 "a broken symbolic link"),
    "link loop named like a slice": _odd_entry(_loop, "a symbolic link loop"),
    "FIFO named like a slice": _odd_entry(os.mkfifo, "a FIFO (named pipe)"),
    "--max_gb nan": _option("--max_gb/--max-gb", "nan", "expected a finite number, got 'nan'"),
    "--max_gb inf": _option("--max_gb/--max-gb", "inf", "expected a finite number, got 'inf'"),
    "--max_gb negative": _option("--max_gb/--max-gb", "-1", "must be greater than 0, got '-1'"),
    "--voxel_size inf": _option("--voxel_size/--voxel-size", "inf",
                                "expected a finite number, got 'inf'"),
    "--voxel_size 0": _option("--voxel_size/--voxel-size", "0", "must be greater than 0, got '0'"),
    "--voxel_size negative": _option("--voxel_size/--voxel-size", "-0.5",
                                     "must be greater than 0, got '-0.5'"),
    "--num_threads 0": _option("--num_threads/--num-threads", "0", "must be at least 1, got '0'"),
    "--workers 0": _option("--workers", "0", "must be at least 1, got '0'"),
    "--shard_size 0": _option("--shard_size/--shard-size", "0", "must be at least 1, got '0'"),
    "--first_new_level 0": _option("--first_new_level/--first-new-level", "0",
                                   "must be at least 1, got '0'"),
    "--nlevels 1e3": _option("--nlevels", "1e3", "expected an integer, got '1e3'"),
    "--chunk_size nan": _option("--chunk_size/--chunk-size", "nan",
                                "expected an integer, got 'nan'"),
    "--first_new_level would hide levels": case_first_new_level_hides_levels,
    "--first_new_level replacing levels not ours": case_first_new_level_replaces_levels_not_ours,
    "unknown algorithm (usage)": case_unknown_algorithm,
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_with_one_clear_line(tmp_path, name):
    args, expected, code = CASES[name](tmp_path)
    before = snapshot(tmp_path)
    proc = run_script("scroll_to_ome.py", *args)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    if expected is not None:  # a usage error (exit 2) is argparse's whole line
        prefix = "" if code == 2 else "error: "
        assert proc.stderr.strip().splitlines()[-1] == f"{prefix}{expected}"
    assert snapshot(tmp_path) == before, "a refused run changed files"


def test_debug_shows_the_traceback(tmp_path):
    proc = run_script("scroll_to_ome.py", tmp_path / "nope", tmp_path / "o.zarr", "--debug")
    assert proc.returncode == 1 and "Traceback" in proc.stderr


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_unreadable_slice_is_named(tmp_path):
    d = good_stack(tmp_path / "in")
    os.chmod(d / "00001.tif", 0o000)
    cmd = [sys.executable, str(ROOT / "scroll_to_ome.py"), str(d), str(tmp_path / "o.zarr")]
    if os.geteuid() == 0:
        # root reads everything; without the capabilities that bypass file permissions it
        # is refused like anyone else, while it still owns the checkout and the venv
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv")
        drop = "-dac_override,-dac_read_search"
        cmd = ["setpriv", "--bounding-set", drop, "--inh-caps", drop] + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == \
        f"error: {d / '00001.tif'}: permission denied"
    assert not (tmp_path / "o.zarr").exists()


def test_the_budget_a_too_small_max_gb_error_names_is_enough(tmp_path):
    d = good_stack(tmp_path / "in", shape=(60, 1000))
    proc = run_script("scroll_to_ome.py", d, tmp_path / "o.zarr", "--max_gb", "0.0001")
    need = proc.stderr.split("needs at least ")[1].split(" GiB")[0]
    run_script("scroll_to_ome.py", d, tmp_path / "o.zarr", "--quiet", "--max_gb", need,
               check=True)
    below = f"{float(need) * 0.98:.6f}"
    proc = run_script("scroll_to_ome.py", d, tmp_path / "p.zarr", "--max_gb", below)
    assert proc.returncode == 1 and "is too small" in proc.stderr
