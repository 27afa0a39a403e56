#!/usr/bin/env python3
"""Convert a directory of scroll slice TIFFs to a multi-resolution OME-Zarr store.

    python scroll_to_ome.py TIFF_DIR OUT.zarr [options]

Run without arguments' TIFF_DIR (``--sample``) to make and convert the built-in synthetic
scroll. See README.md for every option.
"""

import sys

from scrollzarr.scripts.scroll_to_ome import entry

if __name__ == "__main__":
    sys.exit(entry())
