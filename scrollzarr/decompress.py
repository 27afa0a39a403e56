"""Decompressing slice TIFFs once, so that later conversions read them at disk speed.

Masked volumes store each z-slice as an LZW- or deflate-compressed TIFF; decoding costs
more than reading the uncompressed bytes. ``decompress_tiffs`` rewrites every TIFF of a
directory (not recursive) as an uncompressed, contiguous, memory-mappable TIFF with the
same file name, shape, dtype, photometric interpretation, resolution, description,
software and date tags. Inputs that are already uncompressed and memory-mappable are
copied byte for byte.

Safe to interrupt, safe to re-run:

* each output is written as ``NAME.partial`` (never matched by ``*.tif``), flushed to disk
  and renamed to ``NAME`` only when complete, so a final name is never an incomplete file;
* a re-run deletes leftover ``*.partial`` files and skips outputs that are already
  complete (a single-page, uncompressed, memory-mappable TIFF with the input's shape and
  dtype; headers only, or pixels too with ``verify``); ``overwrite`` redoes everything;
* one lock file per output directory keeps two runs from writing into it at once.

A file that fails does not stop the others; the failures are reported at the end.
Memory: ``2 x workers`` threads, ``workers`` of them decoding while the others write
and flush their file, each keep one output-sized buffer (the decoded slice behind its
header), so peak memory is about ``2 x workers`` x slice size.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import atomic, progress
from .errors import Interrupted, ScrollError
from .safety import check_output_paths
from .slice_rewrite import (PARTIAL, SliceHeader, decompress_file, one_line, output_is_complete,
                            outputs_match, read_input_header)
from .slices import is_tiff_name, list_tiffs, some_names
from .workers import default_threads as default_workers, map_unordered

LOCK_NAME = ".decompress_tiffs.lock"
#: The names of the files this tool wrote into an output directory, NUL-separated (a
#: file name may hold any byte but NUL and "/"): only those are ever replaced or deleted.
MADE_NAME = ".decompress_tiffs.made"
HEADER_ALLOWANCE = 64 * 1024  # bytes per output file besides the pixels (tags, padding)
_OUT_OF_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


@dataclass(frozen=True)
class Outcome:
    """The result of one file: ``action`` is ``"decompressed"``, ``"copied"``,
    ``"verified"`` (an existing output matched its input pixel for pixel) or
    ``"failed"``; ``nbytes`` is the number of uncompressed pixel bytes handled."""

    name: str
    action: str
    nbytes: int = 0
    reason: str = ""


@dataclass
class Summary:
    """Counts of one run: ``files`` counts the files by what happened to them (the
    :class:`Outcome` actions, and ``"skipped"``: already complete), ``nbytes`` the pixel
    bytes handled, ``failed`` maps file names to a one-line reason."""

    total: int = 0
    files: Counter[str] = field(default_factory=Counter)
    nbytes: int = 0
    seconds: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        """Files whose output is complete now by this run's work."""
        return self.files["decompressed"] + self.files["copied"] + self.files["verified"]


def find_tiffs(in_dir: Path, note: Callable[[str], None] = lambda s: None) -> list[Path]:
    """Return the ``.tif``/``.tiff`` files (any letter case) directly in ``in_dir``,
    sorted by name. Hidden files (``._00001.tif`` from macOS), directories and other
    files are ignored with one note. Raises :class:`ScrollError` naming the entries named
    like TIFFs that are not regular files (directories, broken links, loops, FIFOs)."""
    found, ignored = list_tiffs(in_dir)
    if ignored:
        note(f"note: ignoring {len(ignored)} entr{'y' if len(ignored) == 1 else 'ies'} of "
             f"{in_dir} that are not .tif/.tiff files: " + some_names(ignored))
    return found


