"""What ppm_to_layers loads before it renders (issue 16, the whole command's time): the
command skips numba's BLAS probe but leaves numba's linear algebra working, and the
library never skips it. Each case runs in a fresh process, whose modules are the point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scrollzarr.ppm import write_ppm
from test_layers import curved_segment, random_volume, v2_array

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def scene(tmp_path):
    v2_array(tmp_path / "vol.zarr", random_volume(seed=5))
    write_ppm(tmp_path / "seg.ppm", curved_segment(height=20, width=30))
    return tmp_path


def in_fresh_process(code: str, **names) -> str:
    """Run ``code`` (``names`` bound as strings) in a new interpreter; return stdout."""
    prelude = "".join(f"{k} = {str(v)!r}\n" for k, v in names.items())
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_command_skips_scipy_linalg_yet_numba_linear_algebra_still_compiles(scene):
    out = in_fresh_process("""
        import sys
        import numpy as np
        from scrollzarr.scripts import ppm_to_layers
        assert ppm_to_layers.entry([seg, vol, out, "--number_of_layers", "5", "--quiet"]) == 0
        print("scipy.linalg loaded:", "scipy.linalg" in sys.modules)
        import numba

        @numba.njit
        def dot(a, b):
            return np.dot(a, b)

        a, b = np.arange(6.0).reshape(2, 3), np.arange(3.0)
        print("dot:", np.array_equal(dot(a, b), a @ b))
        """, seg=scene / "seg.ppm", vol=scene / "vol.zarr", out=scene / "out")
    assert "scipy.linalg loaded: False" in out
    assert "dot: True" in out
    assert len(list((scene / "out").glob("*.tif"))) == 5


def test_library_render_leaves_numbas_blas_check_alone(scene):
    out = in_fresh_process("""
        from scrollzarr.layers import render_layers
        render_layers(seg, vol, out, number_of_layers=5)
        import numba.np.arraymath
        print("numba has BLAS:", numba.np.arraymath._HAVE_BLAS)
        """, seg=scene / "seg.ppm", vol=scene / "vol.zarr", out=scene / "out")
    assert "numba has BLAS: True" in out
