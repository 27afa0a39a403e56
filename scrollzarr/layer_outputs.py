"""Outputs of a layer render: layer TIFFs, the stack image, previews, and the manifest
that lets a later render into the same directory replace this one as a whole.

Tiles are rendered into *strips*: full-width bands of ``band_rows`` rows of every layer.
When the last tile of a strip is done, the strip is written with one ``pwrite`` per
layer (and one for the stack image), then dropped: memory is a few strips, whatever the
segment's height. Files are written as ``<name>.partial`` and renamed only once the
whole render succeeded.

The manifest ``OUT_DIR/.scrollzarr-layers.json`` lists the files a render wrote into
``OUT_DIR`` (names relative to it). A new render may replace or delete exactly those
files, and no other: so layer sets of two renders never mix (rendering 7 layers where 65
were removes 07.tif .. 64.tif), and a user's own files are never touched.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import tifffile

from . import atomic
from .errors import ScrollError

#: Suffix of outputs being written; renamed away only once a file is complete.
PARTIAL = ".partial"
#: The manifest of what a render wrote into its OUT_DIR.
MANIFEST = ".scrollzarr-layers.json"
STACK_METHODS = ("max", "mean", "median", "min")
#: Longest side of a preview PNG (pixels); larger segments are subsampled.
PREVIEW_SIDE = 2048


def stack_image(layers: np.ndarray, method: str, dtype: np.dtype) -> np.ndarray:
    """Combine ``layers`` (S, rows, cols) into one (rows, cols) image of ``dtype``, per
    pixel: ``max``, ``min``, ``mean`` or ``median`` (the last two in float64, rounded
    half to even for integer dtypes)."""
    if method == "max":
        return layers.max(axis=0)
    if method == "min":
        return layers.min(axis=0)
    if method == "mean":
        values = layers.mean(axis=0, dtype=np.float64)
    elif method == "median":
        values = np.median(layers, axis=0)
    else:
        raise ValueError(f"stack method must be one of {STACK_METHODS}, not {method!r}")
    if np.issubdtype(dtype, np.integer):
        values = np.rint(values)
    return values.astype(dtype)


# --- layer TIFFs ----------------------------------------------------------------------------

class TiffOutputs:
    """Uncompressed 2-D TIFFs created up front (sparse) under ``<name>.partial`` and
    filled strip by strip with ``os.pwrite`` at their pixel offsets. Written with pwrite,
    not a memmap: dirty and cached pages of a mapping count in the resident set, so
    memmap'd outputs would make peak RSS grow with the segment."""

    def __init__(self, paths: Sequence[Path], height: int, width: int, dtype: np.dtype):
        self.final = [Path(p) for p in paths]
        self.partial = [p.with_name(p.name + PARTIAL) for p in self.final]
        self.width = width
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.fds: list[int] = []
        self.offsets: list[int] = []
        bigtiff = height * width * self.dtype.itemsize > 2**32 - 2**25
        try:
            for path in self.partial:
                result = tifffile.imwrite(path, data=None, shape=(height, width),
                                          dtype=self.dtype, byteorder="<", bigtiff=bigtiff,
                                          photometric="minisblack", returnoffset=True)
                if result is None:
                    raise ScrollError(f"{path}: tifffile did not write contiguous pixels")
                self.offsets.append(int(result[0]))
                self.fds.append(os.open(path, os.O_WRONLY))
        except OSError as exc:
            self.abort()
            raise ScrollError(f"{exc.filename or self.partial[len(self.fds)]}: cannot "
                              f"create output ({exc.strerror})") from None
        except BaseException:
            self.abort()
            raise

    def write_rows(self, which: int, v0: int, rows: np.ndarray) -> None:
        """Write the full-width rows ``rows`` (2-D, ``width`` columns) from row ``v0`` of
        output ``which``: one contiguous range, one system call."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        os.pwrite(self.fds[which], rows,
                  self.offsets[which] + v0 * self.width * self.dtype.itemsize)

    def finish(self, also: Iterable[tuple[Path, Path]] = ()) -> None:
        """Flush every file to disk, then give it its final name; ``also``: more
        finished ``(temporary, final)`` files (previews) committed in the same batch."""
        self._close()
        atomic.commit_many([*zip(self.partial, self.final), *also])

    def abort(self) -> None:
        """Close and delete every partial file."""
        self._close()
        for path in self.partial:
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def _close(self) -> None:
        while self.fds:
            os.close(self.fds.pop())


# --- strips ---------------------------------------------------------------------------------

class Strips:
    """Full-width bands of ``band_rows`` rows of all ``n_layers`` layers, filled tile by
    tile from several threads and handed to ``sink(v0, layers, mapped)`` (layers
    ``(n_layers, rows, width)``; ``mapped`` = mapped pixels in the band) by the thread
    that completes a band's last tile. ``tiles_per_band`` tiles make a band."""

    def __init__(self, n_layers: int, height: int, width: int, band_rows: int,
                 tiles_per_band: int, dtype: np.dtype,
                 sink: Callable[[int, np.ndarray, int], None]):
        self.shape = (n_layers, height, width)
        self.band_rows = band_rows
        self.tiles_per_band = tiles_per_band
        self.dtype = dtype
        self.sink = sink
        self._lock = threading.Lock()
        self._bands: dict[int, list] = {}  # band -> [array, tiles left, mapped]

    def tile_view(self, band: int, u0: int, u1: int) -> np.ndarray:
        """The (n_layers, rows, u1 - u0) part of ``band`` that a tile fills (starts 0)."""
        with self._lock:
            entry = self._bands.get(band)
            if entry is None:
                n, height, width = self.shape
                rows = min(self.band_rows, height - band * self.band_rows)
                entry = [np.zeros((n, rows, width), dtype=self.dtype), self.tiles_per_band, 0]
                self._bands[band] = entry
        return entry[0][:, :, u0:u1]

    def tile_done(self, band: int, mapped: int) -> None:
        """Count a finished tile of ``band``; the last one writes the band out."""
        with self._lock:
            entry = self._bands[band]
            entry[1] -= 1
            entry[2] += mapped
            if entry[1]:
                return
            del self._bands[band]
        self.sink(band * self.band_rows, entry[0], entry[2])


