"""Flattened layers (scrollzarr.layers, scrollzarr.cache, ppm_to_layers.py) against an
independent reference: scipy.ndimage.map_coordinates(order=1) in float64, rounded, with
an explicit out-of-volume mask (in the volume iff 0 <= index <= n - 1 on every axis)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from scipy import ndimage

from scrollzarr import sample
from scrollzarr.cache import ChunkCache
from scrollzarr.errors import ScrollError
from scrollzarr.layers import layer_names, layer_offsets, render_layers, tile_order
from scrollzarr.ngff import multiscales
from scrollzarr.ppm import mask_path, write_mask, write_ppm
from scrollzarr.segment import write_sample_segment

REPO = Path(__file__).resolve().parents[1]
SHAPE = (37, 45, 53)  # (z, y, x), not a multiple of the 16-voxel chunks


# --- building real stores and segments ----------------------------------------------------

def v2_array(path: Path, data: np.ndarray, chunk: int = 16, compressors=None) -> zarr.Array:
    arr = zarr.create_array(store=str(path), shape=data.shape, chunks=(chunk,) * 3,
                            dtype=data.dtype, zarr_format=2,
                            chunk_key_encoding={"name": "v2", "separator": "/"},
                            compressors=compressors, fill_value=0,
                            config={"write_empty_chunks": False})
    arr[...] = data
    return arr


def random_volume(shape=SHAPE, dtype=np.uint16, seed=0) -> np.ndarray:
    high = np.iinfo(dtype).max + 1
    return np.random.default_rng(seed).integers(0, high, size=shape).astype(dtype)


def curved_segment(height=40, width=60, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(height, width, 6) segment whose points leave the volume of SHAPE through the x and
    z faces and whose layers (normal mostly along y, 21 layers 2.5 apart) cross the y
    faces; with a hole of unmapped pixels and a few pixels placed exactly on the edge
    rules. ``origin`` (z, y, x) shifts everything into scroll coordinates of a crop."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    x = -5.3 + u * 1.05
    y = 22.0 + 8.0 * np.sin(u / 7.0) + 3.0 * np.cos(v / 5.0)
    z = -4.7 + v * 1.1 + 2.0 * np.sin(u / 9.0)
    n = np.stack([0.3 * np.sin(u / 11.0), np.ones_like(u), 0.2 * np.cos(v / 6.0)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    data = np.concatenate([np.stack([x, y, z], axis=-1), n], axis=-1)
    nz, ny, nx = (s - 1 for s in SHAPE)
    edge = [  # (x, y, z) with the normal along z
        (nx, ny, nz),  # the last voxel exactly: in the volume
        (0.0, 0.0, 0.0),  # the first voxel exactly: in
        (nx - 0.01, ny - 0.01, nz - 0.01),  # just inside
        (nx + 0.5, 10.0, 10.0),  # between the last voxel centre and the edge: out
        (-0.5, 10.0, 10.0),  # between -1 and 0: out
        (10.0, -1e-9, 10.0),  # a hair below 0: out
    ]
    for i, (px, py, pz) in enumerate(edge):
        data[height - 1, i] = (px, py, pz, 0.0, 0.0, 1.0)
    data[..., 0:3] += np.asarray(origin)[::-1]  # (z, y, x) origin -> (x, y, z)
    data[10:14, 20:30] = 0  # a hole: unmapped
    return data


def reference_layers(volume: np.ndarray, data: np.ndarray, offsets, mapped=None,
                     factor=1.0, shift=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference: returns (layers (N, H, W) float64 rounded, in_volume mask).

    Array index = (scroll_zyx - shift) * factor per axis."""
    if mapped is None:
        mapped = np.any(data[..., 3:6] != 0, axis=-1)
    p = data[..., [2, 1, 0]]
    n = data[..., [5, 4, 3]]
    last = np.asarray(volume.shape) - 1
    vals, inside = [], []
    for off in offsets:
        idx = (p + off * n - np.asarray(shift)) * factor
        ins = np.all((idx >= 0) & (idx <= last), axis=-1) & mapped
        got = ndimage.map_coordinates(volume.astype(np.float64),
                                      idx.reshape(-1, 3).T, order=1, mode="nearest")
        vals.append(np.where(ins, np.rint(got.reshape(ins.shape)), 0.0))
        inside.append(ins)
    return np.stack(vals), np.stack(inside)


def read_layers(out_dir: Path, n: int) -> np.ndarray:
    return np.stack([tifffile.imread(out_dir / name) for name in layer_names(n)])


