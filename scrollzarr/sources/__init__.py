"""Inputs of a conversion (see :mod:`scrollzarr.sources.base` for the interface)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .base import Source, Span
from .slice_dir import SliceSource, open_slices
from .volume_grid import VolumeGridSource, is_volume_grid, open_volume_grid

__all__ = ["Source", "Span", "SliceSource", "VolumeGridSource", "open_input"]


def open_input(path: str | Path, allow_missing: bool = False,
               note: Callable[[str], None] = lambda s: None) -> Source:
    """The source at ``path``: a volume_grid directory (``cell_yxz_YYY_XXX_ZZZ.tif``
    cells) or a directory of slice TIFFs, checked from headers only; raises
    :class:`scrollzarr.errors.ScrollError` naming the offending file (or a cell and a
    slice of a directory holding both)."""
    if is_volume_grid(path):
        return open_volume_grid(path, allow_missing=allow_missing, note=note)
    return open_slices(path, allow_missing=allow_missing, note=note)