def decompress_tiffs(in_dir: str | Path, out_dir: str | Path, overwrite: bool = False,
                     workers: int | None = None, verify: bool = False, quiet: bool = False,
                     ignore_free_space: bool = False) -> Summary:
    """Decompress every TIFF of ``in_dir`` into ``out_dir`` (same file names).

    Before any pixel is written: refuses ``out_dir`` equal to ``in_dir``, reads every
    input header and lists the files that cannot be read, skips outputs that are already
    complete (unless ``overwrite``; with ``verify`` they are compared pixel for pixel and
    redone if different) and refuses to start when the free space of ``out_dir`` is
    smaller than the estimated size of the outputs still to write (unless
    ``ignore_free_space``). Then ``workers`` threads (default: all cores) each handle one
    file at a time.

    Returns the :class:`Summary`; the caller decides what failures mean (the script
    exits 1 if ``summary.failed``). Raises :class:`ScrollError` for problems that stop
    the whole run.
    """
    started = time.perf_counter()
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ScrollError(f"--workers {workers}: must be at least 1")

    def note(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    inputs = find_tiffs(in_dir, note)  # checks IN_DIR first
    _check_directories(in_dir, out_dir)
    if not inputs:
        raise ScrollError(f"{in_dir}: no TIFF files (*.tif, *.tiff) found")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScrollError(f"{out_dir}: cannot create output directory "
                          f"({exc.strerror})") from None

    summary = Summary(total=len(inputs))
    with _OutputLock(out_dir):
        made = read_made(out_dir)
        _remove_partials(out_dir, made, note)
        headers, unreadable, done = _scan(inputs, out_dir, overwrite)
        _refuse_foreign([h.path.name for h in headers if h.path.name not in done],
                        out_dir, made)
        for path, reason in unreadable.items():
            summary.failed[path.name] = reason
        if unreadable:
            print(f"cannot read {len(unreadable)} of {len(inputs)} input file(s) (the "
                  "others are done now; the run will end with an error):",
                  file=sys.stderr)
            for path, reason in unreadable.items():
                print(f"  {path}: {reason}", file=sys.stderr)
        todo = [h for h in headers if h.path.name not in done]
        if not ignore_free_space:
            _check_free_space(out_dir, todo)
        if done and not verify:
            summary.files["skipped"] = len(done)
            note(f"note: {len(done)} output(s) already complete, skipped "
                 "(--overwrite redoes them, --verify compares their pixels)")
        checks = [h for h in headers if h.path.name in done] if verify else []
        # recorded before any byte is written: a later run may replace exactly these
        _add_made(out_dir, made, [h.path.name for h in todo])
        try:
            _run(todo, checks, out_dir, workers, verify, quiet, summary, made)
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: every finished file stays
            raise Interrupted(getattr(exc, "signum", signal.SIGINT),
                              f"{out_dir}: {summary.finished + len(done)} of {summary.total} "
                              "files complete (each output is written whole)") from None
    summary.seconds = time.perf_counter() - started
    return summary


def _check_directories(in_dir: Path, out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ScrollError(f"{out_dir}: output exists and is not a directory")
    # OUT_DIR equal to IN_DIR, inside it or containing it (symlinks and bind mounts too)
    check_output_paths({"OUT_DIR": out_dir}, {"IN_DIR": in_dir})


def _scan(inputs: list[Path], out_dir: Path, overwrite: bool
          ) -> tuple[list[SliceHeader], dict[Path, str], set[str]]:
    """Read every input header and check existing outputs, in parallel (headers are
    small; threads hide file-system latency). Returns the readable headers, the
    unreadable inputs with their reasons, and the names of complete outputs."""

    def one(path: Path) -> tuple[Path, SliceHeader | None, str, bool]:
        try:
            header = read_input_header(path)
        except ScrollError as exc:
            return path, None, str(exc), False
        complete = not overwrite and output_is_complete(out_dir / path.name, header)
        return path, header, "", complete

    order = {path: i for i, path in enumerate(inputs)}
    results = sorted(map_unordered(one, inputs, 8, name="scan"), key=lambda r: order[r[0]])
    headers = [h for _, h, _, _ in results if h is not None]
    unreadable = {p: reason for p, h, reason, _ in results if h is None}
    done = {p.name for p, _, _, complete in results if complete}
    return headers, unreadable, done


def _check_free_space(out_dir: Path, todo: list[SliceHeader]) -> None:
    need = 0
    for header in todo:
        size = header.file_size if header.copy_through else header.nbytes + HEADER_ALLOWANCE
        try:  # an output being replaced gives its space back
            size -= (out_dir / header.path.name).stat().st_size
        except OSError:
            pass
        need += max(size, 0)
    free = shutil.disk_usage(out_dir).free
    if need > free:
        raise ScrollError(
            f"{out_dir}: not enough free space: the uncompressed outputs need about "
            f"{progress.size(need)}, {progress.size(free)} are free (use --ignore_free_space "
            "to start anyway, e.g. on a file system that compresses)")


def read_made(out_dir: Path) -> set[str]:
    """The names of the files decompress_tiffs.py wrote (or began to write) in
    ``out_dir``, from its :data:`MADE_NAME` list; empty if there is none."""
    try:
        data = (out_dir / MADE_NAME).read_bytes()
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise ScrollError(f"{out_dir / MADE_NAME}: cannot read ({exc.strerror})") from None
    return {os.fsdecode(n) for n in data.split(b"\0") if n}


def _add_made(out_dir: Path, made: set[str], names: list[str]) -> None:
    """Append ``names`` to the list of files this tool writes in ``out_dir``, durably."""
    new = [n for n in names if n not in made]
    if not new:
        return
    with open(out_dir / MADE_NAME, "ab") as f:
        f.write(b"".join(os.fsencode(n) + b"\0" for n in new))
        f.flush()
        os.fsync(f.fileno())
    made.update(new)


def _refuse_foreign(names: list[str], out_dir: Path, made: set[str]) -> None:
    """Refuse to replace a file of ``out_dir`` (an output name, or its ``.partial``)
    that this tool did not write: the user's own file that happens to share a name."""
    foreign = [out_dir / n for n in names for n in (n, n + PARTIAL)
               if n.removesuffix(PARTIAL) not in made and os.path.lexists(out_dir / n)]
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise ScrollError(f"{foreign[0]}{more}: exists and was not written by "
                          "decompress_tiffs.py; not replacing it (move it away or choose "
                          "another OUT_DIR)")


def _remove_partials(out_dir: Path, made: set[str], note: Callable[[str], None]) -> None:
    """Delete the ``*.tif.partial`` files an interrupted run of ours left behind."""
    removed = 0
    for name in os.listdir(out_dir):
        if name.endswith(PARTIAL) and name[:-len(PARTIAL)] in made \
                and is_tiff_name(name[:-len(PARTIAL)]):
            atomic.remove(out_dir / name)
            removed += 1
    if removed:
        note(f"note: removed {removed} incomplete file(s) of an interrupted run")


def _run(todo: list[SliceHeader], checks: list[SliceHeader], out_dir: Path, workers: int,
         verify: bool, quiet: bool, summary: Summary, made: set[str] = frozenset()
         ) -> None:
    """Process the files on ``2 * workers`` threads (workers.map_unordered), and fill
    ``summary``."""

    def work(header: SliceHeader, check_first: bool) -> Outcome:
        name = header.path.name
        dst = out_dir / name
        try:
            if check_first:
                if outputs_match(header.path, dst):
                    return Outcome(name, "verified", header.nbytes)
                if name not in made:
                    return Outcome(name, "failed", reason=(
                        f"{dst} differs from the input and was not written by "
                        "decompress_tiffs.py; not replaced"))
                print(f"note: {dst}: pixels differ from the input; rewriting it",
                      file=sys.stderr, flush=True)
            action = decompress_file(header.path, dst, header, verify, slots)
            return Outcome(name, action, header.nbytes)
        except ScrollError as exc:
            return Outcome(name, "failed", reason=str(exc))
        except OSError as exc:
            if exc.errno in _OUT_OF_SPACE:
                return Outcome(name, "failed", reason=f"out of disk space ({exc.strerror})")
            return Outcome(name, "failed", reason=one_line(exc))
        except Exception as exc:  # a bad file must not stop the others
            return Outcome(name, "failed", reason=one_line(exc))

    jobs = [(h, True) for h in checks] + [(h, False) for h in todo]
    if not jobs:
        return
    started = time.perf_counter()
    bar = progress.bar(len(jobs), "decompressing", unit="file", quiet=quiet)
    # twice the threads, ``workers`` of them decoding at a time: the others wait for
    # their file's fsync, which would otherwise leave a core idle
    slots = threading.Semaphore(workers)
    queue = iter(jobs)
    stop = False

    def feed():
        for job in queue:
            yield job
            if stop:  # pulled lazily: nothing more is started once this is set
                return

    try:
        # at most 3 x workers files queued, so Ctrl-C or a full disk stops the run
        # promptly; ``work`` turns a file's failure into an Outcome, never an error
        for outcome in map_unordered(lambda job: work(*job), feed(), 2 * workers,
                                     window=3 * workers, name="decompress"):
            _record(outcome, summary)
            if outcome.action == "failed":
                message = f"failed: {outcome.name}: {outcome.reason}"
                if hasattr(bar, "write"):  # tqdm: print above the bar
                    bar.write(message, file=sys.stderr)
                else:
                    print(message, file=sys.stderr, flush=True)
                if outcome.reason.startswith("out of disk space"):
                    stop = True  # every later file would fail the same way
            bar.update(1)
            elapsed = max(time.perf_counter() - started, 1e-9)
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(progress.rate(summary.nbytes, elapsed, "B"),
                                    refresh=False)
    finally:
        bar.close()
    if stop:
        for header, _ in queue:  # never submitted
            summary.failed[header.path.name] = "not started: out of disk space"


def _record(outcome: Outcome, summary: Summary) -> None:
    if outcome.action == "failed":
        summary.failed[outcome.name] = outcome.reason
        return
    summary.nbytes += outcome.nbytes
    summary.files[outcome.action] += 1


def failure_message(summary: Summary, most: int = 10) -> str:
    """One line: ``N of M files failed: a.tif (reason), ...`` (at most ``most`` named)."""
    items = [f"{name} ({reason})" for name, reason in sorted(summary.failed.items())]
    more = len(items) - most
    text = ", ".join(items[:most]) + (f", ... and {more} more (listed above)" if more > 0
                                      else "")
    return f"{len(summary.failed)} of {summary.total} files failed: {text}"


class _OutputLock:
    """An exclusive lock on the output directory (flock on a hidden file), so that a
    second run started by mistake stops at once instead of deleting the first run's
    partial files. The kernel drops the lock when the process dies, even by SIGKILL."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> "_OutputLock":
        try:
            import fcntl
        except ImportError:  # no flock (Windows): run unlocked
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise ScrollError(f"{self.path.parent}: another decompress_tiffs.py run is "
                              "writing to this directory") from None
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            atomic.remove(self.path)
            os.close(self.fd)
            self.fd = None
