"""validate_ome.py: a correct store passes; each class of broken store seen on the data
server is reported with its code and the exit status it deserves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tornado.web
import zarr

from conftest import random_volume, run_script, write_stack
from scrollzarr import ngff, pyramid, serve, store
from scrollzarr.validate import open_location, validate_store

SHAPE = (37, 41, 45)  # odd on every axis: ceil-halving and edge blocks are exercised
CHUNK = 16


def codes(findings, severity=None):
    return sorted({f.code for f in findings if severity in (None, f.severity)})


def validate(location, *args, env=None):
    """Run the script; return (exit code, stdout lines, stderr)."""
    proc = run_script("validate_ome.py", location, *args, env=env)
    return proc.returncode, proc.stdout.splitlines(), proc.stderr


@pytest.fixture(scope="module")
def volume():
    return random_volume(SHAPE, seed=3)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, volume):
    """Stores made by scroll_to_ome.py from the same slices: name -> path."""
    root = tmp_path_factory.mktemp("converted")
    slices = write_stack(root / "slices", volume)
    made = {}
    for name, opts in {
        "v2": (),
        "v3": ("--zarr_format", 3, "--shard_size", 32, "--compression", "zstd"),
        "gaussian": ("--algorithm", "gaussian"),
        "nearest": ("--algorithm", "nearest", "--voxel_size", 7.91),
    }.items():
        out = root / f"{name}.zarr"
        run_script("scroll_to_ome.py", slices, out, "--chunk_size", CHUNK, "--nlevels", 4,
                   "--quiet", *opts, check=True)
        made[name] = out
    return made


def hand_made(path: Path, volume: np.ndarray, nlevels: int = 3, algorithm: str = "mean",
              recorded: str | None = None, dtypes: dict | None = None,
              compression: dict | None = None, shapes: dict | None = None) -> Path:
    """A zarr v2 OME-Zarr written with zarr directly: level l+1 = ``algorithm`` of level
    l; the metadata records ``recorded`` (default: the same). ``dtypes``, ``compression``
    and ``shapes`` override a level's dtype, codec or data (by level number)."""
    dtypes, compression, shapes = dtypes or {}, compression or {}, shapes or {}
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    data = volume
    for level in range(nlevels):
        if level:
            data = pyramid.downsample(data, algorithm)
        stored = shapes.get(level, data)
        arr = store.create_array(path / str(level), stored.shape, CHUNK,
                                 dtypes.get(level, stored.dtype),
                                 compression=compression.get(level, "none"))
        arr[:] = stored.astype(dtypes.get(level, stored.dtype))
    method = recorded or algorithm
    group.attrs.update(ngff.image_attributes(
        [("0", "none")] + [(str(l), method) for l in range(1, nlevels)]))
    return path


def edit_attrs(path: Path, change) -> None:
    attrs = json.loads((path / ".zattrs").read_text())
    change(attrs["multiscales"][0])
    (path / ".zattrs").write_text(json.dumps(attrs))


def chunk_files(level_dir: Path) -> list[Path]:
    return sorted(p for p in level_dir.rglob("*")
                  if p.is_file() and not p.name.startswith("."))


# ------------------------------------------------------------------------ correct stores

@pytest.mark.parametrize("name", ["v2", "v3", "gaussian", "nearest"])
def test_stores_made_by_scroll_to_ome_pass_even_deep(converted, name):
    assert validate_store(converted[name], deep=True, samples=50) == []
    code, out, err = validate(converted[name], "--deep")
    assert (code, out) == (0, [])
    assert "ok" in err


def test_json_output_of_a_correct_store_is_an_empty_list(converted):
    code, out, _ = validate(converted["v2"], "--json")
    assert code == 0 and json.loads("\n".join(out)) == []


def test_hand_made_store_passes(tmp_path, volume):
    assert validate_store(hand_made(tmp_path / "s.zarr", volume), deep=True) == []


# ---------------------------------------------------------- one broken store per class

def test_declared_level_missing_is_an_error(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume)
    shutil.rmtree(path / "2")
    findings = validate_store(path)
    assert [(f.level, f.code) for f in findings] == [("2", "level-missing")]
    code, out, _ = validate(path)
    assert code == 1
    assert out == ["2 error level-missing: declared in multiscales but 2/.zarray does not "
                   "exist"]


def test_level_with_header_but_no_chunks_is_an_error(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume)
    for sub in (path / "1").iterdir():
        if sub.is_dir():
            shutil.rmtree(sub)
    assert [(f.level, f.severity, f.code) for f in validate_store(path)] == [
        ("1", "error", "level-no-chunks")]
    assert validate(path)[0] == 1


