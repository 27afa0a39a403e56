"""volume_grid input: a scan stored as 500^3 cells, the layout khartes reads.

A volume_grid directory holds TIFFs named ``cell_yxz_YYY_XXX_ZZZ.tif`` (1-based,
zero-padded cell indices in the order y, x, z). Cell (jy, jx, jz) holds voxels
[500 (j - 1), 500 j) on each axis; the last cell along an axis may be shorter. Each cell
is a multi-page TIFF, one (y, x) page per z plane.

:func:`open_volume_grid` checks a directory from headers only and returns a
:class:`VolumeGridSource`, which reads boxes of the volume (z, y, x) from the cells that
overlap them, touching only the rows a box needs (a conversion reads bands of rows, so
each cell page's pixel bytes are read once) and counting the pixel bytes it reads.
"""

from __future__ import annotations

import functools
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import tifffile

from .. import decode, journal, scratch
from ..errors import ScrollError
from ..slices import CELL_NAME, Key, cell_index, check_regular_files
from ..slices import is_volume_grid  # noqa: F401  (public here too: the cell rules live in slices)

#: Edge of a cell in voxels on every axis.
CELL = 500
_AXES = ("z", "y", "x")

def _extent(j: int, n: int, last: int) -> int:
    """Voxels along one axis of the cell at 0-based index ``j`` of ``n`` (the last one
    holds ``last``)."""
    return CELL if j < n - 1 else last


