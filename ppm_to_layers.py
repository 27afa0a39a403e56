#!/usr/bin/env python3
"""Render a segment (.ppm per-pixel map from volume-cartographer) into flattened layer
TIFFs for ink detection.

Layer k of N samples each mapped pixel at point + (k - N//2) * interval * normal
(--direction both), trilinear, rounded to nearest; 0 outside the volume and for unmapped
pixels. Writes OUT_DIR/00.tif .. and, if given, STACK.tif (maximum over the central
--number_of_stacked_layers layers).
"""

import sys

from scrollzarr.scripts.ppm_to_layers import entry

if __name__ == "__main__":
    sys.exit(entry())
