"""What ppm_to_layers loads before it renders (issue 16, the whole command's time): a
local uncompressed store (zarr v2 or v3) renders without importing zarr, any other store
through zarr, with the same bytes; the command skips numba's BLAS probe but leaves
numba's linear algebra working, and the library never skips it. The cases that count
modules run in a fresh process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr

from scrollzarr.errors import ScrollError
from scrollzarr.layers import layer_names, render_layers
from scrollzarr.ngff import image_attributes, open_volume
from scrollzarr.ppm import write_ppm
from test_layers import curved_segment, random_volume, v2_array

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def scene(tmp_path):
    v2_array(tmp_path / "vol.zarr", random_volume(seed=5))
    write_ppm(tmp_path / "seg.ppm", curved_segment(height=20, width=30))
    return tmp_path


def v3_array(path: Path, data: np.ndarray, chunk: int = 16, **kwargs) -> zarr.Array:
    arr = zarr.create_array(store=str(path), shape=data.shape, chunks=(chunk,) * 3,
                            dtype=data.dtype, zarr_format=3, fill_value=0, **kwargs)
    arr[...] = data
    return arr


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """One volume (edge chunks, a chunk never written) in every layout, and a segment."""
    tmp_path = tmp_path_factory.mktemp("stores")
    volume = random_volume(seed=9)
    volume[:16, :16, :16] = 0
    v2_array(tmp_path / "v2.zarr", volume)
    v3_array(tmp_path / "v3.zarr", volume, compressors=None,
             config={"write_empty_chunks": False})
    v3_array(tmp_path / "v3dot.zarr", volume, compressors=None,
             chunk_key_encoding={"name": "default", "separator": "."})
    v2_array(tmp_path / "zstd.zarr", volume, compressors=numcodecs.Zstd(level=1))
    v3_array(tmp_path / "sharded.zarr", volume, chunk=8, shards=(16, 16, 16))
    assert not (tmp_path / "v3.zarr" / "c" / "0" / "0" / "0").exists()
    write_ppm(tmp_path / "seg.ppm", curved_segment())
    render_layers(tmp_path / "seg.ppm", tmp_path / "zstd.zarr", tmp_path / "by_zarr",
                  number_of_layers=9, interval=2.0)
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


@pytest.mark.parametrize("store, loads_zarr", [("v2.zarr", False), ("v3.zarr", False),
                                               ("v3dot.zarr", False), ("zstd.zarr", True),
                                               ("sharded.zarr", True)])
def test_local_uncompressed_store_renders_without_importing_zarr_others_through_it(
        stores, store, loads_zarr, tmp_path):
    out = in_fresh_process("""
        import sys
        from scrollzarr.scripts import ppm_to_layers
        code = ppm_to_layers.entry([seg, vol, out, "--number_of_layers", "9",
                                    "--interval", "2", "--quiet"])
        print("exit:", code, "zarr loaded:", "zarr" in sys.modules)
        """, seg=stores / "seg.ppm", vol=stores / store, out=tmp_path / "out")
    assert f"exit: 0 zarr loaded: {loads_zarr}" in out
    for name in layer_names(9):
        assert (tmp_path / "out" / name).read_bytes() == (
            stores / "by_zarr" / name).read_bytes(), name


@pytest.mark.parametrize("store", ["v2.zarr", "v3.zarr", "sharded.zarr"])
def test_volume_describes_its_array_and_opens_it_once_when_asked(stores, store):
    volume = open_volume(stores / store)
    arr = volume.array
    assert volume.array is arr
    assert volume.shape == arr.shape and volume.chunks == arr.chunks
    assert volume.dtype == arr.dtype and volume.store_path == str(arr.store_path)
    assert (volume.chunk_file is None) == (store == "sharded.zarr")


def test_a_broken_level_document_fails_at_open_through_zarr_as_before(tmp_path):
    root = tmp_path / "ome.zarr"
    zarr.open_group(str(root), mode="w", zarr_format=2).attrs.update(
        image_attributes([("0", "mean")]))
    v2_array(root / "0", random_volume(seed=3))
    (root / "0" / ".zattrs").write_text("{not json")
    with pytest.raises(ScrollError, match=r"ome.zarr: level '0': cannot open the array "
                                          r"\(JSONDecodeError: "):
        open_volume(root)


def test_a_truncated_chunk_file_is_named_with_the_store_path_zarr_gives(stores, tmp_path):
    import shutil

    from scrollzarr.cache import ChunkCache

    shutil.copytree(stores / "v2.zarr", tmp_path / "v2.zarr")
    (tmp_path / "v2.zarr" / "1" / "1" / "1").write_bytes(b"xx")
    volume = open_volume(tmp_path / "v2.zarr")
    with pytest.raises(ScrollError) as err:
        ChunkCache(volume, 1 << 20).get((1, 1, 1))
    assert str(err.value).startswith(f"{volume.array.store_path}: cannot read chunk "
                                     "(z, y, x) = (1, 1, 1): ValueError: ")
