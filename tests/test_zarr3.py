"""Zarr v3 / NGFF 0.5 output, sharding and --compression: every store is read back with
zarr and compared with the v2 output of the same input (itself checked against the
independent references in test_convert.py) or with the plain-numpy reference pyramid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr_models.v05 import Image as ImageV05

from conftest import random_volume, run_script, write_stack
from reference import ref_pyramid
from scrollzarr import ngff, sample, store
from scrollzarr.convert import Options, convert
from scrollzarr.errors import ScrollError
from scrollzarr.pyramid import ALGORITHMS
from scrollzarr.segment import write_sample_segment

SHAPE = (37, 45, 71)  # (z, y, x): not a multiple of the chunk (8) nor of the shard (16)
CHUNK, SHARD, NLEVELS = 8, 16, 3
EMPTY_INDEX_ENTRY = 2**64 - 1  # offset and length of an inner chunk absent from its shard


def scan_volume() -> np.ndarray:
    """Random data with empty regions: chunk z=0 is empty (so shard z=0 is half empty)
    and x >= 44 is empty (so the shards at x >= 48 hold nothing)."""
    vol = random_volume(SHAPE, seed=21)
    vol[:CHUNK] = 0
    vol[:, :, 44:] = 0
    return vol


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """(volume, slice directory, v2 store of it with the default layout)."""
    base = tmp_path_factory.mktemp("scan")
    vol = scan_volume()
    src = write_stack(base / "slices", vol)
    v2 = base / "v2.zarr"
    convert(src, v2, Options(quiet=True, chunk_size=CHUNK, nlevels=NLEVELS))
    return vol, src, v2


def convert_quiet(src, out, **kw) -> Path:
    convert(src, out, Options(quiet=True, **kw))
    return Path(out)


def levels_of(root: Path, n: int = NLEVELS) -> list[np.ndarray]:
    return [zarr.open_array(str(root / str(level)), mode="r")[:] for level in range(n)]


def assert_same_levels(a: Path, b: Path, n: int = NLEVELS) -> None:
    for level, (x, y) in enumerate(zip(levels_of(a, n), levels_of(b, n))):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y, err_msg=f"level {level}")


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


def shard_index(shard_file: Path, inner_per_shard: int) -> np.ndarray:
    """The (inner chunks, 2) uint64 (offset, nbytes) index at the end of a shard file
    (index_location "end", followed by its 4-byte crc32c)."""
    raw = shard_file.read_bytes()
    size = inner_per_shard * 16
    return np.frombuffer(raw[-size - 4:-4], dtype="<u8").reshape(-1, 2)


# --- v3 output equals v2 output -------------------------------------------------------------

@pytest.mark.parametrize("shard, compression", [
    (None, "none"), (SHARD, "none"), (SHARD, "zstd"), (SHARD, "zstd:9"), (None, "gzip:1"),
    (SHARD, "gzip"), (SHARD, "blosc-zstd"), (None, "blosc-lz4:3:shuffle"),
    (SHARD, "blosc-lz4hc:9:noshuffle"),
])
def test_v3_store_has_the_same_levels_as_the_v2_store(tmp_path, scan, shard, compression):
    vol, src, v2 = scan
    out = convert_quiet(src, tmp_path / "v3.zarr", chunk_size=CHUNK, nlevels=NLEVELS,
                        zarr_format=3, shard_size=shard, compression=compression)
    assert_same_levels(out, v2)
    np.testing.assert_array_equal(levels_of(out)[0], vol)
    group = zarr.open_group(str(out), mode="r")
    ImageV05.from_zarr(group)
    for level in range(NLEVELS):
        arr = group[str(level)]
        assert arr.metadata.zarr_format == 3
        assert arr.chunks == (CHUNK,) * 3
        assert arr.shards == ((shard,) * 3 if shard else None)
        assert store.compression_of(arr) == store.parse_compression(compression).spec


@pytest.mark.parametrize("compression, codec_id", [
    ("zstd:5", "zstd"), ("gzip:1", "gzip"), ("blosc-zstd", "blosc"),
    ("blosc-lz4:9:shuffle", "blosc"),
])
def test_v2_compressed_store_reads_back_identical_with_a_numcodecs_compressor(
        tmp_path, scan, compression, codec_id):
    vol, src, v2 = scan
    out = convert_quiet(src, tmp_path / "c.zarr", chunk_size=CHUNK, nlevels=NLEVELS,
                        compression=compression)
    assert_same_levels(out, v2)
    meta = json.loads((out / "0" / ".zarray").read_text())
    assert meta["compressor"]["id"] == codec_id and meta["dimension_separator"] == "/"
    assert store.compression_of(zarr.open_array(str(out / "1"), mode="r")) == \
        store.parse_compression(compression).spec
    # CT-like noise still compresses a little: the chunk files are smaller than raw
    level0 = out / "0"
    chunk_files = [p for p in files_under(level0) if not p.name.startswith(".")]
    assert sum(p.stat().st_size for p in chunk_files) < len(chunk_files) * CHUNK**3 * 2


def test_default_v2_output_is_unchanged_by_the_v3_options(tmp_path, scan):
    # "none" spelled out and the v2 defaults give the same bytes as the fixture's store
    vol, src, v2 = scan
    out = convert_quiet(src, tmp_path / "v2.zarr", chunk_size=CHUNK, nlevels=NLEVELS,
                        zarr_format=2, shard_size=None, compression="none")
    mine = {p.relative_to(out).as_posix(): p.read_bytes() for p in files_under(out)
            if p.name != ".zattrs"}
    theirs = {p.relative_to(v2).as_posix(): p.read_bytes() for p in files_under(v2)
              if p.name != ".zattrs"}
    assert mine == theirs
    assert json.loads((out / "0" / ".zarray").read_text())["compressor"] is None


# --- layout on disk -------------------------------------------------------------------------

def test_v3_store_is_ngff_05_with_dimension_names_and_slash_chunk_keys(tmp_path, scan):
    vol, src, _ = scan
    out = convert_quiet(src, tmp_path / "v3.zarr", chunk_size=CHUNK, nlevels=NLEVELS,
                        zarr_format=3, shard_size=SHARD, voxel_size=7.91,
                        ranges="2:,3:40,1:")
    root = json.loads((out / "zarr.json").read_text())
    assert root["zarr_format"] == 3 and root["node_type"] == "group"
    assert "multiscales" not in root["attributes"]
    ome = root["attributes"]["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert "version" not in ms
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]
    ImageV05.from_zarr(zarr.open_group(str(out), mode="r"))
    for level in range(NLEVELS):
        meta = json.loads((out / str(level) / "zarr.json").read_text())
        assert meta["node_type"] == "array" and meta["dimension_names"] == ["z", "y", "x"]
        assert meta["fill_value"] == 0 and meta["data_type"] == "uint16"
        assert meta["chunk_key_encoding"] == {"name": "default",
                                              "configuration": {"separator": "/"}}
        assert meta["codecs"][0]["name"] == "sharding_indexed"
        assert meta["codecs"][0]["configuration"]["chunk_shape"] == [CHUNK] * 3
    assert (out / "0" / "c" / "1" / "1" / "1").is_file()  # LEVEL/c/IZ/IY/IX of a shard
    # readers (ppm_to_layers) map scroll coordinates through the NGFF 0.5 metadata
    np.testing.assert_array_equal(levels_of(out, 1)[0], vol[1:, 3:40, 2:])
    origin = np.array([1.0, 3.0, 2.0])
    # (micrometer transforms: equal up to rounding of 7.91 * n)
    assert ngff.open_volume(str(out)).to_index(origin) == pytest.approx([0, 0, 0], abs=1e-9)
    assert ngff.open_volume(str(out), level=1).to_index(origin + 0.5) == pytest.approx(
        [0, 0, 0], abs=1e-9)


def test_empty_chunks_are_absent_inside_shards_and_empty_shards_are_not_written(
        tmp_path, scan):
    vol, src, _ = scan
    out = convert_quiet(src, tmp_path / "v3.zarr", chunk_size=CHUNK, nlevels=1,
                        zarr_format=3, shard_size=SHARD)
    ratio = SHARD // CHUNK
    grid = [-(-n // CHUNK) for n in SHAPE]
    filled = {(iz, iy, ix) for iz in range(grid[0]) for iy in range(grid[1])
              for ix in range(grid[2])
              if vol[iz * CHUNK:(iz + 1) * CHUNK, iy * CHUNK:(iy + 1) * CHUNK,
                     ix * CHUNK:(ix + 1) * CHUNK].any()}
    shards = {tuple(i // ratio for i in c) for c in filled}
    on_disk = {tuple(int(p) for p in f.relative_to(out / "0" / "c").parts)
               for f in files_under(out / "0" / "c")}
    assert on_disk == shards
    assert len(on_disk) < -(-SHAPE[0] // SHARD) * -(-SHAPE[1] // SHARD) * -(-SHAPE[2] // SHARD)
    inner = [(dz, dy, dx) for dz in range(ratio) for dy in range(ratio)
             for dx in range(ratio)]  # index order: C order of the inner chunk grid
    absent_seen = 0
    for sz, sy, sx in shards:
        index = shard_index(out / "0" / "c" / str(sz) / str(sy) / str(sx), len(inner))
        for (dz, dy, dx), (offset, nbytes) in zip(inner, index):
            chunk = (sz * ratio + dz, sy * ratio + dy, sx * ratio + dx)
            if chunk in filled:
                assert nbytes == CHUNK**3 * 2  # uncompressed inner chunk
            else:
                assert offset == EMPTY_INDEX_ENTRY and nbytes == EMPTY_INDEX_ENTRY
                absent_seen += 1
    assert absent_seen > 0  # the fixture has half-empty shards: the check bit


def test_sharded_store_has_far_fewer_files_than_v2(tmp_path, stack_dir):
    vol = random_volume((64, 64, 64), seed=22)
    src = stack_dir(vol)
    v2 = convert_quiet(src, tmp_path / "v2.zarr", chunk_size=8, nlevels=1)
    v3 = convert_quiet(src, tmp_path / "v3.zarr", chunk_size=8, nlevels=1, zarr_format=3,
                       shard_size=32)
    assert len([p for p in files_under(v2 / "0") if not p.name.startswith(".")]) == 8**3
    assert len(files_under(v3 / "0" / "c")) == 2**3  # 64x fewer: (32/8)^3 chunks a shard
    np.testing.assert_array_equal(levels_of(v3, 1)[0], vol)


def test_zarr_only_v3_writes_one_array_at_the_root(tmp_path, scan):
    vol, src, _ = scan
    out = convert_quiet(src, tmp_path / "a.zarr", chunk_size=CHUNK, zarr_only=True,
                        zarr_format=3, shard_size=SHARD, compression="zstd", ranges="5:")
    meta = json.loads((out / "zarr.json").read_text())
    assert meta["node_type"] == "array" and meta["dimension_names"] == ["z", "y", "x"]
    assert not (out / "0").exists()
    arr = zarr.open_array(str(out), mode="r")
    assert arr.shards == (SHARD,) * 3 and store.compression_of(arr) == "zstd:3"
    np.testing.assert_array_equal(arr[:], vol[:, :, 5:])
    assert arr.attrs["scrollzarr"]["complete"] is True
    assert ngff.open_volume(str(out)).to_index(np.array([0.0, 0, 5])).tolist() == [0, 0, 0]


# --- every algorithm, many tasks, --first_new_level, resume ---------------------------------

@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_on_sharded_v3_matches_the_reference(tmp_path, stack_dir, algorithm):
    shape = SHAPE if algorithm != "mode" else (19, 23, 29)
    high = 65536 if algorithm != "mode" else 4  # labels: few values, many ties
    vol = random_volume(shape, seed=23, high=high)
    chunk, shard = (CHUNK, SHARD) if algorithm != "mode" else (4, 8)
    out = convert_quiet(stack_dir(vol), tmp_path / "o.zarr", chunk_size=chunk, nlevels=4,
                        algorithm=algorithm, zarr_format=3, shard_size=shard,
                        compression="blosc-zstd:1")
    for level, ref in enumerate(ref_pyramid(vol, 4, algorithm)):
        np.testing.assert_array_equal(levels_of(out, 4)[level], ref,
                                      err_msg=f"level {level} ({algorithm})")
    ImageV05.from_zarr(zarr.open_group(str(out), mode="r"))


def test_parallel_tasks_of_one_shard_row_each_write_whole_shards(tmp_path, stack_dir):
    # a tiny budget gives bands one shard high; two threads write neighbouring shards
    vol = random_volume((40, 100, 71), seed=24)
    out = convert_quiet(stack_dir(vol), tmp_path / "o.zarr", chunk_size=CHUNK, nlevels=1,
                        zarr_format=3, shard_size=SHARD, max_gb=0.0002, num_threads=2)
    np.testing.assert_array_equal(levels_of(out, 1)[0], vol)


def test_first_new_level_on_a_sharded_v3_store_adds_matching_levels(tmp_path, scan):
    vol, src, v2 = scan
    out = convert_quiet(src, tmp_path / "v3.zarr", chunk_size=CHUNK, nlevels=2,
                        zarr_format=3, shard_size=SHARD, compression="zstd:5")
    level0 = {p: p.read_bytes() for p in files_under(out / "0")}
    convert_quiet(src, out, chunk_size=CHUNK, nlevels=4, first_new_level=2)
    ref = ref_pyramid(vol, 4, "mean")
    for level in range(4):
        arr = zarr.open_array(str(out / str(level)), mode="r")
        np.testing.assert_array_equal(arr[:], ref[level], err_msg=f"level {level}")
        assert arr.shards == (SHARD,) * 3 and store.compression_of(arr) == "zstd:5"
        assert arr.metadata.dimension_names == ("z", "y", "x")
    assert {p: p.read_bytes() for p in files_under(out / "0")} == level0
    ImageV05.from_zarr(zarr.open_group(str(out), mode="r"))
    ms = json.loads((out / "zarr.json").read_text())["attributes"]["ome"]["multiscales"]
    assert [d["path"] for d in ms[0]["datasets"]] == ["0", "1", "2", "3"]


@pytest.mark.parametrize("kill_at", ["task:2", "level:1"])  # inside a level; between
def test_killed_sharded_v3_conversion_resumes_to_the_v2_result(tmp_path, scan, kill_at):
    vol, src, v2 = scan
    out = tmp_path / "v3.zarr"
    opts = ["--chunk_size", CHUNK, "--nlevels", NLEVELS, "--zarr_format", 3,
            "--shard_size", SHARD, "--compression", "zstd", "--num_threads", 1, "--quiet"]
    proc = run_script("scroll_to_ome.py", src, out, *opts,
                      env={"SCROLLZARR_KILL_AT": kill_at, "SCROLLZARR_JOURNAL_SECONDS": "0"})
    assert proc.returncode == -9  # SIGKILL: the run really stopped half way
    resumed = run_script("scroll_to_ome.py", src, out, *opts, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_levels(out, v2)
    ImageV05.from_zarr(zarr.open_group(str(out), mode="r"))


def test_dask_executor_writes_the_same_sharded_v3_store(tmp_path, scan):
    pytest.importorskip("distributed")
    vol, src, v2 = scan
    out = convert_quiet(src, tmp_path / "v3.zarr", chunk_size=CHUNK, nlevels=NLEVELS,
                        zarr_format=3, shard_size=SHARD, compression="zstd",
                        scheduler="local", workers=2)
    assert_same_levels(out, v2)
    ImageV05.from_zarr(zarr.open_group(str(out), mode="r"))


# --- options --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"shard_size": 16}, "--shard_size 16: shards need --zarr_format 3"),
    ({"zarr_format": 3, "shard_size": 12}, "--shard_size 12: must be a positive multiple "
                                          "of --chunk_size 8"),
    ({"zarr_format": 3, "shard_size": -16}, "--shard_size -16: must be a positive"),
    ({"zarr_format": 4}, "--zarr_format 4: must be 2 or 3"),
    ({"compression": "xyz"}, "--compression 'xyz': unknown compression"),
    ({"compression": "zstd:0"}, "--compression 'zstd:0': level 0 is outside 1..22"),
    ({"compression": "gzip:fast"}, "--compression 'gzip:fast': level 'fast' is not an"),
    ({"compression": "blosc-snappy"}, "--compression 'blosc-snappy': unknown blosc"),
    ({"compression": "blosc-zstd:5:byte"}, "--compression 'blosc-zstd:5:byte': unknown "
                                           "blosc shuffle"),
    ({"compression": "none:1"}, "--compression 'none:1': 'none' takes no level"),
])
def test_bad_layout_options_fail_before_anything_is_written(tmp_path, scan, kwargs,
                                                            message):
    _, src, _ = scan
    out = tmp_path / "o.zarr"
    with pytest.raises(ScrollError) as err:
        convert(src, out, Options(quiet=True, chunk_size=CHUNK, **kwargs))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert not out.exists()


@pytest.mark.parametrize("spec, canonical", [
    ("none", "none"), ("ZSTD", "zstd:3"), ("zstd:22", "zstd:22"), ("gzip", "gzip:6"),
    ("blosc-zstd", "blosc-zstd:5"), ("blosc-zstd:5:bitshuffle", "blosc-zstd:5"),
    ("blosc-lz4:", "blosc-lz4:5"), ("blosc-zlib:2:noshuffle", "blosc-zlib:2:noshuffle"),
    ("blosc-blosclz:9:shuffle", "blosc-blosclz:9:shuffle"),
])
@pytest.mark.parametrize("zarr_format, shard", [(2, None), (3, None), (3, 8)])
def test_compression_of_an_array_gives_back_its_spec(tmp_path, spec, canonical,
                                                     zarr_format, shard):
    assert store.parse_compression(spec).spec == canonical
    data = random_volume((9, 10, 11), seed=25)
    arr = store.create_array(tmp_path / "a.zarr", data.shape, 4, data.dtype,
                             zarr_format=zarr_format, shard=shard, compression=spec)
    arr[:] = data
    back = zarr.open_array(str(tmp_path / "a.zarr"), mode="r")
    assert store.compression_of(back) == canonical
    np.testing.assert_array_equal(back[:], data)


def test_compression_of_a_foreign_codec_is_an_error_naming_the_array(tmp_path):
    import numcodecs
    arr = zarr.create_array(store=str(tmp_path / "lz4.zarr"), shape=(4, 4, 4),
                            chunks=(2, 2, 2), dtype="<u2", zarr_format=2,
                            compressors=numcodecs.LZ4())
    with pytest.raises(ScrollError, match="lz4.zarr.*compressor lz4"):
        store.compression_of(arr)


def test_script_writes_sharded_compressed_v3_and_reports_bad_options(tmp_path, scan):
    vol, src, v2 = scan
    out = tmp_path / "cli.zarr"
    proc = run_script("scroll_to_ome.py", src, out, "--chunk_size", CHUNK, "--nlevels",
                      NLEVELS, "--zarr_format", 3, "--shard_size", SHARD,
                      "--compression", "blosc-zstd:3", "--quiet")
    assert proc.returncode == 0 and proc.stderr == ""
    assert_same_levels(out, v2)
    ImageV05.from_zarr(zarr.open_group(str(out), mode="r"))

    bad = tmp_path / "bad.zarr"
    proc = run_script("scroll_to_ome.py", src, bad, "--shard_size", 256)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: --shard_size 256: shards need --zarr_format 3")
    proc = run_script("scroll_to_ome.py", src, bad, "--zarr_format", 3,
                      "--compression", "lzma")
    assert proc.returncode == 1 and proc.stderr.startswith("error: --compression 'lzma'")
    proc = run_script("scroll_to_ome.py", src, bad, "--zarr_format", 4)
    assert proc.returncode == 2
    assert not bad.exists()


# --- ppm_to_layers reads v3 ---------------------------------------------------------------

def test_ppm_to_layers_on_a_sharded_v3_store_equals_its_result_on_the_v2_store(tmp_path):
    shape = (48, 128, 128)
    src = tmp_path / "slices"
    sample.write_scroll(src, shape)
    v2 = convert_quiet(src, tmp_path / "v2.zarr", chunk_size=16, nlevels=2)
    v3 = convert_quiet(src, tmp_path / "v3.zarr", chunk_size=16, nlevels=2, zarr_format=3,
                       shard_size=32, compression="zstd")
    write_sample_segment(tmp_path / "seg.ppm", shape, winding=2, width=120)
    results = {}
    for name, root in (("v2", v2), ("v3", v3)):
        out = tmp_path / f"layers_{name}"
        proc = run_script("ppm_to_layers.py", tmp_path / "seg.ppm", root, out,
                          tmp_path / f"stack_{name}.tif", "--number_of_layers", 9,
                          "--number_of_stacked_layers", 3, "--block_size", 40, "--quiet")
        assert proc.returncode == 0, proc.stderr
        names = sorted(p.name for p in out.glob("*.tif"))  # beside the render manifest
        assert names == [f"{k}.tif" for k in range(9)]
        results[name] = [tifffile.imread(out / n) for n in names] + [
            tifffile.imread(tmp_path / f"stack_{name}.tif")]
    for a, b in zip(results["v2"], results["v3"]):
        np.testing.assert_array_equal(a, b)
    assert results["v3"][4].any()  # the surface layer is on papyrus, not all zero
