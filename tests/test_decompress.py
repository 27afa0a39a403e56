"""decompress_tiffs.py: round trips for every compression, tags, atomic and resumable
writes (with a real SIGKILL), corrupt inputs, and the checks made before starting.

Every test runs the real script in a subprocess on real TIFF files."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import ROOT, random_volume, run_script
from scrollzarr import sample
from scrollzarr.decompress import MADE_NAME

SCRIPT = "decompress_tiffs.py"


def listing(out: Path) -> list[str]:
    """The names in an output directory besides the tool's list of the files it made."""
    return [n for n in os.listdir(out) if n != MADE_NAME]
TAGS = {"resolution": ((1000, 3), (7, 2)), "resolutionunit": "CENTIMETER",
        "software": "scanner 1.0", "datetime": "2023:01:02 03:04:05"}
COMPRESSIONS = {  # file stem -> imwrite arguments
    "none": {},
    "lzw": {"compression": "lzw"},
    "lzw_predictor": {"compression": "lzw", "predictor": True},
    "adobe_deflate": {"compression": "adobe_deflate"},
    "adobe_deflate_predictor": {"compression": "adobe_deflate", "predictor": True},
    "deflate": {"compression": "deflate"},
    "zstd": {"compression": "zstd"},
    "packbits": {"compression": "packbits"},
    "lzma": {"compression": "lzma"},
    "png": {"compression": "png"},
}
SPECIAL = {  # file name -> (dtype, imwrite arguments)
    "tiled_lzw.tif": (np.uint16, {"compression": "lzw", "tile": (64, 64)}),
    "big_endian_lzw.tif": (np.uint16, {"compression": "lzw", "byteorder": ">"}),
    "big_endian_none.tif": (np.uint16, {"byteorder": ">"}),
    "tiled_none.tif": (np.uint16, {"tile": (64, 64)}),
    "miniswhite_zstd.tif": (np.uint8, {"compression": "zstd", "photometric": "miniswhite"}),
    "UPPER_LZW.TIFF": (np.uint16, {"compression": "lzw"}),
}
SHAPE = (100, 150)  # (y, x): neither a multiple of strips nor of tiles


def round_trip_inputs() -> dict[str, tuple[np.dtype, dict]]:
    files = {f"{stem}_{np.dtype(dt).name}.tif": (dt, kw)
             for stem, kw in COMPRESSIONS.items() for dt in (np.uint8, np.uint16)}
    files.update(SPECIAL)
    return files


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    """One run of the script (with --verify, 2 workers) over a directory holding every
    compression x dtype plus tiled, big-endian and upper-case files, all with tags."""
    base = tmp_path_factory.mktemp("round_trip")
    src, out = base / "in", base / "out"
    src.mkdir()
    for i, (name, (dtype, kw)) in enumerate(round_trip_inputs().items()):
        high = np.iinfo(dtype).max + 1
        # smooth ramps plus noise: compressible, and every value range exercised
        ramp = (np.add.outer(np.arange(SHAPE[0]), np.arange(SHAPE[1])) * 97) % high
        data = (ramp + random_volume(SHAPE, seed=i, high=64)).astype(dtype)
        kw = {"photometric": "minisblack", "description": f"scan {name}", **TAGS, **kw}
        tifffile.imwrite(src / name, data, metadata=None, **kw)
    proc = run_script(SCRIPT, src, out, "--verify", "--workers", "2")
    return src, out, proc


def test_every_compression_decompresses_and_exits_0(round_trip):
    src, out, proc = round_trip
    assert proc.returncode == 0, proc.stderr
    assert sorted(listing(out)) == sorted(os.listdir(src))


@pytest.mark.parametrize("name", sorted(round_trip_inputs()))
def test_round_trip_keeps_pixels_and_tags_and_output_is_memory_mappable(round_trip, name):
    src, out, _ = round_trip
    expected = tifffile.imread(src / name)
    mapped = tifffile.memmap(out / name, mode="r")
    assert mapped.dtype == expected.dtype.newbyteorder("<")
    np.testing.assert_array_equal(mapped, expected)
    with tifffile.TiffFile(src / name) as a, tifffile.TiffFile(out / name) as b:
        pa, pb = a.pages.first, b.pages.first
        assert len(b.pages) == 1 and b.byteorder == "<"
        assert pb.compression == 1 and pb.is_contiguous and pb.is_memmappable
        assert pb.shape == pa.shape and pb.photometric == pa.photometric
        for code in (270, 282, 283, 296, 305, 306):  # description .. resolution .. date
            assert pb.tags.valueof(code) == pa.tags.valueof(code), code


