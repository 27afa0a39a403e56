"""ppm_to_layers at the edges (issue 12): outputs never equal, contain or lie inside an
input; a segment that misses the volume (or reads only zeros) is an error naming both
bounding boxes, not a set of black layers; the stacked-layer count matters only when a
stack is made. Every case checks the exit code, a one-line message naming the path or
option, and that every input and unrelated file is byte-identical afterwards."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scrollzarr.ppm import mask_path, write_mask, write_ppm
from test_layers import curved_segment, random_volume, v2_array

REPO = Path(__file__).resolve().parents[1]


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "ppm_to_layers.py"), "--quiet",
                           *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


def snapshot(root: Path) -> dict[str, str]:
    """Every file and symlink under ``root`` with a hash of its bytes (or its target)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = "-> " + os.readlink(path)
            else:
                found[rel] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return found


@pytest.fixture
def scene(tmp_path):
    """A store, a segment with a mask, an unrelated file, and an earlier render."""
    v2_array(tmp_path / "vol.zarr", random_volume(seed=41))
    write_ppm(tmp_path / "seg.ppm", curved_segment(height=12, width=40))
    mapped = np.ones((12, 40), bool)
    mapped[:2, :5] = False
    write_mask(mask_path(tmp_path / "seg.ppm"), mapped)
    (tmp_path / "notes.txt").write_text("my own notes\n")
    proc = run(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "earlier",
               tmp_path / "earlier_stack.tif", "--number_of_layers", 5,
               "--number_of_stacked_layers", 3)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "link_to_store").symlink_to(tmp_path / "vol.zarr")
    (tmp_path / "link_to_ppm.tif").symlink_to(tmp_path / "seg.ppm")
    return tmp_path


# (OUT_DIR, STACK) relative to the scene; the expected message part
BAD_OUTPUTS = [
    ("out", "seg.ppm", r"STACK \S+ is "),
    ("out", "seg_mask.png", r"STACK \S+ is "),
    ("vol.zarr", None, r"OUT_DIR \S+ is "),
    ("vol.zarr/layers", None, r"OUT_DIR \S+ lies inside "),
    ("out", "vol.zarr/0/stack.tif", r"STACK \S+ lies inside "),
    (".", None, r"OUT_DIR \S+ contains "),
    ("link_to_store", None, r"OUT_DIR \S+ is "),  # symlinks resolved
    ("link_to_store/sub", None, r"OUT_DIR \S+ lies inside "),
    ("out", "link_to_ppm.tif", r"STACK \S+ is "),
    ("seg.ppm", None, r"OUT_DIR \S+ is "),
]


@pytest.mark.parametrize("out, stack, message", BAD_OUTPUTS)
def test_an_output_that_equals_contains_or_lies_inside_an_input_is_refused(
        scene, out, stack, message):
    before = snapshot(scene)
    args = [scene / "seg.ppm", scene / "vol.zarr", scene / out]
    if stack is not None:
        args.append(scene / stack)
    proc = run(*args, "--number_of_layers", 5, "--number_of_stacked_layers", 3)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert re.search(message, proc.stderr), proc.stderr
    assert str(scene / (stack if message.startswith("STACK") else out)) in proc.stderr
    assert snapshot(scene) == before


