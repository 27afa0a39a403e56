"""chunk_layout.plain_layout: which array documents are read raw without zarr. Anything
not plainly our uncompressed layout must be left to zarr (None)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from scrollzarr.chunk_layout import plain_layout


def _document(tmp_path, zarr_format: int, **kwargs) -> dict:
    arr = zarr.create_array(store=str(tmp_path / "a.zarr"), shape=(5, 6, 7), chunks=(2, 3, 4),
                            dtype=kwargs.pop("dtype", np.uint16), zarr_format=zarr_format,
                            fill_value=0, compressors=None, **kwargs)
    name = "zarr.json" if zarr_format == 3 else ".zarray"
    assert arr.ndim == 3
    return json.loads((tmp_path / "a.zarr" / name).read_text())


@pytest.mark.parametrize("zarr_format, kwargs, first_chunk", [
    (2, {}, "0.0.0"),
    (2, dict(chunk_key_encoding={"name": "v2", "separator": "/"}), "0/0/0"),
    (2, dict(dtype=np.uint8), "0.0.0"),
    (3, {}, "c/0/0/0"),
    (3, dict(chunk_key_encoding={"name": "default", "separator": "."}), "c.0.0.0"),
    (3, dict(dtype=np.float32, dimension_names=("z", "y", "x")), "c/0/0/0"),
    (3, dict(dtype=np.uint8), "c/0/0/0"),
])
def test_zarrs_own_uncompressed_documents_are_recognised(tmp_path, zarr_format, kwargs,
                                                         first_chunk):
    dtype = np.dtype(kwargs.get("dtype", np.uint16))
    layout = plain_layout(_document(tmp_path, zarr_format, **kwargs), zarr_format, "/d")
    assert layout.shape == (5, 6, 7) and layout.chunks == (2, 3, 4)
    assert layout.dtype == dtype
    assert layout.chunk_file((0, 0, 0)) == "/d/" + first_chunk


@pytest.mark.parametrize("zarr_format, change", [
    (2, {"compressor": {"id": "zstd", "level": 1}}),
    (2, {"filters": []}),
    (2, {"dtype": ">u2"}),
    (2, {"dtype": [["a", "<u2"]]}),
    (2, {"order": "F"}),
    (2, {"fill_value": None}),
    (2, {"fill_value": -0.0}),
    (2, {"fill_value": False}),
    (2, {"shape": [5, 6]}),
    (2, {"chunks": [2, 3, 0]}),
    (2, {"extra": 1}),
    (3, {"codecs": [{"name": "bytes", "configuration": {"endian": "big"}}]}),
    (3, {"codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                    {"name": "zstd", "configuration": {"level": 1, "checksum": False}}]}),
    (3, {"chunk_key_encoding": {"name": "v2", "configuration": {"separator": "/"}}}),
    (3, {"chunk_grid": {"name": "rectilinear", "configuration": {"chunk_shape": [2, 3, 4]}}}),
    (3, {"data_type": {"name": "uint16"}}),
    (3, {"storage_transformers": [{"name": "x"}]}),
    (3, {"node_type": "group"}),
    (3, {"fill_value": "NaN"}),
])
def test_anything_else_is_left_to_zarr(tmp_path, zarr_format, change):
    document = _document(tmp_path, zarr_format)
    assert plain_layout(document, zarr_format, "/d") is not None
    assert plain_layout({**document, **change}, zarr_format, "/d") is None


def test_a_sharded_document_is_left_to_zarr(tmp_path):
    arr = zarr.create_array(store=str(tmp_path / "s.zarr"), shape=(8, 8, 8), chunks=(2, 2, 2),
                            shards=(4, 4, 4), dtype=np.uint16, zarr_format=3, fill_value=0,
                            compressors=None)
    assert arr.ndim == 3
    assert plain_layout(json.loads((tmp_path / "s.zarr" / "zarr.json").read_text()), 3,
                        "/d") is None
