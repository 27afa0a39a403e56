"""What every surface shares: the context-manager side of the interface (see
:mod:`scrollzarr.surfaces`)."""

from __future__ import annotations

from typing import Self


class ReadWhole:
    """A surface read whole when it is opened: it keeps no file open, so closing it
    releases nothing, and ``with`` works on it like on a .ppm that does."""

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
