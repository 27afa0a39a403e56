"""Layer outputs (issue 15 "Output"): --layers, --stack_method, --preview, a render
replacing an earlier one as a whole; and the renderer's interfaces: any surface object
with Ppm's interface, an opened Volume, any number of threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from scrollzarr.errors import ScrollError
from scrollzarr.layers import layer_names, layer_offsets, render_layers
from scrollzarr.ngff import open_volume
from scrollzarr.ppm import Ppm, write_ppm
from test_layers import (assert_matches_reference, curved_segment, random_volume,
                         read_layers, reference_layers, v2_array)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def scene(tmp_path):
    volume = random_volume(seed=61)
    v2_array(tmp_path / "vol.zarr", volume)
    data = curved_segment(height=30, width=50)
    write_ppm(tmp_path / "seg.ppm", data)
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "full",
                  number_of_layers=11, interval=2.0, block_size=9)
    return tmp_path, volume, data, read_layers(tmp_path / "full", 11)


def test_layers_start_stop_renders_those_indices_under_their_own_names(scene):
    tmp_path, _, _, full = scene
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "part",
                  number_of_layers=11, interval=2.0, layers="3:7", block_size=13)
    names = sorted(p.name for p in (tmp_path / "part").glob("*.tif"))
    assert names == ["03.tif", "04.tif", "05.tif", "06.tif"]  # padded as among 11
    for k in range(3, 7):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "part" / f"{k:02d}.tif"),
                                      full[k])
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "tail",
                  number_of_layers=11, interval=2.0, layers="9:")
    assert sorted(p.name for p in (tmp_path / "tail").glob("*.tif")) == ["09.tif", "10.tif"]


@pytest.mark.parametrize("method", ["max", "min", "mean", "median"])
def test_stack_methods_combine_the_central_layers(scene, method):
    tmp_path, _, _, full = scene
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "out",
                  tmp_path / "stack.tif", number_of_layers=11, number_of_stacked_layers=4,
                  interval=2.0, stack_method=method)
    central = full[3:7].astype(np.float64)  # h = 5, S = 4: layers 3..6
    expected = {"max": central.max(0), "min": central.min(0),
                "mean": np.rint(central.mean(0)),  # half to even, like np.rint
                "median": np.rint(np.median(central, axis=0))}[method]
    got = tifffile.imread(tmp_path / "stack.tif")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, expected.astype(np.uint16))
    if method in ("mean", "median"):  # halves occur and went to even
        raw = central.mean(0) if method == "mean" else np.median(central, axis=0)
        halves = raw % 1 == 0.5
        assert halves.any() and np.all(got[halves] % 2 == 0)


def test_preview_pngs_are_8_bit_contrast_stretched_surface_and_stack(scene):
    tmp_path, _, _, full = scene
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "out",
                  number_of_layers=11, number_of_stacked_layers=5, interval=2.0,
                  preview=True)
    surface = np.asarray(Image.open(tmp_path / "out" / "preview_surface.png"))
    stack = np.asarray(Image.open(tmp_path / "out" / "preview_stack.png"))
    assert surface.dtype == np.uint8 and surface.shape == (30, 50) == stack.shape
    assert surface.min() == 0 and surface.max() == 255
    layer = full[5].astype(np.float64)
    on = layer != 0
    assert np.corrcoef(surface[on], layer[on])[0, 1] > 0.99  # a monotone stretch
    assert np.all(surface[~on] == 0)
    maxed = full[3:8].max(0).astype(np.float64)
    assert np.corrcoef(stack[maxed != 0], maxed[maxed != 0])[0, 1] > 0.99
    assert not (tmp_path / "stack.tif").exists()  # no stack TIFF was asked for


def test_a_new_render_replaces_the_earlier_one_as_a_whole_and_only_it(scene):
    tmp_path, _, _, _ = scene
    out = tmp_path / "full"
    (out / "notes.txt").write_text("mine")
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", out, out / "stack.tif",
                  number_of_layers=5, number_of_stacked_layers=3, preview=True)
    assert sorted(p.name for p in out.iterdir()) == [
        ".scrollzarr-layers.json", "0.tif", "1.tif", "2.tif", "3.tif", "4.tif", "notes.txt",
        "preview_stack.png", "preview_surface.png", "stack.tif"]
    manifest = json.loads((out / ".scrollzarr-layers.json").read_text())
    assert manifest["complete"] and "notes.txt" not in manifest["files"]
    # a file we did not write blocks a render that would overwrite it; nothing changes
    (out / "stack.tif").unlink()
    manifest["files"].remove("stack.tif")
    (out / ".scrollzarr-layers.json").write_text(json.dumps(manifest))
    (out / "stack.tif").write_bytes(b"a user's file")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ScrollError, match="stack.tif: exists and was not written by"):
        render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", out, out / "stack.tif",
                      number_of_layers=3, number_of_stacked_layers=1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", out, number_of_layers=3)
    assert sorted(p.name for p in out.iterdir()) == [
        ".scrollzarr-layers.json", "0.tif", "1.tif", "2.tif", "notes.txt", "stack.tif"]
    assert (out / "stack.tif").read_bytes() == b"a user's file"


class _OffsetSurface:
    """Another surface implementation (as the surfaces helper's): Ppm's interface over
    an in-memory array, shifted by a constant; no path attributes at all."""

    def __init__(self, data: np.ndarray, shift: float):
        self.data = data.copy()
        self.data[..., 0] += shift
        self.height, self.width = data.shape[:2]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def read_tile(self, v0, v1, u0, u1):
        tile = self.data[v0:v1, u0:u1]
        return tile, np.any(tile[..., 3:6] != 0, axis=-1)


def test_a_surface_object_and_an_opened_volume_render_like_paths(scene):
    tmp_path, volume, data, _ = scene
    surface = _OffsetSurface(data, 1.5)
    vol = open_volume(str(tmp_path / "vol.zarr"))
    render_layers(surface, vol, tmp_path / "obj", number_of_layers=11, interval=2.0,
                  num_threads=3, block_size=7)
    shifted = data.copy()
    shifted[..., 0] += 1.5
    ref, inside = reference_layers(volume, shifted, layer_offsets(11, 2.0))
    assert_matches_reference(read_layers(tmp_path / "obj", 11), ref, inside)
    # the opened volume's store is still an input: no output inside it
    with pytest.raises(ScrollError, match=r"OUT_DIR \S+ lies inside store"):
        render_layers(Ppm(tmp_path / "seg.ppm"), vol, tmp_path / "vol.zarr" / "x",
                      number_of_layers=3)


@pytest.mark.parametrize("threads, block", [(1, 100), (4, 5), (3, 1)])
def test_any_thread_count_and_tile_size_give_identical_files(scene, threads, block):
    tmp_path, _, _, full = scene
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "t",
                  number_of_layers=11, interval=2.0, block_size=block, num_threads=threads)
    for name in layer_names(11):
        assert (tmp_path / "t" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()


def test_compiled_kernels_are_cached_in_the_user_cache_when_the_package_is_read_only(
        tmp_path):
    import shutil

    pkg = tmp_path / "site" / "scrollzarr"
    shutil.copytree(REPO / "scrollzarr", pkg,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for dirpath, _, _ in os.walk(tmp_path / "site"):
        os.chmod(dirpath, 0o555)
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(tmp_path / "site"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("XDG_CACHE_HOME", None)
    code = ("import os, scrollzarr.sampler as s; import numpy as np; "
            "s.plan_tile(np.zeros((1, 3)), np.ones((1, 3)), np.zeros(1), (4, 4, 4), "
            "(2, 2, 2)); print(s.__file__)")
    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        # root writes everywhere; without the capabilities that bypass file permissions
        # it meets the read-only package like anyone else
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv")
        drop = "-dac_override,-dac_read_search"
        cmd = ["setpriv", "--bounding-set", drop, "--inh-caps", drop] + cmd
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True,
                              text=True, timeout=300, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().startswith(str(tmp_path / "site"))
        cached = list((home / ".cache" / "scrollzarr" / "numba").rglob("*.nbi"))
        assert cached, "no compiled kernel index in ~/.cache/scrollzarr/numba"
        assert not list((tmp_path / "site").rglob("*.nbi"))
    finally:
        for dirpath, _, _ in os.walk(tmp_path / "site"):
            os.chmod(dirpath, 0o755)


def halve_yx(a: np.ndarray) -> np.ndarray:
    """Plain numpy reference: 2x2 mean over y, x per layer, the last row/column standing
    in for a missing neighbour, rounded half to even."""
    if a.shape[1] % 2:
        a = np.concatenate([a, a[:, -1:]], axis=1)
    if a.shape[2] % 2:
        a = np.concatenate([a, a[:, :, -1:]], axis=2)
    f = a.astype(np.float64)
    return np.rint((f[:, 0::2, 0::2] + f[:, 1::2, 0::2] + f[:, 0::2, 1::2]
                    + f[:, 1::2, 1::2]) / 4).astype(a.dtype)


def test_zarr_output_is_an_ome_zarr_of_the_layers_with_a_yx_pyramid(tmp_path):
    import zarr

    volume = random_volume(seed=67)
    v2_array(tmp_path / "vol.zarr", volume)
    data = curved_segment(height=70, width=300)  # 300 columns: levels 0, 1, 2
    write_ppm(tmp_path / "seg.ppm", data)
    common = dict(number_of_layers=9, interval=2.0, layers="2:7", allow_outside=True)
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "tifs", **common)
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", "-",
                  zarr_output=tmp_path / "layers.zarr", num_threads=3, block_size=50,
                  **common)
    tifs = np.stack([tifffile.imread(tmp_path / "tifs" / f"{k}.tif") for k in range(2, 7)])
    group = zarr.open_group(str(tmp_path / "layers.zarr"), mode="r")
    level0 = group["0"]
    assert level0.shape == (5, 70, 300) and level0.chunks == (5, 128, 128)
    assert level0.dtype == np.uint16
    np.testing.assert_array_equal(level0[...], tifs)
    expected = tifs
    for level in (1, 2):
        expected = halve_yx(expected)
        np.testing.assert_array_equal(group[str(level)][...], expected)
    assert "3" not in group  # level 2 (5, 18, 75) fits one chunk
    ms = group.attrs["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    transforms = [d["coordinateTransformations"] for d in ms["datasets"]]
    assert transforms[2] == [{"type": "scale", "scale": [1.0, 4.0, 4.0]},
                             {"type": "translation", "translation": [2.0, 1.5, 1.5]}]
    assert group.attrs["scrollzarr"]["kind"] == "layers"
    assert not list(tmp_path.glob("*.partial"))


def test_zarr_output_replaces_only_a_layer_store_of_ours(tmp_path):
    import zarr

    v2_array(tmp_path / "vol.zarr", random_volume(seed=71))
    write_ppm(tmp_path / "seg.ppm", curved_segment(height=30, width=40))
    out = tmp_path / "layers.zarr"
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", "-", zarr_output=out,
                  number_of_layers=7)
    render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", "-", zarr_output=out,
                  number_of_layers=3)  # ours: replaced as a whole
    assert zarr.open_group(str(out), mode="r")["0"].shape == (3, 30, 40)
    assert not (tmp_path / "layers.zarr.old").exists()
    # someone else's store at that path is never deleted
    other = tmp_path / "other.zarr"
    v2_array(other, random_volume(seed=73))
    with pytest.raises(ScrollError, match="other.zarr: --zarr_output exists and is not a "
                       "layer store"):
        render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", "-", zarr_output=other,
                      number_of_layers=3)
    assert zarr.open_array(str(other), mode="r").shape == (37, 45, 53)
    with pytest.raises(ScrollError, match=r"--zarr_output \S+ is store"):
        render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", "-",
                      zarr_output=tmp_path / "vol.zarr", number_of_layers=3)
    with pytest.raises(ScrollError, match="OUT_DIR - .* needs --zarr_output"):
        render_layers(tmp_path / "seg.ppm", tmp_path / "vol.zarr", "-", number_of_layers=3)


def test_script_takes_the_new_output_options(tmp_path):
    import zarr

    v2_array(tmp_path / "vol.zarr", random_volume(seed=83))
    write_ppm(tmp_path / "seg.ppm", curved_segment(height=30, width=40))
    proc = subprocess.run(
        [sys.executable, str(REPO / "ppm_to_layers.py"), tmp_path / "seg.ppm",
         tmp_path / "vol.zarr", "-", tmp_path / "stack.tif", "--zarr_output",
         tmp_path / "out.zarr", "--number_of_layers", "9", "--layers", "2:7",
         "--number_of_stacked_layers", "3", "--stack_method", "median", "--num_threads", "2",
         "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    level0 = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["0"][...]
    expected = np.rint(np.median(level0[1:4].astype(np.float64), axis=0))  # layers 3..5
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "stack.tif"), expected)
    proc = subprocess.run(
        [sys.executable, str(REPO / "ppm_to_layers.py"), tmp_path / "seg.ppm",
         tmp_path / "vol.zarr", "-", "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr == "error: OUT_DIR - (no layer TIFFs) needs --zarr_output\n"


def test_a_surface_listing_its_input_files_is_guarded_by_those_files(scene):
    tmp_path, _, data, _ = scene
    surface_dir = tmp_path / "surface.tifxyz"  # a directory surface lists its files
    surface_dir.mkdir()
    for name in ("x.tif", "y.tif", "z.tif"):
        (surface_dir / name).write_bytes(b"input")
    surface = _OffsetSurface(data, 0.0)
    surface.path = surface_dir
    surface.inputs = tuple(surface_dir / n for n in ("x.tif", "y.tif", "z.tif"))
    render_layers(surface, tmp_path / "vol.zarr", surface_dir / "layers", number_of_layers=3)
    assert (surface_dir / "layers" / "1.tif").is_file()
    with pytest.raises(ScrollError, match=r"STACK \S+y.tif is surface input y.tif"):
        render_layers(surface, tmp_path / "vol.zarr", tmp_path / "o", surface_dir / "y.tif",
                      number_of_layers=3, number_of_stacked_layers=1)
    assert (surface_dir / "y.tif").read_bytes() == b"input"
