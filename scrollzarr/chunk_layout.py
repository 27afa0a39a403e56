"""Local arrays whose chunk files can be read without zarr, told from their metadata
document alone.

Recognised: the plain form of our own stores, 3-D (z, y, x), uncompressed, C order,
fill value 0, a little-endian (or one-byte) integer or float dtype; as zarr v2
``.zarray`` (chunk keys ``z.y.x`` or ``z/y/x``) or zarr v3 ``zarr.json`` with the single
``bytes`` codec and the default chunk key encoding (``c/z/y/x`` or ``c.z.y.x``). Such a
chunk's file holds the whole chunk's raw bytes (edge chunks padded), and a missing file
is the fill value. Every other document (compressed, sharded, big-endian, more keys than
these, values zarr might refuse) is not recognised: its array is opened with zarr, which
stays the judge of unusual metadata and the author of its error messages.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import zarr

ChunkIndex = tuple[int, int, int]

V2_DTYPES = frozenset({"|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f4",
                       "<f8"})
V3_DTYPES = frozenset({"uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64",
                       "int64", "float32", "float64"})
_V2_REQUIRED = frozenset({"zarr_format", "shape", "chunks", "dtype", "compressor",
                          "filters", "fill_value", "order"})
_V2_KEYS = _V2_REQUIRED | {"dimension_separator"}
_V3_REQUIRED = frozenset({"zarr_format", "node_type", "shape", "data_type", "chunk_grid",
                          "chunk_key_encoding", "fill_value", "codecs"})
_V3_KEYS = _V3_REQUIRED | {"attributes", "storage_transformers", "dimension_names"}


class Layout(NamedTuple):
    """A recognised array: (z, y, x) ``shape`` and ``chunks`` in voxels, ``dtype``, and
    ``chunk_file``, the path of a chunk's file from its (z, y, x) chunk index."""

    shape: ChunkIndex
    chunks: ChunkIndex
    dtype: np.dtype
    chunk_file: Callable[[ChunkIndex], str]


def chunk_files(directory: str, prefix: str, separator: str) -> Callable[[ChunkIndex], str]:
    """The function from a chunk index to its file, for a local array in ``directory``
    whose chunk keys are ``prefix`` and the indices joined by ``separator``."""
    return lambda index: os.path.join(directory, prefix + separator.join(map(str, index)))


def zarr_chunk_files(array: zarr.Array) -> Callable[[ChunkIndex], str] | None:
    """For an opened zarr ``array`` (v2, local, uncompressed, C order, fill value 0, a
    little-endian or one-byte numeric dtype): the function from a chunk index to its
    file. None for every other layout."""
    import zarr

    meta = array.metadata
    store = array.store
    if not (isinstance(store, zarr.storage.LocalStore) and meta.zarr_format == 2):
        return None
    dtype = np.dtype(array.dtype)
    if (meta.compressor is not None or meta.filters or meta.order != "C"
            or dtype.kind not in "uif" or dtype.byteorder == ">"
            or (dtype.byteorder == "=" and not np.little_endian) or meta.fill_value != 0
            or meta.dimension_separator not in ("/", ".")):
        return None
    root = os.path.join(str(store.root), *[p for p in array.path.split("/") if p])
    return chunk_files(root, "", meta.dimension_separator)


def plain_layout(meta: dict, zarr_format: int, directory: str) -> Layout | None:
    """The :class:`Layout` of the array in ``directory`` whose metadata document
    (``.zarray`` for ``zarr_format`` 2, ``zarr.json`` for 3) is ``meta``, when it has the
    plain form described above; else None."""
    found = _v2(meta) if zarr_format == 2 else _v3(meta) if zarr_format == 3 else None
    if found is None:
        return None
    shape, chunks, dtype, prefix, separator = found
    if not (_sizes(shape, 1) and _sizes(chunks, 1)):
        return None
    return Layout(tuple(shape), tuple(chunks), dtype,
                  chunk_files(directory, prefix, separator))


def _v2(meta: dict) -> tuple | None:
    separator = meta.get("dimension_separator", ".")  # zarr v2's default
    if not (_V2_REQUIRED <= meta.keys() <= _V2_KEYS and meta["zarr_format"] == 2
            and isinstance(meta["dtype"], str) and meta["dtype"] in V2_DTYPES
            and meta["compressor"] is None
            and meta["filters"] is None and meta["order"] == "C"
            and _zero(meta["fill_value"]) and separator in (".", "/")):
        return None
    return meta["shape"], meta["chunks"], np.dtype(meta["dtype"]), "", separator


def _v3(meta: dict) -> tuple | None:
    if not (_V3_REQUIRED <= meta.keys() <= _V3_KEYS and meta["zarr_format"] == 3
            and meta["node_type"] == "array" and isinstance(meta["data_type"], str)
            and meta["data_type"] in V3_DTYPES
            and _zero(meta["fill_value"])
            and isinstance(meta.get("attributes", {}), dict)
            and meta.get("storage_transformers", []) == []
            and _names(meta.get("dimension_names", [None] * 3))):
        return None
    dtype = np.dtype(meta["data_type"])
    grid, encoding = meta["chunk_grid"], meta["chunk_key_encoding"]
    if not (isinstance(grid, dict) and grid.keys() == {"name", "configuration"}
            and grid["name"] == "regular" and isinstance(grid["configuration"], dict)
            and grid["configuration"].keys() == {"chunk_shape"}):
        return None
    if not (isinstance(encoding, dict) and encoding.get("name") == "default"
            and encoding.keys() <= {"name", "configuration"}):
        return None
    config = encoding.get("configuration", {})
    if not (isinstance(config, dict) and config.keys() <= {"separator"}
            and config.get("separator", "/") in (".", "/")):
        return None
    separator = config.get("separator", "/")
    codecs = [[{"name": "bytes", "configuration": {"endian": "little"}}]]
    if dtype.itemsize == 1:  # no byte order to state
        codecs.append([{"name": "bytes"}])
    if meta["codecs"] not in codecs:
        return None
    return (meta["shape"], grid["configuration"]["chunk_shape"], dtype, "c" + separator,
            separator)


def _sizes(values, least: int) -> bool:
    """A list of three ints (not bools), each at least ``least``."""
    return (isinstance(values, list) and len(values) == 3
            and all(type(v) is int and v >= least for v in values))


def _zero(value) -> bool:
    """0 or 0.0 (not -0.0, not False)."""
    return type(value) in (int, float) and value == 0 and math.copysign(1, value) > 0


def _names(values) -> bool:
    return (isinstance(values, list) and len(values) == 3
            and all(v is None or isinstance(v, str) for v in values))
