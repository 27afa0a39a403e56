#!/usr/bin/env python3
"""Convert a directory of scroll slice TIFFs to a multi-resolution OME-Zarr store.

    python scroll_to_ome.py TIFF_DIR OUT.zarr [options]

``python make_sample.py DIR`` makes the built-in synthetic scroll; its ``DIR/slices`` is
a TIFF_DIR to try this on. See README.md for every option.
"""

import sys

from scrollzarr.scripts.scroll_to_ome import entry

if __name__ == "__main__":
    sys.exit(entry())
