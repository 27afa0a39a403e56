"""Checks of an OME-Zarr store: header first, chunks sampled, and optionally every chunk.

:func:`validate_store` returns a list of :class:`Finding`; nothing here prints or raises
for a broken store (only for a location that cannot be opened at all). The checks, with
the ``code`` of what they report:

Root (``level`` None):
  ``not-zarr``            no zarr metadata at the root (error)
  ``root-group-missing``  v2 ``.zattrs`` with multiscales but no ``.zgroup`` (error: zarr
                          and Neuroglancer cannot open the group)
  ``not-ome``             a plain array, or a group without ``multiscales`` (error)
  ``metadata-unreadable`` a metadata document that is not JSON (error)
  ``ngff-invalid``        NGFF metadata rejected by ome-zarr-models (0.4 for zarr v2, 0.5
                          for zarr v3) (error)
  ``axes-not-zyx``        axes other than z, y, x (warning: our readers assume them)
  ``method-unknown``      no known downsampling method recorded (warning; translations
                          of either convention are accepted, the pyramid is not recomputed)
  ``no-chunks``           level 0 has no chunk at all (warning: an all-fill volume)

Per declared level (``level`` = its dataset path):
  ``level-missing``       declared, no array metadata (error)
  ``level-unreadable``    array metadata zarr cannot open, e.g. an unknown codec (error)
  ``ndim-mismatch``       array dimensions differ from the number of axes (error)
  ``dtype-mismatch``      dtype differs from level 0 (error)
  ``codec-drift``         compressor/filters/codecs differ from level 0 (warning)
  ``layout-drift``        chunk shape, fill value, order or chunk keys differ (warning)
  ``shape-mismatch``      shape is not ceil(level-0 shape / scale factor) (error)
  ``shape-floor``         shape is floor instead of ceil of it (warning)
  ``translation-mismatch`` translation is neither the centre shift (2^l - 1)/2 level-0
                          voxels of an averaged level nor 0 (error)
  ``translation-offset``  translation is the other of those two conventions than the
                          recorded method implies: levels drawn shifted (warning)
  ``level-no-chunks``     no chunk found while level 0 has some (error)
  ``chunks-unlisted``     the store cannot be listed and no probed chunk exists (warning)

With ``deep`` (every chunk read, pyramid recomputed at sampled blocks):
  ``chunk-corrupt``       a chunk that does not decode (error, one per chunk, capped)
  ``pyramid-mismatch``    a sampled block differs from the recorded method applied to
                          the level above by more than 1 (error)
  ``pyramid-rounding``    differs by at most 1: another tool's rounding (warning)
  ``pyramid-unchecked``   the level cannot be recomputed (scale ratio not 2) (warning)

Levels are found through ``multiscales[0].datasets[].path``, never assumed to be "0".."n".
The pyramid check compares level l with the recorded method applied to level l-1 (which
is how pyramids are built); level by level it ties every level to level 0.
Arrays are (z, y, x); scales and translations are in the units of the metadata and are
turned into level-0 voxels by dividing by level 0's scale.

Modules: :mod:`.header` (root, NGFF metadata through :mod:`scrollzarr.ngff`'s format
objects, per-level headers), :mod:`.chunks` (chunk presence), :mod:`.deep` (every chunk,
pyramid recomputed), :mod:`.findings` (what is reported).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import zarr
from zarr.abc.store import Store

from ..errors import ScrollError
from ..remote import RemoteOptions, open_store
from .chunks import check_chunks
from .deep import check_deep
from .findings import ERROR, WARNING, Finding
from .header import METHOD_ALIASES, check_levels, check_ngff, read_root

__all__ = ["ERROR", "METHOD_ALIASES", "WARNING", "Finding", "open_location",
           "validate_store"]


def open_location(location: str | Path, user: str | None = None) -> Store:
    """A read-only zarr Store for a local path or an ``http(s)://`` / ``s3://`` URL.

    Remote stores go through :func:`scrollzarr.remote.open_store` (credentials, endpoint
    and retries as every other reader) without its disk cache: a check must see the store
    as it is now, not as it was an hour ago. Raises :class:`ScrollError` naming
    ``location`` if a local path is not a directory.
    """
    text = str(location)
    if "://" in text:
        return open_store(text, RemoteOptions(user=user, cache_gb=0))
    path = Path(text)
    if not path.exists():
        raise ScrollError(f"{text}: no such directory")
    if not path.is_dir():
        raise ScrollError(f"{text}: not a directory (an OME-Zarr store is one)")
    return zarr.storage.LocalStore(path, read_only=True)


def validate_store(store: Store | str | Path, deep: bool = False, seed: int = 0,
                   samples: int = 4,
                   progress: Callable[[Iterable, int, str], Iterable] | None = None
                   ) -> list[Finding]:
    """Check the OME-Zarr at ``store`` (a zarr Store, or a location for
    :func:`open_location`) and return what is wrong, store-wide findings first.

    ``deep`` reads every chunk of every level and recomputes ``samples`` blocks (level
    chunks, chosen with ``seed`` among non-empty ones) of each level from the level above.
    ``progress(iterable, total, label)`` wraps each level's chunk reads to show progress
    (e.g. tqdm); ``label`` names the level.
    """
    if not isinstance(store, Store):
        store = open_location(store)
    findings: list[Finding] = []
    root = read_root(store, findings)
    if root is None:
        return findings
    zarr_format, attrs = root
    image = check_ngff(attrs, zarr_format, findings)
    if image is None:
        return findings
    levels = check_levels(store, zarr_format, image, findings)
    check_chunks(store, levels, findings)
    if deep and levels:
        check_deep(levels, seed, samples, progress, findings)
    return findings
