#!/usr/bin/env python3
"""Serve OME-Zarr stores to Neuroglancer, locally or through an authenticating proxy.

    python serve_ome.py STORE_OR_DIR [--port 9000] [--neuroglancer]
    SCROLL_PASSWORD=... python serve_ome.py --proxy https://HOST/PATH/ --user NAME
                                            [--cache_gb 20] [--neuroglancer]

Prints the Neuroglancer source URL of every store (``zarr2://...`` or ``zarr3://...``),
and with --neuroglancer the URL of a local viewer with the stores loaded; then serves
until Ctrl-C. See README.md, "Viewing in Neuroglancer".
"""

import sys

from scrollzarr.scripts.serve_ome import entry

if __name__ == "__main__":
    sys.exit(entry())