def assert_matches_reference(got: np.ndarray, ref: np.ndarray, inside: np.ndarray) -> None:
    diff = np.abs(got.astype(np.float64) - ref)
    assert diff[inside].max() <= 1, "an in-volume sample is off by more than 1"
    assert np.all(got[~inside] == 0), "an out-of-volume or unmapped sample is not 0"
    assert np.mean(diff[inside] == 0) > 0.999  # float64 both ways: ties aside, identical


# --- against the reference ----------------------------------------------------------------

def test_layers_match_reference_across_every_face_holes_and_edges(tmp_path):
    volume = random_volume()
    v2_array(tmp_path / "vol.zarr", volume)
    data = curved_segment()
    write_ppm(tmp_path / "seg.ppm", data)
    offsets = layer_offsets(21, 2.5)
    stats = render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "out",
                          number_of_layers=21, number_of_stacked_layers=5, interval=2.5,
                          block_size=16)
    got = read_layers(tmp_path / "out", 21)
    assert got.dtype == np.uint16 and got.shape == (21, 40, 60)
    ref, inside = reference_layers(volume, data, offsets)
    assert_matches_reference(got, ref, inside)

    # the test really covers what it claims: samples in and out beyond all six faces
    p, n = data[..., [2, 1, 0]], data[..., [5, 4, 3]]
    idx = np.stack([p + o * n for o in offsets])[np.broadcast_to(
        np.any(n != 0, axis=-1), (21, 40, 60))]
    for axis, size in enumerate(SHAPE):
        assert (idx[:, axis] < 0).any() and (idx[:, axis] > size - 1).any()
    assert inside.sum() > 0.3 * inside.size
    # edge pixels (last row, surface layer 10): exact voxels in, half-voxel outside out
    row = got[10, 39]
    assert row[0] == volume[-1, -1, -1] and row[1] == volume[0, 0, 0]
    assert inside[10, 39, :3].all() and not inside[10, 39, 3:6].any()
    assert list(row[3:6]) == [0, 0, 0]
    assert stats.samples == 21 * 40 * 60
    assert stats.chunk_fetches == stats.unique_chunks  # ample cache: no chunk read twice


def test_mask_png_unmaps_pixels_that_have_normals(tmp_path):
    volume = random_volume(seed=3)
    v2_array(tmp_path / "vol.zarr", volume, chunk=32)
    data = curved_segment(height=24, width=30)
    write_ppm(tmp_path / "seg.ppm", data)
    mapped = np.ones((24, 30), bool)
    mapped[5:15, 3:17] = False
    mapped[:, 29] = False
    write_mask(mask_path(tmp_path / "seg.ppm"), mapped)
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "out",
                  number_of_layers=5, number_of_stacked_layers=3, interval=3.0,
                  block_size=5)  # whole tiles unmapped: never written, read back as 0
    got = read_layers(tmp_path / "out", 5)
    ref, inside = reference_layers(volume, data, layer_offsets(5, 3.0), mapped=mapped)
    assert_matches_reference(got, ref, inside)
    assert np.all(got[:, 5:15, 3:17] == 0) and np.all(got[:, :, 29] == 0)


@pytest.mark.parametrize("direction", ["positive", "negative"])
def test_one_sided_directions_match_reference_on_a_uint8_store(tmp_path, direction):
    volume = random_volume(dtype=np.uint8, seed=5)
    v2_array(tmp_path / "vol.zarr", volume)
    data = curved_segment(height=20, width=60)
    write_ppm(tmp_path / "seg.ppm", data)
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "out",
                  number_of_layers=9, number_of_stacked_layers=9, interval=4.0,
                  direction=direction, block_size=7, num_threads=2)
    got = read_layers(tmp_path / "out", 9)
    assert got.dtype == np.uint8
    offsets = layer_offsets(9, 4.0, direction)
    assert offsets[0] == 0 and offsets[-1] == (32.0 if direction == "positive" else -32.0)
    ref, inside = reference_layers(volume, data, offsets)
    assert_matches_reference(got, ref, inside)


def cropped_ome(tmp_path: Path, volume: np.ndarray, origin, level1: np.ndarray) -> Path:
    """An OME-Zarr v2 root of a crop starting at scroll voxel ``origin`` (z, y, x)."""
    root = tmp_path / "crop.zarr"
    group = zarr.open_group(str(root), mode="w", zarr_format=2)
    group.attrs["multiscales"] = [multiscales([("0", "mean"), ("1", "mean")], origin=origin)]
    v2_array(root / "0", volume)
    v2_array(root / "1", level1)
    return root


