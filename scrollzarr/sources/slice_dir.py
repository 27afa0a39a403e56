"""A directory of slice TIFFs as a :class:`~scrollzarr.sources.base.Source`.

z is the absolute slice number (``00042.tif`` is z = 42), so ``shape[0]`` is one past the
last slice and the planes before the first one are never read (:meth:`filled`). A
missing slice (``--allow_missing``) reads as zeros.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import journal, scratch, slices
from ..errors import ScrollError
from .base import Span


@dataclass(frozen=True)
class SliceSource:
    """The slices of one scan: ``files[i]`` is the TIFF of slice ``numbers[i]`` (sorted
    ascending; a number between two others without a file is a missing slice), each
    ``height`` x ``width`` voxels of ``dtype_str``.

    Sparse on purpose: a stack whose numbers jump to 10**12 costs two short tuples.
    Files are absolute paths, so a source pickled to a dask worker in another working
    directory reads the same files; nothing here holds an open file.
    """

    directory: str
    numbers: tuple[int, ...]
    files: tuple[str, ...]
    height: int
    width: int
    dtype_str: str
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    voxel_size: float | None = None

    @property
    def location(self) -> str:
        return str(Path(self.directory).resolve())

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.numbers[-1] + 1, self.height, self.width)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.dtype_str)

    def filled(self) -> Span:
        return (self.numbers[0], self.numbers[-1] + 1)

    def file(self, z: int) -> str | None:
        """The TIFF of slice ``z``, None if there is none."""
        i = bisect.bisect_left(self.numbers, z)
        return self.files[i] if i < len(self.numbers) and self.numbers[i] == z else None

    def fingerprint(self) -> str:
        return journal.fingerprint(self.file(z) for z in range(*self.filled()))

    def describe(self) -> str:
        return f"{len(self.files)} slices of {self.width}x{self.height} {self.dtype}"

    def read(self, z: Span, y: Span, x: Span, out: np.ndarray) -> np.ndarray:
        """Read voxels [z0:z1, y0:y1, x0:x1] into ``out``; full-width rows go straight
        from the file into ``out`` (no copy), narrower ones through a reused row buffer."""
        (z0, z1), (y0, y1), (x0, x1) = z, y, x
        full = x0 == 0 and x1 == self.width
        for i, zi in enumerate(range(z0, z1)):
            path = self.file(zi)
            if path is None:
                out[i] = 0
            elif full:
                slices.read_rows(Path(path), y0, y1, out=out[i])
            else:
                rows = scratch.array("slice_dir.rows", (y1 - y0, self.width), out.dtype)
                out[i] = slices.read_rows(Path(path), y0, y1, out=rows)[:, x0:x1]
        return out

    def check_z_span(self, z: Span) -> None:
        """Refuse a level-0 z span (absolute slice numbers) that holds no slice, or, with
        missing slices, more zero-filled slices than real ones (and over 1000): a stray
        number (a date in a name) would make a volume, and a task list, as long as the
        gap."""
        z0, z1 = z
        a, b = bisect.bisect_left(self.numbers, z0), bisect.bisect_left(self.numbers, z1)
        numbers = self.numbers[a:b]
        if not numbers:
            raise ScrollError(f"--ranges: z range {z0}:{z1} holds no slices "
                              f"(slices {self.numbers[0]}..{self.numbers[-1]})")
        lo, hi = max(self.numbers[0], z0), min(self.numbers[-1] + 1, z1)
        missing = (hi - lo) - len(numbers)
        if missing > max(len(numbers), 1000):
            gap_a, gap_b = max(zip(numbers, numbers[1:]), key=lambda p: p[1] - p[0])
            raise ScrollError(f"{self.directory}: --allow_missing would fill {missing} "
                              f"slices with zeros but only {len(numbers)} exist; the "
                              f"largest gap, {gap_b - gap_a - 1} slices, ends at "
                              f"{self.file(gap_b)} (move that file away or crop z with "
                              "--ranges)")


def open_slices(directory: str | Path, allow_missing: bool = False,
                note: Callable[[str], None] = lambda s: None) -> SliceSource:
    """The checked slices in ``directory`` (see :func:`scrollzarr.slices.find_slices`)."""
    stack = slices.find_slices(directory, allow_missing=allow_missing, note=note)
    numbers = tuple(sorted(stack.paths))
    (height, width) = stack.shape
    return SliceSource(str(stack.directory), numbers,
                       tuple(os.path.abspath(stack.paths[z]) for z in numbers),
                       height, width, stack.dtype.str)
