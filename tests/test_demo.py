"""The README's first command (demo.sh), run on a small synthetic scroll."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import zarr

from conftest import ROOT


def test_demo_makes_converts_and_renders_the_sample(tmp_path):
    out = tmp_path / "sample"
    env = {**os.environ, "DEMO_PYTHON": sys.executable, "SAMPLE_SHAPE": "40,128,128"}
    proc = subprocess.run(["bash", str(ROOT / "demo.sh"), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    group = zarr.open_group(str(out / "scroll.zarr"), mode="r")
    assert group["0"].shape == (40, 128, 128)
    assert len(group.attrs["multiscales"][0]["datasets"]) == 6
    assert group["0"][20].any() and group.attrs["scrollzarr"]["complete"]
    assert len(list(out.glob("slices/*.tif"))) == 40
    if (ROOT / "ppm_to_layers.py").exists():
        layers = sorted((out / "layers").glob("*.tif"))
        assert len(layers) == 65 and (out / "stack.tif").is_file()
    assert np.asarray(group["5"]).shape == (2, 4, 4)