def test_all_zero_volume_without_chunks_is_only_a_warning(tmp_path):
    path = hand_made(tmp_path / "s.zarr", np.zeros(SHAPE, np.uint16))
    assert chunk_files(path / "0") == []
    assert [(f.level, f.severity, f.code) for f in validate_store(path)] == [
        ("0", "warning", "no-chunks")]
    assert validate(path)[0] == 0


def test_level_whose_shape_contradicts_its_scale_is_an_error(tmp_path, volume):
    # level 2 holds level 1's shape while its scale says 4x
    level1 = pyramid.downsample(volume, "mean")
    path = hand_made(tmp_path / "s.zarr", volume, shapes={2: level1})
    findings = validate_store(path)
    assert [(f.level, f.code) for f in findings] == [("2", "shape-mismatch")]
    assert "expected (10, 11, 12)" in findings[0].message


def test_scale_that_contradicts_shapes_is_an_error(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume, algorithm="nearest")
    edit_attrs(path, lambda ms: ms["datasets"][1]["coordinateTransformations"][0].update(
        scale=[4.0, 4.0, 4.0]))
    assert ("1", "shape-mismatch") in [(f.level, f.code) for f in validate_store(path)]
    assert validate(path)[0] == 1


def test_floor_halved_level_is_a_warning(tmp_path, volume):
    floor = pyramid.downsample(volume, "mean")[:18, :20, :22]
    path = hand_made(tmp_path / "s.zarr", volume, nlevels=2, shapes={1: floor})
    assert [(f.level, f.severity, f.code) for f in validate_store(path)] == [
        ("1", "warning", "shape-floor")]


def test_codecs_drifting_between_levels_are_reported(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume, compression={1: "blosc-zstd:5"})
    findings = validate_store(path)
    assert [(f.level, f.severity, f.code) for f in findings] == [
        ("1", "warning", "codec-drift")]
    assert "blosc" in findings[0].message
    code, out, _ = validate(path)
    assert code == 0 and out[0].startswith("1 warning codec-drift: ")


def test_codec_zarr_cannot_read_is_an_error(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume)
    meta = json.loads((path / "1" / ".zarray").read_text())
    meta["compressor"] = {"id": "no-such-codec"}
    (path / "1" / ".zarray").write_text(json.dumps(meta))
    assert [(f.level, f.code) for f in validate_store(path)] == [("1", "level-unreadable")]


def test_missing_root_zgroup_is_an_error(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume)
    (path / ".zgroup").unlink()
    assert codes(validate_store(path)) == ["root-group-missing"]
    code, out, _ = validate(path)
    assert code == 1 and out[0].startswith("store error root-group-missing: ")


def test_dtype_differing_between_levels_is_an_error(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume, dtypes={2: np.uint8})
    findings = validate_store(path)
    assert [(f.level, f.severity, f.code) for f in findings] == [
        ("2", "error", "dtype-mismatch")]
    assert "uint8" in findings[0].message and "uint16" in findings[0].message


def test_translation_of_neither_convention_is_an_error(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume)
    edit_attrs(path, lambda ms: ms["datasets"][1]["coordinateTransformations"][1].update(
        translation=[3.0, 0.5, 0.5]))
    assert [(f.level, f.code) for f in validate_store(path)] == [("1", "translation-mismatch")]
    assert validate(path)[0] == 1


def test_mean_levels_without_centre_shift_are_a_warning(tmp_path, volume):
    # what the published stores do: unitless scales, no translation at all
    path = hand_made(tmp_path / "s.zarr", volume)
    edit_attrs(path, lambda ms: [d.update(coordinateTransformations=[
        d["coordinateTransformations"][0]]) for d in ms["datasets"]])
    findings = validate_store(path)
    assert [(f.level, f.severity, f.code) for f in findings] == [
        ("1", "warning", "translation-offset"), ("2", "warning", "translation-offset")]
    assert validate(path)[0] == 0


def test_invalid_ngff_is_an_error(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume)
    edit_attrs(path, lambda ms: ms["datasets"][1].update(
        coordinateTransformations=ms["datasets"][1]["coordinateTransformations"][::-1]))
    findings = validate_store(path)
    assert codes(findings) == ["ngff-invalid"]
    assert "datasets.1.coordinateTransformations" in findings[0].message


def test_wrong_ngff_version_is_an_error(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume)
    edit_attrs(path, lambda ms: ms.update(version="0.5"))
    assert codes(validate_store(path)) == ["ngff-invalid"]


def test_v3_group_without_ome_attribute_is_invalid_ngff(converted, tmp_path):
    path = tmp_path / "v3.zarr"
    shutil.copytree(converted["v3"], path)
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"] = meta["attributes"]["ome"]  # 0.4-style attributes in a v3 group
    (path / "zarr.json").write_text(json.dumps(meta))
    assert codes(validate_store(path)) == ["ngff-invalid"]


