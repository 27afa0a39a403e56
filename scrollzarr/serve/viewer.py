"""A local Neuroglancer viewer (the ``neuroglancer`` PyPI package) showing our stores.

The package ships the compiled Neuroglancer client and serves it from this machine, so
nothing is built with npm and nothing is fetched from the internet. Each store becomes an
image layer whose source is the ``zarr2://``/``zarr3://`` URL of our HTTP server.

Coordinates: our arrays are (z, y, x); the viewer's display dimensions are named x, y, z
in that order (x across the slice, y down, z through the stack), with the level-0 voxel
size of the store as their scale (meters when the store records a length unit, else one
unitless voxel). Positions are level-0 voxel coordinates in (x, y, z); voxel ``i`` spans
``[i, i + 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr

from ..errors import ScrollError
from ..ngff import read_image  # the one reader of NGFF metadata

#: Meters per NGFF length unit (the units Neuroglancer understands as lengths).
UNIT_METERS = {
    "meter": 1.0, "millimeter": 1e-3, "micrometer": 1e-6, "nanometer": 1e-9,
    "angstrom": 1e-10, "picometer": 1e-12,
}

#: The image shader: an adjustable contrast window (``invlerp``) mapped to gray.
SHADER = """#uicontrol invlerp normalized
void main() {
  emitGrayscale(normalized());
}
"""

#: Voxels read at most to estimate a contrast window (16 Mi voxels, 32 MiB of uint16).
SAMPLE_VOXELS = 1 << 24

#: Screen pixels the longest slice edge should span when the viewer opens.
FIT_PIXELS = 800


@dataclass(frozen=True)
class LayerInfo:
    """What the viewer needs to know about one store.

    ``shape_zyx``: level-0 shape in voxels; ``scales_xyz``/``unit``: level-0 voxel size
    per display axis (x, y, z) and its unit ("m" or "" for voxels); ``origin_xyz``:
    position of voxel (0, 0, 0)'s corner in level-0 voxels (the NGFF translation of level
    0); ``contrast``: (low, high) data values mapped to black and white; ``notes``: one
    line per declared level found missing or unusable and skipped.
    """

    name: str
    source: str
    shape_zyx: tuple[int, int, int]
    scales_xyz: tuple[float, float, float]
    unit: str
    origin_xyz: tuple[float, float, float]
    contrast: tuple[float, float]
    dtype: str
    notes: tuple[str, ...] = ()

    @property
    def center_xyz(self) -> tuple[float, float, float]:
        """Centre of the volume in display coordinates (level-0 voxels, x, y, z)."""
        nz, ny, nx = self.shape_zyx
        ox, oy, oz = self.origin_xyz
        return (ox + nx / 2.0, oy + ny / 2.0, oz + nz / 2.0)


def describe_store(location: str, source: str, name: str | None = None) -> LayerInfo:
    """Open the store at ``location`` (a directory or an http URL our server answers)
    and describe it as a layer with Neuroglancer source URL ``source``.

    Reads the NGFF metadata (or a plain array's shape) and a sample of a coarse level
    for the contrast window. Raises :class:`ScrollError` naming ``location`` when it is
    not a zarr store.
    """
    try:
        node = zarr.open(location, mode="r")
    except Exception as exc:  # zarr raises several types for "nothing here"
        raise ScrollError(f"{location}: not a zarr store ({type(exc).__name__})") from None
    if name is None:
        name = location.rstrip("/").rsplit("/", 1)[-1] or "volume"
    if isinstance(node, zarr.Array):
        if node.ndim != 3:
            raise ScrollError(f"{location}: expected a 3-D (z, y, x) array, got "
                              f"{node.ndim}-D")
        # Neuroglancer ignores our own attributes: index 0 is its coordinate 0.
        return LayerInfo(name, source, tuple(node.shape), (1.0, 1.0, 1.0), "",
                         (0.0, 0.0, 0.0), contrast_window([node]), str(node.dtype))
    image = read_image(dict(node.attrs), location)
    if image is None:
        raise ScrollError(f"{location}: a zarr group without OME-NGFF multiscales metadata")
    axes = image.axes
    if [str(a).lower() for a in axes[-3:]] != ["z", "y", "x"]:
        raise ScrollError(f"{location}: expected axes z, y, x, got {axes}")
    axis_units = image.units[-3:]
    if not image.usable:
        raise ScrollError(f"{location}: the multiscales metadata declares no usable "
                          "dataset")
    notes = list(image.notes)
    present = []
    for level in image.usable:  # datasets[].path, declared order: finest first
        try:
            present.append((level, node[level.path]))
        except KeyError:
            notes.append(f"note: {location}: declared level {level.path!r} is missing, "
                         "skipped")
    if not present:
        raise ScrollError(f"{location}: none of the declared levels is present")
    levels = [array for _, array in present]
    scale0, trans0 = present[0][0].scale, present[0][0].translation
    if all(u in UNIT_METERS for u in axis_units):
        unit = "m"
        scales_zyx = [s * UNIT_METERS[u] for s, u in zip(scale0, axis_units)]
    else:
        unit = ""
        scales_zyx = list(scale0)
    origin_zyx = [t / s for t, s in zip(trans0, scale0)]
    return LayerInfo(
        name=name, source=source, shape_zyx=tuple(levels[0].shape[-3:]),
        scales_xyz=tuple(scales_zyx[::-1]), unit=unit,
        origin_xyz=tuple(origin_zyx[::-1]), contrast=contrast_window(levels),
        dtype=str(levels[0].dtype), notes=tuple(notes))


def contrast_window(levels: list, low_pct: float = 1.0,
                    high_pct: float = 99.0) -> tuple[float, float]:
    """A (low, high) contrast window: the ``low_pct``/``high_pct`` percentiles of the
    non-zero voxels of a coarse level.

    ``levels`` are the arrays finest first. The finest level of at most
    :data:`SAMPLE_VOXELS` voxels is read whole; if even the coarsest is larger, its
    central box of that many voxels. Zeros are left out because they are the masked
    outside of the scroll, not papyrus. Returns floats with ``high > low``.
    """
    arr = next((a for a in levels if int(np.prod(a.shape)) <= SAMPLE_VOXELS), levels[-1])
    box: tuple = ()
    if int(np.prod(arr.shape)) > SAMPLE_VOXELS:
        edge = int(round(SAMPLE_VOXELS ** (1 / 3)))
        box = tuple(slice(max(0, (n - edge) // 2), max(0, (n - edge) // 2) + edge)
                    for n in arr.shape)
    sample = np.asarray(arr[box] if box else arr[...]).ravel()
    values = sample[sample != 0]
    if values.size == 0:
        values = sample
    if values.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, [low_pct, high_pct]))
    if high <= low:  # a constant volume: any window containing the value
        high = low + 1.0
    return low, high


def start_viewer(bind_address: str = "127.0.0.1"):
    """Start the Neuroglancer Python server on ``bind_address`` (any free port) and
    return a new ``neuroglancer.Viewer``."""
    import neuroglancer  # imported here: only --neuroglancer needs it

    neuroglancer.set_server_bind_address(bind_address)
    return neuroglancer.Viewer()


def show_layers(viewer, layers: list[LayerInfo], layout: str = "4panel") -> None:
    """Set the viewer's state: display dimensions x, y, z from the first layer, one
    image layer per store (with its contrast window) in place of any earlier layers,
    position at the first volume's centre and a zoom that fits its slices on the screen.

    Dimensions are set before position and zoom: those are expressed in them.
    """
    import neuroglancer

    if not layers:
        raise ScrollError("no store to show")
    first = layers[0]
    with viewer.txn() as s:
        s.dimensions = neuroglancer.CoordinateSpace(
            names=["x", "y", "z"], units=[first.unit] * 3, scales=list(first.scales_xyz))
        for name in [layer.name for layer in s.layers]:
            del s.layers[name]
        for info in layers:
            low, high = info.contrast
            s.layers[info.name] = neuroglancer.ImageLayer(
                source=info.source, shader=SHADER,
                shader_controls={"normalized": {"range": [low, high]}})
        s.layout = layout
        s.position = list(first.center_xyz)
        nz, ny, nx = first.shape_zyx
        # crossSectionScale = display units (voxels) per screen pixel
        s.cross_section_scale = max(1.0, max(nx, ny) / FIT_PIXELS)
        s.projection_scale = float(max(nx, ny, nz)) * 2.0
