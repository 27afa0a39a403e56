"""Readers written by others open our stores: xarray, ome-zarr-py, tensorstore and
ngff-zarr see the same pixels and transforms as we wrote; and the metadata they rely on
(_ARRAY_DIMENSIONS, omero, consolidated .zmetadata, tidy transforms) is right."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import zarr

from conftest import random_volume, run_script, write_stack
from reference import ref_pyramid
from scrollzarr import ngff
from scrollzarr.convert import Options, convert

SHAPE = (12, 20, 30)  # z, y, x of the cropped level 0
VOXEL = 7.91  # micrometers: 7.91 * 3.5 = 27.685000000000002 in binary floating point
Z0 = 5  # crop origin in z (slice number of level-0 z index 0)


@pytest.fixture(scope="module", params=[2, 3], ids=["v2", "v3"])
def converted(request, tmp_path_factory):
    """A 3-level store cropped at z = Z0, with a voxel size, in zarr v2 or v3."""
    base = tmp_path_factory.mktemp(f"readers{request.param}")
    vol = random_volume((SHAPE[0] + Z0,) + SHAPE[1:], seed=3)
    vol[:, :, 25:] = 0  # masked background must not pull the display window down
    src = write_stack(base / "in", vol)
    out = base / "scroll.zarr"
    convert(src, out, Options(chunk_size=8, nlevels=3, voxel_size=VOXEL, quiet=True,
                              ranges=f",,{Z0}:", zarr_format=request.param))
    levels = ref_pyramid(vol[Z0:], 3, "mean")
    return request.param, out, levels


def expected_transform(level: int) -> tuple[list[float], list[float]]:
    """(scale, translation) in micrometers, z, y, x: crop origin plus the centre shift."""
    shift = (2 ** level - 1) / 2
    return ([VOXEL * 2 ** level] * 3,
            [VOXEL * (Z0 + shift), VOXEL * shift, VOXEL * shift])


def test_xarray_opens_level_zero_with_named_dimensions(converted):
    import xarray as xr

    fmt, out, levels = converted
    # every level is a variable of the root group; their sizes differ, so take one;
    # mask_and_scale=False: a v2 fill_value 0 would otherwise turn into NaN
    ds = xr.open_zarr(out, drop_variables=["1", "2"], consolidated=fmt == 2,
                      mask_and_scale=False)
    assert ds["0"].dims == ("z", "y", "x")
    assert ds["0"].dtype == np.uint16
    np.testing.assert_array_equal(ds["0"].values, levels[0])


def test_ome_zarr_py_reader_sees_levels_transforms_and_contrast(converted):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    fmt, out, levels = converted
    image = list(Reader(parse_url(str(out)))())[0]
    assert len(image.data) == 3
    for level, (data, transforms) in enumerate(
            zip(image.data, image.metadata["coordinateTransformations"])):
        np.testing.assert_array_equal(np.asarray(data), levels[level])
        scale, trans = expected_transform(level)
        assert transforms[0]["scale"] == pytest.approx(scale)
        assert transforms[1]["translation"] == pytest.approx(trans)
    [(start, end)] = image.metadata["contrast_limits"]
    assert 0 < start < end <= 65535


def test_tensorstore_reads_every_level_bit_exact(converted):
    import tensorstore as ts

    fmt, out, levels = converted
    for level, ref in enumerate(levels):
        array = ts.open({"driver": "zarr" if fmt == 2 else "zarr3",
                         "kvstore": {"driver": "file", "path": str(out / str(level))}},
                        read=True).result()
        np.testing.assert_array_equal(array.read().result(), ref)
        if fmt == 3:
            assert list(array.domain.labels) == ["z", "y", "x"]


def test_ngff_zarr_sees_pixels_transforms_and_omero(converted):
    import ngff_zarr

    fmt, out, levels = converted
    multiscales = ngff_zarr.from_ngff_zarr(str(out))
    assert len(multiscales.images) == 3
    for level, image in enumerate(multiscales.images):
        assert tuple(image.dims) == ("z", "y", "x")
        np.testing.assert_array_equal(np.asarray(image.data), levels[level])
        scale, trans = expected_transform(level)
        assert [image.scale[a] for a in "zyx"] == pytest.approx(scale)
        assert [image.translation[a] for a in "zyx"] == pytest.approx(trans)
    [channel] = multiscales.metadata.omero.channels
    assert channel.color == "FFFFFF"


def image_attrs(fmt: int, out: Path) -> dict:
    if fmt == 2:
        return json.loads((out / ".zattrs").read_text())
    return json.loads((out / "zarr.json").read_text())["attributes"]["ome"]


def test_transforms_are_written_as_the_decimals_meant(converted):
    fmt, out, _ = converted
    text = (out / (".zattrs" if fmt == 2 else "zarr.json")).read_text()
    assert "27.685000000000002" not in text
    ms = image_attrs(fmt, out)["multiscales"][0]
    # level 2 of a mean pyramid: centre shift 1.5 voxels, crop origin 5: (5+1.5)*7.91
    assert ms["datasets"][2]["coordinateTransformations"][1]["translation"] == [
        51.415, 11.865, 11.865]
    assert ms["datasets"][1]["coordinateTransformations"][1]["translation"][1] == 3.955


def test_omero_window_is_the_coarse_levels_nonzero_percentiles(converted):
    fmt, out, levels = converted
    omero = image_attrs(fmt, out)["omero"]
    [channel] = omero["channels"]
    coarse = levels[-1]
    lo, hi = np.percentile(coarse[coarse != 0], ngff.WINDOW_PERCENTILES)
    assert channel["window"]["start"] == pytest.approx(lo, rel=1e-9)
    assert channel["window"]["end"] == pytest.approx(hi, rel=1e-9)
    assert (channel["window"]["min"], channel["window"]["max"]) == (0, 65535)
    assert omero["rdefs"] == {"model": "greyscale", "defaultT": 0, "defaultZ": SHAPE[0] // 2}
    assert channel["label"] == "scroll" and channel["active"]


def test_multiscales_metadata_names_method_version_and_arguments(converted):
    from scrollzarr import __version__

    fmt, out, _ = converted
    meta = image_attrs(fmt, out)["multiscales"][0]["metadata"]
    assert meta["method"] == "scrollzarr.pyramid.downsample"
    assert meta["version"] == __version__
    assert meta["kwargs"] == {"algorithm": "mean", "factor": [2, 2, 2]}
    assert meta["algorithms"] == ["none", "mean", "mean"]


def test_v2_levels_name_their_dimensions_and_v3_has_no_consolidated_metadata(converted):
    fmt, out, _ = converted
    if fmt == 2:
        for level in range(3):
            attrs = json.loads((out / str(level) / ".zattrs").read_text())
            assert attrs["_ARRAY_DIMENSIONS"] == ["z", "y", "x"]
        assert (out / ".zmetadata").is_file()
    else:
        assert not (out / ".zmetadata").exists()
        assert json.loads((out / "0" / "zarr.json").read_text())["dimension_names"] == [
            "z", "y", "x"]


def consolidated_matches_the_files(out: Path) -> None:
    """.zmetadata holds exactly the metadata files that are in the store now."""
    meta = json.loads((out / ".zmetadata").read_text())["metadata"]
    files = {p.relative_to(out).as_posix(): json.loads(p.read_text())
             for p in out.rglob(".z*") if p.name in (".zgroup", ".zattrs", ".zarray")}
    assert meta == files


def test_zarr_only_array_keeps_its_dimension_names(tmp_path, stack_dir):
    out = tmp_path / "a.zarr"
    convert(stack_dir(random_volume((4, 8, 8))), out,
            Options(zarr_only=True, chunk_size=4, quiet=True))
    attrs = json.loads((out / ".zattrs").read_text())
    assert attrs["_ARRAY_DIMENSIONS"] == ["z", "y", "x"] and attrs["scrollzarr"]["complete"]


def test_consolidated_metadata_follows_first_new_level(tmp_path, stack_dir):
    vol = random_volume((16, 16, 16), seed=4)
    out = tmp_path / "o.zarr"
    src = stack_dir(vol)
    convert(src, out, Options(chunk_size=4, nlevels=2, quiet=True))
    consolidated_matches_the_files(out)
    convert(src, out, Options(chunk_size=4, nlevels=4, first_new_level=1,
                              algorithm="nearest", quiet=True))
    consolidated_matches_the_files(out)
    group = zarr.open_group(str(out), mode="r", use_consolidated=True)
    assert sorted(group.array_keys()) == ["0", "1", "2", "3"]
    ms = group.attrs["multiscales"][0]
    assert len(ms["datasets"]) == 4 and "omero" in group.attrs
    np.testing.assert_array_equal(group["3"][:], ref_pyramid(vol, 4, "nearest")[3])


def test_resume_ignores_a_stale_consolidated_copy_and_rewrites_it(tmp_path):
    vol = random_volume((20, 24, 24), seed=5)
    src = write_stack(tmp_path / "in", vol)
    out = tmp_path / "o.zarr"
    opts = ["--chunk_size", "4", "--nlevels", "4", "--num_threads", "1", "--quiet"]
    proc = run_script("scroll_to_ome.py", src, out, *opts,
                      env={"SCROLLZARR_KILL_AT": "level:2"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    consolidated_matches_the_files(out)  # written as each level was listed
    # a stale copy that claims the store is complete must not be believed
    stale = json.loads((out / ".zmetadata").read_text())
    stale["metadata"][".zattrs"]["scrollzarr"]["complete"] = True
    (out / ".zmetadata").write_text(json.dumps(stale))
    run_script("scroll_to_ome.py", src, out, *opts, "--resume", check=True)
    consolidated_matches_the_files(out)
    attrs = json.loads((out / ".zattrs").read_text())
    assert attrs["scrollzarr"]["complete"] and len(attrs["multiscales"][0]["datasets"]) == 4
    for level, ref in enumerate(ref_pyramid(vol, 4, "mean")):
        np.testing.assert_array_equal(zarr.open_array(str(out / str(level)))[:], ref)


def test_http_reader_gets_all_metadata_in_one_request(tmp_path):
    """Over our own server, zarr opens the group and every level from .zmetadata alone
    instead of probing each level's .zarray/.zattrs (and v3 keys) one by one."""
    from scrollzarr import serve

    vol = random_volume((16, 16, 16), seed=6)
    src = write_stack(tmp_path / "in", vol)
    convert(src, tmp_path / "s.zarr", Options(chunk_size=8, nlevels=3, quiet=True))
    server = serve.StoreServer(tmp_path)
    server.start()
    try:
        group = zarr.open_group(server.url + "s.zarr", mode="r")
        levels = [group[str(level)] for level in range(3)]
        np.testing.assert_array_equal(levels[0][...], vol)
        metadata = [path for _, path, _ in server.requests_seen
                    if path.rsplit("/", 1)[-1] in (".zarray", ".zattrs", ".zgroup",
                                                   ".zmetadata", "zarr.json")]
    finally:
        server.stop()
    assert "/s.zarr/.zmetadata" in metadata
    assert not [p for p in metadata if p.startswith(("/s.zarr/0/", "/s.zarr/1/",
                                                     "/s.zarr/2/"))], metadata


def test_display_window_of_a_large_level_reads_only_sampled_chunks(tmp_path, monkeypatch):
    """A single-level store's window must not read the whole scroll: whole chunks on a
    grid, and their non-zero percentiles."""
    monkeypatch.setattr(ngff.window, "_WINDOW_SAMPLE", 4 * 4**3)  # four 4^3 chunks
    array = zarr.create_array(str(tmp_path / "a.zarr"), shape=(16, 16, 16), chunks=(4,) * 3,
                              dtype="u2", fill_value=0, zarr_format=2)
    vol = random_volume((16, 16, 16), seed=8, high=1000)
    array[...] = vol
    start, end = ngff.display_window(array)
    # stride round((64 / 4) ** (1/3)) = 3 chunks from chunk 1: chunks 1 on every axis
    sampled = vol[4:8, 4:8, 4:8]
    lo, hi = np.percentile(sampled[sampled != 0], ngff.WINDOW_PERCENTILES)
    assert (start, end) == (pytest.approx(lo), pytest.approx(hi))
