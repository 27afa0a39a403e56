"""scrollzarr: Vesuvius Challenge scroll slices to multi-resolution OME-Zarr, and
flattened papyrus layers from it.

Arrays are always indexed (z, y, x); command lines and .ppm files speak (x, y, z).
"""

__version__ = "0.1.0"