class VolumeGridSource:
    """The voxels (z, y, x) of a checked volume_grid directory (see
    :func:`open_volume_grid`); implements :class:`scrollzarr.sources.Source`.

    State is real: the count of pixel bytes read (:attr:`bytes_read`, shared by the
    threads reading through one instance; a pickled copy starts from 0). Pickles as
    paths and numbers only.
    """

    def __init__(self, directory: str, cells: dict[Key, str], counts: Key,
                 shape: tuple[int, int, int], dtype: np.dtype, missing: int = 0):
        self.directory = str(directory)
        self.cells = dict(cells)  # (jz, jy, jx), 1-based -> file name
        self.counts = counts  # cells along z, y, x
        self._shape = shape
        self._dtype = np.dtype(dtype).newbyteorder("=")
        self.missing = missing
        self.bytes_read = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_lock"]
        state["bytes_read"] = 0
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return self.directory

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def origin(self) -> tuple[float, float, float]:
        return (0.0, 0.0, 0.0)

    @property
    def voxel_size(self) -> float | None:
        return None

    def filled(self) -> tuple[int, int]:
        """From the first to past the last cell layer (z) that has a file."""
        layers = [k[0] for k in self.cells]
        return (min(layers) - 1) * CELL, min(max(layers) * CELL, self._shape[0])

    def fingerprint(self) -> str:
        return journal.fingerprint(os.path.join(self.directory, self.cells[k])
                                   for k in sorted(self.cells))

    def describe(self) -> str:
        z, y, x = self._shape
        nz, ny, nx = self.counts
        gone = f", {self.missing} missing (read as zeros)" if self.missing else ""
        return (f"{len(self.cells)} volume_grid cells ({nx}x{ny}x{nz}, x by y by z) of "
                f"{x}x{y}x{z} {self._dtype} voxels{gone}")

    def cell_extent(self, j: int, axis: int) -> int:
        """Voxels along ``axis`` (0 z, 1 y, 2 x) of the cells at 0-based index ``j``."""
        n = self.counts[axis]
        return _extent(j, n, self._shape[axis] - CELL * (n - 1))

    def read(self, z: tuple[int, int], y: tuple[int, int], x: tuple[int, int],
             out: np.ndarray) -> np.ndarray:
        """Read voxels [z0:z1, y0:y1, x0:x1] into ``out`` from the cells that overlap
        them (missing cells read as 0); return ``out``."""
        spans = (z, y, x)
        ranges = [range(a // CELL, (b - 1) // CELL + 1) for a, b in spans]
        for jz in ranges[0]:
            for jy in ranges[1]:
                for jx in ranges[2]:
                    cell = (jz, jy, jx)
                    local = []  # the box within the cell and within out
                    for axis, ((a, b), j) in enumerate(zip(spans, cell)):
                        c0 = j * CELL
                        lo, hi = max(a, c0), min(b, c0 + self.cell_extent(j, axis))
                        local.append((lo - c0, hi - c0, lo - a, hi - a))
                    view = out[tuple(slice(o0, o1) for _, _, o0, o1 in local)]
                    name = self.cells.get((jz + 1, jy + 1, jx + 1))
                    if name is None:
                        view[...] = 0
                        continue
                    width = self.cell_extent(jx, 2)
                    n = _read_cell(os.path.join(self.directory, name),
                                   *((c0, c1) for c0, c1, _, _ in local), width, view)
                    with self._lock:
                        self.bytes_read += n
        return out


def open_volume_grid(directory: str | Path, allow_missing: bool = False,
                     note: Callable[[str], None] = lambda s: None) -> VolumeGridSource:
    """Find and check the cells of a volume_grid ``directory`` (headers only).

    Checks: every cell a readable multi-page TIFF of single-sample 2-D pages whose pixel
    data lies within the file; one dtype; each cell's shape what its position implies
    (interior cells 500^3, the last row, column and layer shorter but consistent); no
    index twice; no missing cell unless ``allow_missing`` (then it reads as zeros and
    ``note`` says so). Raises :class:`ScrollError` naming the first offending file.
    """
    directory = Path(directory)
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise ScrollError(f"{directory}: cannot list input directory ({exc.strerror})") from None
    if not is_volume_grid(directory):
        raise ScrollError(f"{directory}: no volume_grid cells (cell_yxz_YYY_XXX_ZZZ.tif)")
    cells: dict[Key, str] = {}
    for name in names:
        key = cell_index(name)
        if key is None or name.startswith("."):
            continue
        if min(key) < 1:
            raise ScrollError(f"{directory / name}: cell index 0 (indices start at 1)")
        if key in cells:
            raise ScrollError(f"{directory / name}: the same cell as {cells[key]}")
        cells[key] = name
    check_regular_files([directory / n for n in cells.values()])
    counts = tuple(max(k[a] for k in cells) for a in range(3))
    missing = [k for k in np.ndindex(*counts) if tuple(i + 1 for i in k) not in cells]
    if missing:
        _missing(directory, cells, missing, allow_missing, note)
    keys = sorted(cells)
    with ThreadPoolExecutor(max_workers=8) as pool:
        headers = dict(zip(keys, pool.map(lambda k: _header(directory / cells[k]), keys)))
    first = keys[0]
    dtype = headers[first][1]
    lasts: list[tuple[int, str]] = []  # size of the last cells along z, y, x, and whose
    for axis in range(3):
        k = next(k for k in keys if k[axis] == counts[axis])
        lasts.append((headers[k][0][axis], cells[k]))
        if lasts[axis][0] > CELL:
            raise ScrollError(f"{directory / cells[k]}: {lasts[axis][0]} voxels along "
                              f"{_AXES[axis]}; a cell holds at most {CELL}")
    for k in keys:
        shape, d = headers[k]
        if d != dtype:
            raise ScrollError(f"{directory / cells[k]}: dtype {d} differs from {dtype} of "
                              f"{cells[first]}")
        implied = tuple(_extent(k[a] - 1, counts[a], lasts[a][0]) for a in range(3))
        if shape != implied:
            last = [lasts[a][1] for a in range(3) if k[a] == counts[a] and shape[a] != implied[a]]
            like = f" (as {last[0]})" if last else ""
            raise ScrollError(f"{directory / cells[k]}: cell of {_zyx(shape)} voxels (z, y, "
                              f"x); its position implies {_zyx(implied)}{like}")
    shape = tuple(CELL * (counts[a] - 1) + lasts[a][0] for a in range(3))
    # absolute: a source pickled to a dask worker in another directory reads the same files
    return VolumeGridSource(os.path.abspath(directory), cells, counts, shape, dtype,
                            len(missing))


def _zyx(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def _name(key: Key, like: str) -> str:
    """The file name of cell ``key`` (jz, jy, jx), padded like the name ``like``."""
    width = len(CELL_NAME.fullmatch(like).group(1))
    jz, jy, jx = key
    return f"cell_yxz_{jy:0{width}d}_{jx:0{width}d}_{jz:0{width}d}{Path(like).suffix}"


def _missing(directory: Path, cells: dict[Key, str], missing: list[Key],
             allow_missing: bool, note: Callable[[str], None]) -> None:
    """Refuse (or, with ``allow_missing``, note) the missing cells, the first in name
    order (y, x, z) named."""
    like = next(iter(cells.values()))
    keys = sorted((tuple(i + 1 for i in k) for k in missing), key=lambda k: (k[1], k[2], k[0]))
    total = len(cells) + len(missing)
    if not allow_missing:
        raise ScrollError(f"{directory}: missing cell {_name(keys[0], like)} ({len(keys)} "
                          f"of {total} missing; use --allow_missing to fill them with zeros)")
    note(f"note: {len(keys)} of {total} volume_grid cells missing, filled with zeros "
         f"(first {_name(keys[0], like)})")


def _header(path: Path) -> tuple[tuple[int, int, int], np.dtype]:
    """``((pages, height, width), dtype)`` of a cell after checking that its pages are
    single-sample 2-D images of one shape and that its first and last pages' pixel data
    lie within the file."""
    try:
        size = path.stat().st_size
        if size == 0:
            raise ScrollError(f"{path}: empty file (0 bytes)")
        with tifffile.TiffFile(path) as tif:
            count = len(tif.pages)
            ends = []
            for index in sorted({0, count - 1}):
                page = tif.pages[index]
                if page.samplesperpixel != 1 or len(page.shape) != 2:
                    raise ScrollError(f"{path}: page {index} of shape {page.shape}; cell "
                                      "pages must be 2-D single-channel images")
                if index == 0:
                    first = page
                elif (page.shape, page.dtype) != (first.shape, first.dtype):
                    raise ScrollError(f"{path}: page {index} ({page.shape}, {page.dtype}) "
                                      f"differs from page 0 ({first.shape}, {first.dtype})")
                ends += [o + n for o, n in zip(page.dataoffsets, page.databytecounts)]
                if not page.databytecounts or min(page.databytecounts) == 0:
                    ends.append(size + 1)
            if max(ends) > size:
                raise ScrollError(f"{path}: truncated TIFF (pixel data ends past the "
                                  f"file's {size} bytes)")
            return (count, *first.shape), np.dtype(first.dtype)
    except ScrollError:
        raise
    except Exception as exc:  # tifffile raises many kinds on a damaged file
        why = "permission denied" if isinstance(exc, PermissionError) else \
            f"not a readable TIFF ({exc})"
        raise ScrollError(f"{path}: {why}") from None


@functools.lru_cache(maxsize=1024)
def _raw_layout(path: str, size: int, mtime_ns: int) -> tuple[tuple[int, ...], np.dtype] | None:
    """``(data offset of every page, stored dtype)`` of a cell whose pages are all
    uncompressed and contiguous, None otherwise. Cached per file (keyed by size and
    time): a conversion reads each cell in several bands."""
    with tifffile.TiffFile(path) as tif:
        offsets = []
        for page in tif.pages:
            if page.compression != 1 or not page.is_contiguous or page.fillorder != 1:
                return None
            offsets.append(int(page.dataoffsets[0]))
        first = tif.pages.first
        return tuple(offsets), np.dtype(first.dtype).newbyteorder(tif.byteorder)


class _CountingFile(io.FileIO):
    """A file that counts the bytes read through it (tifffile reads strips with read)."""

    count = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.count += len(data)
        return data

    def readinto(self, buffer) -> int:
        n = super().readinto(buffer) or 0
        self.count += n
        return n


def _read_cell(path: str, pages: tuple[int, int], rows: tuple[int, int],
               cols: tuple[int, int], width: int, out: np.ndarray) -> int:
    """Read pages ``pages`` (z), rows ``rows`` and columns ``cols`` of the cell at
    ``path`` (pages ``width`` columns wide) into ``out``; return the pixel bytes read."""
    try:
        st = os.stat(path)
        layout = _raw_layout(path, st.st_size, st.st_mtime_ns)
        if layout is not None:
            return _read_raw(path, layout, pages, rows, cols, width, out)
        return _read_decoded(path, pages, rows, cols, out)
    except ScrollError:
        raise
    except Exception as exc:
        raise ScrollError(f"{path}: cannot read pages {pages[0]}:{pages[1]}, rows "
                          f"{rows[0]}:{rows[1]} ({exc})") from None


def _read_raw(path: str, layout: tuple[tuple[int, ...], np.dtype], pages: tuple[int, int],
              rows: tuple[int, int], cols: tuple[int, int], width: int,
              out: np.ndarray) -> int:
    """Read an uncompressed cell: one byte range of whole rows per page, straight into
    ``out`` when its planes are contiguous whole rows of the cell (one cell across), else
    through a buffer (a row-by-row scatter costs more than the copy)."""
    offsets, dtype = layout
    (r0, r1), (c0, c1) = rows, cols
    itemsize = dtype.itemsize
    direct = c0 == 0 and c1 == width and out[0].flags.c_contiguous
    buffer = None if direct else \
        scratch.array("volume_grid.rows", (r1 - r0, width), dtype.newbyteorder("="))
    done = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        for i, page in enumerate(range(*pages)):
            target = out[i] if direct else buffer
            got = os.preadv(fd, [target.reshape(-1).view(np.uint8)],
                            offsets[page] + r0 * width * itemsize)
            if got != (r1 - r0) * width * itemsize:
                raise ScrollError(f"{path}: truncated TIFF (short read of page {page})")
            done += got
            if not dtype.isnative and itemsize > 1:
                target.byteswap(inplace=True)
            if not direct:
                out[i] = buffer[:, c0:c1]
    finally:
        os.close(fd)
    return done


def _read_decoded(path: str, pages: tuple[int, int], rows: tuple[int, int],
                  cols: tuple[int, int], out: np.ndarray) -> int:
    """Read a compressed (or otherwise laid out) cell through :func:`decode.decode_rows`,
    which reads only the strips or tiles covering ``rows``."""
    (r0, r1), (c0, c1) = rows, cols
    fh = _CountingFile(path)
    try:
        with tifffile.TiffFile(fh) as tif:
            done = 0
            for i, index in enumerate(range(*pages)):
                page = tif.pages[index]
                buffer = scratch.array("volume_grid.rows", (r1 - r0, page.shape[1]),
                                         np.dtype(page.dtype).newbyteorder("="))
                before = fh.count
                decode.decode_rows(tif, page, r0, r1, buffer)
                # libtiff reads the strips through the file descriptor, past the
                # counting wrapper: count the strips it was given
                layout = decode.strip_layout(tif, page)
                done += (fh.count - before if layout is None
                         else decode.strip_bytes(layout, r0, r1))
                out[i] = buffer[:, c0:c1]
            return done
    finally:
        fh.close()
