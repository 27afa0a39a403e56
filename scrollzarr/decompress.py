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
Memory: each of the ``workers`` decoding threads holds one decoded slice (with
``verify`` so do the as many threads waiting for their fsync, plus a memory map of the
output), so peak memory is about ``workers`` (``2 x workers``) x slice size.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import tifffile

from . import atomic, decode, progress
from .workers import default_threads as default_workers, map_unordered
from .errors import Interrupted, ScrollError
from .safety import check_output_paths
from .slices import is_tiff_name, list_tiffs, some_names

PARTIAL = atomic.PARTIAL  # suffix of outputs still being written
LOCK_NAME = ".decompress_tiffs.lock"
#: The names of the files this tool wrote into an output directory, NUL-separated (a
#: file name may hold any byte but NUL and "/"): only those are ever replaced or deleted.
MADE_NAME = ".decompress_tiffs.made"
HEADER_ALLOWANCE = 64 * 1024  # bytes per output file besides the pixels (tags, padding)
_NATIVE = "<" if sys.byteorder == "little" else ">"
_OUT_OF_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


@dataclass(frozen=True)
class SliceHeader:
    """What the header of one input TIFF says (nothing is decoded).

    ``shape`` is the page shape as tifffile reports it ((y, x) for a 2-D slice),
    ``dtype`` the sample type in native byte order, ``nbytes`` the size of the
    uncompressed pixels in bytes, ``copy_through`` True when the file is already
    uncompressed, contiguous and in native byte order, so it is copied unchanged.
    """

    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    compression: str
    nbytes: int
    file_size: int
    copy_through: bool


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
    """Counts of one run. ``failed`` maps file names to a one-line reason."""

    total: int = 0
    decompressed: int = 0
    copied: int = 0
    skipped: int = 0
    verified: int = 0
    nbytes: int = 0
    seconds: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- listing


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


def read_input_header(path: Path) -> SliceHeader:
    """Check that ``path`` is a single-page TIFF whose pixel data lie within the file
    and whose compression imagecodecs can decode; return its :class:`SliceHeader`.
    Raises :class:`ScrollError` with a reason (without the path) otherwise."""
    try:
        size = path.stat().st_size
        if size == 0:
            raise ScrollError("empty file (0 bytes)")
        with tifffile.TiffFile(path) as tif:
            if len(tif.pages) != 1:
                raise ScrollError(f"{len(tif.pages)} pages; only single-page TIFFs are "
                                  "supported")
            page = tif.pages.first
            if page.dtype is None:
                raise ScrollError(f"unsupported sample format ({page.bitspersample} "
                                  "bits per sample)")
            if page.compression not in tifffile.TIFF.DECOMPRESSORS:
                raise ScrollError(f"compression {_compression_name(page.compression)} "
                                  "cannot be decoded by this installation of imagecodecs")
            ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts)]
            if not ends or max(ends) > size:
                raise ScrollError(f"truncated (pixel data end past the file's {size} "
                                  "bytes)")
            dtype = np.dtype(page.dtype).newbyteorder("=")
            nbytes = int(np.prod(page.shape)) * dtype.itemsize
            copy_through = (page.compression == 1 and page.is_memmappable
                            and (tif.byteorder in ("=", _NATIVE) or dtype.itemsize == 1))
            return SliceHeader(path, tuple(int(n) for n in page.shape), dtype,
                               _compression_name(page.compression), nbytes, size,
                               copy_through)
    except ScrollError:
        raise
    except PermissionError:
        raise ScrollError("permission denied") from None
    except Exception as exc:
        raise ScrollError(f"not a readable TIFF ({_one_line(exc)})") from None


def output_is_complete(path: Path, header: SliceHeader) -> bool:
    """True if ``path`` is already a finished output for the input ``header``: a
    single-page, uncompressed, memory-mappable TIFF with the same shape and dtype whose
    pixel data lie within the file. Reads headers only."""
    try:
        size = path.stat().st_size
        with tifffile.TiffFile(path) as tif:
            if len(tif.pages) != 1:
                return False
            page = tif.pages.first
            end = page.dataoffsets[0] + page.databytecounts[0] if page.dataoffsets else 0
            return (page.compression == 1 and page.is_memmappable and end <= size
                    and tuple(page.shape) == header.shape and page.dtype is not None
                    and np.dtype(page.dtype).newbyteorder("=") == header.dtype)
    except Exception:
        return False


# --------------------------------------------------------------------------- one file


def decompress_file(src: Path, dst: Path, header: SliceHeader, verify: bool = False,
                    slots: threading.Semaphore | None = None) -> str:
    """Write ``src`` uncompressed to ``dst``, atomically; return ``"decompressed"`` or
    ``"copied"``.

    The output is written to ``dst`` + ``.partial``, flushed to disk (fsync) and renamed
    to ``dst``; on any error the partial file is removed and the exception propagates.
    The written header is checked before the rename, and with ``verify`` the output's
    pixels are compared with the input's. ``slots`` (if given) is held while decoding
    and writing but not while waiting for the disk, so more threads than cores can keep
    the cores decoding while other files are flushed.
    """
    # NAME.partial exactly: _remove_partials deletes only the partials of names we made
    with atomic.replacing(dst, durable=True, tmp=dst.with_name(dst.name + PARTIAL)) as tmp:
        tmp = Path(tmp)
        with slots or contextlib.nullcontext():
            action, data = _write_uncompressed(src, tmp, header)
            if not verify:
                data = None  # a thread waiting for the disk holds no slice
        if not output_is_complete(tmp, header):
            raise ScrollError("the written file is not an uncompressed memory-mappable "
                              "TIFF of the input's shape and dtype (please report this)")
        if verify:
            expected = data if action == "decompressed" else _pixels(src)
            if not np.array_equal(tifffile.memmap(tmp, mode="r"), expected):
                raise ScrollError("verify: the written pixels differ from the input's")
    return action


