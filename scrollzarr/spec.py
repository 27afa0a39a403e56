"""What a conversion writes: a frozen :class:`ConversionSpec`, built by pure functions.

:func:`full_spec` makes it from the options and the source (a new store, levels 0..);
:func:`new_levels_spec` from the options and an existing store (``--first_new_level``:
levels N.. rebuilt from level N-1). The spec decides every byte of the output: shapes,
dtype, chunk and shard edges, compression, zarr format, level paths and algorithms,
origin and voxel size. :func:`job` turns it into the plan's :class:`~scrollzarr.plan.Job`,
:func:`journal_params` into what ``--resume`` checks, and
:func:`scrollzarr.store.create` into the empty store. All shapes are (z, y, x) voxels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import ngff, plan as planning, pyramid, store
from .errors import ScrollError
from .options import Options, parse_ranges
from .sources.base import Source, Span

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class ConversionSpec:
    """A conversion's output, level by level.

    ``arrays[l]`` is the location of level ``l`` (the store itself with ``zarr_only``),
    ``shapes[l]`` its shape, ``algorithms[l]`` how it is made from level ``l - 1``
    ("none" for level 0) and ``algorithm`` the ``--algorithm`` option. ``first_level`` is
    the first level written (0, or N of ``--first_new_level``; ``replaced`` lists the
    existing dataset paths that run deletes first). ``crop`` is the source voxel
    (z, y, x) that becomes level 0's (0, 0, 0), ``origin`` what the metadata records
    for it, ``filled[l]`` the z span of level ``l`` that can hold non-zero data.
    ``shift``/``window`` map source values to ``dtype`` (see
    :func:`scrollzarr.plan.map_values`); ``window`` is the resolved (LO, HI) of
    ``--window`` (``window_request`` its text as parsed, ``source_dtype`` the dtype it maps
    from), see :func:`windowed`.
    """

    output: str
    shapes: tuple[Shape, ...]
    dtype: str
    chunk: int
    shard: int | None
    compression: str
    zarr_format: int
    zarr_only: bool
    arrays: tuple[str, ...]
    algorithms: tuple[str, ...]
    algorithm: str
    origin: tuple[float, float, float]
    voxel_size: float | None
    name: str
    first_level: int = 0
    replaced: tuple[str, ...] = ()
    crop: Shape = (0, 0, 0)
    filled: tuple[Span, ...] = ()
    shift: int = 0
    window: tuple[float, float] | None = None
    window_request: str | None = None
    source_dtype: str | None = None

    @property
    def window_attributes(self) -> dict | None:
        """What our attributes record of the window: ``{"lo", "hi", "source_dtype"}``."""
        if self.window is None:
            return None
        return {"lo": self.window[0], "hi": self.window[1],
                "source_dtype": np.dtype(self.source_dtype).name}

    @property
    def unit(self) -> int:
        """Edge of the unit a task writes whole: the shard, else the chunk."""
        return self.shard or self.chunk

    @property
    def unit_option(self) -> str:
        """The option that sets :attr:`unit`, for messages."""
        return "--shard_size" if self.shard else "--chunk_size"

    @property
    def levels_meta(self) -> list[tuple[str, str]]:
        """(dataset path, algorithm) of every level, for the multiscales metadata."""
        return [(str(level), a) for level, a in enumerate(self.algorithms)]


def name_of(output: str) -> str:
    """The image name of a store: its file name without the suffix."""
    return Path(output.rstrip("/")).stem


def output_dtype(source_dtype: np.dtype, obytes: int | None) -> tuple[np.dtype, int]:
    """Return (output dtype, right shift) for ``--obytes``."""
    if obytes is None or obytes == source_dtype.itemsize:
        return source_dtype, 0
    if obytes == 1 and source_dtype == np.uint16:
        return np.dtype(np.uint8), 8
    raise ScrollError(f"--obytes {obytes}: cannot convert {source_dtype} slices "
                      "(only uint16 -> uint8 with --obytes 1)")


def clamp_chunks(chunk: int, shard: int | None, shape0: Shape) -> tuple[int, int | None]:
    """``(chunk, shard)`` no larger than the smallest power of two that covers the
    largest axis of level 0 (voxels): a bigger chunk only costs memory (a --chunk_size
    of 10^5 would allocate terabytes). Chunks stay cubic and the same on every level."""
    cover = 1 << max(max(shape0) - 1, 0).bit_length()
    if chunk <= cover:
        return chunk, shard
    return cover, (cover if shard is not None and shard > cover else shard)


def filled_spans(filled: Span, z: Span, nlevels: int, algorithm: str) -> tuple[Span, ...]:
    """Per level, the z span that can hold non-zero data, given the source's ``filled``
    span and the crop ``z`` (both absolute; level-0 indices start at ``z[0]``)."""
    z0, z1 = z
    lo, hi = max(filled[0], z0) - z0, min(filled[1], z1) - z0
    spans = [(lo, hi)]
    h = pyramid.halo(algorithm)
    nz = z1 - z0
    for _ in range(1, nlevels):
        nz = -(-nz // 2)
        lo, hi = max((lo - h) // 2, 0), min(-(-(hi + h) // 2), nz)
        spans.append((lo, hi))
    return tuple(spans)


def full_spec(o: Options, source: Source, output: str) -> ConversionSpec:
    """The spec of a new store at ``output`` converting ``source`` with options ``o``."""
    nz, ny, nx = source.shape
    (x0, x1), (y0, y1), (z0, z1) = parse_ranges(o.ranges, (nx, ny, nz))
    dtype, shift = output_dtype(source.dtype, o.obytes)
    check = getattr(source, "check_z_span", None)  # optional: a source's own z checks
    if check is not None:
        check((z0, z1))
    elif z1 <= source.filled()[0] or z0 >= source.filled()[1]:
        raise ScrollError(f"--ranges: z range {z0}:{z1} holds no data (it lies in "
                          f"{source.filled()[0]}:{source.filled()[1]})")
    shape0 = (z1 - z0, y1 - y0, x1 - x0)
    chunk, shard = clamp_chunks(o.chunk_size, o.shard_size, shape0)
    nlevels = 1 if o.zarr_only else o.nlevels
    shapes = [shape0]
    for _ in range(1, nlevels):
        shapes.append(pyramid.reduced_shape(shapes[-1]))
    if o.zarr_only:
        arrays = (output,)
    else:
        arrays = tuple(store.join(output, str(level)) for level in range(nlevels))
    return ConversionSpec(
        output=output, shapes=tuple(shapes), dtype=dtype.str, chunk=chunk, shard=shard,
        compression=o.compression, zarr_format=o.zarr_format, zarr_only=o.zarr_only,
        arrays=arrays, algorithms=("none",) + (o.algorithm,) * (nlevels - 1),
        algorithm=o.algorithm, origin=_origin((z0, y0, x0), source.origin),
        voxel_size=o.voxel_size if o.voxel_size is not None else source.voxel_size,
        name=name_of(output), crop=(z0, y0, x0),
        filled=filled_spans(source.filled(), (z0, z1), nlevels, o.algorithm), shift=shift)


def windowed(spec: ConversionSpec, window: tuple[float, float], request: str,
             source_dtype: np.dtype) -> ConversionSpec:
    """``spec`` writing uint8 through the window (LO, HI) resolved from the ``--window``
    text ``request`` (instead of ``--obytes``' shift)."""
    return replace(spec, dtype=np.dtype(np.uint8).str, shift=0,
                   window=(float(window[0]), float(window[1])), window_request=request,
                   source_dtype=np.dtype(source_dtype).str)


def _origin(crop: Shape, source_origin: tuple[float, float, float]
            ) -> tuple[float, float, float]:
    """Level 0's origin in the scan, (z, y, x) voxels: the crop, moved by the source's
    own origin (integers stay integers, as the metadata has always written them)."""
    return tuple(c + s if s else c for c, s in zip(crop, source_origin))


def _shard_of(array) -> int | None:
    """Edge of the shards of a sharded v3 array, None if it is not sharded."""
    shards = getattr(array, "shards", None)
    return shards[0] if shards else None


def new_levels_spec(o: Options, output: str) -> ConversionSpec:
    """``--first_new_level N``: the spec that (re)builds levels N.. of the existing store
    at ``output`` from its level N-1, in that store's layout."""
    if not store.is_zarr_store(output):
        raise ScrollError(f"{output}: --first_new_level needs an existing OME-Zarr store")
    attrs = store.get_attributes(output)
    ms = ngff.multiscales_of(attrs)
    if not ms:
        raise ScrollError(f"{output}: no multiscales metadata; cannot add levels")
    datasets = ms[0]["datasets"]
    n = o.first_new_level
    named = [d.get("path") for d in datasets]
    if named != [str(level) for level in range(len(datasets))]:
        # levels are found by their dataset paths; the levels this run writes would be
        # listed with our numbering and transforms, which another tool's store does not use
        raise ScrollError(f"{output}: its levels are named {', '.join(map(str, named))}, "
                          "not 0, 1, ...; --first_new_level adds levels only to stores "
                          "numbered like ours (zarr_to_ome.py converts this one)")
    if n > len(datasets):
        raise ScrollError(f"--first_new_level {n}: beyond the existing levels "
                          f"(store has levels 0..{len(datasets) - 1})")
    if o.nlevels < len(datasets):
        # only levels n..nlevels-1 are rebuilt: the rest would stay on disk unlisted
        left = [d["path"] for d in datasets[o.nlevels:]]
        raise ScrollError(f"--nlevels {o.nlevels}: the store has {len(datasets)} levels; "
                          f"level(s) {', '.join(left)} would be left on disk without "
                          f"being listed (use --nlevels {len(datasets)} or more)")
    replaced = [d["path"] for d in datasets[n:]] + [
        str(lv) for lv in range(len(datasets), o.nlevels)
        if store.is_zarr_store(store.join(output, str(lv)))]
    if replaced and not store.is_own_store(output):
        raise ScrollError(f"{output}: --first_new_level {n} would replace level(s) "
                          f"{', '.join(replaced)} of a store that scroll_to_ome.py did not "
                          f"make; add levels after the last one (--first_new_level "
                          f"{len(datasets)}) or work on a copy")
    src = store.open_array(store.join(output, datasets[n - 1]["path"]), mode="r")
    algorithms_old = ms[0].get("metadata", {}).get("algorithms") or (
        ["none"] + [ms[0].get("type", "mean")] * (len(datasets) - 1))
    shapes = [tuple(store.open_array(store.join(output, d["path"]), mode="r").shape)
              for d in datasets[:n]]
    for _ in range(n, o.nlevels):
        shapes.append(pyramid.reduced_shape(shapes[-1]))
    scale0, trans0 = ngff.transforms(datasets[0])
    voxel = scale0[0] if any(a.get("unit") for a in ms[0]["axes"]) else None
    origin = tuple(attrs.get(ngff.OWN_KEY, {}).get("origin_zyx")
                   or (t / (voxel or 1.0) for t in trans0))
    window = attrs.get(ngff.OWN_KEY, {}).get("window")  # kept in our attributes
    return ConversionSpec(
        output=output, shapes=tuple(shapes), dtype=np.dtype(src.dtype).str,
        chunk=src.chunks[0], shard=_shard_of(src), compression=store.compression_of(src),
        zarr_format=src.metadata.zarr_format, zarr_only=False,
        arrays=tuple(store.join(output, str(level)) for level in range(o.nlevels)),
        algorithms=tuple(algorithms_old[:n]) + (o.algorithm,) * (o.nlevels - n),
        algorithm=o.algorithm, origin=origin, voxel_size=voxel,
        name=ms[0].get("name", name_of(output)), first_level=n,
        replaced=tuple(d["path"] for d in datasets[n:]),
        window=(window["lo"], window["hi"]) if window else None,
        source_dtype=np.dtype(window["source_dtype"]).str if window else None)


def job(spec: ConversionSpec, source: Source | None) -> planning.Job:
    """The plan's job for ``spec``: a task writes whole shards (or whole chunks), never
    part of one another task writes."""
    return planning.Job(source=source, arrays=spec.arrays, shapes=spec.shapes,
                        algorithms=spec.algorithms, chunk=spec.unit, dtype=spec.dtype,
                        crop=spec.crop, shift=spec.shift, filled=spec.filled,
                        window=spec.window)


def journal_params(spec: ConversionSpec, source: Source | None) -> dict:
    """What ``--resume`` checks against the journal (the same keys as ever, so a journal
    of an earlier version still matches): the options that decide the output's bytes
    and a fingerprint of the input."""
    shapes = [list(s) for s in spec.shapes]
    if spec.first_level > 0:
        return {"first_new_level": spec.first_level, "shapes": shapes,
                "algorithm": spec.algorithm, "nlevels": len(spec.shapes)}
    return {
        "input": source.location, "fingerprint": source.fingerprint(),
        "shapes": shapes, "dtype": spec.dtype, "origin": list(spec.origin),
        "chunk_size": spec.chunk, "algorithm": spec.algorithm, "zarr_only": spec.zarr_only,
        "voxel_size": spec.voxel_size, "zarr_format": spec.zarr_format,
        "shard_size": spec.shard, "compression": spec.compression,
        # only with --window: journals written without it keep matching
        **({"window": {"request": spec.window_request, "lo": spec.window[0],
                       "hi": spec.window[1]}} if spec.window else {}),
    }


def summary(spec: ConversionSpec, source: Source | None) -> str:
    """One line for the log: what is converted to what."""
    last = len(spec.shapes) - 1
    if spec.first_level > 0:
        return f"adding levels {spec.first_level}..{last} to {spec.output}"
    return (f"{source.describe()} -> {spec.output} (level 0 shape z,y,x = "
            f"{spec.shapes[0]}, {last + 1} level(s), {spec.algorithm})")
