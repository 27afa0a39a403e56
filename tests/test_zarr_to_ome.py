"""zarr_to_ome.py: every zarr volume users hold becomes our OME-Zarr, as if from slices.

Inputs are written by zarr-python (tests/zarr_inputs.py): our own v2 store, a v3 sharded
store, a plain array, stores with "s0", "s1" levels, served over our HTTP server and a
moto S3 server. The output must equal scroll_to_ome.py's on the same voxels given as
slice TIFFs with the same options: every chunk file and every level array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import random_volume, run_script, write_stack
from scrollzarr.ppm import write_ppm
from zarr_inputs import write_store

SHAPE = (40, 56, 72)  # (z, y, x)


def papyrus(shape=SHAPE, seed=5) -> np.ndarray:
    vol = random_volume(shape, seed=seed, high=60000)
    vol[:, :, 60:] = 0  # masked background: absent chunks in the inputs
    return vol


def flat_segment(path: Path, width=60, height=30) -> Path:
    """A gently curved .ppm inside SHAPE, normals along y."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    pts = np.stack([4.0 + u, 25.0 + 4.0 * np.sin(u / 8.0), 4.0 + v], -1)
    normals = np.zeros_like(pts)
    normals[..., 1] = 1.0
    write_ppm(path, np.concatenate([pts, normals], -1))
    return path


def layer_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())
            if p.name != ".scrollzarr-layers.json"}


def test_ppm_to_layers_reads_a_store_whose_levels_are_named_s0_s1(tmp_path):
    vol = papyrus()
    numbered = write_store(tmp_path / "numbered.zarr", vol, paths=("0", "1"))
    named = write_store(tmp_path / "named.zarr", vol, paths=("s0", "s1"))
    ppm = flat_segment(tmp_path / "seg.ppm")
    layers = ("--number_of_layers", "5", "--number_of_stacked_layers", "3", "--quiet")
    for level_a, level_b in ((None, None), ("1", "s1")):
        outs = []
        for store, level in ((numbered, level_a), (named, level_b)):
            out = tmp_path / f"out-{store.stem}-{level}"
            extra = ("--level", level) if level else ()
            run_script("ppm_to_layers.py", ppm, store, out, *layers, *extra, check=True)
            outs.append(layer_files(out))
        assert outs[0] == outs[1] and len(outs[0]) == 5