def test_cropped_ome_zarr_store_honours_its_translation_at_level_0_and_1(tmp_path):
    origin = (1000.0, 2000.0, 3000.0)
    volume = random_volume(seed=7)
    level1 = random_volume(tuple(-(-n // 2) for n in SHAPE), seed=8)
    root = cropped_ome(tmp_path, volume, origin, level1)
    data = curved_segment(origin=origin)  # scroll coordinates of the crop
    write_ppm(tmp_path / "seg.ppm", data)

    render_layers(tmp_path / "seg.ppm", root, tmp_path / "out0", number_of_layers=7,
                  number_of_stacked_layers=3, interval=5.0)
    ref, inside = reference_layers(volume, data, layer_offsets(7, 5.0), shift=origin)
    assert_matches_reference(read_layers(tmp_path / "out0", 7), ref, inside)

    # level 1 (mean): index = (scroll - origin - 0.5) / 2
    render_layers(tmp_path / "seg.ppm", root, tmp_path / "out1", number_of_layers=7,
                  number_of_stacked_layers=3, interval=5.0, level=1)
    ref, inside = reference_layers(level1, data, layer_offsets(7, 5.0), factor=0.5,
                                   shift=tuple(o + 0.5 for o in origin))
    got = read_layers(tmp_path / "out1", 7)
    assert got.shape == (7, 40, 60)  # a preview keeps the segment's pixel grid
    assert_matches_reference(got, ref, inside)


def test_zarr_v3_sharded_ome_store_with_ngff_05_metadata_matches_reference(tmp_path):
    from scrollzarr.ngff import image_attributes

    origin = (-8.0, 5.0, 0.0)  # a crop may even start before scroll voxel 0
    volume = random_volume(seed=17)
    root = tmp_path / "v3.zarr"
    group = zarr.open_group(str(root), mode="w", zarr_format=3)
    group.attrs.update(image_attributes([("0", "mean")], origin=origin, zarr_format=3))
    arr = zarr.create_array(store=str(root / "0"), shape=SHAPE, chunks=(8, 8, 8),
                            shards=(16, 16, 16), dtype=np.uint16, zarr_format=3,
                            fill_value=0)
    arr[...] = volume
    data = curved_segment(origin=origin)
    write_ppm(tmp_path / "seg.ppm", data)
    render_layers(tmp_path / "seg.ppm", root, tmp_path / "out", number_of_layers=7,
                  number_of_stacked_layers=3, interval=4.0)
    ref, inside = reference_layers(volume, data, layer_offsets(7, 4.0), shift=origin)
    assert_matches_reference(read_layers(tmp_path / "out", 7), ref, inside)


def test_tiles_too_large_for_one_box_are_split_and_still_exact(tmp_path, monkeypatch):
    from scrollzarr import layers

    # our own size limit, made tiny: every tile is split into groups of samples
    monkeypatch.setattr(layers, "MAX_BOX_VOXELS", 4000)
    volume = random_volume(seed=19)
    v2_array(tmp_path / "vol.zarr", volume)
    data = curved_segment(height=30, width=60)
    write_ppm(tmp_path / "seg.ppm", data)
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "out",
                  number_of_layers=21, number_of_stacked_layers=1, interval=2.5,
                  block_size=40)
    ref, inside = reference_layers(volume, data, layer_offsets(21, 2.5))
    assert_matches_reference(read_layers(tmp_path / "out", 21), ref, inside)


@pytest.mark.parametrize("chunk", [12, 7])
def test_chunk_sizes_that_are_not_powers_of_two_match_reference(tmp_path, chunk):
    volume = random_volume(seed=79)
    v2_array(tmp_path / "vol.zarr", volume, chunk=chunk)
    data = curved_segment(height=30, width=60)
    write_ppm(tmp_path / "seg.ppm", data)
    stats = render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "out",
                          number_of_layers=13, interval=2.0, block_size=11)
    ref, inside = reference_layers(volume, data, layer_offsets(13, 2.0))
    assert_matches_reference(read_layers(tmp_path / "out", 13), ref, inside)
    assert stats.chunk_fetches == stats.unique_chunks


def test_stack_is_the_maximum_over_the_central_layers(tmp_path):
    volume = random_volume(seed=11)
    v2_array(tmp_path / "vol.zarr", volume)
    write_ppm(tmp_path / "seg.ppm", curved_segment(height=16, width=40))
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "out",
                  tmp_path / "stack.tif", number_of_layers=11, number_of_stacked_layers=4)
    got = read_layers(tmp_path / "out", 11)
    stack = tifffile.imread(tmp_path / "stack.tif")
    # h = 5, S = 4: layers 3..6
    np.testing.assert_array_equal(stack, got[3:7].max(axis=0))
    assert not list(tmp_path.rglob("*.partial"))


