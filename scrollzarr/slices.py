"""Scroll slices: finding the z-slice TIFFs of a scan and reading rows of them.

A scan is a directory of single-page 2-D TIFFs, one per z-slice. The slice number is the
last integer in the file name (``00042.tif``, ``slice_0042.TIFF``) and is the absolute z
index. Everything here checks headers only, so a 14,000-slice scan is scanned in seconds.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import tifffile

from . import decode
from .errors import ScrollError, read_errors

#: File name suffixes of TIFFs (any letter case).
TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
_NATIVE = "<" if np.little_endian else ">"
_LAST_INTEGER = re.compile(r"(\d+)(?!.*\d)")
# a volume_grid cell (sources/volume_grid.py), named by its y, x, z cell indices
CELL_NAME = re.compile(r"cell_yxz_(\d+)_(\d+)_(\d+)\.tiff?", re.IGNORECASE)

Key = tuple[int, int, int]  # 1-based cell indices (jz, jy, jx)


def cell_index(name: str) -> Key | None:
    """The (jz, jy, jx) indices of a cell file name (named y, x, z), or None."""
    m = CELL_NAME.fullmatch(name)
    if m is None:
        return None
    jy, jx, jz = (int(g) for g in m.groups())
    return jz, jy, jx


def _kinds(names: list[str]) -> tuple[list[str], list[str]]:
    """(cell names, slice names) among directory entries: hidden files, other suffixes
    and TIFFs without a number are neither."""
    cells, found = [], []
    for name in names:
        if not is_tiff_name(name):
            continue
        if cell_index(name) is not None:
            cells.append(name)
        elif slice_number(name) is not None:
            found.append(name)
    return cells, found


def refuse_cells(directory: str | Path, names: list[str]) -> None:
    """Raise :class:`ScrollError` if ``names`` (entries of ``directory``) hold volume_grid
    cells: the slice readers call this so a cell is never read as a slice numbered by
    its last integer."""
    cells, found = _kinds(names)
    if cells and found:
        raise ScrollError(f"{directory}: mixes volume_grid cells and slices ({cells[0]} and "
                          f"{found[0]}); keep them in separate directories")
    if cells:
        raise ScrollError(f"{directory}: {cells[0]} is a volume_grid cell, not a slice "
                          "(scroll_to_ome.py reads a directory of cells as a volume_grid)")


@dataclass(frozen=True)
class SliceStack:
    """The slices of one scan.

    ``paths[z]`` is the file of slice ``z`` (absolute slice number); the slices in the
    inclusive ``(first, last)`` runs of ``missing`` have no file (only with
    ``allow_missing``) and read as zeros. ``shape`` is (y, x) of every slice.
    """

    directory: Path
    paths: dict[int, Path]
    shape: tuple[int, int]
    dtype: np.dtype
    missing: tuple[tuple[int, int], ...] = ()

    @property
    def z_first(self) -> int:
        return min(self.paths)  # gaps lie between slices: the first number has a file

    @property
    def z_stop(self) -> int:
        """One past the last slice number."""
        return max(self.paths) + 1


def slice_number(name: str) -> int | None:
    """Return the slice number of a file name (the last integer in it), or None."""
    m = _LAST_INTEGER.search(Path(name).stem)
    return int(m.group(1)) if m else None


def gaps(numbers: list[int]) -> list[tuple[int, int]]:
    """The inclusive ``(first, last)`` runs of integers missing between the smallest and
    the largest of the sorted ``numbers``. Costs time and memory in ``len(numbers)``, not
    in the span: one number 10**12 away from the rest is one run."""
    return [(a + 1, b - 1) for a, b in zip(numbers, numbers[1:]) if b - a > 1]


def format_gaps(runs: list[tuple[int, int]], most: int = 20) -> str:
    """Format missing runs compactly: ``[(2, 3), (6, 6)]`` -> ``"2-3, 6"``; more than
    ``most`` runs end with ``... (N in all)``."""
    text = [str(a) if a == b else f"{a}-{b}" for a, b in runs[:most]]
    if len(runs) > most:
        text.append(f"... ({sum(b - a + 1 for a, b in runs)} in all)")
    return ", ".join(text)


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` is no regular file (never opening it: a FIFO would block), or None."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if os.path.islink(path):
            return "a broken symbolic link"
        return f"not readable ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device file" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file"


def check_regular_files(paths: list[Path]) -> None:
    """Raise :class:`ScrollError` naming the entries among ``paths`` (named like slices)
    that are not regular files: directories, broken links, link loops, FIFOs, devices."""
    bad = [(p, why) for p in paths if (why := _not_a_file(p)) is not None]
    if bad:
        shown = "; ".join(f"{p} is {why}" for p, why in bad[:5])
        more = f"; ... ({len(bad)} in all)" if len(bad) > 5 else ""
        raise ScrollError(f"{shown}{more}: named like a slice but not a regular file "
                          "(rename or remove it)")


def is_tiff_name(name: str) -> bool:
    """True for a ``.tif``/``.tiff`` name (any case) that is not hidden (``._00001.tif``
    is macOS's resource fork, not a slice)."""
    return not name.startswith(".") and Path(name).suffix.lower() in TIFF_SUFFIXES


def list_tiffs(directory: Path, wanted: Callable[[str], bool] = lambda name: True
               ) -> tuple[list[Path], list[str]]:
    """The TIFFs of the input directory ``directory`` (not recursive) whose names pass
    ``wanted``, sorted by name, and the names of the other entries (ignored).

    Raises :class:`ScrollError` when the directory does not exist, is no directory or
    cannot be listed, and naming the entries named like wanted TIFFs that are not
    regular files (directories, broken links, loops, FIFOs), which are never opened."""
    if not directory.exists():
        raise ScrollError(f"{directory}: input directory does not exist")
    if not directory.is_dir():
        raise ScrollError(f"{directory}: input is not a directory")
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise ScrollError(f"{directory}: cannot list input directory ({exc.strerror})") from None
    refuse_cells(directory, names)  # cells are never read as slices one by one
    found = [directory / n for n in names if is_tiff_name(n) and wanted(n)]
    check_regular_files(found)
    kept = {p.name for p in found}
    return found, [n for n in names if n not in kept]


def is_volume_grid(directory: str | Path) -> bool:
    """True if ``directory`` holds volume_grid cells and no slices; raises
    :class:`ScrollError` naming one of each if it holds both."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return False  # not a listable directory: the slice checks name the problem
    cells, found = _kinds(names)
    if cells and found:
        refuse_cells(directory, names)
    return bool(cells)


def some_names(names: list[str], most: int = 5) -> str:
    """The first ``most`` of ``names``, comma-separated, `` ...`` if there are more."""
    return ", ".join(names[:most]) + (" ..." if len(names) > most else "")


def find_slices(directory: str | Path, allow_missing: bool = False,
                note: Callable[[str], None] = lambda s: None) -> SliceStack:
    """Find and check the slices in ``directory``.

    Checks (headers only, before any output is written): at least one slice, no two
    files with the same slice number, no gaps between the first and last number (unless
    ``allow_missing``), every file a readable single-page 2-D TIFF whose pixel data lies
    within the file, all of the same shape and dtype. Raises :class:`ScrollError` naming
    the first offending file. ``note`` receives one-line notes (ignored files, missing
    slices filled with zeros).
    """
    directory = Path(directory)
    found, ignored = list_tiffs(directory, lambda name: slice_number(name) is not None)
    paths: dict[int, Path] = {}
    for path in found:
        z = slice_number(path.name)
        if z in paths:
            raise ScrollError(f"{path}: duplicate slice number {z} (also {paths[z].name})")
        paths[z] = path
    if ignored:
        note(f"note: ignoring {len(ignored)} file(s) that are not numbered TIFF slices: "
             + some_names(ignored))
    if not paths:
        raise ScrollError(f"{directory}: no TIFF slices (*.tif, *.tiff) found")
    numbers = sorted(paths)
    first = numbers[0]
    missing = gaps(numbers)
    n_missing = sum(b - a + 1 for a, b in missing)
    if missing and not allow_missing:
        raise ScrollError(f"{directory}: missing slices {format_gaps(missing)}"
                          f"{_largest_gap(missing, paths)} "
                          "(use --allow_missing to fill them with zeros)")
    if missing:
        note(f"note: {n_missing} missing slice(s) filled with zeros: "
             f"{format_gaps(missing)}")

    # headers are small; reading them in parallel hides file-system latency
    with ThreadPoolExecutor(max_workers=8) as pool:
        headers = list(pool.map(read_header, [paths[z] for z in sorted(paths)]))
    shape, dtype = headers[0]
    for z, (s, d) in zip(sorted(paths), headers):
        if s != shape:
            raise ScrollError(f"{paths[z]}: slice shape {s[1]}x{s[0]} (width x height) "
                              f"differs from {shape[1]}x{shape[0]} of "
                              f"{paths[first].name}")
        if d != dtype:
            raise ScrollError(f"{paths[z]}: slice dtype {d} differs from {dtype} of "
                              f"{paths[first].name}")
    return SliceStack(directory, paths, shape, dtype, tuple(missing))


def _largest_gap(missing: list[tuple[int, int]], paths: dict[int, Path]) -> str:
    """Name the file after a gap longer than all the slices present (a stray number such
    as a date in a file name), or "" when no gap is that long."""
    a, b = max(missing, key=lambda run: run[1] - run[0])
    if b - a + 1 <= max(len(paths), 1000):
        return ""
    return f"; a gap of {b - a + 1} slices before {paths[b + 1]} (is its number right?)"


def read_header(path: Path) -> tuple[tuple[int, int], np.dtype]:
    """Return ``((height, width), dtype)`` of a slice TIFF after checking that it is a
    single-page, single-channel 2-D image whose pixel data lies within the file."""
    with read_errors(path, "not a readable TIFF"):
        size = path.stat().st_size
        if size == 0:
            raise ScrollError(f"{path}: empty file (0 bytes)")
        with tifffile.TiffFile(path) as tif:
            if len(tif.pages) != 1:
                raise ScrollError(f"{path}: {len(tif.pages)} pages; slices must be "
                                  "single-page TIFFs")
            page = tif.pages.first
            if page.samplesperpixel != 1 or len(page.shape) != 2:
                raise ScrollError(f"{path}: image of shape {page.shape}; slices must be "
                                  "2-D single-channel (not RGB or multi-sample)")
            ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts)]
            if not ends or max(ends) > size or min(page.databytecounts) == 0:
                raise ScrollError(f"{path}: truncated TIFF (pixel data ends past the "
                                  f"file's {size} bytes)")
            return (int(page.shape[0]), int(page.shape[1])), np.dtype(page.dtype)


@functools.lru_cache(maxsize=4096)
def _layout(path: str, size: int, mtime_ns: int
            ) -> tuple[int, int, np.dtype] | decode.StripLayout | None:
    """``(offset, width, dtype)`` of an uncompressed contiguous slice, the strips of one
    libtiff decodes (:func:`scrollzarr.decode.strip_layout`), None otherwise.

    Cached per file (keyed by size and time, so a changed file is looked at again): a
    conversion reads each slice in several bands, and parsing the TIFF header each time
    cost more than reading the rows."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        if not (page.is_contiguous and page.compression == 1):
            return decode.strip_layout(tif, page)
        dtype = np.dtype(page.dtype).newbyteorder(tif.byteorder)
        return int(page.dataoffsets[0]), int(page.shape[1]), dtype


def read_rows(path: Path, y0: int, y1: int, out: np.ndarray | None = None) -> np.ndarray:
    """Return rows ``y0:y1`` (all columns) of the slice at ``path`` as a (rows, width)
    array of the file's dtype in native byte order.

    Reads only what those rows need: one byte range of an uncompressed contiguous slice
    (read straight into ``out``), or the strips/tiles that cover the rows of a compressed
    one (stripped LZW/deflate decoded by libtiff straight into ``out``). If ``out`` is
    given the rows are written into it (it must have the right shape and dtype) and it
    is returned. Raises :class:`ScrollError` naming the file when it cannot be read.
    """
    try:
        st = os.stat(path)
        layout = _layout(str(path), st.st_size, st.st_mtime_ns)
        if isinstance(layout, decode.StripLayout):
            if out is None:
                out = np.empty((y1 - y0, layout.width), dtype=layout.dtype)
            fd = os.open(path, os.O_RDONLY)
            try:
                return decode.decode_strip_rows(fd, layout, y0, y1, out)
            finally:
                os.close(fd)
        if layout is not None:
            offset, width, dtype = layout
            if out is None:
                out = np.empty((y1 - y0, width), dtype=dtype.newbyteorder("="))
            view = out.reshape(-1).view(np.uint8)
            fd = os.open(path, os.O_RDONLY)
            try:
                got = os.preadv(fd, [view], offset + y0 * width * dtype.itemsize)
            finally:
                os.close(fd)
            if got != view.nbytes:
                raise ScrollError(f"{path}: truncated TIFF (short read)")
            if not dtype.isnative and dtype.itemsize > 1:
                out.byteswap(inplace=True)
            return out
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            if out is None:
                out = np.empty((y1 - y0, page.shape[1]),
                               dtype=np.dtype(page.dtype).newbyteorder("="))
            decode.decode_rows(tif, page, y0, y1, out)  # the fastest decoder per codec
            return out
    except ScrollError:
        raise
    except Exception as exc:
        raise ScrollError(f"{path}: cannot read rows {y0}:{y1} ({exc})") from None
