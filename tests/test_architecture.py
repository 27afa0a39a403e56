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
    "gaussian": "e12d51e053f1c356439db36bb57f1c9e5a00fa53746d19dbef9325a4f6b8827b",
    "max": "31e921ebaebbcaad11d5f29cbf60661bbde0d5a1ab3dcad2f2d8202f300a1ce5",
    "obytes_1": "c0c551867c46595307d4c36a9516a70168ddcd06bd0d2992e30f7e2cfcd92b50",
    "ranges_crop": "93d76ef9e0b4acc65a906377f5855e3e8c13503d8a24b6db8bfaf797b8289d99",
    "v2_default": "e6e171eb57dc13dc710a7645de2fda06cd471e66a06afb1f95d431f2e1435c7e",
    "v3_sharded_zstd": "7aab1a3738c9bc476a6cbccf2c19bd539a3a9f27816d8d74c85d943738f7581e",
    "zarr_only": "a01b7cdcbf30b4323715a30b4e6a2a7430e1bb2a85b34a6c3fbaf44b6c043674",
    "new_levels": "80968f3575fef80cd6e8f3c93996edc980c45f80fbf16144a16e01c0ec44a440",
}

# ---- the expected metadata documents: one literal template per kind of document, with
# the values that differ between cases spelled out where each case is listed
SHAPES = ([24, 37, 45], [12, 19, 23], [6, 10, 12], [3, 5, 6])  # z from 0, slices 3..23
AXES = [{"name": a, "type": "space"} for a in "zyx"]
UNIT_AXES = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
PLAIN = [([1.0] * 3, [0.0] * 3), ([2.0] * 3, [0.5] * 3), ([4.0] * 3, [1.5] * 3),
         ([8.0] * 3, [3.5] * 3)]  # (scale, translation) of each level, no voxel size
OWN = {"complete": True, "origin_zyx": [0, 0, 0]}


def _multiscale(name, algorithms, transforms, axes=AXES, version="0.4"):
    ms = {
        "version": version,
        "name": name,
        "axes": axes,
        "datasets": [
            {"path": str(level), "coordinateTransformations": [
                {"type": "scale", "scale": scale},
                {"type": "translation", "translation": translation}]}
            for level, (scale, translation) in enumerate(transforms)],
        "type": algorithms[-1],
        "metadata": {
            "description": "each level from the one above, 2x2x2 blocks (scrollzarr)",
            "method": "scrollzarr.pyramid.downsample",
            "version": "0.1.0",
            "args": [],
            "kwargs": {"algorithm": algorithms[-1], "factor": [2, 2, 2]},
            "algorithms": algorithms,
        },
    }
    if version != "0.4":
        del ms["version"]  # NGFF 0.5 has it once, in "ome"
    return ms


def _omero(name, window, default_z=12, version="0.4"):
    omero = {
        "name": name,
        "channels": [{"label": name, "color": "FFFFFF", "active": True, "inverted": False,
                      "coefficient": 1.0, "family": "linear", "window": window}],
        "rdefs": {"model": "greyscale", "defaultT": 0, "defaultZ": default_z},
        "version": version,
    }
    if version != "0.4":
        del omero["version"]
    return omero


def _v2_image(name, algorithms, window, transforms=PLAIN, axes=AXES, default_z=12,
              own=OWN):
    return {
        ".zattrs": {"multiscales": [_multiscale(name, algorithms, transforms[:len(algorithms)],
                                                axes)],
                    "omero": _omero(name, window, default_z), "scrollzarr": own},
        ".zgroup": {"zarr_format": 2},
    }


def _v2_array(shape, chunk, dtype="<u2"):
    return {"shape": shape, "chunks": [chunk] * 3, "dtype": dtype, "fill_value": 0,
            "order": "C", "filters": None, "dimension_separator": "/", "compressor": None,
            "zarr_format": 2}


def _v2_levels(shapes, chunk, dtype="<u2"):
    docs = {}
    for level, shape in enumerate(shapes):
        docs[f"{level}/.zarray"] = _v2_array(shape, chunk, dtype)
        docs[f"{level}/.zattrs"] = {"_ARRAY_DIMENSIONS": ["z", "y", "x"]}
    return docs


def _v3_sharded_zstd_levels(shapes, shard, chunk):
    bytes_codec = {"name": "bytes", "configuration": {"endian": "little"}}
    return {f"{level}/zarr.json": {
        "shape": shape,
        "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [shard] * 3}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [{"name": "sharding_indexed", "configuration": {
            "chunk_shape": [chunk] * 3,
            "codecs": [bytes_codec,
                       {"name": "zstd", "configuration": {"level": 3, "checksum": False}}],
            "index_codecs": [bytes_codec, {"name": "crc32c"}],
            "index_location": "end"}}],
        "attributes": {},
        "dimension_names": ["z", "y", "x"],
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    } for level, shape in enumerate(shapes)}


def _window(start, end, top=65535.0):
    return {"min": 0.0, "max": top, "start": start, "end": end}


MEAN, MAX, GAUSSIAN = (["none", a, a] for a in ("mean", "max", "gaussian"))
EXPECTED_METADATA: dict[str, dict] = {
    "gaussian": {**_v2_image("gaussian", GAUSSIAN, _window(260.545, 37565.37)),
                 **_v2_levels(SHAPES[:3], 8)},
    "max": {**_v2_image("max", MAX, _window(41006.53, 65522.53)),
            **_v2_levels(SHAPES[:3], 8)},
    "obytes_1": {**_v2_image("obytes_1", MEAN, _window(20.0, 161.53, top=255.0),
                             transforms=[([7.91] * 3, [0.0] * 3),
                                         ([15.82] * 3, [3.955] * 3),
                                         ([31.64] * 3, [11.865] * 3)], axes=UNIT_AXES),
                 **_v2_levels(SHAPES[:3], 16, dtype="|u1")},
    "ranges_crop": {**_v2_image("ranges_crop", MEAN, _window(10628.075, 40741.74),
                                transforms=[([1.0] * 3, [6.0, 3.0, 5.0]),
                                            ([2.0] * 3, [6.5, 3.5, 5.5]),
                                            ([4.0] * 3, [7.5, 4.5, 6.5])],
                                default_z=7, own={"complete": True, "origin_zyx": [6, 3, 5]}),
                    **_v2_levels([[14, 27, 35], [7, 14, 18], [4, 7, 9]], 16)},
    "v2_default": {**_v2_image("v2_default", MEAN, _window(5174.545, 41514.69)),
                   **_v2_levels(SHAPES[:3], 16)},
    "v3_sharded_zstd": {
        "zarr.json": {
            "attributes": {
                "ome": {
                    "version": "0.5",
                    "multiscales": [_multiscale("v3_sharded_zstd", MEAN, PLAIN[:3],
                                                version="0.5")],
                    "omero": _omero("v3_sharded_zstd", _window(5174.545, 41514.69),
                                    version="0.5"),
                },
                "scrollzarr": OWN,
            },
            "zarr_format": 3,
            "node_type": "group",
        },
        **_v3_sharded_zstd_levels(SHAPES[:3], 16, 8),
    },
    "zarr_only": {
        ".zarray": _v2_array(SHAPES[0], 16),
        ".zattrs": {"_ARRAY_DIMENSIONS": ["z", "y", "x"], "scrollzarr": OWN},
    },
    "new_levels": {**_v2_image("new_levels", ["none", "max", "max", "max"],
                               _window(64201.505, 65525.775)),
                   **_v2_levels(SHAPES, 8)},
}
