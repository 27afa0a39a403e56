"""Progress of long loops and the units of every message.

:func:`bar` is the one progress display of every long loop (conversion stages, dask
tasks, decompression, layers): a tqdm bar when stderr is a terminal; when it is a file
or a pipe (a cluster job's log), one plain line every few seconds with the amount done,
rate and ETA, and a closing line, instead of thousands of carriage returns.

Units: sizes are binary, said as GiB (MiB, KiB, TiB) everywhere: :func:`size`;
durations as H:MM:SS: :func:`duration`.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

from tqdm import tqdm

#: Seconds between two log lines when stderr is not a terminal
#: (``SCROLLZARR_PROGRESS_SECONDS`` overrides it).
LOG_INTERVAL = 5.0

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def size(nbytes: float) -> str:
    """``nbytes`` in binary units with three significant digits: ``"1.50 GiB"``."""
    value = float(nbytes)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            break
        value /= 1024
    if unit == "B":
        return f"{int(value)} B"
    return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"


def duration(seconds: float) -> str:
    """``seconds`` as ``H:MM:SS`` (``0:00:07``)."""
    s = int(round(max(seconds, 0)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _amount(value: float, unit: str) -> str:
    return size(value) if unit == "B" else f"{value:g} {unit}"


def rate(value: float, seconds: float, unit: str) -> str:
    """``value`` per second with three significant digits: ``"1.50 GiB/s"`` for bytes
    (unit ``"B"``), ``"12.3 files/s"`` otherwise; 0 when no time has passed."""
    per = value / seconds if seconds > 0 else 0.0
    return f"{size(per)}/s" if unit == "B" else f"{per:.3g} {unit}/s"


class LogProgress:
    """The log-file form of :func:`bar`: same ``update``/``close``/context-manager calls
    as tqdm, a line every ``interval`` seconds and one at the end (if any work was done).
    """

    def __init__(self, total: float, desc: str, unit: str = "B", initial: float = 0,
                 interval: float = LOG_INTERVAL, stream: IO[str] | None = None):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        self._initial = initial
        self._start = self._last = time.monotonic()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._line(now)

    def _line(self, now: float) -> None:
        elapsed = now - self._start
        done = self.n - self._initial  # this run's work: a resumed run's rate is its own
        text = f"{self.desc}: {_amount(self.n, self.unit)}"
        if self.total:
            text += f" of {_amount(self.total, self.unit)} ({100 * self.n / self.total:.0f}%)"
        text += f", {rate(done, elapsed, self.unit)}"
        if self.total and done > 0:
            text += f", ETA {duration((self.total - self.n) * elapsed / done)}"
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.n > self._initial:
            elapsed = time.monotonic() - self._start
            print(f"{self.desc}: {_amount(self.n, self.unit)} done in {duration(elapsed)} "
                  f"({rate(self.n - self._initial, elapsed, self.unit)})",
                  file=self.stream, flush=True)
            self._initial = self.n  # close twice prints once

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Silent:
    """``--quiet``: the calls of a progress display, and nothing shown."""

    n = 0

    def update(self, n: float = 1) -> None:
        self.n += n

    def close(self) -> None:
        pass

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def bar(total: float, desc: str, unit: str = "B", initial: float = 0,
        quiet: bool = False, stream: IO[str] | None = None) -> Any:
    """A progress display for a loop of ``total`` units (``"B"``: bytes, shown in binary
    units; anything else is counted as is, e.g. ``"slice"``) that has ``initial`` done.

    Use as ``with bar(...) as b: ... b.update(n)``. On a terminal a tqdm bar, otherwise a
    :class:`LogProgress`; nothing at all with ``quiet``. ``stream`` defaults to stderr.
    """
    stream = stream if stream is not None else sys.stderr
    if quiet:
        return _Silent()
    if not stream.isatty():
        interval = float(os.environ.get("SCROLLZARR_PROGRESS_SECONDS", LOG_INTERVAL))
        return LogProgress(total, desc, unit, initial, interval, stream)
    if unit == "B":  # "iB" + divisor 1024: tqdm then prints MiB, GiB as we say elsewhere
        return tqdm(total=total, initial=initial, desc=desc, unit="iB", unit_scale=True,
                    unit_divisor=1024, file=stream, dynamic_ncols=True, leave=True)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream,
                dynamic_ncols=True, leave=True)


def finished(output: str, levels: int, seconds: float, nbytes: float, on_disk: float,
             pyramid: bool = True) -> list[str]:
    """The closing lines of a conversion: what was written (``levels`` levels, ``on_disk``
    bytes, in ``seconds``, at ``nbytes`` of level 0 per second) and the next command."""
    lines = [f"done: {output}: {levels} level{'s' * (levels != 1)}, {size(on_disk)} on disk, "
             f"in {duration(seconds)} ({size(nbytes / max(seconds, 1e-9))}/s of level 0)"]
    render = f"ppm_to_layers.py SEGMENT.ppm {output} LAYERS_DIR"
    if pyramid:
        lines.append(f"next: serve_ome.py {output} --neuroglancer  (view it), or {render}  "
                     "(render a segment)")
    else:
        lines.append(f"next: {render}  (render a segment)")
    return lines
