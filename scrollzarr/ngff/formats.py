"""One object per OME-NGFF version: where its metadata lives, how we write it, how we
read it back.

- :data:`V04`: NGFF 0.4, zarr v2; the group's ``.zattrs`` hold ``multiscales`` (and
  ``omero``), each versioned ``"0.4"``.
- :data:`V05`: NGFF 0.5, zarr v3; the group's ``zarr.json`` attributes hold ``"ome":
  {"version": "0.5", "multiscales": ..., "omero": ...}``.

Writing builds the metadata from ome-zarr-models' typed models (so a store we write is
valid by construction) and dumps it in the key order our stores have always had.
Reading is lenient (:meth:`Format.read`): published stores are often broken, so a
dataset that cannot be used is kept out with a note rather than failing the whole read;
strict validation is :meth:`Format.validate`, a separate step (``validate_ome.py``).

Arrays are (z, y, x); transforms are (z, y, x) lists in the units of the axes
(micrometers when a voxel size is known, else level-0 voxels).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .. import __version__
from ..errors import ScrollError

AXES = ("z", "y", "x")

#: Downsampling algorithms whose level voxels stand for whole blocks (mean, gaussian: the
#: block's average; max, mode: its maximum, its most frequent value), so the centre shift
#: applies; nearest picks the block's low-corner voxel.
AVERAGING = {"mean": True, "gaussian": True, "nearest": False, "max": True, "mode": True}

#: Key of our own attributes (crop origin of a plain ``--zarr_only`` array, provenance).
OWN_KEY = "scrollzarr"

# Key order of the documents we write: the order our stores have always had (the models
# dump declared fields first, extras after).
_MULTISCALE_KEYS = ("version", "name", "axes", "datasets", "type", "metadata")
_OMERO_KEYS = ("name", "channels", "rdefs", "version")
_CHANNEL_KEYS = ("label", "color", "active", "inverted", "coefficient", "family", "window")
_WINDOW_KEYS = ("min", "max", "start", "end")


def level_transform(level: int, algorithm: str, origin: Sequence[float] = (0, 0, 0),
                    voxel_size: float | None = None) -> tuple[list[float], list[float]]:
    """Return ``(scale, translation)`` of ``level`` in (z, y, x), in micrometers when
    ``voxel_size`` (micrometers per level-0 voxel) is known, else in level-0 voxels.

    ``origin`` is the (z, y, x) position of level-0 voxel (0, 0, 0) in scroll voxels.
    """
    if voxel_size is not None and not (math.isfinite(voxel_size) and voxel_size > 0):
        raise ScrollError(f"--voxel_size {voxel_size}: must be a positive finite number "
                          "(micrometers)")
    factor = 2.0 ** level
    unit = 1.0 if voxel_size is None else float(voxel_size)
    shift = (factor - 1) / 2 if AVERAGING.get(algorithm, True) else 0.0
    scale = [factor * unit] * 3
    translation = [(float(o) + shift) * unit for o in origin]
    return scale, translation


def tidy(value: float) -> float:
    """``value`` rounded to 12 significant digits: transforms computed in binary floating
    point (``27.685000000000002``) are written as the decimal a person means (27.685)."""
    return float(f"{float(value):.12g}")


def transforms(dataset: dict) -> tuple[list[float], list[float]]:
    """``(scale, translation)`` (z, y, x) of one multiscales dataset entry (or of a
    multiscales entry's own ``coordinateTransformations``); identity when absent."""
    scale, trans = [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]
    for t in dataset.get("coordinateTransformations") or []:
        if t.get("type") == "scale":
            scale = [float(v) for v in t["scale"]][-3:]
        elif t.get("type") == "translation":
            trans = [float(v) for v in t["translation"]][-3:]
    return scale, trans


def multiscales_of(attrs: dict) -> list | None:
    """The ``multiscales`` list of a group's attributes (NGFF 0.4 or 0.5), or None."""
    if "ome" in attrs and isinstance(attrs["ome"], dict):
        return attrs["ome"].get("multiscales")
    return attrs.get("multiscales")


@dataclass(frozen=True)
class Level:
    """One declared level as read: its dataset ``path`` and (z, y, x) ``scale`` and
    ``translation`` in the axes' units, composed with the multiscales-wide transform.
    ``usable`` is False when the transform is unreadable (then identity) or its scale is
    not three finite positive numbers: readers skip such a level, a validator judges it.
    """

    path: str
    scale: tuple[float, ...]
    translation: tuple[float, ...]
    usable: bool = True


@dataclass(frozen=True)
class Image:
    """The first multiscale image of a group, read leniently.

    ``entry`` is the stored multiscales entry; ``levels`` every dataset with a string
    path, in declared order (finest first in a valid store); ``notes`` one line per thing
    skipped or ignored, for the user.
    """

    format: "Format"
    entry: dict
    levels: tuple[Level, ...]
    notes: tuple[str, ...]

    @property
    def usable(self) -> list[Level]:
        """The levels a reader can map coordinates through, declared order."""
        return [lv for lv in self.levels if lv.usable]

    @property
    def axes(self) -> list:
        """Axis names as declared (a bare string axis of NGFF 0.3 is its own name)."""
        return [a.get("name") if isinstance(a, dict) else a
                for a in self.entry.get("axes") or []]

    @property
    def units(self) -> list:
        """Axis units as declared (None where an axis has none)."""
        return [a.get("unit") if isinstance(a, dict) else None
                for a in self.entry.get("axes") or []]


class Format:
    """What differs between NGFF versions; :data:`V04` and :data:`V05` are the instances.

    ``version`` is the NGFF version string, ``zarr_format`` the zarr version of the
    store, ``array_key`` the name of an array's metadata document.
    """

    version: str
    zarr_format: int
    array_key: str

    def __repr__(self) -> str:
        return f"NGFF {self.version} (zarr v{self.zarr_format})"

    # -- where the metadata lives -------------------------------------------------------

    def ome_block(self, attrs: dict) -> Any:
        """The part of a group's attributes that the NGFF models describe."""
        raise NotImplementedError

    def group_attributes(self, multiscale: dict, omero: dict | None = None
                         ) -> dict[str, Any]:
        """A group's NGFF attributes holding one ``multiscale`` entry (and ``omero``)."""
        raise NotImplementedError

    def _models(self):
        """ome-zarr-models' module for this version (imported on first use: it costs a
        quarter of a second, which scripts that only read do not pay)."""
        raise NotImplementedError

    # -- writing --------------------------------------------------------------------------

    def multiscale(self, levels: Sequence[tuple[str, str]],
                   origin: Sequence[float] = (0, 0, 0), voxel_size: float | None = None,
                   name: str = "scroll") -> dict[str, Any]:
        """Build one ``multiscales`` entry of our stores.

        ``levels`` lists ``(path, algorithm)`` for every level present, level 0 first; the
        algorithm decides each level's translation (levels added later with
        ``--first_new_level`` may use another algorithm than the first ones).
        ``metadata`` names the downsampling function, our version and its arguments
        (NGFF's ``method``/``version``/``kwargs``); ``metadata.algorithms`` lists each
        level's. ``origin`` is in (z, y, x) scroll voxels, ``voxel_size`` micrometers.
        """
        models = self._models()
        unit = None if voxel_size is None else "micrometer"
        datasets = []
        for path, algorithm in levels:
            scale, translation = level_transform(int(path), algorithm, origin, voxel_size)
            datasets.append(models.Dataset.build(
                path=path, scale=[tidy(v) for v in scale],
                translation=[tidy(v) for v in translation]))
        algorithms = sorted({a for _, a in levels[1:]}) or ["none"]
        method = algorithms[0] if len(algorithms) == 1 else "mixed"
        multiscale = models.Multiscale(
            name=name, type=method,
            axes=[models.Axis(name=ax, type="space", unit=unit) for ax in AXES],
            datasets=datasets,
            metadata={
                "description": "each level from the one above, 2x2x2 blocks (scrollzarr)",
                "method": "scrollzarr.pyramid.downsample",
                "version": __version__,
                "args": [],
                "kwargs": {"algorithm": method, "factor": [2, 2, 2]},
                "algorithms": [a for _, a in levels],
            },
            **self._multiscale_version())
        return _ordered(multiscale.model_dump(mode="json", exclude_none=True),
                        _MULTISCALE_KEYS)

    def _multiscale_version(self) -> dict[str, str]:
        """The ``version`` key of a multiscales entry, where the version has one."""
        return {}

    def omero(self, name: str, dtype: Any, window: tuple[float, float],
              default_z: int) -> dict[str, Any]:
        """The ``omero`` block: one grey channel named ``name`` whose window
        ``start``/``end`` (stored units) lies within ``min``/``max`` (the dtype's range),
        and ``rdefs`` (greyscale, ``defaultZ`` a level-0 z index) for napari and iohub."""
        from ome_zarr_models.common.omero import Channel, Omero, Window

        dtype = np.dtype(dtype)
        info = np.iinfo(dtype) if dtype.kind in "ui" else np.finfo(dtype)
        channel = Channel(
            label=name, color="FFFFFF", active=True, inverted=False, coefficient=1.0,
            family="linear",
            window=Window(min=float(info.min), max=float(info.max),
                          start=float(window[0]), end=float(window[1])))
        block = Omero(name=name, channels=[channel],
                      rdefs={"model": "greyscale", "defaultT": 0,
                             "defaultZ": int(default_z)},
                      **self._omero_version())
        doc = _ordered(block.model_dump(mode="json", exclude_none=True), _OMERO_KEYS)
        doc["channels"] = [_ordered(c, _CHANNEL_KEYS) for c in doc["channels"]]
        for c in doc["channels"]:
            c["window"] = _ordered(c["window"], _WINDOW_KEYS)
        return doc

    def _omero_version(self) -> dict[str, str]:
        """The ``version`` key of the omero block, where the version has one."""
        return {}

    def image_attributes(self, levels: Sequence[tuple[str, str]],
                         origin: Sequence[float] = (0, 0, 0),
                         voxel_size: float | None = None, name: str = "scroll",
                         omero: dict[str, Any] | None = None) -> dict[str, Any]:
        """The NGFF part of an image group's attributes (see :meth:`multiscale`), with
        the ``omero`` block (see :meth:`omero`) when given."""
        return self.group_attributes(self.multiscale(levels, origin, voxel_size, name),
                                     omero)

    # -- reading --------------------------------------------------------------------------

    def validate(self, attrs: dict) -> list[str]:
        """Strict check of a group's attributes against this version's models: up to
        three of the complaints (``location: message``, and how many more), none when
        valid."""
        from pydantic import ValidationError

        document = self.ome_block(attrs)
        try:
            self._models().ImageAttrs.model_validate(document)
        except ValidationError as exc:
            errors = exc.errors()
            parts = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:3]]
            if len(errors) > 3:
                parts[-1] += f" (and {len(errors) - 3} more)"
            return parts
        return []

    def read(self, attrs: dict, name: str) -> Image | None:
        """The first multiscale image of a group's attributes, or None when they hold no
        usable multiscales list. Lenient: a dataset without a string path is skipped, a
        dataset or multiscales-wide transform that cannot be read is ignored, each with
        a note naming ``name`` (the store, for messages)."""
        ms = multiscales_of(attrs)
        if not ms or not isinstance(ms, list) or not isinstance(ms[0], dict):
            return None
        image = ms[0]
        notes: list[str] = []
        try:
            outer_scale, outer_trans = transforms(image)
        except (TypeError, ValueError, KeyError, AttributeError):
            outer_scale, outer_trans = [1.0] * 3, [0.0] * 3
            notes.append(f"note: {name}: unreadable multiscales transform ignored")
        levels = []
        for i, entry in enumerate(image.get("datasets") or []):
            path = entry.get("path") if isinstance(entry, dict) else None
            if not isinstance(path, str):
                notes.append(f"note: {name}: dataset #{i} of the metadata is unusable, "
                             "skipped")
                continue
            try:
                scale, trans = transforms(entry)
                usable = len(scale) == 3 and len(trans) == 3 and all(
                    math.isfinite(v) and v > 0 for v in scale)
            except (TypeError, ValueError, KeyError, AttributeError):
                scale, trans, usable = [1.0] * 3, [0.0] * 3, False
            if not usable:
                notes.append(f"note: {name}: dataset #{i} of the metadata is unusable, "
                             "skipped")
            levels.append(Level(
                path.strip("/"),
                tuple(o * s for o, s in zip(outer_scale, scale)),
                tuple(o * t + ot for o, t, ot in zip(outer_scale, trans, outer_trans)),
                usable))
        return Image(self, image, tuple(levels), tuple(notes))


