"""Refactoring guard: the stores of a small synthetic scroll, pinned.

Each case converts the same small scroll (odd sizes, numbered from 3, one slice missing)
with one option set, then checks a sha256 over the store's chunk files (sorted relative
path + bytes; metadata excluded) and compares every metadata document as parsed JSON with
the expected one written here, so a later change that adds metadata updates one expected
document, not a checksum. The values were computed before the sources/spec redesign; it
must not change them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import write_stack
from scrollzarr.convert import Options, convert

METADATA = {".zattrs", ".zarray", ".zgroup", "zarr.json", ".zmetadata"}
SHAPE = (21, 37, 45)  # z, y, x
FIRST, GAP = 3, 10  # slice numbers 3..23, slice 10 missing

CASES = {
    "v2_default": dict(chunk_size=16, nlevels=3),
    "v3_sharded_zstd": dict(chunk_size=8, shard_size=16, nlevels=3, zarr_format=3,
                            compression="zstd"),
    "ranges_crop": dict(chunk_size=16, nlevels=3, ranges="5:40,3:30,6:20"),
    "obytes_1": dict(chunk_size=16, nlevels=3, obytes=1, voxel_size=7.91),
    "gaussian": dict(chunk_size=8, nlevels=3, algorithm="gaussian"),
    "max": dict(chunk_size=8, nlevels=3, algorithm="max"),
    "zarr_only": dict(chunk_size=16, zarr_only=True),
}


def _scroll(directory: Path) -> Path:
    rng = np.random.default_rng(13)
    volume = rng.integers(0, 65536, size=SHAPE, dtype=np.int64).astype(np.uint16)
    volume[:, :5] = 0  # some all-zero chunks: never written
    write_stack(directory, volume, first=FIRST)
    (directory / f"{GAP:05d}.tif").unlink()
    return directory


def _digest(out: Path) -> tuple[str, dict[str, object]]:
    """(sha256 over chunk files, {relative path: parsed metadata document})."""
    h = hashlib.sha256()
    docs = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if path.name in METADATA:
            docs[rel] = json.loads(path.read_text())
            continue
        h.update(rel.encode() + b"\0" + path.read_bytes())
    return h.hexdigest(), docs


def _convert(tmp_path: Path, name: str, **options) -> Path:
    out = tmp_path / f"{name}.zarr"
    convert(_scroll(tmp_path / "slices") if not (tmp_path / "slices").exists()
            else tmp_path / "slices", out,
            Options(quiet=True, allow_missing=True, num_threads=2, **options))
    return out


def _check(out: Path, name: str) -> None:
    digest, docs = _digest(out)
    consolidated = docs.pop(".zmetadata", None)
    if consolidated is not None:  # the consolidated copy holds the very same documents
        assert consolidated["metadata"] == {k: v for k, v in docs.items()}
    assert docs == EXPECTED_METADATA[name]
    assert digest == EXPECTED_CHUNKS[name]


@pytest.mark.parametrize("name", sorted(CASES))
def test_store_bytes_and_metadata_are_pinned(tmp_path, name):
    _check(_convert(tmp_path, name, **CASES[name]), name)


def test_first_new_level_store_is_pinned(tmp_path):
    out = _convert(tmp_path, "new_levels", chunk_size=8, nlevels=2)
    convert(tmp_path / "slices", out, Options(quiet=True, chunk_size=8, nlevels=4,
                                              first_new_level=1, algorithm="max"))
    _check(out, "new_levels")


EXPECTED_CHUNKS: dict[str, str] = {
    'gaussian': 'e12d51e053f1c356439db36bb57f1c9e5a00fa53746d19dbef9325a4f6b8827b',
    'max': '31e921ebaebbcaad11d5f29cbf60661bbde0d5a1ab3dcad2f2d8202f300a1ce5',
    'obytes_1': 'c0c551867c46595307d4c36a9516a70168ddcd06bd0d2992e30f7e2cfcd92b50',
    'ranges_crop': '93d76ef9e0b4acc65a906377f5855e3e8c13503d8a24b6db8bfaf797b8289d99',
    'v2_default': 'e6e171eb57dc13dc710a7645de2fda06cd471e66a06afb1f95d431f2e1435c7e',
    'v3_sharded_zstd': '7aab1a3738c9bc476a6cbccf2c19bd539a3a9f27816d8d74c85d943738f7581e',
    'zarr_only': 'a01b7cdcbf30b4323715a30b4e6a2a7430e1bb2a85b34a6c3fbaf44b6c043674',
    'new_levels': '80968f3575fef80cd6e8f3c93996edc980c45f80fbf16144a16e01c0ec44a440',
}

EXPECTED_METADATA: dict[str, dict] = {
    'gaussian': {
        '.zattrs': {
            'multiscales': [
                {
                    'version': '0.4',
                    'name': 'gaussian',
                    'axes': [
                        {'name': 'z', 'type': 'space'},
                        {'name': 'y', 'type': 'space'},
                        {'name': 'x', 'type': 'space'},
                    ],
                    'datasets': [
                        {
                            'path': '0',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [1.0, 1.0, 1.0]},
                                {'type': 'translation', 'translation': [0.0, 0.0, 0.0]},
                            ],
                        },
                        {
                            'path': '1',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [2.0, 2.0, 2.0]},
                                {'type': 'translation', 'translation': [0.5, 0.5, 0.5]},
                            ],
                        },
                        {
                            'path': '2',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [4.0, 4.0, 4.0]},
                                {'type': 'translation', 'translation': [1.5, 1.5, 1.5]},
                            ],
                        },
                    ],
                    'type': 'gaussian',
                    'metadata': {
                        'description': 'each level from the one above, 2x2x2 blocks (scrollzarr)',
                        'method': 'scrollzarr.pyramid.downsample',
                        'version': '0.1.0',
                        'args': [],
                        'kwargs': {'algorithm': 'gaussian', 'factor': [2, 2, 2]},
                        'algorithms': ['none', 'gaussian', 'gaussian'],
                    },
                },
            ],
            'omero': {
                'name': 'gaussian',
                'channels': [
                    {
                        'label': 'gaussian',
                        'color': 'FFFFFF',
                        'active': True,
                        'inverted': False,
                        'coefficient': 1.0,
                        'family': 'linear',
                        'window': {
                            'min': 0.0,
                            'max': 65535.0,
                            'start': 260.545,
                            'end': 37565.37,
                        },
                    },
                ],
                'rdefs': {'model': 'greyscale', 'defaultT': 0, 'defaultZ': 12},
                'version': '0.4',
            },
            'scrollzarr': {'complete': True, 'origin_zyx': [0, 0, 0]},
        },
        '.zgroup': {'zarr_format': 2},
        '0/.zarray': {
            'shape': [24, 37, 45],
            'chunks': [8, 8, 8],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '0/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
        '1/.zarray': {
            'shape': [12, 19, 23],
            'chunks': [8, 8, 8],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '1/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
        '2/.zarray': {
            'shape': [6, 10, 12],
            'chunks': [8, 8, 8],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '2/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
    },
    'max': {
        '.zattrs': {
            'multiscales': [
                {
                    'version': '0.4',
                    'name': 'max',
                    'axes': [
                        {'name': 'z', 'type': 'space'},
                        {'name': 'y', 'type': 'space'},
                        {'name': 'x', 'type': 'space'},
                    ],
                    'datasets': [
                        {
                            'path': '0',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [1.0, 1.0, 1.0]},
                                {'type': 'translation', 'translation': [0.0, 0.0, 0.0]},
                            ],
                        },
                        {
                            'path': '1',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [2.0, 2.0, 2.0]},
                                {'type': 'translation', 'translation': [0.5, 0.5, 0.5]},
                            ],
                        },
                        {
                            'path': '2',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [4.0, 4.0, 4.0]},
                                {'type': 'translation', 'translation': [1.5, 1.5, 1.5]},
                            ],
                        },
                    ],
                    'type': 'max',
                    'metadata': {
                        'description': 'each level from the one above, 2x2x2 blocks (scrollzarr)',
                        'method': 'scrollzarr.pyramid.downsample',
                        'version': '0.1.0',
                        'args': [],
                        'kwargs': {'algorithm': 'max', 'factor': [2, 2, 2]},
                        'algorithms': ['none', 'max', 'max'],
                    },
                },
            ],
            'omero': {
                'name': 'max',
                'channels': [
                    {
                        'label': 'max',
                        'color': 'FFFFFF',
                        'active': True,
                        'inverted': False,
                        'coefficient': 1.0,
                        'family': 'linear',
                        'window': {
                            'min': 0.0,
                            'max': 65535.0,
                            'start': 41006.53,
                            'end': 65522.53,
                        },
                    },
                ],
                'rdefs': {'model': 'greyscale', 'defaultT': 0, 'defaultZ': 12},
                'version': '0.4',
            },
            'scrollzarr': {'complete': True, 'origin_zyx': [0, 0, 0]},
        },
        '.zgroup': {'zarr_format': 2},
        '0/.zarray': {
            'shape': [24, 37, 45],
            'chunks': [8, 8, 8],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '0/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
        '1/.zarray': {
            'shape': [12, 19, 23],
            'chunks': [8, 8, 8],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '1/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
        '2/.zarray': {
            'shape': [6, 10, 12],
            'chunks': [8, 8, 8],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '2/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
    },
    'obytes_1': {
        '.zattrs': {
            'multiscales': [
                {
                    'version': '0.4',
                    'name': 'obytes_1',
                    'axes': [
                        {'name': 'z', 'type': 'space', 'unit': 'micrometer'},
                        {'name': 'y', 'type': 'space', 'unit': 'micrometer'},
                        {'name': 'x', 'type': 'space', 'unit': 'micrometer'},
                    ],
                    'datasets': [
                        {
                            'path': '0',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [7.91, 7.91, 7.91]},
                                {'type': 'translation', 'translation': [0.0, 0.0, 0.0]},
                            ],
                        },
                        {
                            'path': '1',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [15.82, 15.82, 15.82]},
                                {'type': 'translation', 'translation': [3.955, 3.955, 3.955]},
                            ],
                        },
                        {
                            'path': '2',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [31.64, 31.64, 31.64]},
                                {
                                    'type': 'translation',
                                    'translation': [11.865, 11.865, 11.865],
                                },
                            ],
                        },
                    ],
                    'type': 'mean',
                    'metadata': {
                        'description': 'each level from the one above, 2x2x2 blocks (scrollzarr)',
                        'method': 'scrollzarr.pyramid.downsample',
                        'version': '0.1.0',
                        'args': [],
                        'kwargs': {'algorithm': 'mean', 'factor': [2, 2, 2]},
                        'algorithms': ['none', 'mean', 'mean'],
                    },
                },
            ],
            'omero': {
                'name': 'obytes_1',
                'channels': [
                    {
                        'label': 'obytes_1',
                        'color': 'FFFFFF',
                        'active': True,
                        'inverted': False,
                        'coefficient': 1.0,
                        'family': 'linear',
                        'window': {'min': 0.0, 'max': 255.0, 'start': 20.0, 'end': 161.53},
                    },
                ],
                'rdefs': {'model': 'greyscale', 'defaultT': 0, 'defaultZ': 12},
                'version': '0.4',
            },
            'scrollzarr': {'complete': True, 'origin_zyx': [0, 0, 0]},
        },
        '.zgroup': {'zarr_format': 2},
        '0/.zarray': {
            'shape': [24, 37, 45],
            'chunks': [16, 16, 16],
            'dtype': '|u1',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '0/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
        '1/.zarray': {
            'shape': [12, 19, 23],
            'chunks': [16, 16, 16],
            'dtype': '|u1',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '1/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
        '2/.zarray': {
            'shape': [6, 10, 12],
            'chunks': [16, 16, 16],
            'dtype': '|u1',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '2/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
    },
    'ranges_crop': {
        '.zattrs': {
            'multiscales': [
                {
                    'version': '0.4',
                    'name': 'ranges_crop',
                    'axes': [
                        {'name': 'z', 'type': 'space'},
                        {'name': 'y', 'type': 'space'},
                        {'name': 'x', 'type': 'space'},
                    ],
                    'datasets': [
                        {
                            'path': '0',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [1.0, 1.0, 1.0]},
                                {'type': 'translation', 'translation': [6.0, 3.0, 5.0]},
                            ],
                        },
                        {
                            'path': '1',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [2.0, 2.0, 2.0]},
                                {'type': 'translation', 'translation': [6.5, 3.5, 5.5]},
                            ],
                        },
                        {
                            'path': '2',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [4.0, 4.0, 4.0]},
                                {'type': 'translation', 'translation': [7.5, 4.5, 6.5]},
                            ],
                        },
                    ],
                    'type': 'mean',
                    'metadata': {
                        'description': 'each level from the one above, 2x2x2 blocks (scrollzarr)',
                        'method': 'scrollzarr.pyramid.downsample',
                        'version': '0.1.0',
                        'args': [],
                        'kwargs': {'algorithm': 'mean', 'factor': [2, 2, 2]},
                        'algorithms': ['none', 'mean', 'mean'],
                    },
                },
            ],
            'omero': {
                'name': 'ranges_crop',
                'channels': [
                    {
                        'label': 'ranges_crop',
                        'color': 'FFFFFF',
                        'active': True,
                        'inverted': False,
                        'coefficient': 1.0,
                        'family': 'linear',
                        'window': {
                            'min': 0.0,
                            'max': 65535.0,
                            'start': 10628.075,
                            'end': 40741.74,
                        },
                    },
                ],
                'rdefs': {'model': 'greyscale', 'defaultT': 0, 'defaultZ': 7},
                'version': '0.4',
            },
            'scrollzarr': {'complete': True, 'origin_zyx': [6, 3, 5]},
        },
        '.zgroup': {'zarr_format': 2},
        '0/.zarray': {
            'shape': [14, 27, 35],
            'chunks': [16, 16, 16],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '0/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
        '1/.zarray': {
            'shape': [7, 14, 18],
            'chunks': [16, 16, 16],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '1/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
        '2/.zarray': {
            'shape': [4, 7, 9],
            'chunks': [16, 16, 16],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '2/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
    },
    'v2_default': {
        '.zattrs': {
            'multiscales': [
                {
                    'version': '0.4',
                    'name': 'v2_default',
                    'axes': [
                        {'name': 'z', 'type': 'space'},
                        {'name': 'y', 'type': 'space'},
                        {'name': 'x', 'type': 'space'},
                    ],
                    'datasets': [
                        {
                            'path': '0',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [1.0, 1.0, 1.0]},
                                {'type': 'translation', 'translation': [0.0, 0.0, 0.0]},
                            ],
                        },
                        {
                            'path': '1',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [2.0, 2.0, 2.0]},
                                {'type': 'translation', 'translation': [0.5, 0.5, 0.5]},
                            ],
                        },
                        {
                            'path': '2',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [4.0, 4.0, 4.0]},
                                {'type': 'translation', 'translation': [1.5, 1.5, 1.5]},
                            ],
                        },
                    ],
                    'type': 'mean',
                    'metadata': {
                        'description': 'each level from the one above, 2x2x2 blocks (scrollzarr)',
                        'method': 'scrollzarr.pyramid.downsample',
                        'version': '0.1.0',
                        'args': [],
                        'kwargs': {'algorithm': 'mean', 'factor': [2, 2, 2]},
                        'algorithms': ['none', 'mean', 'mean'],
                    },
                },
            ],
            'omero': {
                'name': 'v2_default',
                'channels': [
                    {
                        'label': 'v2_default',
                        'color': 'FFFFFF',
                        'active': True,
                        'inverted': False,
                        'coefficient': 1.0,
                        'family': 'linear',
                        'window': {
                            'min': 0.0,
                            'max': 65535.0,
                            'start': 5174.545,
                            'end': 41514.69,
                        },
                    },
                ],
                'rdefs': {'model': 'greyscale', 'defaultT': 0, 'defaultZ': 12},
                'version': '0.4',
            },
            'scrollzarr': {'complete': True, 'origin_zyx': [0, 0, 0]},
        },
        '.zgroup': {'zarr_format': 2},
        '0/.zarray': {
            'shape': [24, 37, 45],
            'chunks': [16, 16, 16],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '0/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
        '1/.zarray': {
            'shape': [12, 19, 23],
            'chunks': [16, 16, 16],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '1/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
        '2/.zarray': {
            'shape': [6, 10, 12],
            'chunks': [16, 16, 16],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '2/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
    },
    'v3_sharded_zstd': {
        '0/zarr.json': {
            'shape': [24, 37, 45],
            'data_type': 'uint16',
            'chunk_grid': {'name': 'regular', 'configuration': {'chunk_shape': [16, 16, 16]}},
            'chunk_key_encoding': {'name': 'default', 'configuration': {'separator': '/'}},
            'fill_value': 0,
            'codecs': [
                {
                    'name': 'sharding_indexed',
                    'configuration': {
                        'chunk_shape': [8, 8, 8],
                        'codecs': [
                            {'name': 'bytes', 'configuration': {'endian': 'little'}},
                            {'name': 'zstd', 'configuration': {'level': 3, 'checksum': False}},
                        ],
                        'index_codecs': [
                            {'name': 'bytes', 'configuration': {'endian': 'little'}},
                            {'name': 'crc32c'},
                        ],
                        'index_location': 'end',
                    },
                },
            ],
            'attributes': {},
            'dimension_names': ['z', 'y', 'x'],
            'zarr_format': 3,
            'node_type': 'array',
            'storage_transformers': [],
        },
        '1/zarr.json': {
            'shape': [12, 19, 23],
            'data_type': 'uint16',
            'chunk_grid': {'name': 'regular', 'configuration': {'chunk_shape': [16, 16, 16]}},
            'chunk_key_encoding': {'name': 'default', 'configuration': {'separator': '/'}},
            'fill_value': 0,
            'codecs': [
                {
                    'name': 'sharding_indexed',
                    'configuration': {
                        'chunk_shape': [8, 8, 8],
                        'codecs': [
                            {'name': 'bytes', 'configuration': {'endian': 'little'}},
                            {'name': 'zstd', 'configuration': {'level': 3, 'checksum': False}},
                        ],
                        'index_codecs': [
                            {'name': 'bytes', 'configuration': {'endian': 'little'}},
                            {'name': 'crc32c'},
                        ],
                        'index_location': 'end',
                    },
                },
            ],
            'attributes': {},
            'dimension_names': ['z', 'y', 'x'],
            'zarr_format': 3,
            'node_type': 'array',
            'storage_transformers': [],
        },
        '2/zarr.json': {
            'shape': [6, 10, 12],
            'data_type': 'uint16',
            'chunk_grid': {'name': 'regular', 'configuration': {'chunk_shape': [16, 16, 16]}},
            'chunk_key_encoding': {'name': 'default', 'configuration': {'separator': '/'}},
            'fill_value': 0,
            'codecs': [
                {
                    'name': 'sharding_indexed',
                    'configuration': {
                        'chunk_shape': [8, 8, 8],
                        'codecs': [
                            {'name': 'bytes', 'configuration': {'endian': 'little'}},
                            {'name': 'zstd', 'configuration': {'level': 3, 'checksum': False}},
                        ],
                        'index_codecs': [
                            {'name': 'bytes', 'configuration': {'endian': 'little'}},
                            {'name': 'crc32c'},
                        ],
                        'index_location': 'end',
                    },
                },
            ],
            'attributes': {},
            'dimension_names': ['z', 'y', 'x'],
            'zarr_format': 3,
            'node_type': 'array',
            'storage_transformers': [],
        },
        'zarr.json': {
            'attributes': {
                'ome': {
                    'version': '0.5',
                    'multiscales': [
                        {
                            'name': 'v3_sharded_zstd',
                            'axes': [
                                {'name': 'z', 'type': 'space'},
                                {'name': 'y', 'type': 'space'},
                                {'name': 'x', 'type': 'space'},
                            ],
                            'datasets': [
                                {
                                    'path': '0',
                                    'coordinateTransformations': [
                                        {'type': 'scale', 'scale': [1.0, 1.0, 1.0]},
                                        {
                                            'type': 'translation',
                                            'translation': [0.0, 0.0, 0.0],
                                        },
                                    ],
                                },
                                {
                                    'path': '1',
                                    'coordinateTransformations': [
                                        {'type': 'scale', 'scale': [2.0, 2.0, 2.0]},
                                        {
                                            'type': 'translation',
                                            'translation': [0.5, 0.5, 0.5],
                                        },
                                    ],
                                },
                                {
                                    'path': '2',
                                    'coordinateTransformations': [
                                        {'type': 'scale', 'scale': [4.0, 4.0, 4.0]},
                                        {
                                            'type': 'translation',
                                            'translation': [1.5, 1.5, 1.5],
                                        },
                                    ],
                                },
                            ],
                            'type': 'mean',
                            'metadata': {
                                'description': 'each level from the one above, 2x2x2 blocks (scrollzarr)',
                                'method': 'scrollzarr.pyramid.downsample',
                                'version': '0.1.0',
                                'args': [],
                                'kwargs': {'algorithm': 'mean', 'factor': [2, 2, 2]},
                                'algorithms': ['none', 'mean', 'mean'],
                            },
                        },
                    ],
                    'omero': {
                        'name': 'v3_sharded_zstd',
                        'channels': [
                            {
                                'label': 'v3_sharded_zstd',
                                'color': 'FFFFFF',
                                'active': True,
                                'inverted': False,
                                'coefficient': 1.0,
                                'family': 'linear',
                                'window': {
                                    'min': 0.0,
                                    'max': 65535.0,
                                    'start': 5174.545,
                                    'end': 41514.69,
                                },
                            },
                        ],
                        'rdefs': {'model': 'greyscale', 'defaultT': 0, 'defaultZ': 12},
                    },
                },
                'scrollzarr': {'complete': True, 'origin_zyx': [0, 0, 0]},
            },
            'zarr_format': 3,
            'node_type': 'group',
        },
    },
    'zarr_only': {
        '.zarray': {
            'shape': [24, 37, 45],
            'chunks': [16, 16, 16],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '.zattrs': {
            '_ARRAY_DIMENSIONS': ['z', 'y', 'x'],
            'scrollzarr': {'complete': True, 'origin_zyx': [0, 0, 0]},
        },
    },
    'new_levels': {
        '.zattrs': {
            'multiscales': [
                {
                    'version': '0.4',
                    'name': 'new_levels',
                    'axes': [
                        {'name': 'z', 'type': 'space'},
                        {'name': 'y', 'type': 'space'},
                        {'name': 'x', 'type': 'space'},
                    ],
                    'datasets': [
                        {
                            'path': '0',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [1.0, 1.0, 1.0]},
                                {'type': 'translation', 'translation': [0.0, 0.0, 0.0]},
                            ],
                        },
                        {
                            'path': '1',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [2.0, 2.0, 2.0]},
                                {'type': 'translation', 'translation': [0.5, 0.5, 0.5]},
                            ],
                        },
                        {
                            'path': '2',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [4.0, 4.0, 4.0]},
                                {'type': 'translation', 'translation': [1.5, 1.5, 1.5]},
                            ],
                        },
                        {
                            'path': '3',
                            'coordinateTransformations': [
                                {'type': 'scale', 'scale': [8.0, 8.0, 8.0]},
                                {'type': 'translation', 'translation': [3.5, 3.5, 3.5]},
                            ],
                        },
                    ],
                    'type': 'max',
                    'metadata': {
                        'description': 'each level from the one above, 2x2x2 blocks (scrollzarr)',
                        'method': 'scrollzarr.pyramid.downsample',
                        'version': '0.1.0',
                        'args': [],
                        'kwargs': {'algorithm': 'max', 'factor': [2, 2, 2]},
                        'algorithms': ['none', 'max', 'max', 'max'],
                    },
                },
            ],
            'omero': {
                'name': 'new_levels',
                'channels': [
                    {
                        'label': 'new_levels',
                        'color': 'FFFFFF',
                        'active': True,
                        'inverted': False,
                        'coefficient': 1.0,
                        'family': 'linear',
                        'window': {
                            'min': 0.0,
                            'max': 65535.0,
                            'start': 64201.505,
                            'end': 65525.775,
                        },
                    },
                ],
                'rdefs': {'model': 'greyscale', 'defaultT': 0, 'defaultZ': 12},
                'version': '0.4',
            },
            'scrollzarr': {'complete': True, 'origin_zyx': [0, 0, 0]},
        },
        '.zgroup': {'zarr_format': 2},
        '0/.zarray': {
            'shape': [24, 37, 45],
            'chunks': [8, 8, 8],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '0/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
        '1/.zarray': {
            'shape': [12, 19, 23],
            'chunks': [8, 8, 8],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '1/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
        '2/.zarray': {
            'shape': [6, 10, 12],
            'chunks': [8, 8, 8],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '2/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
        '3/.zarray': {
            'shape': [3, 5, 6],
            'chunks': [8, 8, 8],
            'dtype': '<u2',
            'fill_value': 0,
            'order': 'C',
            'filters': None,
            'dimension_separator': '/',
            'compressor': None,
            'zarr_format': 2,
        },
        '3/.zattrs': {'_ARRAY_DIMENSIONS': ['z', 'y', 'x']},
    },
}
