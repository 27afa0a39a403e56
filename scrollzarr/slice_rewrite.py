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
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from . import atomic, decode
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
            if len(tif.pages) != 1:
                return False
            page = tif.pages.first
            end = page.dataoffsets[0] + page.databytecounts[0] if page.dataoffsets else 0
            return (page.compression == 1 and page.is_memmappable and end <= size
                    and tuple(page.shape) == header.shape and page.dtype is not None
                    and np.dtype(page.dtype).newbyteorder("=") == header.dtype)
    except Exception:
        return False


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
        _write_tiff(tmp, data, tags)
        action = "decompressed"
    return action, data


def _write_tiff(tmp: Path, data: np.ndarray, tags: dict) -> None:
    """Write ``data`` with ``tags`` as the uncompressed TIFF ``tmp`` (not flushed), in
    one O_DIRECT write (atomic.write_direct) of tifffile's header of an empty image of
    that shape and the pixels themselves, if the pixels end the file as they do; else
    the whole file as tifffile writes it (ten times slower: it copies the pixels in
    steps). Writing the header into the file first, or laying it out without the
    zeros, measured faster per file but slower on whole runs (more system time)."""
    kwargs = dict(byteorder=_NATIVE, metadata=None, **tags)
    layout = io.BytesIO()
    tifffile.imwrite(layout, None, shape=data.shape, dtype=data.dtype, **kwargs)
    layout.seek(0)
    with tifffile.TiffFile(layout) as tif:
        page = tif.pages.first
        offset = page.dataoffsets[0] if page.is_contiguous else -1
    image = layout.getbuffer()
    if offset > 0 and offset + data.nbytes == len(image) and data.flags.c_contiguous:
        atomic.write_direct(tmp, [image[:offset], data.reshape(-1).view(np.uint8)])
        return
    layout = io.BytesIO()
    tifffile.imwrite(layout, data, **kwargs)
    atomic.write_direct(tmp, [layout.getbuffer()])


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