class FormatV04(Format):
    """NGFF 0.4 in zarr v2: top-level ``multiscales``/``omero`` attributes, each
    carrying ``"version": "0.4"``."""

    version, zarr_format, array_key = "0.4", 2, ".zarray"

    def ome_block(self, attrs: dict) -> Any:
        return attrs

    def group_attributes(self, multiscale: dict, omero: dict | None = None
                         ) -> dict[str, Any]:
        extra = {} if omero is None else {"omero": omero}
        return {"multiscales": [multiscale], **extra}

    def _models(self):
        from ome_zarr_models.v04 import axes, image, multiscales as ms

        return _Models(axes.Axis, ms.Dataset, ms.Multiscale, image.ImageAttrs)

    def _multiscale_version(self) -> dict[str, str]:
        return {"version": self.version}

    def _omero_version(self) -> dict[str, str]:
        return {"version": self.version}


class FormatV05(Format):
    """NGFF 0.5 in zarr v3: everything under the ``ome`` attribute, which alone carries
    ``"version": "0.5"``."""

    version, zarr_format, array_key = "0.5", 3, "zarr.json"

    def ome_block(self, attrs: dict) -> Any:
        return attrs.get("ome")

    def group_attributes(self, multiscale: dict, omero: dict | None = None
                         ) -> dict[str, Any]:
        extra = {} if omero is None else {"omero": omero}
        return {"ome": {"version": self.version, "multiscales": [multiscale], **extra}}

    def _models(self):
        from ome_zarr_models.v05 import axes, image, multiscales as ms

        return _Models(axes.Axis, ms.Dataset, ms.Multiscale, image.ImageAttrs)


