"""Sources, the output's state, and convert over a source that is no slice directory."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import zarr

from conftest import random_volume, write_stack
from scrollzarr import journal, store
from scrollzarr.convert import Options, _command_line, convert
from scrollzarr.errors import ScrollError
from scrollzarr.output_state import OutputState, inspect_output
from scrollzarr.sources import Source, open_input


def _slices_with_gap(tmp_path: Path) -> tuple[Path, np.ndarray]:
    volume = random_volume((6, 9, 11), seed=5)
    directory = write_stack(tmp_path / "in", volume, first=4)
    (directory / "00006.tif").unlink()
    volume[2] = 0
    return directory, volume


def test_slice_source_reads_absolute_slice_numbers_and_zeros_for_missing(tmp_path):
    directory, volume = _slices_with_gap(tmp_path)
    source = open_input(directory, allow_missing=True)
    assert isinstance(source, Source)
    assert source.shape == (10, 9, 11) and source.filled() == (4, 10)
    assert source.dtype == np.uint16 and source.origin == (0.0, 0.0, 0.0)
    assert source.describe() == "5 slices of 11x9 uint16"
    full = source.read((3, 10), (2, 7), (0, 11), np.empty((7, 5, 11), np.uint16))
    np.testing.assert_array_equal(full[0], 0)  # slice 3: before the first file
    np.testing.assert_array_equal(full[1:], volume[:, 2:7])
    narrow = source.read((5, 8), (0, 9), (3, 8), np.empty((3, 9, 5), np.uint16))
    np.testing.assert_array_equal(narrow, volume[1:4, :, 3:8])


def test_slice_source_pickles_as_paths_and_keeps_the_journal_fingerprint(tmp_path):
    directory, _ = _slices_with_gap(tmp_path)
    source = open_input(directory, allow_missing=True)
    assert pickle.loads(pickle.dumps(source)) == source
    assert all(Path(f).is_absolute() for f in source.files)
    paths = [str(directory / f"{z:05d}.tif") if z != 6 else None for z in range(4, 10)]
    assert source.fingerprint() == journal.fingerprint(paths)


def test_inspect_output_tells_every_state(tmp_path):
    src = write_stack(tmp_path / "in", random_volume((4, 8, 8)))
    assert inspect_output(tmp_path / "none") is OutputState.ABSENT
    (tmp_path / "empty").mkdir()
    assert inspect_output(tmp_path / "empty") is OutputState.EMPTY
    (tmp_path / "file").write_text("x")
    assert inspect_output(tmp_path / "file") is OutputState.NOT_A_STORE
    assert inspect_output(src) is OutputState.NOT_A_STORE
    done = convert(src, tmp_path / "done.zarr", Options(quiet=True, nlevels=2))
    assert inspect_output(done) is OutputState.COMPLETE
    zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w")
    assert inspect_output(tmp_path / "foreign.zarr") is OutputState.FOREIGN
    store.set_attributes(done, {"scrollzarr": store.own_attributes((0, 0, 0), False)})
    assert inspect_output(done) is OutputState.UNFINISHED
    journal.Journal.create(done, {"command": "x"})
    assert inspect_output(done) is OutputState.RESUMABLE


class ArraySource:
    """A source over an array in memory: convert knows only the interface."""

    def __init__(self, volume: np.ndarray):
        self.volume = volume

    location = "memory://volume"
    origin = (0.0, 0.0, 0.0)
    voxel_size = None

    @property
    def shape(self):
        return self.volume.shape

    @property
    def dtype(self):
        return self.volume.dtype

    def filled(self):
        return (0, self.volume.shape[0])

    def fingerprint(self):
        return "memory"

    def describe(self):
        return "an array in memory"

    def read(self, z, y, x, out):
        out[...] = self.volume[z[0]:z[1], y[0]:y[1], x[0]:x[1]]
        return out


@pytest.mark.parametrize("options", [dict(), dict(ranges="2:9,1:,3:5", obytes=1)])
def test_convert_over_any_source_matches_the_slice_directory(tmp_path, options):
    volume = random_volume((7, 10, 12), seed=8)
    src = write_stack(tmp_path / "in", volume)
    common = dict(quiet=True, chunk_size=4, nlevels=3, num_threads=2, **options)
    a = convert(src, tmp_path / "a.zarr", Options(**common))
    b = convert(ArraySource(volume), tmp_path / "b.zarr", Options(**common))
    for level in range(3):
        np.testing.assert_array_equal(zarr.open_array(f"{a}/{level}", mode="r")[:],
                                      zarr.open_array(f"{b}/{level}", mode="r")[:])


def test_resume_hint_names_the_calling_program_and_its_input(tmp_path):
    command = _command_line("s3://bucket/in.zarr", "o.zarr",
                            Options(program="zarr_to_ome.py", chunk_size=64))
    assert "scrollzarr.scripts.zarr_to_ome" in command
    assert "s3://bucket/in.zarr" in command and "--chunk_size 64" in command
    with pytest.raises(ScrollError, match="INPUT_ZARR"):
        convert(tmp_path, tmp_path / "o.zarr", Options(quiet=True, input_label="INPUT_ZARR"))



def test_a_sources_origin_and_voxel_size_reach_the_metadata(tmp_path):
    source = ArraySource(random_volume((4, 6, 6), seed=9))
    source.origin, source.voxel_size = (10.0, 0.0, 0.0), 2.5
    out = convert(source, tmp_path / "o.zarr",
                  Options(quiet=True, nlevels=2, ranges=",1:,"))
    attrs = store.get_attributes(out)
    assert attrs["scrollzarr"]["origin_zyx"] == [10.0, 1, 0]
    ms = attrs["multiscales"][0]
    assert ms["axes"][0]["unit"] == "micrometer"
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [2.5] * 3
