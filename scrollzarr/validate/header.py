"""Header checks of an OME-Zarr store: the root, the NGFF metadata and every declared
level's array metadata (dtype, codecs, layout, shape against scale, translation).

The NGFF metadata is read through the format object of its version
(:mod:`scrollzarr.ngff.formats`): strictly for the ``ngff-invalid`` verdict, leniently
for the levels, which are found through ``datasets[].path`` only. Arrays are (z, y, x);
scales and translations are in the units of the metadata.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from .. import ngff
from .findings import ERROR, WARNING, Finding, one_line, fmt

#: Names other tools write for our kernels (multiscales[].type or metadata.method).
METHOD_ALIASES = {
    "mean": "mean", "average": "mean", "local_mean": "mean", "area": "mean",
    "nearest": "nearest", "subsample": "nearest", "stride": "nearest",
    "gaussian": "gaussian", "max": "max", "mode": "mode",
}

# -- root and NGFF metadata ---------------------------------------------------------------

def _get_json(store: Store, key: str, findings: list[Finding],
              level: str | None = None) -> dict | None:
    """The JSON document at ``key``, or None if absent; a finding if it is not JSON."""
    buf = sync(store.get(key, prototype=default_buffer_prototype()))
    if buf is None:
        return None
    try:
        doc = json.loads(buf.to_bytes())
    except ValueError as exc:
        findings.append(Finding(level, ERROR, "metadata-unreadable", f"{key}: {exc}"))
        return None
    if not isinstance(doc, dict):
        findings.append(Finding(level, ERROR, "metadata-unreadable",
                                f"{key}: a JSON {type(doc).__name__}, not an object"))
        return None
    return doc


def read_root(store: Store, findings: list[Finding]) -> tuple[int, dict] | None:
    """``(zarr_format, attributes)`` of the root group, or None after a finding."""
    v3 = _get_json(store, "zarr.json", findings)
    if v3 is not None:
        if v3.get("node_type") != "group":
            findings.append(Finding(None, ERROR, "not-ome", "zarr.json describes a "
                                    f"{v3.get('node_type')}, not an OME-Zarr group"))
            return None
        return 3, v3.get("attributes") or {}
    group = _get_json(store, ".zgroup", findings)
    if _get_json(store, ".zarray", findings) is not None:
        findings.append(Finding(None, ERROR, "not-ome",
                                "the root is a plain zarr array (.zarray), not an OME-Zarr "
                                "group"))
        return None
    attrs = _get_json(store, ".zattrs", findings)
    if group is None:
        if attrs is None or ngff.multiscales_of(attrs) is None:
            if not any(f.code == "metadata-unreadable" for f in findings):
                findings.append(Finding(None, ERROR, "not-zarr", "no zarr metadata at the "
                                        "root (.zgroup, .zarray or zarr.json)"))
            return None
        findings.append(Finding(None, ERROR, "root-group-missing",
                                ".zattrs holds multiscales but .zgroup is missing: zarr "
                                "and Neuroglancer cannot open the group"))
    return 2, attrs or {}


def check_ngff(attrs: dict, zarr_format: int, findings: list[Finding]) -> ngff.Image | None:
    """Validate the NGFF metadata strictly (the version zarr v``zarr_format`` holds); return
    its first multiscale image, read leniently, if it is usable for the level checks
    (even if not strictly valid)."""
    form = ngff.format_for(zarr_format)
    if not ngff.multiscales_of(attrs):
        findings.append(Finding(None, ERROR, "not-ome",
                                "the group attributes hold no OME-NGFF multiscales"))
        return None
    _strict_ngff(form, attrs, findings)
    image = form.read(attrs, "")
    datasets = image.entry.get("datasets") if image is not None else None
    if not datasets or not isinstance(datasets, list) or len(image.levels) != len(datasets):
        if not any(f.code == "ngff-invalid" for f in findings):
            findings.append(Finding(None, ERROR, "ngff-invalid",
                                    "multiscales[0].datasets is not a list of {path: ...}"))
        return None
    names = image.axes
    if names[-3:] != list(ngff.AXES) or len(names) != 3:
        findings.append(Finding(None, WARNING, "axes-not-zyx",
                                f"axes {names}: our tools read the last three as z, y, x"))
    return image


def _strict_ngff(form: ngff.Format, attrs: dict, findings: list[Finding]) -> None:
    """ome-zarr-models' verdict through the format object: NGFF 0.4 for zarr v2, 0.5
    (attributes under "ome") for zarr v3. One finding naming up to three of pydantic's
    complaints."""
    if not isinstance(form.ome_block(attrs), dict):
        findings.append(Finding(None, ERROR, "ngff-invalid",
                                "zarr v3 group without an \"ome\" attribute (NGFF 0.5 "
                                "keeps multiscales under \"ome\")"))
        return
    complaints = form.validate(attrs)
    if complaints:
        findings.append(Finding(None, ERROR, "ngff-invalid",
                                f"not valid NGFF {form.version} for zarr "
                                f"v{form.zarr_format}: " + "; ".join(complaints)))


# -- per-level header checks ------------------------------------------------------------

@dataclass
class Level:
    """A declared level that exists: its dataset path, array, downsampling method (None:
    unknown or level 0) and (z, y, x) transform in the metadata's units."""

    path: str
    array: zarr.Array
    method: str | None
    scale: list[float]
    translation: list[float]
    shape_ok: bool = True


