#!/usr/bin/env python3
"""Convert a zarr array or an OME-Zarr level (local, http(s)://, s3://) to a
multi-resolution OME-Zarr store, like scroll_to_ome.py does from slices.

    python zarr_to_ome.py INPUT OUT.zarr [--level PATH] [options]
"""

import sys

from scrollzarr.scripts.zarr_to_ome import entry

if __name__ == "__main__":
    sys.exit(entry())
