#!/usr/bin/env python3
"""Make the built-in synthetic scroll: slice TIFFs and a matching segment .ppm.

    python make_sample.py OUT_DIR [--shape Z,Y,X] [--compression lzw]

Writes OUT_DIR/slices/00000.tif ... (uint16, one per z) and OUT_DIR/segment.ppm, a
surface lying on one winding of the rolled sheet (see scrollzarr/sample.py).
"""

import sys

from scrollzarr.scripts.make_sample import entry

if __name__ == "__main__":
    sys.exit(entry())
