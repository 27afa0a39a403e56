""".ppm per-pixel maps (volume-cartographer segments): reading, checking and writing.

A .ppm file is an ASCII header of ``key: value`` lines ended by a line ``<>``, then
``height x width x 6`` little-endian float64, row-major (row = v, column = u), per pixel
``(x, y, z, nx, ny, nz)`` in scroll voxel coordinates. Unmapped pixels are all zeros; a
sidecar ``<stem>_mask.png`` (nonzero = mapped) may say which pixels are mapped instead.

Reading is tolerant where the format is loose and strict where a mistake would corrupt the
output:

* header: any key order, ``#`` comments, blank lines, ``\\r\\n`` endings and unknown keys are
  accepted; ``width`` and ``height`` must be positive integers, ``dim`` 6, ``type``
  double and ``ordered`` true (the defaults when the line is missing: only ``width`` and
  ``height`` are required);
* body: exactly ``height * width * 48`` bytes, nothing more, nothing less;
* non-finite values (NaN, inf) in a mapped pixel are an error naming the file and pixel,
  found when the pixel's tile is read (no extra pass over a 10 GB file): a NaN surface
  point has no meaningful place in the volume, and treating it as unmapped would silently
  drop a pixel.

Real segments reach 20,000 x 10,000 pixels (9.6 GB), so the body is never loaded whole:
:meth:`Ppm.read_tile` reads the rows of one tile with ``os.pread``. (Not ``np.memmap``:
pages of a mapped file count in the process's resident set, so a memmap'd body makes peak
RSS grow with the segment; ``pread`` goes through the page cache, which does not.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ScrollError, read_errors, reading

#: Bytes per pixel in the body: six float64.
PIXEL_BYTES = 48
#: A header longer than this is not a .ppm header (binary junk, wrong file).
MAX_HEADER_BYTES = 64 * 1024
_BODY_DTYPE = np.dtype("<f8")


@dataclass(frozen=True)
class PpmHeader:
    """What the header of a .ppm says: ``width`` (u, columns) and ``height`` (v, rows)
    in pixels, and ``body_offset``, the byte where the float64 body starts."""

    width: int
    height: int
    body_offset: int


def mask_path(ppm_path: str | Path) -> Path:
    """The sidecar mask of a .ppm: ``<stem>_mask.png`` in the same directory."""
    ppm_path = Path(ppm_path)
    return ppm_path.with_name(ppm_path.stem + "_mask.png")


def read_header(path: str | Path) -> PpmHeader:
    """Read and check the header of the .ppm at ``path`` and the size of its body.

    Raises :class:`ScrollError` with a one-line message naming the file for every
    malformed case (missing file, no ``<>`` line, bad or missing width/height, wrong
    dim/type/ordered, body size not ``height * width * 48`` bytes).
    """
    path = Path(path)
    with reading(path, ".ppm"), open(path, "rb") as fh:
        head = fh.read(MAX_HEADER_BYTES)
        size = os.fstat(fh.fileno()).st_size
    if not head:
        raise ScrollError(f"{path}: empty file, not a .ppm")

    fields: dict[str, str] = {}
    pos = 0
    body_offset = None
    while pos < len(head):
        end = head.find(b"\n", pos)
        if end < 0:
            break
        raw = head[pos:end]
        pos = end + 1
        try:
            line = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise ScrollError(f"{path}: binary data in the .ppm header before the '<>' "
                              "line (not a .ppm file, or a corrupt header)") from None
        if line == "<>":
            body_offset = pos
            break
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ScrollError(f"{path}: bad .ppm header line {line[:60]!r} "
                              "(expected 'key: value')")
        key, value = key.strip().lower(), value.strip()
        if key in fields and fields[key] != value:
            raise ScrollError(f"{path}: .ppm header gives {key} twice "
                              f"({fields[key]!r} and {value!r})")
        fields[key] = value
    if body_offset is None:
        raise ScrollError(f"{path}: .ppm header has no '<>' line ending it "
                          f"(within the first {MAX_HEADER_BYTES} bytes)")

    width = _positive_int(path, fields, "width")
    height = _positive_int(path, fields, "height")
    expect = {"dim": "6", "type": "double", "ordered": "true"}
    for key, wanted in expect.items():
        if key in fields and fields[key].lower() != wanted:
            raise ScrollError(f"{path}: .ppm header has {key}: {fields[key]}, "
                              f"only {key}: {wanted} is supported")
    body = size - body_offset
    wanted_body = width * height * PIXEL_BYTES
    if body != wanted_body:
        what = "truncated" if body < wanted_body else "trailing data"
        raise ScrollError(f"{path}: .ppm body is {body} bytes, header {width}x{height} "
                          f"needs exactly {wanted_body} ({what})")
    return PpmHeader(width, height, body_offset)


def _positive_int(path: Path, fields: dict[str, str], key: str) -> int:
    if key not in fields:
        raise ScrollError(f"{path}: .ppm header has no '{key}:' line")
    text = fields[key]
    try:
        value = int(text)
    except ValueError:
        raise ScrollError(f"{path}: .ppm header {key}: {text!r} is not an integer") from None
    if value <= 0:
        raise ScrollError(f"{path}: .ppm header {key}: {value} must be positive")
    return value


def read_mask(path: str | Path, height: int, width: int) -> np.ndarray:
    """Read a mask PNG and return it as bits packed along u: a uint8 array of shape
    ``(height, ceil(width / 8))`` (``np.packbits(mapped, axis=1)``), 1 = mapped
    (pixel nonzero in any colour channel; alpha is ignored).

    Packed, a 20,000 x 10,000 mask holds 25 MB. Raises :class:`ScrollError` naming the
    file when it is unreadable or its size differs from the .ppm's.
    """
    from PIL import Image  # pillow comes with scikit-image; import only when needed

    path = Path(path)
    old_limit = Image.MAX_IMAGE_PIXELS
    # real masks (200 Mpixel) exceed pillow's decompression-bomb guard; this is a local file
    Image.MAX_IMAGE_PIXELS = None
    try:
        with read_errors(path, "cannot read mask PNG", missing="mask file does not exist"), \
                Image.open(path) as img:
            img.load()
            if img.size != (width, height):
                raise ScrollError(f"{path}: mask is {img.size[0]}x{img.size[1]} "
                                  f"(width x height), the .ppm is {width}x{height}")
            if img.mode in ("P", "PA"):
                img = img.convert("RGBA")  # palette indices are not intensities
            names = img.getbands()
            colour = [i for i, b in enumerate(names) if b != "A"] or [0]
            packed = np.empty((height, -(-width // 8)), dtype=np.uint8)
            step = max(1, (16 << 20) // width)  # convert in bands of ~16 Mpixel
            for r0 in range(0, height, step):
                arr = np.asarray(img.crop((0, r0, width, min(r0 + step, height))))
                if arr.ndim == 3:
                    mapped = (arr[:, :, colour] != 0).any(axis=2)
                else:
                    mapped = arr != 0
                packed[r0:r0 + mapped.shape[0]] = np.packbits(mapped, axis=1)
            return packed
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit


class Ppm:
    """An open .ppm segment (header checked, body not loaded) with its mask, if any.

    ``width`` and ``height`` are in pixels (u, v); ``mask`` is None (a pixel is mapped
    iff its normal is non-zero) or the packed mask of :func:`read_mask`. Use as a context
    manager, or call :meth:`close`. Thread-safe: reads use ``os.pread``.
    """

    def __init__(self, path: str | Path, use_mask: bool = True):
        self.path = Path(path)
        header = read_header(self.path)
        self.width, self.height = header.width, header.height
        self._offset = header.body_offset
        mpath = mask_path(self.path)
        self.mask_path: Path | None = mpath if use_mask and mpath.exists() else None
        self.mask = (read_mask(mpath, self.height, self.width)
                     if self.mask_path is not None else None)
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise ScrollError(f"{self.path}: cannot open .ppm file ({exc.strerror})") from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "Ppm":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_tile(self, v0: int, v1: int, u0: int, u1: int) -> tuple[np.ndarray, np.ndarray]:
        """Read pixels ``v0:v1`` (rows) x ``u0:u1`` (columns).

        Returns ``(data, mapped)``: ``data`` float64 of shape ``(v1-v0, u1-u0, 6)`` holding
        ``(x, y, z, nx, ny, nz)`` per pixel, and ``mapped`` bool ``(v1-v0, u1-u0)``.
        Raises :class:`ScrollError` naming the file and the first (row-major) mapped pixel
        of the tile whose values are not finite.
        """
        if not (0 <= v0 < v1 <= self.height and 0 <= u0 < u1 <= self.width):
            raise ValueError(f"tile {v0}:{v1} x {u0}:{u1} outside the "
                             f"{self.width}x{self.height} segment")
        rows, cols = v1 - v0, u1 - u0
        out = np.empty((rows, cols, 6), dtype=np.float64)
        view = out.reshape(rows, cols * 6)
        nbytes = cols * PIXEL_BYTES
        for r in range(rows):
            offset = self._offset + ((v0 + r) * self.width + u0) * PIXEL_BYTES
            raw = os.pread(self._fd, nbytes, offset)
            if len(raw) != nbytes:
                raise ScrollError(f"{self.path}: short read at row {v0 + r} "
                                  "(file changed while rendering?)")
            view[r] = np.frombuffer(raw, dtype=_BODY_DTYPE)
        if self.mask is not None:
            bits = np.unpackbits(self.mask[v0:v1, u0 // 8:-(-u1 // 8)], axis=1)
            start = u0 - (u0 // 8) * 8
            mapped = bits[:, start:start + cols].astype(bool)
        else:
            normal = out[:, :, 3:6]
            mapped = (normal != 0).any(axis=2)
        bad = mapped & ~np.isfinite(out).all(axis=2)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            x, y, z, nx, ny, nz = out[r, c]
            raise ScrollError(f"{self.path}: pixel u={u0 + c}, v={v0 + r} holds non-finite "
                              f"values (x, y, z, nx, ny, nz) = ({x}, {y}, {z}, {nx}, {ny}, "
                              f"{nz})")
        return out, mapped


def write_ppm(path: str | Path, data: np.ndarray, comment: str | None = None) -> None:
    """Write ``data``, float ``(height, width, 6)`` = ``(x, y, z, nx, ny, nz)`` per pixel in
    scroll voxels, as a .ppm file with volume-cartographer's header."""
    data = np.asarray(data)
    if data.ndim != 3 or data.shape[2] != 6:
        raise ValueError(f"ppm data must be (height, width, 6), got {data.shape}")
    height, width = data.shape[:2]
    lines = [] if comment is None else [f"# {comment}"]
    lines += [f"width: {width}", f"height: {height}", "dim: 6", "ordered: true",
              "type: double", "version: 1", "<>"]
    with open(path, "wb") as fh:
        fh.write(("\n".join(lines) + "\n").encode("ascii"))
        # row by row so a large segment is never copied whole
        for row in data:
            fh.write(np.ascontiguousarray(row, dtype=_BODY_DTYPE).tobytes())


def write_mask(path: str | Path, mapped: np.ndarray) -> None:
    """Write a (height, width) boolean ``mapped`` array as an 8-bit PNG mask
    (255 = mapped, 0 = unmapped), as volume-cartographer does."""
    from PIL import Image

    Image.fromarray(np.where(np.asarray(mapped, dtype=bool), 255, 0).astype(np.uint8)
                    ).save(path)


__all__ = ["PIXEL_BYTES", "PpmHeader", "Ppm", "mask_path", "read_header", "read_mask",
           "write_ppm", "write_mask"]
