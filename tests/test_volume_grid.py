"""volume_grid input: cells made from the synthetic scroll read back as the scroll, each
cell byte read once, and every check a bad grid needs (missing, mixed, shapes)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tifffile
import zarr

from conftest import run_script, write_stack
from scrollzarr import decompress, sample, slices
from scrollzarr.convert import Options, convert
from scrollzarr.errors import ScrollError
from scrollzarr.sources.volume_grid import CELL, is_volume_grid, open_volume_grid
from test_resume import store_bytes  # {relative path: bytes} of every file of a store

#: (z, y, x): short edge cells on every axis (20 planes, 40 rows, 10 columns)
SHAPE = (520, 40, 510)


@pytest.fixture(scope="module")
def scroll():
    return np.stack([sample.make_slice(z, SHAPE) for z in range(SHAPE[0])])


def cell_name(jz: int, jy: int, jx: int, digits: int = 3) -> str:
    """The file name of 0-based cell (jz, jy, jx)."""
    return f"cell_yxz_{jy + 1:0{digits}d}_{jx + 1:0{digits}d}_{jz + 1:0{digits}d}.tif"


def write_cells(directory, volume, skip=(), **imwrite_kwargs):
    """Cut ``volume`` (z, y, x) into 500^3 cells, one page per z, skipping the 0-based
    cells in ``skip``; return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    counts = [-(-n // CELL) for n in volume.shape]
    for cell in np.ndindex(*counts):
        if cell in skip:
            continue
        part = volume[tuple(slice(j * CELL, (j + 1) * CELL) for j in cell)]
        tifffile.imwrite(directory / cell_name(*cell), part, photometric="minisblack",
                         **imwrite_kwargs)
    return directory


def read_in_bands(source, band=16, slab=128):
    """The whole volume read as a conversion reads it: z slabs x bands of rows x full
    width."""
    nz, ny, nx = source.shape
    out = np.empty(source.shape, source.dtype)
    for y0 in range(0, ny, band):
        for z0 in range(0, nz, slab):
            z1, y1 = min(z0 + slab, nz), min(y0 + band, ny)
            source.read((z0, z1), (y0, y1), (0, nx), out[z0:z1, y0:y1])
    return out


@pytest.mark.parametrize("layout", [{}, {"compression": "zlib", "rowsperstrip": 8},
                                    {"byteorder": ">"}],
                         ids=["raw", "zlib", "big-endian"])
def test_cells_read_back_as_the_scroll(tmp_path, scroll, layout):
    source = open_volume_grid(write_cells(tmp_path / "cells", scroll, **layout))
    assert source.shape == SHAPE and source.dtype == np.uint16
    assert source.counts == (2, 1, 2) and source.filled() == (0, SHAPE[0])
    np.testing.assert_array_equal(read_in_bands(source), scroll)
    rng = np.random.default_rng(4)
    for _ in range(25):
        lo = [int(rng.integers(0, n)) for n in SHAPE]
        hi = [int(rng.integers(a + 1, n + 1)) for a, n in zip(lo, SHAPE)]
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        out = np.empty([b - a for a, b in zip(lo, hi)], np.uint16)
        np.testing.assert_array_equal(source.read(*zip(lo, hi), out), scroll[box])


def test_each_cell_byte_is_read_once_in_bands(tmp_path, scroll):
    raw = open_volume_grid(write_cells(tmp_path / "raw", scroll))
    read_in_bands(raw, band=16)
    assert raw.bytes_read == scroll.nbytes
    # compressed strips that bands never split are read once too
    packed = open_volume_grid(write_cells(tmp_path / "zlib", scroll, compression="zlib",
                                          rowsperstrip=8))
    read_in_bands(packed, band=16)
    strips = 0
    for path in sorted((tmp_path / "zlib").iterdir()):
        with tifffile.TiffFile(path) as tif:
            strips += sum(sum(page.databytecounts) for page in tif.pages)
    assert packed.bytes_read == strips


def test_source_pickles_as_paths(tmp_path, scroll):
    source = open_volume_grid(write_cells(tmp_path / "cells", scroll[:30]))
    read_in_bands(source)
    copy = pickle.loads(pickle.dumps(source))
    assert copy.bytes_read == 0 and copy.fingerprint() == source.fingerprint()
    assert len(pickle.dumps(source)) < 2000
    np.testing.assert_array_equal(read_in_bands(copy), scroll[:30])


def test_fingerprint_changes_with_a_cell(tmp_path, scroll):
    directory = write_cells(tmp_path / "cells", scroll[:30])
    before = open_volume_grid(directory).fingerprint()
    write_cells(directory, scroll[:30] + 1)
    assert open_volume_grid(directory).fingerprint() != before


def test_missing_cell_is_named_unless_allowed(tmp_path, scroll):
    directory = write_cells(tmp_path / "cells", scroll, skip={(0, 0, 1), (1, 0, 0)})
    # the first missing in name order (y, x, z)
    with pytest.raises(ScrollError, match=r"missing cell cell_yxz_001_001_002\.tif "
                                          r"\(2 of 4 missing; use --allow_missing"):
        open_volume_grid(directory)
    notes = []
    source = open_volume_grid(directory, allow_missing=True, note=notes.append)
    assert "2 of 4 volume_grid cells missing" in notes[0]
    expected = scroll.copy()
    expected[:CELL, :, CELL:] = 0
    expected[CELL:, :, :CELL] = 0
    np.testing.assert_array_equal(read_in_bands(source), expected)


def test_filled_span_skips_layers_without_cells(tmp_path, scroll):
    source = open_volume_grid(write_cells(tmp_path / "cells", scroll,
                                          skip={(0, 0, 0), (0, 0, 1)}), allow_missing=True)
    assert source.filled() == (CELL, SHAPE[0])


def test_mixed_directory_names_a_cell_and_a_slice(tmp_path, scroll):
    directory = write_cells(tmp_path / "cells", scroll[:30])
    tifffile.imwrite(directory / "00007.tif", scroll[0])
    message = r"mixes volume_grid cells and slices \(cell_yxz_001_001_001\.tif and 00007\.tif\)"
    for check in (is_volume_grid, open_volume_grid, slices.find_slices):
        with pytest.raises(ScrollError, match=message):
            check(directory)


def test_cells_are_never_read_as_slices(tmp_path, scroll):
    directory = write_cells(tmp_path / "cells", scroll[:30])
    with pytest.raises(ScrollError, match=r"cell_yxz_001_001_001\.tif is a volume_grid cell"):
        slices.find_slices(directory)
    with pytest.raises(ScrollError, match="is a volume_grid cell"):
        decompress.decompress_tiffs(directory, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_interior_cell_of_the_wrong_shape_is_named(tmp_path, scroll):
    directory = write_cells(tmp_path / "cells", scroll)
    tifffile.imwrite(directory / cell_name(0, 0, 0), scroll[:499, :, :CELL],
                     photometric="minisblack")
    with pytest.raises(ScrollError, match=r"cell_yxz_001_001_001\.tif: cell of 499x40x500 "
                                          r"voxels \(z, y, x\); its position implies 500x40x500"):
        open_volume_grid(directory)


def test_edge_cells_of_different_lengths_are_named(tmp_path, scroll):
    directory = write_cells(tmp_path / "cells", scroll)
    tifffile.imwrite(directory / cell_name(1, 0, 1), scroll[CELL:CELL + 19, :, CELL:],
                     photometric="minisblack")
    with pytest.raises(ScrollError, match=r"cell_yxz_001_002_002\.tif: cell of 19x40x10 .*"
                                          r"implies 20x40x10 .*\(as cell_yxz_001_001_002\.tif\)"):
        open_volume_grid(directory)


def test_a_cell_longer_than_500_is_refused(tmp_path):
    directory = tmp_path / "cells"
    directory.mkdir()
    tifffile.imwrite(directory / cell_name(0, 0, 0), np.ones((3, 501, 4), np.uint16),
                     photometric="minisblack")
    with pytest.raises(ScrollError, match="501 voxels along y; a cell holds at most 500"):
        open_volume_grid(directory)


def test_cells_of_another_dtype_or_rgb_pages_are_named(tmp_path, scroll):
    directory = write_cells(tmp_path / "cells", scroll)
    tifffile.imwrite(directory / cell_name(1, 0, 1), scroll[CELL:, :, CELL:].astype(np.uint8),
                     photometric="minisblack")
    with pytest.raises(ScrollError, match=r"cell_yxz_001_002_002\.tif: dtype uint8 differs"):
        open_volume_grid(directory)
    tifffile.imwrite(directory / cell_name(1, 0, 1), np.ones((40, 10, 3), np.uint16),
                     photometric="rgb")
    with pytest.raises(ScrollError, match=r"cell_yxz_001_002_002\.tif: page 0 of shape"):
        open_volume_grid(directory)


def test_duplicate_and_zero_indices_are_named(tmp_path, scroll):
    directory = write_cells(tmp_path / "cells", scroll[:30, :, :30])
    tifffile.imwrite(directory / "cell_yxz_01_01_01.tif", scroll[:30, :, :30],
                     photometric="minisblack")
    with pytest.raises(ScrollError, match="the same cell as"):
        open_volume_grid(directory)
    (directory / "cell_yxz_01_01_01.tif").rename(directory / "cell_yxz_000_001_001.tif")
    with pytest.raises(ScrollError, match=r"cell_yxz_000_001_001\.tif: cell index 0"):
        open_volume_grid(directory)


# ---- conversion: cells convert to the very store their slices give

@pytest.fixture(scope="module")
def scroll_dirs(tmp_path_factory, scroll):
    """The scroll as slices and as cells."""
    base = tmp_path_factory.mktemp("grid")
    slices_dir = write_stack(base / "slices", scroll, photometric="minisblack")
    return slices_dir, write_cells(base / "cells", scroll)


CONVERSIONS = {
    "v2": dict(chunk_size=64, nlevels=4),
    "v3 sharded crop": dict(chunk_size=32, shard_size=64, nlevels=3, zarr_format=3,
                            compression="zstd", ranges="12:509,3:38,7:515"),
}


@pytest.mark.parametrize("name", list(CONVERSIONS))
def test_cells_convert_to_the_store_of_their_slices(tmp_path, scroll_dirs, name):
    slices_dir, cells_dir = scroll_dirs
    options = Options(quiet=True, num_threads=2, **CONVERSIONS[name])
    # the same file name: the image name in the metadata is the store's
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    convert(slices_dir, tmp_path / "a" / "o.zarr", options)
    convert(cells_dir, tmp_path / "b" / "o.zarr", options)
    assert store_bytes(tmp_path / "b" / "o.zarr") == store_bytes(tmp_path / "a" / "o.zarr")


def test_conversion_reads_each_cell_byte_once(tmp_path, scroll_dirs, scroll):
    source = open_volume_grid(scroll_dirs[1])
    convert(source, tmp_path / "o.zarr", Options(quiet=True, num_threads=2, chunk_size=32,
                                                 nlevels=3, max_gb=0.05))
    assert source.bytes_read == scroll.nbytes


def test_script_names_the_missing_cell_and_fills_it_when_allowed(tmp_path, scroll):
    cells = write_cells(tmp_path / "cells", scroll, skip={(1, 0, 0)})
    refused = run_script("scroll_to_ome.py", cells, tmp_path / "o.zarr", "--quiet")
    assert refused.returncode == 1 and not (tmp_path / "o.zarr").exists()
    assert refused.stderr.strip().splitlines() == [
        f"error: {cells}: missing cell cell_yxz_001_001_002.tif (1 of 4 missing; use "
        "--allow_missing to fill them with zeros)"]
    done = run_script("scroll_to_ome.py", cells, tmp_path / "o.zarr", "--allow_missing",
                      "--chunk_size", "64", "--nlevels", "2")
    assert done.returncode == 0, done.stderr
    assert "1 of 4 volume_grid cells missing" in done.stderr
    expected = scroll.copy()
    expected[CELL:, :, :CELL] = 0
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "o.zarr" / "0", mode="r")[:],
                                  expected)


def test_script_refuses_a_mixed_directory_in_one_line(tmp_path, scroll):
    cells = write_cells(tmp_path / "cells", scroll[:30])
    tifffile.imwrite(cells / "00007.tif", scroll[0])
    refused = run_script("scroll_to_ome.py", cells, tmp_path / "o.zarr")
    assert refused.returncode == 1 and not (tmp_path / "o.zarr").exists()
    assert refused.stderr.strip().splitlines() == [
        f"error: {cells}: mixes volume_grid cells and slices (cell_yxz_001_001_001.tif and "
        "00007.tif); keep them in separate directories"]
