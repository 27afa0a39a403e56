"""Rewriting one slice TIFF as an uncompressed, contiguous, memory-mappable TIFF.

:func:`read_input_header` checks an input (headers only), :func:`decompress_file`
writes its output atomically and durably (``NAME.partial``, fsync, rename), with the
same file name, shape, dtype, photometric interpretation, resolution, description,
software and date tags; an input that is already uncompressed and memory-mappable is
copied byte for byte. :func:`output_is_complete` and :func:`outputs_match` look at an
existing output. ``decompress.py`` runs these over a directory.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from . import atomic, decode, scratch
from .errors import ScrollError, read_errors

PARTIAL = atomic.PARTIAL  # suffix of outputs still being written
_NATIVE = "<" if sys.byteorder == "little" else ">"


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


def read_input_header(path: Path) -> SliceHeader:
    """Check that ``path`` is a single-page TIFF whose pixel data lie within the file
    and whose compression imagecodecs can decode; return its :class:`SliceHeader`.
    Raises :class:`ScrollError` with a reason (without the path) otherwise."""
    with read_errors(None, "not a readable TIFF", describe=one_line):
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


def output_is_complete(path: Path, header: SliceHeader) -> bool:
    """True if ``path`` is already a finished output for the input ``header``: a
    single-page, uncompressed, memory-mappable TIFF with the same shape and dtype whose
    pixel data lie within the file. Reads headers only."""
    try:
        size = path.stat().st_size
        with tifffile.TiffFile(path) as tif:
            return _is_output_for(tif, size, header)
    except Exception:
        return False


def _is_output_for(tif: tifffile.TiffFile, size: int, header: SliceHeader) -> bool:
    """True if the open ``tif`` of ``size`` bytes is an output for the input ``header``
    (see :func:`output_is_complete`)."""
    if len(tif.pages) != 1:
        return False
    page = tif.pages.first
    if not page.dataoffsets or page.dtype is None:
        return False
    end = page.dataoffsets[0] + page.databytecounts[0]
    # tifffile's is_memmappable, less its "is a file" (a header checked in memory)
    memmappable = page.is_final and page.dataoffsets[0] % page.dtype.itemsize == 0
    return (page.compression == 1 and memmappable and end <= size
            and tuple(page.shape) == header.shape
            and np.dtype(page.dtype).newbyteorder("=") == header.dtype)


_NOT_AN_OUTPUT = ("the written file is not an uncompressed memory-mappable TIFF of the "
                  "input's shape and dtype (please report this)")


def decompress_file(src: Path, dst: Path, header: SliceHeader, verify: bool = False,
                    slots: threading.Semaphore | None = None) -> str:
    """Write ``src`` uncompressed to ``dst``, atomically; return ``"decompressed"`` or
    ``"copied"``.

    The output is written to ``dst`` + ``.partial``, flushed to disk (fsync) and renamed
    to ``dst``; on any error the partial file is removed and the exception propagates.
    The output's header is checked before the rename, and with ``verify`` the output's
    pixels are compared with the input's. ``slots`` (if given) is held while decoding
    but not while writing or waiting for the disk, so more threads than cores keep the
    cores decoding while other files go to disk.
    """
    # NAME.partial exactly: _remove_partials deletes only the partials of names we made
    with atomic.replacing(dst, durable=True, tmp=dst.with_name(dst.name + PARTIAL)) as tmp:
        tmp = Path(tmp)
        if header.copy_through:
            with slots or contextlib.nullcontext():
                shutil.copyfile(src, tmp)
                shutil.copystat(src, tmp)
            if not output_is_complete(tmp, header):
                raise ScrollError(_NOT_AN_OUTPUT)
            if verify and not np.array_equal(tifffile.memmap(tmp, mode="r"), _pixels(src)):
                raise ScrollError("verify: the written pixels differ from the input's")
            return "copied"
        with slots or contextlib.nullcontext():
            buffer, size, data = _lay_out(src, header)
        atomic.write_pages(tmp, buffer, size)  # the disk's time, outside the slot
        if verify and not np.array_equal(tifffile.memmap(tmp, mode="r"), data):
            raise ScrollError("verify: the written pixels differ from the input's")
    return "decompressed"


#: Room in the page buffer for the output's header and tags before its pixels.
_HEADROOM = 1 << 20
_ZEROS = bytes(_HEADROOM)


def _lay_out(src: Path, header: SliceHeader) -> tuple[mmap.mmap, int, np.ndarray]:
    """Lay the uncompressed output for ``src`` out in this thread's page buffer
    (:func:`scrollzarr.scratch.buffer`) and return that buffer, the file's size in
    bytes and its pixels (valid until this thread's next file).

    The layout is tifffile's header of an empty image of the input's shape, dtype and
    tags, with the pixels decoded straight behind it (the pixel region is neither
    zero-filled nor copied). A layout where tifffile puts anything after the pixels, or whose header
    does not fit the headroom, is written by tifffile as a whole file instead and copied
    into the buffer. The header is checked either way (:func:`_is_output_for`)."""
    with tifffile.TiffFile(src) as tif:
        page = tif.pages.first
        kwargs = dict(byteorder=_NATIVE, metadata=None, **_tags_to_keep(page))
        buffer = scratch.buffer("slice_rewrite.file", header.nbytes + _HEADROOM)
        # tifffile skips its padding by seeking, as over a new file's zeros: clear the
        # previous file's header, or its bytes would show through the gaps
        buffer.write(_ZEROS)
        buffer.seek(0)
        try:
            offset, count = tifffile.imwrite(buffer, None, shape=header.shape,
                                             dtype=header.dtype, returnoffset=True,
                                             **kwargs)
            size = buffer.tell()
        except ValueError:  # the header outgrew the headroom (mmap: out of range)
            offset = count = size = -1
        if (offset + count == size and count == header.nbytes
                and offset % header.dtype.itemsize == 0):
            data = np.frombuffer(buffer, header.dtype, count=header.nbytes //
                                 header.dtype.itemsize, offset=offset).reshape(header.shape)
            decode.decode_page(tif, out=data)
            layout = io.BytesIO(buffer[:offset])
        else:
            data = decode.decode_page(tif)
            layout = io.BytesIO()
            tifffile.imwrite(layout, data, **kwargs)
            size = len(layout.getbuffer())
            buffer = scratch.buffer("slice_rewrite.file", size)
            buffer.write(layout.getbuffer())
            layout.seek(0)  # TiffFile reads a stream from where it stands
    with tifffile.TiffFile(layout) as written:
        if not _is_output_for(written, size, header):
            raise ScrollError(_NOT_AN_OUTPUT)
    return buffer, size, data


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


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception (failures are one line)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
