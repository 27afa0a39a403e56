"""Decoding compressed slice TIFFs with the fastest decoder measured for each codec.

On our slices libtiff's LZW and deflate decoders (through ``imagecodecs.tiff_decode``,
which releases the GIL) run 1.5-3x faster per core than the codecs tifffile calls strip
by strip (``bench/bench_decompress.py --decoders`` measures them), so those codecs go
through libtiff; every other codec, tiled layout or unusual sample format goes through
tifffile. Both give the same pixels in native byte order.

* :func:`decode_page` decodes a whole single-page slice (decompress_tiffs).
* :func:`decode_rows` decodes only the strips that cover some rows (a conversion task
  reads a band of rows of every slice): the strips are handed to libtiff as a small
  in-memory TIFF of just those strips.
* :func:`strip_layout` and :func:`decode_strip_rows` do the same from a file descriptor
  and a layout read once per file (no TIFF parsing per band): the strips are read with
  one system call behind the small TIFF's header in a reused per-thread buffer, and
  libtiff decodes them straight into the caller's array when the rows are whole strips.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import imagecodecs
import numpy as np
import tifffile

from . import scratch

#: Codecs that libtiff decodes faster than tifffile here (LZW, adobe deflate, deflate).
LIBTIFF_CODECS = frozenset({5, 8, 32946})
_SAMPLE_FORMATS = {"u": 1, "i": 2, "f": 3}


def _libtiff_can(page: tifffile.TiffPage) -> bool:
    """True if ``page`` is a plain stripped single-sample image libtiff decodes exactly
    as tifffile does (no tiles, no bilevel/palette/YCbCr conversions)."""
    dtype = np.dtype(page.dtype) if page.dtype is not None else None
    return (imagecodecs.TIFF.available and page.compression in LIBTIFF_CODECS
            and not page.is_tiled and page.samplesperpixel == 1 and len(page.shape) == 2
            and dtype is not None and dtype.kind in _SAMPLE_FORMATS
            and dtype.itemsize in (1, 2, 4, 8) and page.bitspersample == 8 * dtype.itemsize
            and page.predictor in (1, 2, 3) and page.photometric in (0, 1)
            and page.fillorder == 1 and page.planarconfig == 1)


def decode_page(tif: tifffile.TiffFile, out: np.ndarray | None = None) -> np.ndarray:
    """Decode the first page of the open ``tif`` as a (y, x) array in native byte order
    (``page.asarray`` for layouts libtiff is not used for), into ``out`` if given (a
    C-contiguous array of the page's shape and native dtype), and return it."""
    page = tif.pages.first
    if not _libtiff_can(page):
        return page.asarray(maxworkers=1, out=out)
    # libtiff reads the (single-page) file itself: no copies of strips or rows; the
    # file goes into a reused buffer (fresh pages for every file cost system time)
    fh = tif.filehandle
    data = scratch.array("decode.file", (fh.size,), np.uint8)
    fh.seek(0)
    if fh.readinto(data) != fh.size:
        raise OSError(f"{fh.path}: file shorter than its size")
    if out is None:
        return imagecodecs.tiff_decode(data).reshape(page.shape)
    imagecodecs.tiff_decode(data, out=out.reshape(-1, out.shape[-1]))
    return out


@dataclass(frozen=True)
class StripLayout:
    """Where the compressed strips of a stripped single-sample slice lie (byte offsets
    and counts in the file) and what libtiff needs to decode them."""

    byteorder: str
    height: int
    width: int
    dtype: np.dtype
    compression: int
    predictor: int
    rows_per_strip: int
    offsets: tuple[int, ...]
    counts: tuple[int, ...]


def strip_layout(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> StripLayout | None:
    """The :class:`StripLayout` of ``page``, None when libtiff is not used for it."""
    if not _libtiff_can(page):
        return None
    height, width = page.shape[-2:]
    return StripLayout(tif.byteorder, int(height), int(width),
                       np.dtype(page.dtype).newbyteorder("="), int(page.compression),
                       int(page.predictor), min(int(page.rowsperstrip or height), height),
                       tuple(int(o) for o in page.dataoffsets),
                       tuple(int(c) for c in page.databytecounts))


def decode_rows(tif: tifffile.TiffFile, page: tifffile.TiffPage, y0: int, y1: int,
                out: np.ndarray | None = None) -> np.ndarray:
    """Decode rows ``y0:y1`` (all columns) of ``page`` into ``out`` (or a new array) of
    shape (rows, width) in native byte order, reading only the strips or tiles that
    cover them; return it."""
    height, width = page.shape[-2:]
    if out is None:
        out = np.empty((y1 - y0, width), dtype=np.dtype(page.dtype).newbyteorder("="))
    if y1 <= y0:
        return out
    layout = strip_layout(tif, page)
    if layout is None:
        _tifffile_rows(tif, page, y0, y1, out)
        return out
    return decode_strip_rows(tif.filehandle.fileno(), layout, y0, y1, out)


def strip_bytes(layout: StripLayout, y0: int, y1: int) -> int:
    """Bytes of the compressed strips that :func:`decode_strip_rows` reads for rows
    ``y0:y1`` (for callers that count what they read from disk)."""
    if y1 <= y0:
        return 0
    per = layout.rows_per_strip
    return int(sum(layout.counts[y0 // per:(y1 - 1) // per + 1]))


def decode_strip_rows(fd: int, layout: StripLayout, y0: int, y1: int,
                      out: np.ndarray) -> np.ndarray:
    """Decode rows ``y0:y1`` (all columns) of the slice open as ``fd`` into ``out``
    (shape (rows, width), any dtype the values cast to); return it."""
    if y1 <= y0:
        return out
    per = layout.rows_per_strip
    first, last = y0 // per, (y1 - 1) // per
    top = first * per
    rows = min((last + 1) * per, layout.height) - top
    counts = layout.counts[first:last + 1]
    head = _strip_header(layout, rows, counts)
    image = scratch.array("decode.strips", (len(head) + sum(counts),), np.uint8)
    image[:len(head)] = np.frombuffer(head, dtype=np.uint8)
    position = len(head)
    spans = []  # (file offset, buffer part): strips back to back make one span
    for offset, count in zip(layout.offsets[first:last + 1], counts):
        if spans and spans[-1][0] + spans[-1][1] == offset:
            spans[-1][1] += count
        else:
            spans.append([offset, count, position])
        position += count
    for offset, count, at in spans:
        view = image[at:at + count]
        if os.preadv(fd, [view], offset) != count:
            raise ValueError("truncated TIFF (short read of a strip)")
    whole = top == y0 and rows == y1 - y0
    if whole and out.dtype == layout.dtype and out.flags.c_contiguous:
        imagecodecs.tiff_decode(image, out=out)  # straight into the caller's rows
        return out
    target = scratch.array("decode.rows", (rows, layout.width), layout.dtype)
    decoded = imagecodecs.tiff_decode(image, out=target)
    out[...] = decoded[y0 - top:y1 - top]
    return out


def _strip_header(layout: StripLayout, rows: int, counts: tuple[int, ...]) -> bytes:
    """The header of a minimal classic TIFF of ``rows`` x ``width`` whose compressed
    strips of ``counts`` bytes follow it back to back (byte order, codec, predictor and
    sample type of the slice)."""
    byteorder, count = layout.byteorder, len(counts)
    short = lambda tag, value: struct.pack(byteorder + "HHIHH", tag, 3, 1, value, 0)  # noqa: E731
    long_ = lambda tag, n, value: struct.pack(byteorder + "HHII", tag, 4, n, value)  # noqa: E731
    nentries = 12
    ifd_end = 8 + 2 + 12 * nentries + 4
    arrays = ifd_end if count > 1 else 0
    offsets, position = [], ifd_end + (8 * count if count > 1 else 0)
    for n in counts:
        offsets.append(position)
        position += n
    offsets_value = arrays if count > 1 else offsets[0]
    counts_value = arrays + 4 * count if count > 1 else counts[0]
    entries = [
        long_(256, 1, layout.width),
        long_(257, 1, rows),
        short(258, 8 * layout.dtype.itemsize),
        short(259, layout.compression),
        short(262, 1),  # min-is-black: values as stored, as tifffile returns them
        long_(273, count, offsets_value),
        short(277, 1),
        long_(278, 1, layout.rows_per_strip),
        long_(279, count, counts_value),
        short(284, 1),
        short(317, layout.predictor),
        short(339, _SAMPLE_FORMATS[layout.dtype.kind]),
    ]
    head = [b"II*\0" if byteorder == "<" else b"MM\0*", struct.pack(byteorder + "I", 8),
            struct.pack(byteorder + "H", nentries), *entries, struct.pack(byteorder + "I", 0)]
    if count > 1:
        head.append(struct.pack(f"{byteorder}{count}I", *offsets))
        head.append(struct.pack(f"{byteorder}{count}I", *counts))
    return b"".join(head)


def _tifffile_rows(tif: tifffile.TiffFile, page: tifffile.TiffPage, y0: int, y1: int,
                   out: np.ndarray) -> None:
    """Decode the strips or tiles of ``page`` that overlap rows ``y0:y1`` into ``out``
    with tifffile's decoders."""
    height, width = page.shape
    seg_h, seg_w = page.chunks[-2], page.chunks[-1] if page.is_tiled else width
    across = -(-width // seg_w) if page.is_tiled else 1
    decode = page.decode
    fh = tif.filehandle
    for index, (offset, count) in enumerate(zip(page.dataoffsets, page.databytecounts)):
        row = (index // across) * seg_h
        if row + seg_h <= y0 or row >= y1:
            continue
        fh.seek(offset)
        data = fh.read(count)
        segment, (_, _, sy, sx, _), _ = decode(data, index, jpegtables=page.jpegtables)
        if segment is None:
            raise ValueError(f"empty segment {index}")
        segment = segment.reshape(segment.shape[-3], segment.shape[-2])
        r0, r1 = max(sy, y0), min(sy + segment.shape[0], y1, height)
        c1 = min(sx + segment.shape[1], width)
        out[r0 - y0:r1 - y0, sx:c1] = segment[r0 - sy:r1 - sy, :c1 - sx]