# --- previews -------------------------------------------------------------------------------

class Previews:
    """Subsampled copies (every ``step``-th row and column, longest side at most
    :data:`PREVIEW_SIDE`) of the surface layer and the stack, collected strip by strip
    and saved as 8-bit contrast-stretched PNGs."""

    def __init__(self, height: int, width: int, dtype: np.dtype):
        self.step = max(1, -(-max(height, width) // PREVIEW_SIDE))
        shape = (-(-height // self.step), -(-width // self.step))
        self.surface = np.zeros(shape, dtype=dtype)
        self.stack = np.zeros(shape, dtype=dtype)

    def add(self, v0: int, surface: np.ndarray, stack: np.ndarray) -> None:
        """Take the preview rows of the full-width rows ``v0..`` of both images."""
        first = -(-v0 // self.step) * self.step - v0  # first row of the strip on the grid
        rows = slice(first, None, self.step)
        r0 = (v0 + first) // self.step
        part = surface[rows, ::self.step]
        self.surface[r0:r0 + part.shape[0]] = part
        self.stack[r0:r0 + part.shape[0]] = stack[rows, ::self.step]

    @staticmethod
    def stretch(image: np.ndarray) -> np.ndarray:
        """8-bit contrast stretch: the 0.5 and 99.5 percentiles of the non-zero pixels
        (zeros are unmapped or outside the volume) map to 0 and 255."""
        values = image[image != 0]
        if values.size == 0:
            return np.zeros(image.shape, dtype=np.uint8)
        low, high = np.percentile(values, [0.5, 99.5])
        if high <= low:
            high = low + 1
        scaled = (image.astype(np.float64) - low) * (255.0 / (high - low))
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)

    def save(self, surface_path: Path, stack_path: Path) -> None:
        from PIL import Image

        for image, path in ((self.surface, surface_path), (self.stack, stack_path)):
            Image.fromarray(self.stretch(image)).save(path, format="PNG")


# --- the manifest ---------------------------------------------------------------------------

def read_manifest(out_dir: Path) -> list[str]:
    """Names (relative to ``out_dir``) that the last render wrote there; [] when there is
    no manifest. A manifest that is not ours is an error naming it (never guessed at)."""
    path = out_dir / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ScrollError(f"{path}: unreadable render manifest ({exc}); remove it or "
                          "choose another OUT_DIR") from None
    files = doc.get("files") if isinstance(doc, dict) else None
    if (not isinstance(files, list) or not all(isinstance(f, str) for f in files)
            or any("/" in f or f in ("", ".", "..") for f in files)):
        raise ScrollError(f"{path}: not a scrollzarr render manifest; remove it or choose "
                          "another OUT_DIR")
    return files


def write_manifest(out_dir: Path, files: Sequence[str], about: dict) -> None:
    """Write the manifest atomically (temporary name, fsync, rename)."""
    path = out_dir / MANIFEST
    text = json.dumps({"tool": "scrollzarr ppm_to_layers", "files": sorted(files), **about},
                      indent=1)
    atomic.write_bytes(path, text, durable=True, tmp=path.with_name(path.name + PARTIAL))


def check_replaceable(out_dir: Path, names: Sequence[str], earlier: Sequence[str]) -> None:
    """Refuse to overwrite a file in ``out_dir`` that the last render did not write."""
    earlier_set = set(earlier)
    for name in names:
        path = out_dir / name
        if (path.exists() or path.is_symlink()) and name not in earlier_set:
            raise ScrollError(f"{path}: exists and was not written by an earlier render into "
                              f"this directory (no {MANIFEST} lists it); move it away or "
                              "choose another OUT_DIR")


def signature(path: Path) -> list[int]:
    """What identifies a file we wrote: ``[size in bytes, mtime in ns]``."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def read_elsewhere(out_dir: Path | None) -> dict[str, list[int]]:
    """Files outside ``out_dir`` (a STACK.tif beside it) that the last render into it
    wrote: ``{resolved path: signature}``; {} without a manifest."""
    if out_dir is None:
        return {}
    try:
        doc = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}  # read_manifest has already named an unreadable manifest
    found = doc.get("elsewhere") if isinstance(doc, dict) else None
    return {k: v for k, v in found.items() if isinstance(v, list)} if isinstance(
        found, dict) else {}


def check_replaceable_elsewhere(path: Path, recorded: dict[str, list[int]]) -> None:
    """Refuse to overwrite ``path`` (outside OUT_DIR) unless the last render into OUT_DIR
    wrote it and it is unchanged since (same size and modification time)."""
    if not (path.exists() or path.is_symlink()):
        return
    key = os.path.realpath(path)
    if not path.is_file() or recorded.get(key) != signature(path):
        raise ScrollError(f"{path}: exists and was not written by an earlier render into "
                          f"this OUT_DIR (or was changed since); move it away or choose "
                          "another path")


def remove_stale(out_dir: Path, earlier: Sequence[str], keep: Sequence[str]) -> None:
    """Delete the regular files of the earlier render that this one did not rewrite."""
    keep_set = set(keep)
    for name in earlier:
        path = out_dir / name
        if name in keep_set or path.is_symlink() or not path.is_file():
            continue
        path.unlink()


# --- OME-Zarr output ------------------------------------------------------------------------

#: Chunk rows and columns of the layer volume (all layers in one chunk along z).
LAYER_CHUNK = 128
#: What our own layer stores carry under the "scrollzarr" attribute key.
LAYERS_KIND = "layers"


def _is_own_layer_store(path: Path) -> bool:
    """True if ``path`` holds a zarr v2 group written by :class:`ZarrOutput`."""
    try:
        attrs = json.loads((path / ".zattrs").read_text())
        return ((path / ".zgroup").is_file()
                and attrs.get("scrollzarr", {}).get("kind") == LAYERS_KIND)
    except (OSError, ValueError, AttributeError):
        return False


def _check_replaceable_store(path: Path, what: str) -> None:
    if not (path.exists() or path.is_symlink()):
        return
    if path.is_dir() and not path.is_symlink() and (not any(path.iterdir())
                                                    or _is_own_layer_store(path)):
        return
    raise ScrollError(f"{path}: {what} exists and is not a layer store written by "
                      "ppm_to_layers; move it away or choose another path")


class ZarrOutput:
    """The rendered layers as an OME-Zarr (zarr v2, NGFF 0.4): axes z (layer), y, x;
    chunks (all layers, 128, 128); level ``l`` halves y and x ``l`` times (2x2 mean,
    rounded half to even, edge replicated: the pyramid's own mean kernel) and keeps
    every layer, until a level fits one chunk. z is the layer index (the first plane is
    layer ``first_layer``), y and x the segment's pixels.

    Written under ``<path>.partial`` and swapped in by :meth:`finish`; an existing
    ``path`` is replaced only when it is empty or a layer store of ours (attribute
    ``scrollzarr.kind == "layers"``). Strips may arrive from several threads in any
    order: writes are serialised (two strips can share a chunk row).
    """

    def __init__(self, path: Path, n_layers: int, height: int, width: int,
                 dtype: np.dtype, about: dict):
        from . import store

        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + PARTIAL)
        _check_replaceable_store(self.path, "--zarr_output")
        _check_replaceable_store(self.tmp, "the temporary --zarr_output")
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)
        if not self.path.parent.is_dir():
            raise ScrollError(f"{self.path}: parent directory {self.path.parent} does "
                              "not exist (--zarr_output)")
        self.about = about
        self.dtype = np.dtype(dtype)
        self._lock = threading.Lock()
        store.create_group(self.tmp, zarr_format=2)
        # the marker first: an interrupted .partial is then recognisably ours
        store.set_attributes(self.tmp, {"scrollzarr": {"kind": LAYERS_KIND, **about}})
        self.level0 = store.create_array(self.tmp / "0", (n_layers, height, width),
                                         (n_layers, LAYER_CHUNK, LAYER_CHUNK), self.dtype)

    def write_rows(self, v0: int, strip: np.ndarray) -> None:
        """Write ``strip`` (layers, rows, width) at rows ``v0..`` of level 0."""
        with self._lock:
            self.level0[:, v0:v0 + strip.shape[1], :] = strip

    def finish(self) -> None:
        """Build the pyramid, write the metadata, and move the store to its path."""
        import shutil

        from . import ngff, pyramid, store

        levels = [("0", "mean")]
        source = self.level0
        while max(source.shape[1:]) > LAYER_CHUNK:
            level = len(levels)
            n, h, w = source.shape
            target = store.create_array(self.tmp / str(level), (n, -(-h // 2), -(-w // 2)),
                                        (n, LAYER_CHUNK, LAYER_CHUNK), self.dtype)
            step = 2 * LAYER_CHUNK
            for y0 in range(0, h, step):
                for x0 in range(0, w, 8 * step):
                    block = source[:, y0:y0 + step, x0:x0 + 8 * step]
                    # repeating every layer makes the 2x2x2 mean a 2x2 mean per layer,
                    # with the same rounding (sum of 4 counted twice, over 8)
                    half = pyramid.downsample(np.repeat(block, 2, axis=0), "mean")
                    target[:, y0 // 2:y0 // 2 + half.shape[1],
                           x0 // 2:x0 // 2 + half.shape[2]] = half
            levels.append((str(level), "mean"))
            source = target
        attrs = ngff.image_attributes(levels, name="layers")
        first = float(self.about.get("layers", [0])[0])
        for dataset in attrs["multiscales"][0]["datasets"]:
            for t in dataset["coordinateTransformations"]:
                # z is the layer index: never scaled, starting at the first layer
                if t["type"] == "scale":
                    t["scale"][0] = 1.0
                else:
                    t["translation"][0] = first
        attrs["scrollzarr"] = {"kind": LAYERS_KIND, **self.about}
        store.set_attributes(self.tmp, attrs)
        old = self.path.with_name(self.path.name + ".old")
        if self.path.exists():
            if old.exists() and _is_own_layer_store(old):
                shutil.rmtree(old)
            atomic.commit(self.path, old, durable=False)
        atomic.commit(self.tmp, self.path, durable=True)
        shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)