def test_layer_names_and_offsets_follow_the_conventions():
    assert layer_names(65)[0] == "00.tif" and layer_names(65)[32] == "32.tif"
    assert layer_names(10)[-1] == "09.tif" and layer_names(7) == [f"{k}.tif" for k in range(7)]
    assert layer_names(100)[5] == "005.tif"
    np.testing.assert_array_equal(layer_offsets(5, 2.0), [-4, -2, 0, 2, 4])
    np.testing.assert_array_equal(layer_offsets(4), [-2, -1, 0, 1])
    np.testing.assert_array_equal(layer_offsets(3, 1.5, "negative"), [0, -1.5, -3])


@pytest.mark.parametrize("nu, nv", [(1, 1), (8, 8), (5, 3), (13, 2), (1, 9)])
def test_tile_order_visits_every_tile_once_mostly_stepping_to_a_neighbour(nu, nv):
    order = [tuple(t) for t in tile_order(nu, nv).tolist()]
    assert sorted(order) == sorted(itertools.product(range(nu), range(nv)))
    steps = [abs(a[0] - b[0]) + abs(a[1] - b[1]) for a, b in zip(order, order[1:])]
    if nu == nv and nu & (nu - 1) == 0:
        assert all(s == 1 for s in steps)  # a true Hilbert curve
    else:
        assert np.mean([s == 1 for s in steps]) >= 0.5


# --- the synthetic scroll -----------------------------------------------------------------

