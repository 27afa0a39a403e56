"""What a conversion reads: the :class:`Source` interface.

A source is a 3-D volume of voxels indexed (z, y, x). The conversion plan and its
executors know only this interface: a slice directory, volume_grid cells and zarr /
OME-Zarr arrays (local or remote) are implementations of it.

A source must be picklable (it travels inside :class:`scrollzarr.plan.Job` to dask
workers) and cheap to pickle: paths and numbers, no open files or arrays. Open handles
are made lazily per process.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

Span = tuple[int, int]  # half-open [start, stop) in voxels


@runtime_checkable
class Source(Protocol):
    """A volume a conversion reads.

    ``shape`` is (z, y, x) in voxels of the source's own index space (for a slice
    directory z is the absolute slice number, so ``shape[0]`` is one past the last slice).
    ``origin`` is the (z, y, x) position, in voxels, of the source's voxel (0, 0, 0) in the
    scan it came from (0 for a slice directory; an OME-Zarr input's translation divided by
    its scale). ``voxel_size`` is the edge of a voxel in micrometers, None if unknown.

    Optional: ``chunks``, the (z, y, x) edge of the blocks a source is stored in when
    reading part of a block costs decoding all of it (zarr chunks); read it through
    :func:`chunks_of`. Sources without it (slices, volume_grid cells, which are read by
    rows) are read at each box's own cost.
    """

    @property
    def location(self) -> str:
        """Where the source is (a path or URL), for messages and the journal."""
        ...

    @property
    def shape(self) -> tuple[int, int, int]:
        ...

    @property
    def dtype(self) -> np.dtype:
        ...

    @property
    def origin(self) -> tuple[float, float, float]:
        ...

    @property
    def voxel_size(self) -> float | None:
        ...

    def filled(self) -> Span:
        """The z span that can hold non-zero voxels (planes outside it read as zeros and
        are never asked for: a slice directory numbered from 10**12 costs nothing)."""
        ...

    def fingerprint(self) -> str:
        """A short hash that changes when the input changes (names, sizes, times; never a
        full read): ``--resume`` refuses to continue on another input."""
        ...

    def describe(self) -> str:
        """One line for the log: what the source holds (``"256 slices of 2048x2048
        uint16"``)."""
        ...

    def read(self, z: Span, y: Span, x: Span, out: np.ndarray) -> np.ndarray:
        """Read voxels [z0:z1, y0:y1, x0:x1] into ``out`` (shape (z1-z0, y1-y0, x1-x0),
        the source's dtype in native byte order, C-contiguous) and return it.

        Missing data (a missing slice or cell, an absent chunk) reads as 0. Spans lie
        inside ``shape``. Raises :class:`scrollzarr.errors.ScrollError` naming the file or
        key that cannot be read; never returns zeros for unreadable data.
        """
        ...


def chunks_of(source: Source | None) -> tuple[int, int, int] | None:
    """The (z, y, x) block edge of ``source`` (its optional ``chunks``), or None when it
    has none (or there is no source): the plan reads chunked sources in whole blocks."""
    chunks = getattr(source, "chunks", None)
    return tuple(int(c) for c in chunks) if chunks else None  # type: ignore[return-value]