def flat_segment(width: int, height: int = 4, x0: float = 0.0) -> np.ndarray:
    """A flat strip at y = 20, z = 10 + v, x = x0 + u, normal along y."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    data = np.zeros((height, width, 6))
    data[..., 0] = x0 + u
    data[..., 1] = 20.0
    data[..., 2] = 10.0 + v
    data[..., 4] = 1.0
    return data


@pytest.mark.parametrize("width, ok", [(100, True), (110, False)])
def test_fewer_than_half_of_the_surface_in_the_volume_is_an_error(tmp_path, width, ok):
    # the volume is 53 voxels wide (x 0..52): 53 of 100 columns inside, 53 of 110 not half
    v2_array(tmp_path / "vol.zarr", random_volume(seed=43))
    write_ppm(tmp_path / "seg.ppm", flat_segment(width))
    before = snapshot(tmp_path)
    proc = run(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "out",
               "--number_of_layers", 3)
    if ok:
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "48.2% of the segment's surface" in proc.stderr
    # a plain array has no levels: the volume is named without one
    assert ("segment x 0..109, y 20..20, z 10..13; volume x 0..52, y 0..44, z 0..36"
            in proc.stderr)
    assert "--allow_outside" in proc.stderr
    assert snapshot(tmp_path) == before  # decided before any output was made

    proc = run(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "out",
               "--number_of_layers", 3, "--allow_outside")
    assert proc.returncode == 0, proc.stderr
    assert tifffile.imread(tmp_path / "out" / "1.tif")[:, :53].all()


def test_a_segment_far_from_a_cropped_store_names_both_boxes_in_scroll_voxels(tmp_path):
    from test_layers import cropped_ome

    root = cropped_ome(tmp_path, random_volume(seed=47), (1000.0, 2000.0, 3000.0),
                       random_volume((19, 23, 27), seed=48))
    write_ppm(tmp_path / "seg.ppm", flat_segment(30))  # near 0, 0, 0: the wrong crop
    proc = run(tmp_path / "seg.ppm", root, tmp_path / "out", "--number_of_layers", 3,
               "--level", 1)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "only 0% of the segment's surface" in proc.stderr
    # level 1 voxel centres in scroll voxels: origin + 0.5 .. origin + 0.5 + 2 * (n - 1)
    assert "volume level 1 x 3000.5..3052.5, y 2000.5..2044.5, z 1000.5..1036.5" \
        in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_volume_that_reads_only_zeros_fails_and_keeps_the_earlier_render(tmp_path):
    v2_array(tmp_path / "vol.zarr", random_volume(seed=53))
    v2_array(tmp_path / "masked.zarr", np.zeros((37, 45, 53), np.uint16))  # no chunk files
    write_ppm(tmp_path / "seg.ppm", curved_segment(height=12, width=40))
    out = tmp_path / "out"
    proc = run(tmp_path / "seg.ppm", tmp_path / "vol.zarr", out, out / "stack.tif",
               "--number_of_layers", 5, "--number_of_stacked_layers", 3, "--preview")
    assert proc.returncode == 0, proc.stderr
    before = snapshot(tmp_path)
    proc = run(tmp_path / "seg.ppm", tmp_path / "masked.zarr", out, out / "stack.tif",
               "--number_of_layers", 7, "--number_of_stacked_layers", 3, "--preview")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "every sample of the segment reads 0" in proc.stderr
    assert "masked.zarr" in proc.stderr and "volume x 0..52" in proc.stderr
    assert snapshot(tmp_path) == before  # nothing of the failed render is left

    proc = run(tmp_path / "seg.ppm", tmp_path / "masked.zarr", tmp_path / "black",
               "--number_of_layers", 3, "--allow_outside")
    assert proc.returncode == 0, proc.stderr
    assert not tifffile.imread(tmp_path / "black" / "1.tif").any()


def test_the_stacked_layer_count_is_checked_only_when_a_stack_is_made(tmp_path):
    v2_array(tmp_path / "vol.zarr", random_volume(seed=59))
    write_ppm(tmp_path / "seg.ppm", curved_segment(height=20, width=30))
    proc = run(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "out",
               "--number_of_layers", 8)  # the default 25 stacked layers is moot
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tif")) == [
        f"{k}.tif" for k in range(8)]
    proc = run(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "out2",
               tmp_path / "stack.tif", "--number_of_layers", 8)
    assert proc.returncode == 1
    assert proc.stderr == ("error: --number_of_stacked_layers 25 is more than the 8 "
                           "rendered layers (--number_of_layers)\n")


@pytest.mark.parametrize("option, value", [
    ("--interval", "nan"), ("--interval", "inf"), ("--interval", "0"),
    ("--block_size", "0"), ("--num_threads", "0"), ("--zarr_cache_max_size_gb", "-1"),
    ("--zarr_cache_max_size_gb", "nan"), ("--number_of_layers", "1e3"),
    ("--number_of_stacked_layers", "0"),
])
def test_bad_numbers_are_one_line_naming_the_option(tmp_path, option, value):
    write_ppm(tmp_path / "seg.ppm", curved_segment(height=4, width=8))
    before = snapshot(tmp_path)
    proc = run(tmp_path / "seg.ppm", tmp_path / "vol.zarr", tmp_path / "out", option, value)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"argument {option}" in proc.stderr
    assert snapshot(tmp_path) == before


def test_a_stack_image_outside_out_dir_is_replaced_only_if_our_last_render_wrote_it(scene):
    args = [scene / "seg.ppm", scene / "vol.zarr", scene / "earlier",
            "--number_of_layers", 5, "--number_of_stacked_layers", 3]
    # the earlier render wrote earlier_stack.tif beside its OUT_DIR: a re-render replaces it
    proc = run(*args[:3], scene / "earlier_stack.tif", *args[3:])
    assert proc.returncode == 0, proc.stderr
    # a file of the user's at the stack path is never replaced
    before = snapshot(scene)
    proc = run(*args[:3], scene / "notes.txt", *args[3:])
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert f"{scene / 'notes.txt'}: exists and was not written by an earlier render" \
        in proc.stderr
    assert snapshot(scene) == before
    # nor is our own stack once somebody changed it
    with open(scene / "earlier_stack.tif", "ab") as fh:
        fh.write(b"edited")
    before = snapshot(scene)
    proc = run(*args[:3], scene / "earlier_stack.tif", *args[3:])
    assert proc.returncode == 1 and "or was changed since" in proc.stderr
    assert snapshot(scene) == before
