"""Inputs of a conversion (see :mod:`scrollzarr.sources.base` for the interface)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .base import Source, Span
from .slice_dir import SliceSource, open_slices

__all__ = ["Source", "Span", "SliceSource", "open_input"]


def open_input(path: str | Path, allow_missing: bool = False,
               note: Callable[[str], None] = lambda s: None) -> Source:
    """The source at ``path``: today a directory of slice TIFFs (checked headers only;
    raises :class:`scrollzarr.errors.ScrollError` naming the offending file)."""
    return open_slices(path, allow_missing=allow_missing, note=note)