def test_plain_array_is_not_an_ome_zarr(tmp_path, volume):
    store.create_array(tmp_path / "a.zarr", SHAPE, CHUNK, np.uint16)
    code, out, _ = validate(tmp_path / "a.zarr", "--json")
    assert code == 1
    assert [f["code"] for f in json.loads("\n".join(out))] == ["not-ome"]


def test_directory_without_zarr_metadata_is_reported(tmp_path):
    (tmp_path / "empty.zarr").mkdir()
    assert codes(validate_store(tmp_path / "empty.zarr")) == ["not-zarr"]


def test_missing_location_is_one_error_line(tmp_path):
    code, out, err = validate(tmp_path / "nothing.zarr")
    assert code == 1 and out == []
    missing = tmp_path / "nothing.zarr"
    assert err.strip().splitlines() == [f"error: {missing}: no such directory"]
    (tmp_path / "file.zarr").write_text("")
    code, out, err = validate(tmp_path / "file.zarr")
    assert code == 1 and err.strip().splitlines() == [
        f"error: {tmp_path / 'file.zarr'}: not a directory (an OME-Zarr store is one)"]


def test_levels_are_found_through_dataset_paths(tmp_path, volume):
    # a derived store starting at another level: paths "3", "4" (not "0", "1")
    path = hand_made(tmp_path / "s.zarr", volume, nlevels=2)
    (path / "0").rename(path / "3")
    (path / "1").rename(path / "4")
    edit_attrs(path, lambda ms: [d.update(path=p) for d, p in zip(ms["datasets"], "34")])
    assert validate_store(path, deep=True) == []


# ------------------------------------------------------------------------------ --deep

def test_deep_reports_a_corrupted_level_1_chunk(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume)
    victim = chunk_files(path / "1")[0]
    victim.write_bytes(victim.read_bytes()[:100])  # truncated: does not decode
    assert validate_store(path) == []  # headers alone cannot see it
    findings = validate_store(path, deep=True)
    key = victim.relative_to(path).as_posix()
    assert [(f.level, f.severity, f.code) for f in findings] == [
        ("1", "error", "chunk-corrupt")]
    assert key in findings[0].message
    code, out, _ = validate(path, "--deep", "--json")
    assert code == 1 and [f["code"] for f in json.loads("\n".join(out))] == ["chunk-corrupt"]


def test_deep_reports_a_pyramid_built_with_another_method(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume, algorithm="max", recorded="mean")
    findings = validate_store(path, deep=True, seed=1)
    assert {(f.level, f.code) for f in findings} == {("1", "pyramid-mismatch"),
                                                    ("2", "pyramid-mismatch")}
    assert validate(path, "--deep", "--seed", 1)[0] == 1
    assert validate(path)[0] == 0


def test_deep_calls_a_difference_of_one_a_rounding_warning(tmp_path, volume):
    # another tool's mean that truncates instead of rounding half to even
    level1 = pyramid._cells(volume.astype(np.int64)).sum(axis=(1, 3, 5)) // 8
    path = hand_made(tmp_path / "s.zarr", volume, nlevels=2,
                     shapes={1: level1.astype(np.uint16)})
    findings = validate_store(path, deep=True)
    assert codes(findings) == ["pyramid-rounding"]
    assert {f.severity for f in findings} == {"warning"}


def test_deep_reports_progress_per_level(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume, nlevels=2)
    seen = []

    def progress(items, total, label):
        items = list(items)
        seen.append((label, total, len(items)))
        return items
    assert validate_store(path, deep=True, progress=progress) == []
    assert seen == [("level 0", 27, 27), ("level 1", 8, 8)]


def test_deep_sample_depends_on_seed_only(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume, algorithm="max", recorded="mean")
    a = validate_store(path, deep=True, seed=5, samples=2)
    assert a == validate_store(path, deep=True, seed=5, samples=2)
    assert len([f for f in a if f.level == "1"]) == 2


# ----------------------------------------------------------------------- other stores

def test_store_object_and_http_location(converted, tmp_path):
    path = tmp_path / "s.zarr"
    shutil.copytree(converted["v2"], path)
    shutil.rmtree(path / "3")
    assert codes(validate_store(open_location(path))) == ["level-missing"]
    server = serve.StoreServer(tmp_path)
    server.start()
    try:
        findings = validate_store(server.url + "s.zarr")
        assert [(f.level, f.code) for f in findings] == [("3", "level-missing")]
        code, out, _ = validate(server.url + "s.zarr")
        assert code == 1 and out[0].startswith("3 error level-missing: ")
    finally:
        server.stop()


class _NoListingHandler(serve.StoreFileHandler):
    """A static server without directory listings (as most web servers are set up)."""

    def _directory(self, target):
        raise tornado.web.HTTPError(404)


class NoListingServer(serve.StoreServer):
    handler_class = _NoListingHandler