def test_surface_layer_on_the_synthetic_scroll_shows_the_ink_and_far_layers_do_not(tmp_path):
    shape = (48, 128, 128)
    volume = np.stack([sample.make_slice(z, shape) for z in range(shape[0])])
    v2_array(tmp_path / "scroll.zarr", volume, chunk=32)
    ink = write_sample_segment(tmp_path / "seg.ppm", shape, winding=2, width=180)
    pitch = sample.geometry(shape)["pitch"]
    n = 2 * int(round(pitch / 2)) + 1  # outermost layers pitch / 2 from the sheet
    render_layers(tmp_path / "seg.ppm", tmp_path / "scroll.zarr", tmp_path / "out",
                  number_of_layers=n, number_of_stacked_layers=1)
    got = read_layers(tmp_path / "out", n).astype(np.float64)

    def ink_correlation(layer):
        return np.corrcoef(layer.ravel(), ink.ravel())[0, 1]

    assert ink_correlation(got[n // 2]) < -0.8  # ink darkens the sheet
    assert abs(ink_correlation(got[0])) < 0.15 and abs(ink_correlation(got[-1])) < 0.15
    assert got[n // 2].mean() > 2 * got[0].mean()  # on papyrus, not in the air


# --- the chunk cache ----------------------------------------------------------------------

def test_cache_is_an_lru_bounded_in_bytes(tmp_path):
    arr = v2_array(tmp_path / "vol.zarr", random_volume())
    one = 16 ** 3 * 2
    cache = ChunkCache(zarr.open_array(str(tmp_path / "vol.zarr"), mode="r"), 2 * one + 10)
    for i in range(4):
        np.testing.assert_array_equal(cache.get((0, 0, i)), arr[0:16, 0:16, 16 * i:16 * i + 16]
                                      if i < 3 else arr[0:16, 0:16, 48:53])
        assert cache.cached_bytes <= cache.max_bytes
    cache.get((0, 0, 2))  # recent: a hit
    assert (cache.fetches, cache.hits) == (4, 1)
    cache.get((0, 0, 0))  # evicted long ago: read again
    assert (cache.fetches, cache.unique_chunks) == (5, 4)


def test_cache_box_reads_zero_outside_the_volume(tmp_path):
    volume = random_volume()
    v2_array(tmp_path / "vol.zarr", volume)
    cache = ChunkCache(zarr.open_array(str(tmp_path / "vol.zarr"), mode="r"), 1 << 30)
    box = cache.read_box((-3, 30, 40), (5, 50, 60))
    expected = np.zeros((8, 20, 20), np.uint16)
    expected[3:, :15, :13] = volume[0:5, 30:45, 40:53]
    np.testing.assert_array_equal(box, expected)


class _HeldCache(ChunkCache):
    """Test seam on our own class: the store read waits until the test releases it."""

    def __init__(self, *args):
        super().__init__(*args)
        self.reading = threading.Event()
        self.release = threading.Event()

    def _read(self, index):
        self.reading.set()
        assert self.release.wait(30)
        return super()._read(index)


def test_cache_fetches_a_chunk_in_flight_once_for_two_threads(tmp_path):
    v2_array(tmp_path / "vol.zarr", random_volume())
    cache = _HeldCache(zarr.open_array(str(tmp_path / "vol.zarr"), mode="r"), 0)  # no LRU
    results = {}
    first = threading.Thread(target=lambda: results.setdefault("a", cache.get((1, 1, 1))))
    first.start()
    assert cache.reading.wait(30)
    second = threading.Thread(target=lambda: results.setdefault("b", cache.get((1, 1, 1))))
    second.start()
    deadline = time.monotonic() + 30
    while cache.hits == 0 and time.monotonic() < deadline:  # until it joins the read
        time.sleep(0.01)
    assert second.is_alive()  # waiting for the read in flight, not reading itself
    cache.release.set()
    first.join(30)
    second.join(30)
    assert results["a"] is results["b"]
    assert (cache.fetches, cache.hits) == (1, 1)


# --- errors -------------------------------------------------------------------------------

def test_bad_options_are_errors_naming_the_option(tmp_path):
    v2_array(tmp_path / "vol.zarr", random_volume())
    write_ppm(tmp_path / "seg.ppm", curved_segment(height=4, width=8))
    args = (tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "out")
    for kwargs, message in [
        ({"number_of_layers": 5, "number_of_stacked_layers": 7,
          "stack_path": tmp_path / "stack.tif"}, "--number_of_stacked_layers 7"),
        ({"number_of_layers": 5, "number_of_stacked_layers": 0, "preview": True},
         "--number_of_stacked_layers 0"),
        ({"number_of_layers": 9, "number_of_stacked_layers": 3, "layers": "0:3",
          "stack_path": tmp_path / "stack.tif"},
         "--layers 0:3 leaves out stacked layers"),
        ({"layers": "3:3"}, "--layers 3:3"),
        ({"layers": "5"}, "--layers 5"),
        ({"stack_method": "mode"}, "--stack_method"),
        ({"num_threads": 0}, "--num_threads"),
        ({"interval": 0.0}, "--interval"),
        ({"interval": float("nan")}, "--interval"),
        ({"block_size": 0}, "--block_size"),
        ({"zarr_cache_max_size_gb": -1.0}, "--zarr_cache_max_size_gb"),
        ({"direction": "up"}, "--direction"),
        ({"level": 1}, "--level 1 needs an OME-Zarr root"),
    ]:
        with pytest.raises(ScrollError, match=message):
            render_layers(*args, **kwargs)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_failing_chunk_read_fails_the_run_and_leaves_no_layer_files(tmp_path):
    import numcodecs

    volume = random_volume()
    v2_array(tmp_path / "vol.zarr", volume, compressors=numcodecs.Zstd(level=1))
    chunk = tmp_path / "vol.zarr" / "1" / "1" / "1"
    assert chunk.exists()
    chunk.write_bytes(b"this is not zstd data")
    write_ppm(tmp_path / "seg.ppm", curved_segment())
    with pytest.raises(ScrollError, match=r"vol.zarr: cannot read chunk \(z, y, x\) = "
                       r"\(1, 1, 1\): RuntimeError: Zstd") as err:
        render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "out",
                      tmp_path / "stack.tif", number_of_layers=21,
                      number_of_stacked_layers=5, interval=2.5, block_size=8)
    assert "\n" not in str(err.value)
    assert not list(tmp_path.rglob("*.tif")) and not list(tmp_path.rglob("*.partial"))


# --- the script ---------------------------------------------------------------------------

def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "ppm_to_layers.py", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "120"})


