"""Zarr inputs made by other tools, for the tests of the zarr source and zarr_to_ome.

Built with zarr-python directly (not with our writer), in the layouts users hold: an
OME-Zarr v2 (NGFF 0.4) or v3 (NGFF 0.5, optionally sharded) with any dataset paths, or a
plain array.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import zarr


def write_store(path: Path, volume: np.ndarray, paths: Sequence[str] = ("0", "1"),
                chunks: int | Sequence[int] = 16, zarr_format: int = 2,
                shards: int | None = None, compressors=None,
                voxel_size: float | None = None, unit: str = "micrometer",
                translation: Sequence[float] = (0.0, 0.0, 0.0)) -> Path:
    """An OME-Zarr root at ``path``: level ``paths[i]`` holds ``volume`` (z, y, x) picked
    every ``2**i`` voxels, with scale ``2**i`` (times ``voxel_size`` in ``unit`` when
    given) and ``translation`` (the metadata's units) on every level; all-zero chunks are
    left absent."""
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    datasets = []
    for i, name in enumerate(paths):
        data = volume[::2 ** i, ::2 ** i, ::2 ** i]
        _array(group, name, data, chunks, zarr_format, shards, compressors)
        factor = float(2 ** i) * (voxel_size or 1.0)
        datasets.append({"path": name, "coordinateTransformations": [
            {"type": "scale", "scale": [factor] * 3},
            {"type": "translation", "translation": [float(t) for t in translation]}]})
    axes = [{"name": a, "type": "space", **({"unit": unit} if voxel_size else {})}
            for a in "zyx"]
    ms = {"name": "input", "axes": axes, "datasets": datasets}
    if zarr_format == 2:
        group.attrs["multiscales"] = [{"version": "0.4", **ms}]
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    return path


def write_array(path: Path, volume: np.ndarray, chunks: int | Sequence[int] = 16,
                zarr_format: int = 2, shards: int | None = None, compressors=None) -> Path:
    """A plain (z, y, x) zarr array at ``path`` (a ``.zarray`` / array ``zarr.json`` at
    the root), no NGFF metadata."""
    kwargs = _kwargs(volume, chunks, zarr_format, shards, compressors)
    zarr.create_array(str(path), zarr_format=zarr_format, **kwargs)[...] = volume
    return path


def _array(group, name, data, chunks, zarr_format, shards, compressors):
    group.create_array(name, **_kwargs(data, chunks, zarr_format, shards,
                                       compressors))[...] = data


def _kwargs(data, chunks, zarr_format, shards, compressors) -> dict:
    chunks = (chunks,) * 3 if isinstance(chunks, int) else tuple(chunks)
    kwargs = dict(shape=data.shape, chunks=chunks, dtype=data.dtype, fill_value=0,
                  compressors=compressors, config={"write_empty_chunks": False})
    if zarr_format == 2:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    elif shards:
        kwargs["shards"] = (shards,) * 3
    return kwargs


def stored_chunk_bytes(root: Path, level: str = "") -> int:
    """Bytes of the chunk (or shard) files of one level of a local store, or of a plain
    array at ``root`` (every file but the metadata documents)."""
    base = root / level if level else root
    return sum(p.stat().st_size for p in base.rglob("*") if p.is_file()
               and p.name not in (".zarray", ".zattrs", ".zgroup", "zarr.json"))


def upload(root: Path, env: dict, prefix: str, bucket: str = "scrolls") -> str:
    """Copy the local store ``root`` to ``s3://bucket/prefix`` on the S3 server of
    ``env`` (conftest's ``s3_server``); return the store's URL."""
    import boto3

    s3 = boto3.client("s3", region_name=env["AWS_DEFAULT_REGION"],
                      endpoint_url=env["AWS_ENDPOINT_URL"],
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    for path in sorted(root.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(root).as_posix()}",
                          Body=path.read_bytes())
    return f"s3://{bucket}/{prefix}"
