"""Surfaces the renderer reads: .ppm per-pixel maps, tifxyz grids and .obj meshes.

:func:`open_surface` recognises the format from the path and returns an object with the
interface of :class:`scrollzarr.ppm.Ppm`: a context manager with ``width`` and ``height``
(render pixels), ``path``, ``inputs`` (every file it reads) and
``read_tile(v0, v1, u0, u1) -> (data, mapped)``, ``data`` float64 ``(rows, cols, 6)`` of
``(x, y, z, nx, ny, nz)`` in level-0 voxels (x = TIFF column, y = TIFF row, z = slice)
with unit normals, ``mapped`` bool ``(rows, cols)``. A ``--transform`` and
``--flip_normals`` are applied inside, so the sampler sees final values.

:func:`add_surface_arguments` and :func:`surface_options` give a script the options:

    add_surface_arguments(parser)
    with open_surface(args.surface, **surface_options(args)) as surface: ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import cli
from ..errors import ScrollError
from ..ppm import Ppm
from .obj import ObjSurface
from .tifxyz import META_FILE, Tifxyz
from .transform import PlacedSurface, parse_transform_argument, read_transform

FORMATS = "a .ppm file, a tifxyz directory (x.tif, y.tif, z.tif, meta.json) or an .obj file"


def surface_format(path: str | Path) -> str:
    """``"ppm"``, ``"tifxyz"`` or ``"obj"`` for ``path``; :class:`ScrollError` naming the
    path (or the missing ``meta.json``) when it is none of them."""
    path = Path(path)
    if path.is_dir():
        if not (path / META_FILE).is_file():
            raise ScrollError(f"{path / META_FILE}: missing; a directory surface must be "
                              "tifxyz (x.tif, y.tif, z.tif and meta.json)")
        return "tifxyz"
    suffix = path.suffix.lower()
    if suffix in (".ppm", ".obj"):
        if not path.exists():
            raise ScrollError(f"{path}: {suffix} file does not exist")
        return suffix[1:]
    if not path.exists():
        raise ScrollError(f"{path}: surface does not exist (expected {FORMATS})")
    if path.name == META_FILE:
        raise ScrollError(f"{path}: give the tifxyz directory {path.parent}, not its "
                          f"{META_FILE}")
    raise ScrollError(f"{path}: unknown surface format (expected {FORMATS})")


def open_surface(path: str | Path, *, flip_normals: bool = False, flip_v: bool = False,
                 width: int | None = None, height: int | None = None,
                 transform: str | Path | None = None):
    """Open the surface at ``path`` (.ppm file, tifxyz directory or .obj file).

    ``flip_normals`` reverses every normal. ``flip_v``, ``width`` and ``height`` place
    an .obj's UVs (see :mod:`scrollzarr.surfaces.obj`); other formats refuse them.
    ``transform`` is ``FILE.json`` or ``FILE.json:inv`` (see
    :mod:`scrollzarr.surfaces.transform`), mapping positions into the volume's level-0
    voxels. Returns the open surface (use it as a context manager). Raises
    :class:`ScrollError` with one line naming the file, field or option at fault.
    """
    kind = surface_format(path)
    if kind != "obj":
        for name, value in (("--flip_v", flip_v), ("--width", width), ("--height", height)):
            if value not in (None, False):
                raise ScrollError(f"{name} applies to .obj surfaces only, {path} is {kind}")
    for name, value in (("--width", width), ("--height", height)):
        if value is not None and value < 1:
            raise ScrollError(f"{name} {value}: must be at least 1 pixel")
    matrix = read_transform(transform) if transform is not None else None
    if kind == "ppm":
        surface = Ppm(path)
        surface.inputs = (surface.path,) + ((surface.mask_path,) if surface.mask_path
                                            else ())
    elif kind == "tifxyz":
        surface = Tifxyz(path)
    else:
        surface = ObjSurface(path, flip_v=flip_v, width=width, height=height)
    if matrix is None and not flip_normals:
        return surface
    extra = (parse_transform_argument(str(transform))[0],) if transform is not None else ()
    return PlacedSurface(surface, matrix, flip_normals, extra)


def add_surface_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the surface options to a script's parser: ``--flip_normals``, ``--flip_v``,
    ``--width``, ``--height``, ``--transform``."""
    cli.add_switches(
        parser,
        flip_normals="reverse the surface normals (layers grow the other way; tifxyz and "
                     ".obj normals of a standard segment point out of the scroll)",
        flip_v=".obj only: v grows upwards (OpenGL textures) instead of with the image row")
    parser.add_argument("--width", type=cli.number(int, minimum=1), default=None,
                        metavar="PIXELS",
                        help=".obj only: render width (default: the .mtl texture's width "
                        "for UVs in [0, 1], else floor(max u) + 1)")
    parser.add_argument("--height", type=cli.number(int, minimum=1), default=None,
                        metavar="PIXELS",
                        help=".obj only: render height (default: the .mtl texture's height "
                        "for UVs in [0, 1], else floor(max v) + 1)")
    parser.add_argument("--transform", default=None, metavar="FILE.json[:inv]",
                        help="affine transform into the volume's scan (VC3D JSON "
                        "\"transformation_matrix\", p_volume = M p_surface; ':inv' applies "
                        "its inverse)")


def surface_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`open_surface` from parsed arguments."""
    return {"flip_normals": args.flip_normals, "flip_v": args.flip_v,
            "width": args.width, "height": args.height, "transform": args.transform}


__all__ = ["FORMATS", "ObjSurface", "PlacedSurface", "Tifxyz", "add_surface_arguments",
           "open_surface", "read_transform", "surface_format", "surface_options"]