@dataclass(frozen=True)
class _Models:
    """The ome-zarr-models classes of one version that we build and check with."""

    Axis: type
    Dataset: type
    Multiscale: type
    ImageAttrs: type


V04 = FormatV04()
V05 = FormatV05()
FORMATS = (V04, V05)


def format_for(zarr_format: int) -> Format:
    """The NGFF version we write into a zarr v``zarr_format`` store (2: 0.4, 3: 0.5)."""
    for fmt in FORMATS:
        if fmt.zarr_format == zarr_format:
            return fmt
    raise ScrollError(f"zarr format {zarr_format}: no NGFF version for it (2 or 3)")


def load_models_in_background(zarr_format: int) -> threading.Thread:
    """Start importing the NGFF models of the version written into a zarr
    v``zarr_format`` store on a daemon thread, and return it. A conversion calls this as
    its tasks start: the first level's metadata would otherwise import them (a third of
    a second of Python) while every worker waits between two stages. Join the thread
    before any other thread uses the models: two threads importing one package at once
    can see it half-initialised. A failed import is left for that use to report."""
    def load() -> None:
        try:
            format_for(zarr_format)._models()
        except Exception:  # noqa: BLE001 - reported where the models are used
            pass

    thread = threading.Thread(target=load, name="ngff-models", daemon=True)
    thread.start()
    return thread