def chunkless_level_1(converted, tmp_path) -> Path:
    path = tmp_path / "s.zarr"
    shutil.copytree(converted["v2"], path)
    for sub in (path / "1").iterdir():
        if sub.is_dir():
            shutil.rmtree(sub)
    return path


@pytest.mark.parametrize("server_class, expected", [
    (serve.StoreServer, [("1", "error", "level-no-chunks")]),
    # without listings only probing is left: absence of probed chunks is not proof
    (NoListingServer, [("1", "warning", "chunks-unlisted")]),
])
def test_http_store_with_a_chunkless_level(converted, tmp_path, server_class, expected):
    chunkless_level_1(converted, tmp_path)
    shutil.copytree(converted["v3"], tmp_path / "good.zarr")
    server = server_class(tmp_path)
    server.start()
    try:
        findings = validate_store(server.url + "s.zarr")
        assert validate_store(server.url + "good.zarr") == []
    finally:
        server.stop()
    assert [(f.level, f.severity, f.code) for f in findings] == expected


def test_s3_store_with_a_chunkless_level(converted, tmp_path, s3_server):
    import s3fs

    path = chunkless_level_1(converted, tmp_path)
    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={
        "endpoint_url": s3_server["AWS_ENDPOINT_URL"], "region_name": "us-east-1"})
    fs.put(str(path), "scrolls/s.zarr", recursive=True)
    code, out, err = validate("s3://scrolls/s.zarr", env=s3_server)
    assert code == 1, err
    assert out == ["1 error level-no-chunks: array metadata but no chunk, while level 0 "
                   "has chunks"]


def test_help_names_the_options():
    proc = run_script("validate_ome.py", "--help")
    assert proc.returncode == 0
    for option in ("--deep", "--seed", "--samples", "--json", "--quiet"):
        assert option in proc.stdout


# ------------------------------------------------------------------- the remaining codes

def test_level_metadata_that_is_not_json_is_an_error(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume)
    (path / "1" / ".zarray").write_text("{not json")
    assert [(f.level, f.code) for f in validate_store(path)] == [("1", "metadata-unreadable")]


def test_chunk_shape_drifting_between_levels_is_a_warning(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume, nlevels=2)
    level1 = zarr.open_array(str(path / "1"), mode="r")[:]
    arr = zarr.create_array(str(path / "1"), shape=level1.shape, chunks=(8, 8, 8),
                            dtype=level1.dtype, zarr_format=2, compressors=None,
                            chunk_key_encoding={"name": "v2", "separator": "."},
                            fill_value=0, overwrite=True)
    arr[:] = level1
    findings = validate_store(path, deep=True)
    assert [(f.level, f.severity, f.code) for f in findings] == [
        ("1", "warning", "layout-drift")]
    assert "chunks [8, 8, 8]" in findings[0].message and "chunk_key" in findings[0].message


def test_level_with_other_dimensions_than_axes_is_an_error(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume, nlevels=2)
    store.create_array(path / "1", (2, 3, 4), CHUNK, np.uint16)  # 3-D still: rewrite meta
    meta = json.loads((path / "1" / ".zarray").read_text())
    meta.update(shape=[2, 3], chunks=[CHUNK, CHUNK])
    (path / "1" / ".zarray").write_text(json.dumps(meta))
    assert [(f.level, f.code) for f in validate_store(path)] == [("1", "ndim-mismatch")]


def test_unknown_method_and_other_axes_are_warnings(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume, nlevels=2)

    def change(ms):
        ms["axes"][0]["name"] = "t"
        ms["type"] = "lanczos"
        ms["metadata"] = {}
    edit_attrs(path, change)
    assert [(f.severity, f.code) for f in validate_store(path, deep=True)] == [
        ("warning", "axes-not-zyx"), ("warning", "method-unknown")]
    assert validate(path)[0] == 0


def test_deep_leaves_levels_with_a_scale_ratio_other_than_2_unchecked(tmp_path, volume):
    path = hand_made(tmp_path / "s.zarr", volume, nlevels=3)
    edit_attrs(path, lambda ms: (ms["datasets"].pop(1),
                                 ms["metadata"]["algorithms"].pop(1)))
    assert validate_store(path) == []
    assert [(f.level, f.code) for f in validate_store(path, deep=True)] == [
        ("2", "pyramid-unchecked")]


def test_deep_names_the_shard_holding_a_corrupt_chunk(converted, tmp_path):
    path = tmp_path / "v3.zarr"
    shutil.copytree(converted["v3"], path)
    shard = path / "1" / "c" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[:64] = bytes(64)  # zstd frames of the first inner chunk no longer decode
    shard.write_bytes(bytes(data))
    findings = validate_store(path, deep=True)
    assert {f.code for f in findings} == {"chunk-corrupt"}
    assert all(f.level == "1" and "key 1/c/0/0/0" in f.message for f in findings)