def test_script_renders_named_layers_and_stack_and_reports_errors(tmp_path):
    volume = random_volume(seed=13)
    v2_array(tmp_path / "vol.zarr", volume)
    data = curved_segment(height=20, width=30)
    write_ppm(tmp_path / "seg.ppm", data)
    out = tmp_path / "layers"

    proc = run(tmp_path / "seg.ppm", tmp_path / "vol.zarr", out, tmp_path / "stack.tif",
               "--number_of_layers", 7, "--number_of_stacked_layers", 3, "--block_size", 8,
               "--zarr_cache_max_size_gb", 0.001, "--interval", 2)
    assert proc.returncode == 0, proc.stderr
    assert "samples/s" in proc.stderr  # the progress bar
    assert sorted(p.name for p in out.iterdir()) == [".scrollzarr-layers.json"] + [
        f"{k}.tif" for k in range(7)]
    got = read_layers(out, 7)
    ref, inside = reference_layers(volume, data, layer_offsets(7, 2.0))
    assert_matches_reference(got, ref, inside)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "stack.tif"),
                                  got[2:5].max(axis=0))

    proc = run(tmp_path / "seg.ppm", tmp_path / "vol.zarr", out, tmp_path / "stack.tif",
               "--quiet", "--number_of_layers", 5, "--number_of_stacked_layers", 6)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: --number_of_stacked_layers 6 is more than the 5")

    proc = run(tmp_path / "seg.ppm", tmp_path / "vol.zarr", out, "--number_of_layers", "x")
    assert proc.returncode == 2 and "expected an integer, got 'x'" in proc.stderr

    proc = run(tmp_path / "seg.ppm", tmp_path / "nothing.zarr", out, "--quiet")
    assert proc.returncode == 1 and "nothing.zarr" in proc.stderr

    proc = run(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "q", "--quiet",
               "--number_of_layers", 3, "--number_of_stacked_layers", 1)
    assert proc.returncode == 0 and proc.stderr == ""


# --- pinned output --------------------------------------------------------------------------

#: sha256 of every layer TIFF and stack image of the renders in
#: test_layer_tiffs_are_byte_identical_to_the_pinned_render, made with the numpy renderer
#: before the compiled kernel replaced it: any change in arithmetic, rounding, edge rules or
#: TIFF layout shows up here.
PINNED_RENDER_SHA256 = "ec67c3e3a18ec8456575830fdbae2d38184672b06bbe43a9976e1b688b272a4f"


def _pinned_renders(tmp_path: Path) -> str:
    """Render a fixed set of small cases and return one sha256 over all output files."""
    import hashlib

    digest = hashlib.sha256()
    volume = random_volume(seed=23)
    v2_array(tmp_path / "vol.zarr", volume)
    write_ppm(tmp_path / "seg.ppm", curved_segment())
    origin = (1000.0, 2000.0, 3000.0)
    level1 = random_volume(tuple(-(-n // 2) for n in SHAPE), seed=29)
    cropped_ome(tmp_path, random_volume(seed=31), origin, level1)
    write_ppm(tmp_path / "crop.ppm", curved_segment(origin=origin))
    small = random_volume(dtype=np.uint8, seed=37)
    v2_array(tmp_path / "u8.zarr", small)
    shape = (48, 128, 128)
    v2_array(tmp_path / "scroll.zarr",
             np.stack([sample.make_slice(z, shape) for z in range(shape[0])]), chunk=32)
    write_sample_segment(tmp_path / "sample.ppm", shape, winding=2, width=180)
    cases = [
        ("seg.ppm", "vol.zarr", dict(number_of_layers=21, number_of_stacked_layers=5,
                                     interval=2.5, block_size=16)),
        ("seg.ppm", "u8.zarr", dict(number_of_layers=9, number_of_stacked_layers=3,
                                    interval=1.7, direction="negative", block_size=7)),
        ("crop.ppm", "crop.zarr", dict(number_of_layers=7, number_of_stacked_layers=3,
                                       interval=5.0, level=1)),
        ("crop.ppm", "crop.zarr", dict(number_of_layers=6, number_of_stacked_layers=6,
                                       interval=0.37, direction="positive")),
        ("sample.ppm", "scroll.zarr", dict(number_of_layers=15, number_of_stacked_layers=7)),
    ]
    for i, (ppm, store, kwargs) in enumerate(cases):
        out = tmp_path / f"out{i}"
        render_layers(tmp_path / ppm, tmp_path / store, out, tmp_path / f"stack{i}.tif",
                      **kwargs)
        for name in layer_names(kwargs["number_of_layers"]):
            digest.update((out / name).read_bytes())
        digest.update((tmp_path / f"stack{i}.tif").read_bytes())
    return digest.hexdigest()


def test_layer_tiffs_are_byte_identical_to_the_pinned_render(tmp_path):
    assert _pinned_renders(tmp_path) == PINNED_RENDER_SHA256