def test_uncompressed_native_input_is_copied_byte_for_byte(round_trip):
    src, out, _ = round_trip
    for name in ("none_uint8.tif", "none_uint16.tif"):
        assert (out / name).read_bytes() == (src / name).read_bytes()


def test_tifffile_shaped_description_is_kept_verbatim(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    tifffile.imwrite(src / "a.tif", np.ones((20, 30), np.uint16), compression="lzw")
    run_script(SCRIPT, src, out, "--quiet", check=True)
    with tifffile.TiffFile(src / "a.tif") as a, tifffile.TiffFile(out / "a.tif") as b:
        assert b.pages.first.description == a.pages.first.description
        assert len([t for t in b.pages.first.tags if t.code == 270]) == 1


def test_non_ascii_description_and_iso_date_are_kept_and_do_not_fail_the_file(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    raw = {270: "voxel 7.91 µm".encode("utf-8"), 305: "Scanner® X".encode("latin-1"),
           306: b"2023-01-02T03:04:05"}  # tifffile's own arguments would reject these
    tifffile.imwrite(src / "a.tif", np.ones((20, 30), np.uint16), compression="lzw",
                     metadata=None, software=False,
                     extratags=[(code, "s", 0, value, True) for code, value in raw.items()])
    run_script(SCRIPT, src, out, "--quiet", check=True)
    with tifffile.TiffFile(src / "a.tif") as a, tifffile.TiffFile(out / "a.tif") as b:
        for code in raw:
            assert b.pages.first.tags.valueof(code) == a.pages.first.tags.valueof(code)


def test_non_tiff_entries_are_ignored_with_one_note(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    sample.write_scroll(src, (2, 32, 32), compression="lzw")
    (src / "notes.txt").write_text("x")
    (src / "._00000.tif").write_bytes(b"macOS resource fork")
    (src / "sub").mkdir()
    proc = run_script(SCRIPT, src, out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("ignoring 3 entries") == 1
    assert sorted(listing(out)) == ["00000.tif", "00001.tif"]


# ----------------------------------------------------------------- interrupt and resume


def _finished_outputs(out: Path) -> list[str]:
    return sorted(n for n in listing(out) if n.endswith(".tif"))


def test_sigkilled_run_leaves_no_incomplete_output_and_rerun_matches_clean_run(tmp_path):
    src = tmp_path / "in"
    sample.write_scroll(src, (40, 384, 384), compression="lzw")
    out, clean = tmp_path / "out", tmp_path / "clean"
    proc = subprocess.Popen([sys.executable, str(ROOT / SCRIPT), str(src), str(out),
                             "--workers", "1", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (out.is_dir() and _finished_outputs(out)):
            assert proc.poll() is None, "the script ended before any output appeared"
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    finished = _finished_outputs(out)
    assert 0 < len(finished) < 40, "the kill did not land mid-way"
    for name in finished:  # every final name holds the whole slice
        np.testing.assert_array_equal(tifffile.memmap(out / name, mode="r"),
                                      tifffile.imread(src / name))

    rerun = run_script(SCRIPT, src, out)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} already complete" in rerun.stderr
    run_script(SCRIPT, src, clean, "--quiet", check=True)
    assert sorted(listing(out)) == sorted(listing(clean))  # no .partial, no lock
    for name in os.listdir(clean):
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name


def test_rerun_skips_complete_outputs_and_overwrite_redoes_them(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    sample.write_scroll(src, (3, 32, 32), compression="zstd")
    run_script(SCRIPT, src, out, "--quiet", check=True)
    before = {n: (out / n).stat().st_ino for n in listing(out)}
    again = run_script(SCRIPT, src, out)
    assert again.returncode == 0 and "3 already complete" in again.stderr
    assert {n: (out / n).stat().st_ino for n in listing(out)} == before
    run_script(SCRIPT, src, out, "--overwrite", "--quiet", check=True)
    after = {n: (out / n).stat().st_ino for n in listing(out)}
    assert all(after[n] != before[n] for n in before)  # replaced by rename


def test_rerun_redoes_invalid_outputs_and_removes_leftover_partials(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    sample.write_scroll(src, (4, 32, 32), compression="lzw")
    # outputs of an earlier run (listed as ours), then damaged: only these are replaced
    run_script(SCRIPT, src, out, "--quiet", check=True)
    (out / "00000.tif").unlink()
    (out / "00000.tif.partial").write_bytes(b"half a slice")
    (out / "00001.tif").write_bytes((src / "00001.tif").read_bytes()[:100])  # truncated
    shutil.copy(src / "00002.tif", out / "00002.tif")  # still compressed
    tifffile.imwrite(out / "00003.tif", np.zeros((16, 32), np.uint16))  # wrong shape
    proc = run_script(SCRIPT, src, out)
    assert proc.returncode == 0, proc.stderr
    assert "4 decompressed" in proc.stderr
    assert sorted(listing(out)) == [f"{z:05d}.tif" for z in range(4)]
    for name in listing(out):
        np.testing.assert_array_equal(tifffile.memmap(out / name, mode="r"),
                                      tifffile.imread(src / name))


def test_verify_rewrites_an_output_whose_pixels_differ(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    sample.write_scroll(src, (2, 32, 32), compression="lzw")
    run_script(SCRIPT, src, out, "--quiet", check=True)
    damaged = tifffile.memmap(out / "00001.tif", mode="r+")
    damaged[5, 5] += 1
    damaged.flush()
    del damaged
    proc = run_script(SCRIPT, src, out, "--verify")
    assert proc.returncode == 0, proc.stderr
    assert "00001.tif: pixels differ" in proc.stderr and "1 verified" in proc.stderr
    np.testing.assert_array_equal(tifffile.imread(out / "00001.tif"),
                                  tifffile.imread(src / "00001.tif"))


# ----------------------------------------------------------------- bad input


def test_corrupt_and_truncated_inputs_are_named_and_the_others_still_done(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    sample.write_scroll(src, (6, 64, 64), compression="lzw")
    whole = (src / "00001.tif").read_bytes()
    (src / "00001.tif").write_bytes(whole[:len(whole) // 2])  # truncated
    (src / "00002.tif").write_bytes(b"this is not a TIFF file at all")
    (src / "00003.tif").write_bytes(b"")
    # a valid header whose zstd data are garbage: fails while decoding, mid-run
    tifffile.imwrite(src / "00004.tif", sample.make_slice(4, (6, 64, 64)),
                     compression="zstd")
    with tifffile.TiffFile(src / "00004.tif") as tif:
        offset = tif.pages.first.dataoffsets[0]
    with open(src / "00004.tif", "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 64)
    proc = run_script(SCRIPT, src, out, "--workers", "2")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 4 of 6 files failed: 00001.tif (truncated")
    for name in ("00002.tif (not a readable TIFF", "00003.tif (empty file",
                 "00004.tif ("):
        assert name in last
    assert f"{src / '00001.tif'}: truncated" in proc.stderr  # listed before starting
    assert sorted(listing(out)) == ["00000.tif", "00005.tif"]
    for name in ("00000.tif", "00005.tif"):
        np.testing.assert_array_equal(tifffile.imread(out / name),
                                      tifffile.imread(src / name))


@pytest.mark.parametrize("how", ["same path", "dot", "symlink"])
def test_output_equal_to_input_is_refused(tmp_path, how):
    src = tmp_path / "in"
    sample.write_scroll(src, (2, 16, 16), compression="lzw")
    before = {n: (src / n).read_bytes() for n in os.listdir(src)}
    cwd = None
    if how == "same path":
        args = (src, src)
    elif how == "dot":
        args, cwd = (".", "."), src
    else:
        (tmp_path / "link").symlink_to(src)
        args = (src, tmp_path / "link")
    proc = subprocess.run([sys.executable, str(ROOT / SCRIPT), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].endswith(
        f" is IN_DIR {args[0]}: choose an output outside every input")
    assert {n: (src / n).read_bytes() for n in os.listdir(src)} == before


@pytest.mark.parametrize("args, code, message", [
    (("missing_dir",), 1, "input directory does not exist"),
    (("--workers", "0"), 2, "argument --workers: must be at least 1, got '0'"),
    (("--workers", "x"), 2, "argument --workers: expected an integer, got 'x'"),
    (("--workers", "nan"), 2, "argument --workers: expected an integer, got 'nan'"),
])
def test_bad_arguments_are_reported(tmp_path, args, code, message):
    src = tmp_path / "in"
    sample.write_scroll(src, (1, 16, 16))
    if args[0] == "missing_dir":
        cmd = (tmp_path / "missing_dir", tmp_path / "out")
    else:
        cmd = (src, tmp_path / "out", *args)
    proc = run_script(SCRIPT, *cmd)
    assert proc.returncode == code
    assert message in proc.stderr


def test_empty_input_directory_is_an_error(tmp_path):
    (tmp_path / "in").mkdir()
    proc = run_script(SCRIPT, tmp_path / "in", tmp_path / "out")
    assert proc.returncode == 1 and "no TIFF files" in proc.stderr


def test_second_run_into_the_same_output_is_refused_while_the_first_holds_it(tmp_path):
    import fcntl
    src, out = tmp_path / "in", tmp_path / "out"
    sample.write_scroll(src, (1, 16, 16), compression="lzw")
    out.mkdir()
    with open(out / ".decompress_tiffs.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = run_script(SCRIPT, src, out)
    assert proc.returncode == 1 and "another decompress_tiffs.py run" in proc.stderr
    assert not (out / "00000.tif").exists()


def _limit_memory():  # if the check ever regressed, decoding must fail fast, not swap
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


def test_too_little_free_space_is_refused_before_writing(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    # a header promising twice the free space in uint64 pixels; the tiles are never
    # decoded (the check runs first), so one byte each keeps the file small
    tile = 16384
    free = shutil.disk_usage(tmp_path).free
    side = (int((2 * free / 8) ** 0.5) // tile + 1) * tile
    tifffile.imwrite(src / "huge.tif", (b"\0" for _ in range((side // tile) ** 2)),
                     shape=(side, side), dtype=np.uint64, tile=(tile, tile),
                     compression="zstd", photometric="minisblack", metadata=None)
    proc = subprocess.run([sys.executable, str(ROOT / SCRIPT), str(src), str(out)],
                          capture_output=True, text=True, timeout=120,
                          preexec_fn=_limit_memory)
    assert proc.returncode == 1
    assert "not enough free space" in proc.stderr and "--ignore_free_space" in proc.stderr
    assert listing(out) == []


def test_output_is_byte_identical_to_tifffiles_own_uncompressed_write(tmp_path):
    """The output is laid out as tifffile's header with the pixels decoded behind it:
    byte for byte the file tifffile writes for the decoded pixels and the kept tags."""
    import io

    from scrollzarr.slice_rewrite import _tags_to_keep

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    data = random_volume((1, 70, 90), seed=3, high=4000)[0].astype(np.uint16)
    tifffile.imwrite(src / "a.tif", data, compression="lzw", rowsperstrip=16,
                     photometric="minisblack", description="scan a", **TAGS)
    run_script(SCRIPT, src, out, "--quiet", check=True)
    expected = io.BytesIO()
    with tifffile.TiffFile(src / "a.tif") as tif:
        tifffile.imwrite(expected, tif.pages.first.asarray(), byteorder="<", metadata=None,
                         **_tags_to_keep(tif.pages.first))
    assert (out / "a.tif").read_bytes() == expected.getvalue()


def test_a_header_larger_than_the_buffers_headroom_is_still_written_whole(tmp_path):
    """A description of 2 MiB does not fit before the pixels in the reused buffer: the
    file is written by tifffile as a whole instead, tags and pixels kept."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    data = random_volume((1, 40, 50), seed=4, high=60000)[0].astype(np.uint16)
    description = "x" * (2 << 20)
    tifffile.imwrite(src / "a.tif", data, compression="lzw", description=description,
                     metadata=None)
    run_script(SCRIPT, src, out, "--quiet", "--verify", check=True)
    with tifffile.TiffFile(out / "a.tif") as tif:
        assert tif.pages.first.description == description
        assert tif.pages.first.is_memmappable
    np.testing.assert_array_equal(tifffile.memmap(out / "a.tif", mode="r"), data)


def test_a_reused_buffer_leaves_nothing_of_the_previous_file_in_the_next(tmp_path):
    """One thread rewrites a file with a long header, then one with a short header: the
    second output is still byte for byte tifffile's own write (tifffile leaves padding
    gaps unwritten, so the buffer must not hold the first file's bytes there)."""
    import io

    from scrollzarr.slice_rewrite import _tags_to_keep, decompress_file, read_input_header

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    big = np.full((30, 40), 0xFFFF, np.uint16)
    tifffile.imwrite(src / "a.tif", big, compression="lzw", description="d" * 5000,
                     metadata=None, datetime="2023:01:02 03:04:05")
    small = random_volume((1, 30, 40), seed=5, high=900)[0].astype(np.uint16)
    tifffile.imwrite(src / "b.tif", small, compression="lzw", metadata=None,
                     resolution=((1000, 3), (7, 2)), resolutionunit="CENTIMETER")
    for name in ("a.tif", "b.tif"):  # in this thread, one after the other
        decompress_file(src / name, out / name, read_input_header(src / name))
        expected = io.BytesIO()
        with tifffile.TiffFile(src / name) as tif:
            tifffile.imwrite(expected, tif.pages.first.asarray(), byteorder="<",
                             metadata=None, **_tags_to_keep(tif.pages.first))
        assert (out / name).read_bytes() == expected.getvalue(), name
