"""The output store: refusing or clearing an existing output, creating the level arrays
and writing the group's metadata.

Layout (zarr v2, NGFF 0.4, as khartes and Neuroglancer's ``zarr2://`` read it)::

    OUT.zarr/.zgroup            {"zarr_format": 2}
    OUT.zarr/.zattrs            {"multiscales": [...], "omero": {...}}  (only levels
                                that are complete; omero once the last one is)
    OUT.zarr/.zmetadata         consolidated copy of every metadata file (one request for
                                HTTP readers); rewritten after each level, dropped before
                                a run changes the arrays, never read by us
    OUT.zarr/L/.zarray          chunks (c, c, c), dtype as input, fill 0, no compressor,
                                dimension_separator "/"
    OUT.zarr/L/.zattrs          {"_ARRAY_DIMENSIONS": ["z", "y", "x"]} (xarray)
    OUT.zarr/L/IZ/IY/IX         chunk files; all-zero chunks are never written

With ``zarr_only`` the store is one array at the root (``OUT.zarr/.zarray``).

Layout with ``zarr_format=3`` (NGFF 0.5, Neuroglancer's ``zarr3://``)::

    OUT.zarr/zarr.json          group; attributes {"ome": {"version": "0.5", ...}}
    OUT.zarr/L/zarr.json        array; dimension_names ["z", "y", "x"], fill 0, and with
                                ``shard`` a sharding_indexed codec: shards of (s, s, s)
                                voxels holding (c, c, c) inner chunks
    OUT.zarr/L/c/IZ/IY/IX       one file per chunk (or per shard); all-zero chunks are left
                                out of their shard (index entry 2**64-1) and all-zero
                                shards are never written

``compression`` is the ``--compression`` spec (:func:`parse_compression`); it maps to a
numcodecs compressor on zarr v2 and to the equivalent zarr codec on v3, and
:func:`compression_of` maps an existing array back to its spec.

A store location is a local path or an fsspec URL (``s3://bucket/scroll.zarr``); every
function here takes either, as a string or Path.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import fsspec
import numcodecs
import numpy as np
import zarr
import zarr.codecs

from . import atomic
from .errors import ScrollError
from .journal import DIRNAME as JOURNAL_DIRNAME
from .ngff import AXES, OWN_KEY

if TYPE_CHECKING:
    from .spec import ConversionSpec

_MARKERS = (".zgroup", ".zarray", "zarr.json")

#: The attribute by which xarray names the dimensions of a zarr v2 array.
ARRAY_DIMENSIONS = "_ARRAY_DIMENSIONS"

#: Consolidated metadata of a zarr v2 group (zarr v3 and NGFF 0.5 define none).
CONSOLIDATED = ".zmetadata"


def is_url(location: str | Path) -> bool:
    return "://" in str(location)


def join(root: str | Path, name: str) -> str:
    """The location of ``name`` inside the store at ``root`` ("/"-separated)."""
    return str(root).rstrip("/") + "/" + name


def _fs(location: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(str(location))


def is_zarr_store(location: str | Path) -> bool:
    """True if ``location`` holds a zarr group or array at its root."""
    fs, path = _fs(location)
    return any(fs.exists(path.rstrip("/") + "/" + m) for m in _MARKERS)


def remove(location: str | Path) -> None:
    """Delete the directory (or object prefix) at ``location`` if it exists."""
    fs, path = _fs(location)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def is_own_store(location: str | Path) -> bool:
    """True if the zarr store at ``location`` provably was made by scroll_to_ome: its
    root attributes carry our ``"scrollzarr"`` key, or it holds our resume journal."""
    if not is_zarr_store(location):
        return False
    fs, path = _fs(location)
    if fs.exists(path.rstrip("/") + "/" + JOURNAL_DIRNAME + "/params.json"):
        return True
    try:
        return isinstance(get_attributes(location).get(OWN_KEY), dict)
    except Exception:  # unreadable metadata: not provably ours
        return False


def prepare_output(location: str | Path, overwrite: bool) -> None:
    """Make sure ``location`` can be written: refuse an existing output unless
    ``overwrite``, and then delete it only if it is a zarr store that scroll_to_ome made
    (:func:`is_own_store`; never an arbitrary directory or someone else's store)."""
    fs, path = _fs(location)
    if not fs.exists(path):
        parent = fs._parent(path)
        if not is_url(location) and not fs.exists(parent):
            raise ScrollError(f"{location}: parent directory {parent} does not exist")
        return
    if not fs.isdir(path):
        raise ScrollError(f"{location}: output exists and is not a directory")
    empty = not fs.ls(path)
    if not overwrite:
        if empty:
            return  # an empty directory is as good as none
        raise ScrollError(f"{location}: output already exists (use --overwrite to replace it)")
    if not is_zarr_store(location):
        if not empty:
            raise ScrollError(f"{location}: --overwrite refuses to delete a directory that "
                              "is not a zarr store")
        return
    if not is_own_store(location):
        raise ScrollError(f"{location}: --overwrite refuses to delete a zarr store that "
                          "scroll_to_ome.py did not make (no \"scrollzarr\" attributes); "
                          "delete it yourself or choose another output")
    fs.rm(path, recursive=True)


def create_array(store: Path | str, shape: tuple[int, int, int],
                 chunk: int | tuple[int, int, int], dtype: np.dtype,
                 attributes: dict[str, Any] | None = None,
                 zarr_format: int = 2, shard: int | None = None,
                 compression: str = "none") -> zarr.Array:
    """Create a (z, y, x) zarr array at ``store`` with cubic chunks of ``chunk`` voxels
    (or chunks of that (z, y, x) shape, for layer volumes), fill value 0, and all-zero
    chunks left unwritten; return it (open for writing).

    zarr v2: "/" chunk keys (``IZ/IY/IX``), C order. zarr v3: default chunk keys
    (``c/IZ/IY/IX``), ``dimension_names`` z, y, x, and with ``shard`` (voxels, a multiple
    of ``chunk``) shards of ``shard**3`` voxels. ``compression`` is a ``--compression``
    spec. Raises :class:`ScrollError` for a bad layout (see :func:`check_layout`).
    """
    check_layout(zarr_format, chunk, shard, compression)
    compressors = _compressors(parse_compression(compression), zarr_format)
    attributes = dict(attributes or {})
    if zarr_format == 2:  # xarray names v2 dimensions by this attribute (v3 has its own)
        attributes = {ARRAY_DIMENSIONS: list(AXES), **attributes}
    chunks = (chunk,) * 3 if isinstance(chunk, int) else tuple(chunk)
    common = dict(store=str(store), shape=shape, chunks=chunks, dtype=dtype,
                  compressors=compressors, fill_value=0, overwrite=True,
                  attributes=attributes, config={"write_empty_chunks": False})
    if zarr_format == 2:
        return zarr.create_array(
            zarr_format=2, chunk_key_encoding={"name": "v2", "separator": "/"}, order="C",
            **common)
    # v3 default chunk keys (c/IZ/IY/IX) are what Neuroglancer's zarr3:// expects
    return zarr.create_array(
        zarr_format=3, shards=(shard,) * 3 if shard else None,
        dimension_names=AXES, **common)


def own_attributes(origin: Sequence[float], complete: bool,
                   window: dict[str, Any] | None = None) -> dict[str, Any]:
    """Our attributes: whether the conversion finished, the crop origin (z, y, x) and,
    with ``--window``, the window (``{"lo", "hi", "source_dtype"}``)."""
    own = {"complete": complete, "origin_zyx": list(origin)}
    return own if window is None else {**own, "window": window}


def create(spec: "ConversionSpec") -> None:
    """Make the empty store of ``spec``: the group, our attributes (complete: false) and
    the level arrays; with ``--first_new_level`` only the levels being (re)built, after
    deleting the ones ``spec.replaced`` lists."""
    layout = dict(zarr_format=spec.zarr_format, shard=spec.shard,
                  compression=spec.compression)
    dtype = np.dtype(spec.dtype)
    own = {OWN_KEY: own_attributes(spec.origin, complete=False,
                                   window=spec.window_attributes)}
    if spec.zarr_only:
        create_array(spec.output, spec.shapes[0], spec.chunk, dtype, attributes=own,
                     **layout)
        return
    if spec.first_level == 0:
        create_group(spec.output, spec.zarr_format)
        set_attributes(spec.output, own)
    for path in spec.replaced:
        remove(join(spec.output, path))
    for level in range(spec.first_level, len(spec.shapes)):
        create_array(spec.arrays[level], spec.shapes[level], spec.chunk, dtype, **layout)


def create_group(path: str | Path, zarr_format: int = 2) -> zarr.Group:
    """Create (or open) the zarr group at ``path``."""
    return zarr.open_group(str(path), mode="a", zarr_format=zarr_format)


def open_array(path: Path | str, mode: str = "r+") -> zarr.Array:
    """Open a level array; write_empty_chunks off so zero regions stay unwritten."""
    return zarr.open_array(str(path), mode=mode, config={"write_empty_chunks": False})


def set_attributes(path: str | Path, attrs: dict[str, Any]) -> None:
    """Replace the group's (or root array's) user attributes with ``attrs`` (a zarr v2
    root array keeps its ``_ARRAY_DIMENSIONS``).

    A local zarr v2 node gets its ``.zattrs`` written directly, as zarr writes it (JSON,
    indent 2), under a temporary name and renamed: opening the node through zarr costs
    a tenth of a second, paid after every level.
    """
    local = Path(str(path))
    if not is_url(path) and ((local / ".zgroup").is_file() or (local / ".zarray").is_file()):
        if (local / ".zarray").is_file():
            attrs = {ARRAY_DIMENSIONS: list(AXES), **attrs}
        text = json.dumps(attrs, indent=2, allow_nan=False)  # NaN is no JSON
        atomic.write_bytes(local / ".zattrs", text, durable=True)
        return
    json.dumps(attrs, allow_nan=False)  # refuse NaN/Infinity before zarr writes them
    node = zarr.open(str(path), mode="r+")
    if isinstance(node, zarr.Array) and node.metadata.zarr_format == 2:
        attrs = {ARRAY_DIMENSIONS: list(AXES), **attrs}
    node.attrs.clear()
    node.attrs.update(attrs)


def get_attributes(path: str | Path) -> dict[str, Any]:
    """The user attributes of the group (or root array) at ``path``, read from the node
    itself, never from a consolidated copy (which may predate an interrupted run)."""
    try:
        return dict(zarr.open_group(str(path), mode="r", use_consolidated=False).attrs)
    except zarr.errors.GroupNotFoundError:
        return dict(zarr.open_array(str(path), mode="r").attrs)


def describe(location: str | Path) -> str:
    """The layout choices of the array at ``location``, for the start line of a
    conversion: ``"zarr v2 (NGFF 0.4), <u2, chunks 128^3, no shards, compression none"``."""
    array = open_array(location, mode="r")
    fmt = array.metadata.zarr_format
    shard = getattr(array, "shards", None)
    return (f"zarr v{fmt} (NGFF {'0.4' if fmt == 2 else '0.5'}), "
            f"{np.dtype(array.dtype).str}, chunks {array.chunks[0]}^3, "
            + (f"shards {shard[0]}^3" if shard else "no shards")
            + f", compression {compression_of(array)}")


def disk_usage(location: str | Path) -> int:
    """Bytes of all files under ``location`` (chunks and metadata)."""
    fs, path = _fs(location)
    return int(fs.du(path)) if fs.exists(path) else 0


def write_consolidated(location: str | Path) -> None:
    """(Re)write ``.zmetadata`` of the zarr v2 group at ``location`` from the metadata
    files now in it, so HTTP readers get every level's metadata in one request instead of
    probing for keys. Nothing for zarr v3 groups or for a plain root array."""
    fs, path = _fs(location)
    if not fs.exists(path.rstrip("/") + "/.zgroup"):
        return
    with warnings.catch_warnings():
        # our resume journal beside the levels is no zarr node; zarr says so per call
        warnings.filterwarnings("ignore", "Object at .* is not recognized",
                                zarr.errors.ZarrUserWarning)
        zarr.consolidate_metadata(str(location), zarr_format=2)


def drop_consolidated(location: str | Path) -> None:
    """Delete ``.zmetadata`` at ``location`` if there: called before a run changes the
    arrays, so that no reader trusts a copy that no longer matches them."""
    fs, path = _fs(location)
    consolidated = path.rstrip("/") + "/" + CONSOLIDATED
    if fs.exists(consolidated):
        fs.rm(consolidated)


@dataclass(frozen=True)
class Compression:
    """A parsed ``--compression`` spec: ``codec`` is "none", "zstd", "gzip" or "blosc";
    ``cname`` the blosc compressor; ``level`` the codec's level; ``shuffle`` the blosc
    shuffle ("bitshuffle", "shuffle" or "noshuffle")."""

    codec: str
    level: int = 0
    cname: str = ""
    shuffle: str = ""

    @property
    def spec(self) -> str:
        """The canonical spec string (level always given, shuffle only if not default)."""
        if self.codec == "none":
            return "none"
        name = f"blosc-{self.cname}" if self.codec == "blosc" else self.codec
        tail = f":{self.shuffle}" if self.codec == "blosc" and self.shuffle != BLOSC_SHUFFLE \
            else ""
        return f"{name}:{self.level}{tail}"


#: codec -> (lowest level, highest level, default level)
LEVELS = {"zstd": (1, 22, 3), "gzip": (1, 9, 6), "blosc": (1, 9, 5)}
BLOSC_CNAMES = ("zstd", "lz4", "lz4hc", "zlib", "blosclz")
BLOSC_SHUFFLES = ("bitshuffle", "shuffle", "noshuffle")
#: bitshuffle: on noisy 16-bit CT it compresses as well as byte shuffle, several times faster
BLOSC_SHUFFLE = "bitshuffle"
COMPRESSION_HELP = ("none, zstd[:LEVEL], gzip[:LEVEL], blosc-CNAME[:LEVEL[:SHUFFLE]] with "
                    "CNAME one of " + "|".join(BLOSC_CNAMES) + " and SHUFFLE one of "
                    + "|".join(BLOSC_SHUFFLES))


def parse_compression(spec: str) -> Compression:
    """Parse a ``--compression`` spec: ``none``, ``zstd[:LEVEL]`` (1-22, default 3),
    ``gzip[:LEVEL]`` (1-9, default 6) or ``blosc-CNAME[:LEVEL[:SHUFFLE]]`` (CNAME zstd,
    lz4, lz4hc, zlib or blosclz; LEVEL 1-9, default 5; SHUFFLE bitshuffle (default),
    shuffle or noshuffle). Case-insensitive. Raises :class:`ScrollError` naming the spec.
    """
    text = str(spec).strip().lower()
    fields = text.split(":")
    name = fields[0]
    bad = f"--compression {spec!r}"
    if name == "none":
        if len(fields) > 1:
            raise ScrollError(f"{bad}: 'none' takes no level")
        return Compression("none")
    if name.startswith("blosc-"):
        codec, cname = "blosc", name[len("blosc-"):]
        if cname not in BLOSC_CNAMES:
            raise ScrollError(f"{bad}: unknown blosc compressor {cname!r} (choose "
                              + ", ".join(f"blosc-{c}" for c in BLOSC_CNAMES) + ")")
        max_fields = 3
    elif name in ("zstd", "gzip"):
        codec, cname, max_fields = name, "", 2
    else:
        raise ScrollError(f"{bad}: unknown compression (choose {COMPRESSION_HELP})")
    if len(fields) > max_fields:
        raise ScrollError(f"{bad}: too many ':' fields (expected {COMPRESSION_HELP})")
    lo, hi, level = LEVELS[codec]
    if len(fields) > 1 and fields[1] != "":
        try:
            level = int(fields[1])
        except ValueError:
            raise ScrollError(f"{bad}: level {fields[1]!r} is not an integer") from None
        if not lo <= level <= hi:
            raise ScrollError(f"{bad}: level {level} is outside {lo}..{hi} for {name}")
    shuffle = ""
    if codec == "blosc":
        shuffle = fields[2] if len(fields) > 2 and fields[2] != "" else BLOSC_SHUFFLE
        if shuffle not in BLOSC_SHUFFLES:
            raise ScrollError(f"{bad}: unknown blosc shuffle {shuffle!r} (choose "
                              + ", ".join(BLOSC_SHUFFLES) + ")")
    return Compression(codec, level, cname, shuffle)


def _compressors(c: Compression, zarr_format: int) -> Any:
    """The ``compressors=`` argument of zarr.create_array for ``c``: None, a numcodecs
    codec (zarr v2) or a zarr.codecs codec (zarr v3)."""
    if c.codec == "none":
        return None
    if zarr_format == 2:
        if c.codec == "zstd":
            return numcodecs.Zstd(level=c.level)
        if c.codec == "gzip":
            return numcodecs.GZip(level=c.level)
        shuffle = {"noshuffle": numcodecs.Blosc.NOSHUFFLE, "shuffle": numcodecs.Blosc.SHUFFLE,
                   "bitshuffle": numcodecs.Blosc.BITSHUFFLE}[c.shuffle]
        return numcodecs.Blosc(cname=c.cname, clevel=c.level, shuffle=shuffle)
    if c.codec == "zstd":
        return zarr.codecs.ZstdCodec(level=c.level)
    if c.codec == "gzip":
        return zarr.codecs.GzipCodec(level=c.level)
    return zarr.codecs.BloscCodec(cname=c.cname, clevel=c.level, shuffle=c.shuffle)


def check_layout(zarr_format: int, chunk: int, shard: int | None, compression: str) -> None:
    """Check the store layout options before anything is written; raise
    :class:`ScrollError` with a one-line message naming the option at fault.

    ``zarr_format`` must be 2 or 3; ``shard`` (voxels) only with 3, and a positive
    multiple of ``chunk`` (voxels); ``compression`` a valid spec (:func:`parse_compression`).
    """
    if zarr_format not in (2, 3):
        raise ScrollError(f"--zarr_format {zarr_format}: must be 2 or 3")
    if shard is not None:
        if zarr_format != 3:
            raise ScrollError(f"--shard_size {shard}: shards need --zarr_format 3 "
                              "(zarr v2 has no shards)")
        if shard <= 0 or chunk <= 0 or shard % chunk:
            raise ScrollError(f"--shard_size {shard}: must be a positive multiple of "
                              f"--chunk_size {chunk}")
    parse_compression(compression)


def compression_of(array: zarr.Array) -> str:
    """The canonical ``--compression`` spec an existing array was written with (for a
    sharded v3 array, the compression of its inner chunks).

    Raises :class:`ScrollError` naming the array if it uses a filter or a compressor
    that ``--compression`` cannot express (so new levels would not match it).
    """
    where = f"{array.store_path}"
    if array.filters:
        raise ScrollError(f"{where}: filters {list(array.filters)} are not supported "
                          "(--compression cannot reproduce them)")
    compressors = list(array.compressors)
    if not compressors:
        return "none"
    if len(compressors) > 1:
        raise ScrollError(f"{where}: several compressors {compressors} are not supported")
    codec = compressors[0]
    # numcodecs codecs (v2) carry codec_id; zarr v3 codecs describe themselves in to_dict
    if hasattr(codec, "codec_id"):
        name, config = codec.codec_id, codec.get_config()
    else:
        d = codec.to_dict()
        name, config = d["name"], dict(d.get("configuration", {}))
    if name == "zstd" and not config.get("checksum", False):
        spec = f"zstd:{config.get('level', 0) or LEVELS['zstd'][2]}"
    elif name == "gzip":
        spec = f"gzip:{config.get('level', LEVELS['gzip'][2])}"
    elif name == "blosc":
        shuffle = config.get("shuffle", BLOSC_SHUFFLE)
        if isinstance(shuffle, int):  # numcodecs: 0 no, 1 byte, 2 bit shuffle
            shuffle = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle"}.get(shuffle, "auto")
        spec = f"blosc-{config.get('cname')}:{config.get('clevel')}:{shuffle}"
    else:
        raise ScrollError(f"{where}: compressor {name} {config} is not one --compression "
                          f"writes ({COMPRESSION_HELP})")
    try:
        return parse_compression(spec).spec
    except ScrollError:
        raise ScrollError(f"{where}: compressor {name} {config} is not one --compression "
                          f"writes ({COMPRESSION_HELP})") from None
