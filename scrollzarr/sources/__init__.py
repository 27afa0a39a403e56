"""Inputs of a conversion (see :mod:`scrollzarr.sources.base` for the interface)."""

from .base import Source, Span

__all__ = ["Source", "Span"]
