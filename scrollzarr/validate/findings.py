"""What a check of an OME-Zarr store reports: one :class:`Finding` per problem."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Finding:
    """One problem: ``level`` is the dataset path it concerns (None: the whole store),
    ``severity`` "error" or "warning", ``code`` a stable identifier (module docstring)."""

    level: str | None
    severity: str
    code: str
    message: str

    def line(self) -> str:
        """``LEVEL severity code: message`` (LEVEL "store" for the whole store)."""
        where = "store" if self.level is None else self.level
        return f"{where} {self.severity} {self.code}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``: findings are one line each."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def fmt(values: list[float]) -> str:
    """``(a, b, c)`` with each value in its shortest form, for messages."""
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"
