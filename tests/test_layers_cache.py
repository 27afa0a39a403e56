"""The chunk cache reads local uncompressed zarr v2 chunk files itself, as zarr would."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from scrollzarr.cache import ChunkCache
from scrollzarr.errors import ScrollError

SHAPE = (37, 45, 53)  # (z, y, x), not a multiple of the chunks: edge chunks are cut


def _store(path, separator: str, dtype=np.uint16, in_group: bool = False) -> np.ndarray:
    data = np.random.default_rng(3).integers(0, 1000, size=SHAPE).astype(dtype)
    data[16:32] = 0  # a band of all-zero chunks that zarr leaves unwritten
    if in_group:
        group = zarr.open_group(str(path), mode="w", zarr_format=2)
        arr = group.create_array("0", shape=SHAPE, chunks=(16, 16, 16), dtype=dtype,
                                 chunk_key_encoding={"name": "v2", "separator": separator},
                                 compressors=None, fill_value=0,
                                 config={"write_empty_chunks": False})
    else:
        arr = zarr.create_array(store=str(path), shape=SHAPE, chunks=(16, 16, 16),
                                dtype=dtype, zarr_format=2, compressors=None, fill_value=0,
                                chunk_key_encoding={"name": "v2", "separator": separator},
                                config={"write_empty_chunks": False})
    arr[...] = data
    return data


@pytest.mark.parametrize("separator,dtype,in_group", [("/", np.uint16, False),
                                                      (".", np.uint8, False),
                                                      ("/", np.float32, True)])
def test_every_chunk_read_from_its_file_equals_what_zarr_reads(tmp_path, separator, dtype,
                                                               in_group):
    data = _store(tmp_path / "vol.zarr", separator, dtype, in_group)
    arr = zarr.open_group(str(tmp_path / "vol.zarr"), mode="r")["0"] if in_group else \
        zarr.open_array(str(tmp_path / "vol.zarr"), mode="r")
    cache = ChunkCache(arr, 0)
    for index in np.ndindex(3, 3, 4):
        box = tuple(slice(16 * i, min(16 * i + 16, n)) for i, n in zip(index, SHAPE))
        got = cache.get(tuple(int(i) for i in index))
        assert got.dtype == arr.dtype and got.flags.c_contiguous and not got.flags.writeable
        np.testing.assert_array_equal(got, data[box])
        np.testing.assert_array_equal(got, arr[box])


def test_a_truncated_uncompressed_chunk_file_is_an_error_naming_the_chunk(tmp_path):
    _store(tmp_path / "vol.zarr", "/")
    chunk = tmp_path / "vol.zarr" / "2" / "1" / "3"
    chunk.write_bytes(chunk.read_bytes()[:100])
    cache = ChunkCache(zarr.open_array(str(tmp_path / "vol.zarr"), mode="r"), 1 << 20)
    with pytest.raises(ScrollError, match=r"vol.zarr: cannot read chunk \(z, y, x\) = "
                       r"\(2, 1, 3\): ValueError: .*100 bytes, an uncompressed chunk holds "
                       "8192"):
        cache.get((2, 1, 3))
    np.testing.assert_array_equal(cache.get((2, 1, 2)).shape, (5, 16, 16))