def format_of(attrs: dict) -> Format:
    """The NGFF version a group's attributes are written in, leniently: an ``ome``
    block means 0.5 (or later), top-level ``multiscales`` 0.4 (or earlier)."""
    return V05 if isinstance(attrs.get("ome"), dict) else V04


def read_image(attrs: dict, name: str) -> Image | None:
    """:meth:`Format.read` in the version the attributes are written in."""
    return format_of(attrs).read(attrs, name)


def _ordered(doc: dict, keys: Sequence[str]) -> dict:
    """``doc`` with ``keys`` first in that order, any other keys after as they were."""
    return {**{k: doc[k] for k in keys if k in doc},
            **{k: v for k, v in doc.items() if k not in keys}}


# -- the functions callers used before the format objects (same signatures) --------------

def _by_version(version: str | None) -> Format:
    return V05 if version in (None, "0.5") else V04


def multiscales(levels: Sequence[tuple[str, str]], origin: Sequence[float] = (0, 0, 0),
                voxel_size: float | None = None, name: str = "scroll",
                version: str = "0.4") -> dict[str, Any]:
    """One NGFF ``multiscales`` entry of NGFF ``version``: :meth:`Format.multiscale`."""
    return _by_version(version).multiscale(levels, origin, voxel_size, name)


def omero(name: str, dtype: Any, window: tuple[float, float], default_z: int,
          version: str | None = "0.4") -> dict[str, Any]:
    """The ``omero`` block (:meth:`Format.omero`); ``version`` None leaves its version
    out (NGFF 0.5 versions the whole ``ome`` block)."""
    return _by_version(version).omero(name, dtype, window, default_z)


def image_attributes(levels: Sequence[tuple[str, str]], origin: Sequence[float] = (0, 0, 0),
                     voxel_size: float | None = None, name: str = "scroll",
                     zarr_format: int = 2, omero: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
    """The NGFF part of an image group's attributes: ``{"multiscales": [...]}`` (NGFF
    0.4, zarr v2) or ``{"ome": {"version": "0.5", "multiscales": [...]}}`` (zarr v3),
    with the ``omero`` block (see :func:`omero`) when given."""
    return format_for(zarr_format).image_attributes(levels, origin, voxel_size, name, omero)
