"""OME-NGFF metadata: writing it for our stores and reading it back.

One object per NGFF version (:mod:`.formats`: :data:`V04` for zarr v2 stores, :data:`V05`
for zarr v3) knows where the metadata lives, builds ours with ome-zarr-models' typed
models, reads anyone's leniently and validates strictly. :func:`open_volume`
(:mod:`.volume`) opens an OME-Zarr root or a plain array, local or remote, and tells how
scroll voxel coordinates map to array indices at a level (found through
``datasets[].path``, never by position). :func:`display_window` (:mod:`.window`) picks
the grey window the ``omero`` block records.

Conventions: arrays are (z, y, x); level ``l`` holds the volume downsampled ``2**l`` times
on every axis. A level whose voxels each stand for a whole ``2**l`` block (mean, gaussian,
max, mode) has its voxel centres at the block centres, shifted by ``(2**l - 1) / 2``
level-0 voxels; one built by picking the block's low corner (nearest) has not. A store cropped
with ``--ranges`` records its crop origin (in level-0 voxels) as a translation, so every
level keeps absolute scroll coordinates.
"""

from .formats import (AVERAGING, AXES, FORMATS, OWN_KEY, V04, V05, Format, FormatV04,
                      FormatV05, Image, Level, format_for, format_of, image_attributes,
                      level_transform, load_models_in_background, multiscales,
                      multiscales_of, omero, read_image, tidy, transforms)
from .volume import Volume, open_volume
from .window import WINDOW_PERCENTILES, display_window

__all__ = [
    "AVERAGING", "AXES", "FORMATS", "OWN_KEY", "V04", "V05", "WINDOW_PERCENTILES", "Format",
    "FormatV04", "FormatV05", "Image", "Level", "Volume", "display_window", "format_for",
    "format_of", "image_attributes", "level_transform", "load_models_in_background",
    "multiscales", "multiscales_of", "omero", "open_volume", "read_image", "tidy",
    "transforms",
]
