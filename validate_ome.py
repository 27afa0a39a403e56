#!/usr/bin/env python3
"""Check an OME-Zarr store (metadata, levels, codecs, chunks; --deep: every chunk and the
pyramid).

    python validate_ome.py STORE [--deep] [--json]

Exits 1 if any error is found. See README.md for every check.
"""

import sys

from scrollzarr.scripts.validate_ome import entry

if __name__ == "__main__":
    sys.exit(entry())
