"""The output store: refusing or clearing an existing output, creating the level arrays
and writing the group's metadata.

Layout (zarr v2, NGFF 0.4, as khartes and Neuroglancer's ``zarr2://`` read it)::

    OUT.zarr/.zgroup            {"zarr_format": 2}
    OUT.zarr/.zattrs            {"multiscales": [...]}  (only levels that are complete)
    OUT.zarr/L/.zarray          chunks (c, c, c), dtype as input, fill 0, no compressor,
                                dimension_separator "/"
    OUT.zarr/L/IZ/IY/IX         chunk files; all-zero chunks are never written

With ``zarr_only`` the store is one array at the root (``OUT.zarr/.zarray``).

A store location is a local path or an fsspec URL (``s3://bucket/scroll.zarr``); every
function here takes either, as a string or Path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import zarr

from .errors import ScrollError

_MARKERS = (".zgroup", ".zarray", "zarr.json")


def is_url(location: str | Path) -> bool:
    return "://" in str(location)


def join(root: str | Path, name: str) -> str:
    """The location of ``name`` inside the store at ``root`` ("/"-separated)."""
    return str(root).rstrip("/") + "/" + name


def _fs(location: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(str(location))


def is_zarr_store(location: str | Path) -> bool:
    """True if ``location`` holds a zarr group or array at its root."""
    fs, path = _fs(location)
    return any(fs.exists(path.rstrip("/") + "/" + m) for m in _MARKERS)


def remove(location: str | Path) -> None:
    """Delete the directory (or object prefix) at ``location`` if it exists."""
    fs, path = _fs(location)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def prepare_output(location: str | Path, overwrite: bool) -> None:
    """Make sure ``location`` can be written: refuse an existing output unless
    ``overwrite``, and then delete it only if it is a zarr store (never an arbitrary
    directory)."""
    fs, path = _fs(location)
    if not fs.exists(path):
        parent = fs._parent(path)
        if not is_url(location) and not fs.exists(parent):
            raise ScrollError(f"{location}: parent directory {parent} does not exist")
        return
    if not fs.isdir(path):
        raise ScrollError(f"{location}: output exists and is not a directory")
    empty = not fs.ls(path)
    if not overwrite:
        if empty:
            return  # an empty directory is as good as none
        raise ScrollError(f"{location}: output already exists (use --overwrite to replace it)")
    if not is_zarr_store(location):
        if not empty:
            raise ScrollError(f"{location}: --overwrite refuses to delete a directory that "
                              "is not a zarr store")
        return
    fs.rm(path, recursive=True)


def create_array(store: Path | str, shape: tuple[int, int, int], chunk: int,
                 dtype: np.dtype, attributes: dict[str, Any] | None = None,
                 zarr_format: int = 2, shard: int | None = None,
                 compression: str = "none") -> zarr.Array:
    """Create a (z, y, x) zarr array at ``store`` with cubic chunks of ``chunk``, fill
    value 0, and all-zero chunks left unwritten.

    zarr v2: "/" chunk keys, no compressor. (``shard``/``compression``: zarr v3 and
    compression options, see the zarr v3 issue.)
    """
    if zarr_format != 2 or shard is not None or compression != "none":
        raise ScrollError("--zarr_format 3, --shard_size and --compression are not "
                          "supported yet")
    return zarr.create_array(
        store=str(store), shape=shape, chunks=(chunk,) * 3, dtype=dtype,
        zarr_format=2, chunk_key_encoding={"name": "v2", "separator": "/"},
        compressors=None, fill_value=0, order="C", overwrite=True,
        attributes=attributes or {}, config={"write_empty_chunks": False},
    )


def create_group(path: str | Path, zarr_format: int = 2) -> zarr.Group:
    """Create (or open) the zarr group at ``path``."""
    return zarr.open_group(str(path), mode="a", zarr_format=zarr_format)


def open_array(path: Path | str, mode: str = "r+") -> zarr.Array:
    """Open a level array; write_empty_chunks off so zero regions stay unwritten."""
    return zarr.open_array(str(path), mode=mode, config={"write_empty_chunks": False})


def set_attributes(path: str | Path, attrs: dict[str, Any]) -> None:
    """Replace the group's (or root array's) user attributes with ``attrs``."""
    node = zarr.open(str(path), mode="r+")
    node.attrs.clear()
    node.attrs.update(attrs)


def get_attributes(path: str | Path) -> dict[str, Any]:
    return dict(zarr.open(str(path), mode="r").attrs)


def compression_of(array: zarr.Array) -> str:
    """The ``--compression`` value an existing array was written with."""
    return "none"