def _methods(ms: dict, count: int) -> list[str | None]:
    """The downsampling method of each level (None: unknown; level 0 has none).

    Our stores list one per level in ``metadata.algorithms``; other tools record one
    name for all in ``type`` or ``metadata.method``."""
    meta = ms.get("metadata") if isinstance(ms.get("metadata"), dict) else {}
    algorithms = meta.get("algorithms")
    if isinstance(algorithms, list) and len(algorithms) == count:
        return [None] + [METHOD_ALIASES.get(str(a).lower()) for a in algorithms[1:]]
    for name in (ms.get("type"), meta.get("method")):
        method = METHOD_ALIASES.get(str(name).lower()) if name is not None else None
        if method:
            return [None] + [method] * (count - 1)
    return [None] * count


def _codecs(array: zarr.Array) -> Any:
    """What decodes the chunks (compressor, filters, codecs), comparable across levels."""
    meta = array.metadata.to_dict()
    if meta.get("zarr_format") == 2:
        return {"compressor": meta.get("compressor"), "filters": meta.get("filters")}
    return json.loads(json.dumps(meta.get("codecs"), default=str))


def _layout(array: zarr.Array) -> dict[str, Any]:
    """Chunk shape, fill value, order and chunk key scheme: should not drift either."""
    meta = array.metadata.to_dict()
    return {"chunks": list(array.chunks), "shards": list(array.shards or ()),
            "fill_value": str(meta.get("fill_value")), "order": str(meta.get("order", "C")),
            "chunk_key": array.metadata.encode_chunk_key((1,) * array.ndim),
            "zarr_format": meta.get("zarr_format")}


def check_levels(store: Store, zarr_format: int, image: ngff.Image,
                 findings: list[Finding]) -> list[Level]:
    """Header checks of every declared level (``image.levels``: each dataset's path and
    transform); return the levels that exist and open, declared order."""
    ms = image.entry
    methods = _methods(ms, len(image.levels))
    if len(image.levels) > 1 and any(m is None for m in methods[1:]):
        findings.append(Finding(None, WARNING, "method-unknown",
                                f"no known downsampling method recorded (type "
                                f"{ms.get('type')!r}); translations are not checked "
                                "against one and --deep cannot recompute levels"))
    naxes = len(ms.get("axes", [])) or 3
    marker = ngff.format_for(zarr_format).array_key
    levels: list[Level] = []
    first: Level | None = None
    for declared, method in zip(image.levels, methods):
        path = declared.path
        key = f"{path}/{marker}"
        if _get_json(store, key, findings, path) is None:
            if not any(f.level == path and f.code == "metadata-unreadable" for f in findings):
                findings.append(Finding(path, ERROR, "level-missing",
                                        f"declared in multiscales but {key} does not exist"))
            continue
        try:
            array = zarr.open_array(store, path=path, mode="r", zarr_format=zarr_format)
        except Exception as exc:  # unknown codec, bad metadata: zarr raises many types
            findings.append(Finding(path, ERROR, "level-unreadable",
                                    f"zarr cannot open {key}: {one_line(exc)}"))
            continue
        # an unreadable transform reads as identity: ngff-invalid already says why
        level = Level(path, array, method, list(declared.scale),
                      list(declared.translation))
        if array.ndim != naxes:
            findings.append(Finding(path, ERROR, "ndim-mismatch",
                                    f"{array.ndim}-D array, {naxes} axes declared"))
            continue
        if first is None:
            first = level
        else:
            _compare(first, level, findings)
        levels.append(level)
    return levels


