"""The NGFF format objects: what they write is valid NGFF of their version, in the place
that version keeps it; what they read is read leniently (a broken published store still
opens, minus what is broken, with a note)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr

from conftest import random_volume
from scrollzarr import ngff
from scrollzarr.serve.viewer import describe_store

LEVELS = [("0", "none"), ("1", "mean"), ("2", "nearest")]


@pytest.mark.parametrize("form", ngff.FORMATS, ids=lambda f: f.version)
def test_metadata_we_write_is_valid_ngff_of_its_version(form):
    omero = form.omero("scroll", "u2", (10.0, 2000.0), 7)
    attrs = form.image_attributes(LEVELS, (5, 0, 2), 7.91, "scroll", omero)
    assert form.validate(attrs) == []
    assert ngff.format_of(attrs) is form
    other = ngff.V05 if form is ngff.V04 else ngff.V04
    assert other.validate(attrs) != []  # the other version's place or shape
    image = form.read(attrs, "s.zarr")
    assert [lv.path for lv in image.levels] == ["0", "1", "2"] and image.notes == ()
    assert image.levels[2].scale == pytest.approx((4 * 7.91,) * 3)
    # mean level 1 centred by half a voxel, nearest level 2 not: origin (5, 0, 2) only
    assert image.levels[1].translation == pytest.approx(
        (5.5 * 7.91, 0.5 * 7.91, 2.5 * 7.91))
    assert image.levels[2].translation == pytest.approx((5 * 7.91, 0.0, 2 * 7.91))


def test_version_keys_sit_where_each_version_wants_them():
    v04 = ngff.image_attributes(LEVELS, zarr_format=2,
                                omero=ngff.omero("s", "u1", (1, 2), 0))
    v05 = ngff.image_attributes(LEVELS, zarr_format=3,
                                omero=ngff.omero("s", "u1", (1, 2), 0, version=None))
    assert v04["multiscales"][0]["version"] == "0.4" and v04["omero"]["version"] == "0.4"
    assert list(v05) == ["ome"] and v05["ome"]["version"] == "0.5"
    assert "version" not in v05["ome"]["multiscales"][0]
    assert "version" not in v05["ome"]["omero"]
    # the key order our stores have always had, not the models' field order
    assert list(v04["multiscales"][0]) == ["version", "name", "axes", "datasets", "type",
                                           "metadata"]
    assert list(v04["omero"]["channels"][0]["window"]) == ["min", "max", "start", "end"]


def test_lenient_read_skips_unusable_datasets_and_notes_them():
    attrs = ngff.image_attributes(LEVELS)
    datasets = attrs["multiscales"][0]["datasets"]
    datasets[1]["coordinateTransformations"] = "broken"
    datasets[2]["coordinateTransformations"][0]["scale"] = [0, 4, 4]
    datasets.append({"no": "path"})
    image = ngff.read_image(attrs, "pub.zarr")
    assert [lv.path for lv in image.usable] == ["0"]
    assert [lv.path for lv in image.levels] == ["0", "1", "2"]  # for a validator to judge
    assert image.notes == tuple(f"note: pub.zarr: dataset #{i} of the metadata is "
                                "unusable, skipped" for i in (1, 2, 3))
    assert ngff.read_image({"multiscales": "nonsense"}, "x") is None


def make_store(path, zarr_format, paths=("0", "1", "2")):
    """A 3-level store whose datasets are named by ``paths`` (not necessarily 0..n)."""
    vol = random_volume((8, 16, 16), seed=2, high=1000)
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    form = ngff.format_for(zarr_format)
    attrs = form.image_attributes(LEVELS, name="s")
    for dataset, name in zip(ngff.multiscales_of(attrs)[0]["datasets"], paths):
        dataset["path"] = name
    group.attrs.update(attrs)
    for level, name in enumerate(paths):
        group.create_array(name, data=vol[::2 ** level, ::2 ** level, ::2 ** level],
                           chunks=(4, 4, 4))
    return vol


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_readers_find_levels_by_dataset_path(tmp_path, zarr_format):
    vol = make_store(tmp_path / "s.zarr", zarr_format, paths=("full", "half", "quarter"))
    volume = ngff.open_volume(tmp_path / "s.zarr")
    assert volume.level == "full" and volume.notes == ()
    np.testing.assert_array_equal(volume.array[...], vol)
    assert ngff.open_volume(tmp_path / "s.zarr", level="quarter").factor == (0.25,) * 3
    info = describe_store(str(tmp_path / "s.zarr"), "zarr2://x/")
    assert info.shape_zyx == vol.shape and info.notes == ()


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_readers_skip_a_missing_declared_level_with_a_note(tmp_path, zarr_format):
    vol = make_store(tmp_path / "s.zarr", zarr_format)
    shutil.rmtree(tmp_path / "s.zarr" / "0")
    volume = ngff.open_volume(tmp_path / "s.zarr")
    assert volume.level == "1"
    assert volume.notes == (f"note: {tmp_path / 's.zarr'}: declared level '0' is missing, "
                            "skipped",)
    info = describe_store(str(tmp_path / "s.zarr"), "zarr2://x/")
    assert info.shape_zyx == vol[::2, ::2, ::2].shape
    assert info.notes == (f"note: {tmp_path / 's.zarr'}: declared level '0' is missing, "
                          "skipped",)
