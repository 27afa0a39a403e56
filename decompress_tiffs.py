#!/usr/bin/env python3
"""Decompress slice TIFFs (LZW, deflate, zstd, packbits, ...) once, so that repeated
conversions read them at disk speed.

    python decompress_tiffs.py IN_DIR OUT_DIR [--workers N] [--verify] [--overwrite]

Writes every .tif/.tiff of IN_DIR to OUT_DIR under the same name as an uncompressed,
memory-mappable TIFF (same shape, dtype and descriptive tags). Safe to interrupt: re-run
the same command to finish; complete outputs are skipped. Exits 1 if any file failed.
"""

import sys

from scrollzarr.scripts.decompress_tiffs import entry

if __name__ == "__main__":
    sys.exit(entry())
