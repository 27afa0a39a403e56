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
    layers = sorted((out / "layers").glob("*.tif"))
    assert len(layers) == 65 and (out / "stack.tif").is_file()
    assert np.asarray(group["5"]).shape == (2, 4, 4)


def _demo(out, cwd=None):
    env = {**os.environ, "DEMO_PYTHON": sys.executable, "SAMPLE_SHAPE": "16,32,32"}
    return subprocess.run(["bash", str(ROOT / "demo.sh"), str(out)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def _tree(root):
    return {str(p): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def test_demo_refuses_a_directory_it_did_not_make(tmp_path):
    cases = {  # what OUT_DIR is -> the end of the one error line
        "non-empty, no marker": ("mine", "was not made by demo.sh (no .scrollzarr-demo "
                                         "file); choose a new or empty directory"),
        "a file": ("file.txt", "OUT_DIR exists and is not a directory"),
        "the checkout's parent": (str(ROOT.parent), "contains the scrollzarr checkout "
                                                    f"{ROOT}; choose another directory"),
        "the checkout": (str(ROOT), "contains the scrollzarr checkout"),
    }
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("do not delete")
    (tmp_path / "file.txt").write_text("x")
    before = _tree(tmp_path)
    for name, (target, message) in cases.items():
        proc = _demo(target, cwd=tmp_path)
        assert proc.returncode == 1, name
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, proc.stderr)
        assert message in lines[0], (name, lines[0])
    assert _tree(tmp_path) == before


def test_demo_reruns_in_its_own_directory_and_keeps_other_files(tmp_path):
    out = tmp_path / "sample"
    assert _demo("sample", cwd=tmp_path).returncode == 0  # relative to where it starts
    assert (out / ".scrollzarr-demo").is_file() and (out / "scroll.zarr").is_dir()
    (out / "notes.txt").write_text("mine")
    again = _demo(out)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "scroll.zarr" / ".zgroup").is_file()
