"""HTTP ``Range`` headers: the proxy answers ranges of bodies it holds whole, and both
servers tame numbers too long to be byte offsets before anything parses them."""

from __future__ import annotations

import re

#: Byte offsets longer than this many digits are beyond any file (10^18 B = 1 EB).
MAX_DIGITS = 18
_HUGE = re.compile(r"\d{%d,}" % (MAX_DIGITS + 1))


class RangeNotSatisfiable(Exception):
    """A syntactically valid ``Range`` that selects no byte of the resource."""


def clamp_range_header(header: str) -> str:
    """``header`` with every number of more than :data:`MAX_DIGITS` digits replaced by
    10^18: the same meaning for any real file (a start beyond the end stays beyond it, an
    end beyond it is clipped), without asking ``int`` to parse thousands of digits."""
    return _HUGE.sub(str(10 ** MAX_DIGITS), header)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Interpret a ``Range`` request header for a resource of ``size`` bytes.

    Returns ``(start, stop)`` (byte offsets, stop exclusive) for a single range
    ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` (the last n bytes), clipped to the
    resource; ``None`` when there is no header, it is malformed or asks for several
    ranges (RFC 9110 lets a server ignore those and send the whole resource). Raises
    :class:`RangeNotSatisfiable` when the range starts at or beyond the end, is an
    empty suffix, or ends before it starts.
    """
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", clamp_range_header(header))
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None
    first, last = m.group(1), m.group(2)
    if first == "":  # suffix: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - n), size
    start = int(first)
    stop = size if last == "" else int(last) + 1
    if start >= size or stop <= start:
        raise RangeNotSatisfiable(header)
    return start, min(stop, size)