def _write_uncompressed(src: Path, tmp: Path, header: SliceHeader
                        ) -> tuple[str, np.ndarray | None]:
    """Write ``src`` uncompressed to ``tmp`` (not flushed); return the action and the
    decoded pixels (None when copied)."""
    data = None
    if header.copy_through:
        shutil.copyfile(src, tmp)
        shutil.copystat(src, tmp)
        action = "copied"
    else:
        with tifffile.TiffFile(src) as tif:
            page = tif.pages.first
            # one thread per file: the parallelism is across files; libtiff where
            # it is the faster decoder
            data = decode.decode_page(tif)
            tags = _tags_to_keep(page)
        atomic.write_direct(tmp, _tiff_parts(data, tags))
        action = "decompressed"
    return action, data


def _tiff_parts(data: np.ndarray, tags: dict) -> list:
    """The bytes of the uncompressed TIFF of ``data`` with ``tags``, as parts to write one
    after the other: tifffile's header of an empty image of that shape (a millisecond)
    and the pixels themselves, if the pixels end the file as they do; else the whole
    file written by tifffile (ten times slower: it copies the pixels in steps)."""
    kwargs = dict(byteorder=_NATIVE, metadata=None, **tags)
    layout = io.BytesIO()
    tifffile.imwrite(layout, None, shape=data.shape, dtype=data.dtype, **kwargs)
    layout.seek(0)
    with tifffile.TiffFile(layout) as tif:
        page = tif.pages.first
        offset = page.dataoffsets[0] if page.is_contiguous else -1
    image = layout.getbuffer()
    if offset > 0 and offset + data.nbytes == len(image) and data.flags.c_contiguous:
        return [image[:offset], data.reshape(-1).view(np.uint8)]
    layout = io.BytesIO()
    tifffile.imwrite(layout, data, **kwargs)
    return [layout.getbuffer()]


def outputs_match(src: Path, dst: Path) -> bool:
    """True if the pixels of output ``dst`` equal the decoded pixels of input ``src``."""
    try:
        out = tifffile.memmap(dst, mode="r")
    except Exception:
        return False
    return bool(np.array_equal(out, _pixels(src)))


def _pixels(path: Path) -> np.ndarray:
    with tifffile.TiffFile(path) as tif:
        return tif.pages.first.asarray(maxworkers=1)


def _tags_to_keep(page: tifffile.TiffPage) -> dict:
    """The tifffile.imwrite arguments that reproduce ``page``'s descriptive tags.

    Description, software and date are copied as the bytes stored in the file (through
    ``extratags``): scanners write UTF-8 descriptions and ISO dates that tifffile's own
    arguments would reject, and a slice must not fail over a tag. ``metadata=None`` at
    the call keeps tifffile from adding its own description, ``software=False`` its
    name. Resolutions are passed as the stored rationals so they round-trip exactly.
    """
    tags = page.tags
    photometric = page.photometric
    if photometric == tifffile.PHOTOMETRIC.YCBCR:  # tifffile decodes YCbCr to RGB
        photometric = tifffile.PHOTOMETRIC.RGB
    kwargs: dict = {"photometric": photometric, "software": False,
                    "extratags": [(code, "s", 0, raw, True) for code in (270, 305, 306)
                                  if (raw := _ascii_tag_bytes(page, code))]}
    x, y = tags.valueof(282), tags.valueof(283)
    if x is not None and y is not None and x[1] != 0 and y[1] != 0:
        kwargs["resolution"] = (x, y)
        kwargs["resolutionunit"] = page.resolutionunit
    if page.samplesperpixel > 1:
        kwargs["planarconfig"] = page.planarconfig
        if page.extrasamples:
            kwargs["extrasamples"] = page.extrasamples
    if page.colormap is not None:
        kwargs["colormap"] = page.colormap
    return kwargs


def _ascii_tag_bytes(page: tifffile.TiffPage, code: int) -> bytes:
    """The bytes of ASCII tag ``code`` as stored (trailing NULs dropped), or b""."""
    tag = page.tags.get(code)
    if tag is None or tag.dtype != 2 or tag.count == 0:
        return b""
    fh = page.parent.filehandle
    fh.seek(tag.valueoffset)
    return fh.read(tag.count).rstrip(b"\0")


def _compression_name(value: int) -> str:
    try:
        return tifffile.COMPRESSION(value).name
    except ValueError:
        return str(int(value))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# --------------------------------------------------------------------------- a directory


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
            summary.skipped = len(done)
            note(f"note: {len(done)} output(s) already complete, skipped "
                 "(--overwrite redoes them, --verify compares their pixels)")
        checks = [h for h in headers if h.path.name in done] if verify else []
        # recorded before any byte is written: a later run may replace exactly these
        _add_made(out_dir, made, [h.path.name for h in todo])
        try:
            _run(todo, checks, out_dir, workers, verify, quiet, summary, made)
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: every finished file stays
            finished = summary.decompressed + summary.copied + summary.verified
            raise Interrupted(getattr(exc, "signum", signal.SIGINT),
                              f"{out_dir}: {finished + len(done)} of {summary.total} "
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
            return Outcome(name, "failed", reason=_one_line(exc))
        except Exception as exc:  # a bad file must not stop the others
            return Outcome(name, "failed", reason=_one_line(exc))

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
    if outcome.action == "decompressed":
        summary.decompressed += 1
    elif outcome.action == "copied":
        summary.copied += 1
    elif outcome.action == "verified":
        summary.verified += 1


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
