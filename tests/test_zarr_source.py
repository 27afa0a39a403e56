"""ZarrSource: a zarr array or an OME-Zarr level as the input of a conversion.

Stores are written by zarr-python (tests/zarr_inputs.py) in the layouts users hold, read
locally, over the project's own HTTP server and from a moto S3 server; every read box is
compared with numpy indexing of the volume the store was made from. Bytes read are
counted by the source's own store wrapper.
"""

from __future__ import annotations

import os
import pickle

import numcodecs
import numpy as np
import pytest
from zarr.codecs import ZstdCodec

from conftest import random_volume
from scrollzarr import serve
from scrollzarr.errors import ScrollError
from scrollzarr.remote import RemoteOptions
from scrollzarr.sources import Source
from scrollzarr.sources.zarr_input import ZarrSource
from zarr_inputs import stored_chunk_bytes, upload, write_array, write_store

SHAPE = (37, 45, 51)  # (z, y, x): no axis a multiple of the chunks


def volume(shape=SHAPE, dtype=np.uint16, seed=3) -> np.ndarray:
    vol = random_volume(shape, seed=seed, dtype=dtype, high=60000)
    vol[:16, :16] = 0  # whole chunks of background: absent in the store
    return vol


def boxes(shape, n=25, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        lo = [int(rng.integers(0, s)) for s in shape]
        hi = [int(rng.integers(a + 1, s + 1)) for a, s in zip(lo, shape)]
        yield tuple(zip(lo, hi))


def read(source, box, dtype=None):
    out = np.empty(tuple(b - a for a, b in box), dtype or source.dtype)
    return source.read(*box, out)


def check_boxes(source, vol):
    assert isinstance(source, Source)
    assert source.shape == vol.shape and source.dtype == vol.dtype.newbyteorder("=")
    for box in boxes(vol.shape):
        expect = vol[tuple(slice(a, b) for a, b in box)]
        np.testing.assert_array_equal(read(source, box), expect)


@pytest.mark.parametrize("layout", [
    dict(zarr_format=2),
    dict(zarr_format=2, compressors=numcodecs.Blosc("zstd")),
    dict(zarr_format=3, shards=32, compressors=ZstdCodec()),
    dict(zarr_format=3),
])
def test_boxes_read_equal_numpy_on_v2_and_v3_sharded_stores(tmp_path, layout):
    vol = volume()
    root = write_store(tmp_path / "in.zarr", vol, **layout)
    check_boxes(ZarrSource(root), vol)
    check_boxes(ZarrSource(root, level="1"), vol[::2, ::2, ::2])


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_plain_array_reads_like_numpy(tmp_path, zarr_format):
    vol = volume(dtype=np.float32)
    check_boxes(ZarrSource(write_array(tmp_path / "a.zarr", vol, zarr_format=zarr_format)),
                vol)


def test_big_endian_and_signed_arrays_read_in_native_order(tmp_path):
    vol = (volume().astype(np.int32) - 30000).astype(">i4")
    source = ZarrSource(write_array(tmp_path / "a.zarr", vol))
    assert source.dtype == np.dtype("int32")
    check_boxes(source, vol)


def test_levels_named_s0_s1_are_found_through_the_metadata(tmp_path):
    vol = volume()
    root = write_store(tmp_path / "in.zarr", vol, paths=("s0", "s1", "s2"))
    source = ZarrSource(root)
    assert source.level == "s0"
    check_boxes(source, vol)
    check_boxes(ZarrSource(root, level="s2"), vol[::4, ::4, ::4])
    with pytest.raises(ScrollError, match=r"--level 1 is not a dataset.*'s0', 's1', 's2'"):
        ZarrSource(root, level="1")


def test_voxel_size_and_origin_come_from_the_level_transforms(tmp_path):
    vol = volume()
    root = write_store(tmp_path / "in.zarr", vol, voxel_size=7.91,
                       translation=(7.91 * 100, 7.91 * 20, 0.0))
    level0, level1 = ZarrSource(root), ZarrSource(root, level="1")
    assert level0.voxel_size == pytest.approx(7.91) and level1.voxel_size == pytest.approx(
        15.82)
    assert level0.origin == pytest.approx((100, 20, 0))
    assert level1.origin == pytest.approx((50, 10, 0))  # voxels of that level
    nano = write_store(tmp_path / "nm.zarr", vol, voxel_size=7910.0, unit="nanometer")
    assert ZarrSource(nano).voxel_size == pytest.approx(7.91)
    unitless = ZarrSource(write_store(tmp_path / "u.zarr", vol, translation=(4, 0, 0)))
    assert unitless.voxel_size is None and unitless.origin == (4.0, 0.0, 0.0)


def test_each_chunk_is_read_once_when_boxes_straddle_chunks(tmp_path):
    """Boxes of 24 planes x 20 rows over 16^3 chunks, in the order a conversion reads
    them (slab by slab, band by band): every stored byte is read once."""
    vol = volume()
    root = write_store(tmp_path / "in.zarr", vol, paths=("0",))
    source = ZarrSource(root)
    got = np.zeros_like(vol)
    for z0 in range(0, SHAPE[0], 24):
        for y0 in range(0, SHAPE[1], 20):
            box = ((z0, min(z0 + 24, SHAPE[0])), (y0, min(y0 + 20, SHAPE[1])),
                   (0, SHAPE[2]))
            got[z0:box[0][1], y0:box[1][1]] = read(source, box)
    np.testing.assert_array_equal(got, vol)
    assert source.bytes_read == stored_chunk_bytes(root, "0")


def test_aligned_boxes_read_each_chunk_once_without_a_cache(tmp_path):
    vol = volume()
    root = write_store(tmp_path / "in.zarr", vol, paths=("0",))
    source = ZarrSource(root, cache_bytes=0)
    for z0 in range(0, SHAPE[0], 16):
        for y0 in range(0, SHAPE[1], 32):
            read(source, ((z0, min(z0 + 16, SHAPE[0])), (y0, min(y0 + 32, SHAPE[1])),
                          (0, SHAPE[2])))
    assert source.bytes_read == stored_chunk_bytes(root, "0")


def test_a_pickled_source_opens_the_store_again_and_reads_the_same(tmp_path):
    vol = volume()
    source = ZarrSource(write_store(tmp_path / "in.zarr", vol, zarr_format=3, shards=32))
    copy = pickle.loads(pickle.dumps(source))
    assert len(pickle.dumps(source)) < 2000  # location and options, no arrays
    assert copy.fingerprint() == source.fingerprint()
    check_boxes(copy, vol)


def test_fingerprint_changes_with_the_level_and_its_metadata_only(tmp_path):
    vol = volume()
    root = write_store(tmp_path / "in.zarr", vol)
    first = ZarrSource(root).fingerprint()
    assert ZarrSource(root).fingerprint() == first
    assert ZarrSource(root, level="1").fingerprint() != first
    zarray = root / "0" / ".zarray"
    zarray.write_text(zarray.read_text().replace('"fill_value": 0', '"fill_value": 1'))
    assert ZarrSource(root).fingerprint() != first


def test_a_chunk_that_cannot_be_decoded_is_an_error_naming_its_key(tmp_path):
    vol = volume()
    root = write_store(tmp_path / "in.zarr", vol, compressors=numcodecs.Blosc("zstd"))
    (root / "0" / "1" / "2" / "0").write_bytes(b"not blosc at all")
    source = ZarrSource(root)
    with pytest.raises(ScrollError, match=r"in\.zarr: chunk 0/1/2/0 cannot be read"):
        read(source, ((0, 37), (0, 45), (0, 51)))


def test_an_unknown_codec_and_a_missing_level_are_named(tmp_path):
    root = write_store(tmp_path / "in.zarr", volume())
    zarray = root / "1" / ".zarray"
    zarray.write_text(zarray.read_text().replace('"compressor": null',
                                                 '"compressor": {"id": "jpegxx"}'))
    with pytest.raises(ScrollError, match=r"level '1': codec 'jpegxx' cannot be decoded"):
        ZarrSource(root, level="1")
    zarray.unlink()
    with pytest.raises(ScrollError, match=r"--level 1 is declared but its array is missing"):
        ZarrSource(root, level="1")


def test_an_http_store_reads_like_the_local_one_and_counts_chunk_bytes(tmp_path, running):
    vol = volume()
    root = write_store(tmp_path / "data" / "in.zarr", vol, zarr_format=3, shards=32)
    server = running(serve.StoreServer(tmp_path / "data"))
    source = ZarrSource(server.url + "in.zarr",
                        options=RemoteOptions(cache_dir=tmp_path / "cache"))
    check_boxes(source, vol)
    local = ZarrSource(root)
    assert source.fingerprint() != local.fingerprint()
    assert len(source.fingerprint()) == 64
    # the same document bytes (served from the disk cache within --cache_ttl), but the
    # server's ETag changed: a store rewritten in place is not taken for the old one
    again = ZarrSource(server.url + "in.zarr",
                       options=RemoteOptions(cache_dir=tmp_path / "cache"))
    assert again.fingerprint() == source.fingerprint()
    os.utime(root / "0" / "zarr.json", ns=(1, 10**18))
    touched = ZarrSource(server.url + "in.zarr",
                         options=RemoteOptions(cache_dir=tmp_path / "cache"))
    assert touched.fingerprint() != source.fingerprint()


def test_an_s3_store_reads_like_numpy(tmp_path, s3_server, monkeypatch):
    for name, value in s3_server.items():
        monkeypatch.setenv(name, value)
    vol = volume()
    url = upload(write_store(tmp_path / "in.zarr", vol, paths=("s0", "s1")), s3_server,
                 "scans/in.zarr")
    source = ZarrSource(url, level="s1", options=RemoteOptions(cache_gb=0))
    check_boxes(source, vol[::2, ::2, ::2])
    assert source.fingerprint() == ZarrSource(url, level="s1").fingerprint()


def test_a_lower_cache_bound_drops_kept_rows_at_once(tmp_path):
    vol = volume()
    source = ZarrSource(write_store(tmp_path / "in.zarr", vol, paths=("0",)))
    read(source, ((0, 5), (0, 45), (0, 51)))  # part of the first layer: rows kept
    reader = source._open()[0]
    assert reader.cached_bytes > 0
    source.cache_bytes = 0
    assert reader.cached_bytes == 0
    np.testing.assert_array_equal(read(source, ((5, 20), (0, 45), (0, 51))), vol[5:20])