def _compare(first: Level, level: Level, findings: list[Finding]) -> None:
    """Checks of one level against the first present level (normally level 0)."""
    a, b, path = first.array, level.array, level.path
    if a.dtype != b.dtype:
        findings.append(Finding(path, ERROR, "dtype-mismatch",
                                f"dtype {b.dtype}, level {first.path} has {a.dtype}"))
    if _codecs(a) != _codecs(b):
        findings.append(Finding(path, WARNING, "codec-drift",
                                f"codecs {json.dumps(_codecs(b))} differ from level "
                                f"{first.path}'s {json.dumps(_codecs(a))}"))
    la, lb = _layout(a), _layout(b)
    drift = [k for k in la if la[k] != lb[k]]
    if drift:
        findings.append(Finding(path, WARNING, "layout-drift", "; ".join(
            f"{k} {lb[k]} (level {first.path}: {la[k]})" for k in drift)))
    if a.ndim != 3 or b.ndim != 3:
        return
    factor = [s / s0 if s0 else math.nan for s, s0 in zip(level.scale, first.scale)]
    ceil = tuple(math.ceil(n / f - 1e-9) if f > 0 else -1 for n, f in zip(a.shape, factor))
    floor = tuple(math.floor(n / f + 1e-9) if f > 0 else -1 for n, f in zip(a.shape, factor))
    if b.shape != ceil:
        level.shape_ok = False
        if b.shape == floor:
            findings.append(Finding(path, WARNING, "shape-floor",
                                    f"shape {b.shape} is floor(level {first.path} shape "
                                    f"{a.shape} / scale factor {fmt(factor)}), expected the "
                                    f"ceil {ceil}: the last voxels of the volume are dropped"))
        else:
            findings.append(Finding(path, ERROR, "shape-mismatch",
                                    f"shape {b.shape} contradicts scale factor {fmt(factor)} "
                                    f"relative to level {first.path} (shape {a.shape}): "
                                    f"expected {ceil}"))
    _check_translation(first, level, factor, findings)


def _check_translation(first: Level, level: Level, factor: list[float],
                       findings: list[Finding]) -> None:
    """Translation relative to the first level, in its voxels: (f - 1) / 2 for a level
    whose voxels stand for whole blocks (mean, gaussian, max, mode), 0 for one that
    picks the block's corner voxel (nearest)."""
    shift = [(t - t0) / s0 if s0 else math.nan
             for t, t0, s0 in zip(level.translation, first.translation, first.scale)]
    centred = [(f - 1) / 2 for f in factor]
    is_centred = np.allclose(shift, centred, atol=1e-6)
    is_zero = np.allclose(shift, 0, atol=1e-6)
    if not (is_centred or is_zero):
        findings.append(Finding(level.path, ERROR, "translation-mismatch",
                                f"translation {fmt(shift)} level-0 voxels relative to level "
                                f"{first.path}: expected {fmt(centred)} (averaged) or 0 "
                                "(picked)"))
        return
    if level.method is None:
        return
    averaged = ngff.AVERAGING.get(level.method, True)
    if averaged and not is_centred:
        findings.append(Finding(level.path, WARNING, "translation-offset",
                                f"{level.method} level without the centre shift "
                                f"{fmt(centred)} level-0 voxels: drawn shifted against "
                                f"level {first.path}"))
    elif not averaged and not is_zero:
        findings.append(Finding(level.path, WARNING, "translation-offset",
                                f"{level.method} level translated by {fmt(shift)} level-0 "
                                f"voxels: its voxels are picked, not averaged, and need none"))

