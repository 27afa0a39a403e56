"""zarr_to_ome.py: every zarr volume users hold becomes our OME-Zarr, as if from slices.

Inputs are written by zarr-python (tests/zarr_inputs.py): our own v2 store, a v3 sharded
store, a plain array, stores with "s0", "s1" levels, served over our HTTP server and a
moto S3 server. The output must equal scroll_to_ome.py's on the same voxels given as
slice TIFFs with the same options: every chunk file and every level array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import random_volume, run_script, write_stack
from scrollzarr.ppm import write_ppm
from zarr_inputs import write_store

SHAPE = (40, 56, 72)  # (z, y, x)


def papyrus(shape=SHAPE, seed=5) -> np.ndarray:
    vol = random_volume(shape, seed=seed, high=60000)
    vol[:, :, 60:] = 0  # masked background: absent chunks in the inputs
    return vol


def flat_segment(path: Path, width=60, height=30) -> Path:
    """A gently curved .ppm inside SHAPE, normals along y."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    pts = np.stack([4.0 + u, 25.0 + 4.0 * np.sin(u / 8.0), 4.0 + v], -1)
    normals = np.zeros_like(pts)
    normals[..., 1] = 1.0
    write_ppm(path, np.concatenate([pts, normals], -1))
    return path


def layer_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())
            if p.name != ".scrollzarr-layers.json"}


def test_ppm_to_layers_reads_a_store_whose_levels_are_named_s0_s1(tmp_path):
    vol = papyrus()
    numbered = write_store(tmp_path / "numbered.zarr", vol, paths=("0", "1"))
    named = write_store(tmp_path / "named.zarr", vol, paths=("s0", "s1"))
    ppm = flat_segment(tmp_path / "seg.ppm")
    layers = ("--number_of_layers", "5", "--number_of_stacked_layers", "3", "--quiet")
    for level_a, level_b in ((None, None), ("1", "s1")):
        outs = []
        for store, level in ((numbered, level_a), (named, level_b)):
            out = tmp_path / f"out-{store.stem}-{level}"
            extra = ("--level", level) if level else ()
            run_script("ppm_to_layers.py", ppm, store, out, *layers, *extra, check=True)
            outs.append(layer_files(out))
        assert outs[0] == outs[1] and len(outs[0]) == 5


# --- conversions ---------------------------------------------------------------------------

METADATA = (".zattrs", ".zgroup", ".zmetadata")
OPTIONS = {
    "defaults": ["--chunk_size", "16", "--nlevels", "3"],
    "v3 sharded zstd, crop, uint8": [
        "--chunk_size", "8", "--nlevels", "4", "--zarr_format", "3", "--shard_size", "16",
        "--compression", "zstd", "--ranges", "5:70,3:,2:39", "--obytes", "1"],
    "gaussian, small budget": ["--chunk_size", "8", "--nlevels", "3", "--algorithm",
                               "gaussian", "--max_gb", "0.0005", "--num_threads", "2"],
    "auto window, crop": ["--chunk_size", "16", "--nlevels", "2", "--window", "auto",
                          "--ranges", ",,3:"],
}


def store_files(root: Path) -> dict[str, bytes]:
    """Chunk files and array documents by relative path: everything but the root's
    group attributes (which name the store and the input) and the journal."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not (p.parent == root and p.name in METADATA + ("zarr.json",))}


def levels_of(root: Path) -> list[np.ndarray]:
    import zarr
    group = zarr.open_group(str(root), mode="r")
    return [np.asarray(group[d["path"]][...]) for d in _multiscales(root)["datasets"]]


def _multiscales(root: Path) -> dict:
    import json
    if (root / "zarr.json").exists():
        return json.loads((root / "zarr.json").read_text())["attributes"]["ome"][
            "multiscales"][0]
    return json.loads((root / ".zattrs").read_text())["multiscales"][0]


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """The volume as slices, and as our own v2 store made from them."""
    base = tmp_path_factory.mktemp("scan")
    vol = papyrus()
    slices = write_stack(base / "slices", vol)
    run_script("scroll_to_ome.py", slices, base / "own.zarr", "--chunk_size", "16",
               "--quiet", check=True)
    return base, vol, slices


def from_slices(scan, options, name="ref.zarr") -> Path:
    base, _, slices = scan
    out = base / "refs" / str(list(OPTIONS.values()).index(options)) / name
    if not out.exists():
        out.parent.mkdir(parents=True)
        run_script("scroll_to_ome.py", slices, out, *options, "--quiet", check=True)
    return out


def make_input(kind: str, base: Path, vol: np.ndarray) -> Path:
    """The volume in one of the layouts users hold (chunks unlike the output's)."""
    from zarr.codecs import ZstdCodec

    from zarr_inputs import write_array
    if kind == "our v2 store":
        return base / "own.zarr"
    if kind == "v3 sharded store":
        return write_store(base / "v3.zarr", vol, paths=("s0", "s1"), zarr_format=3,
                           chunks=(16, 32, 8), shards=32, compressors=ZstdCodec())
    return write_array(base / "plain.zarr", vol, chunks=(10, 12, 14))


def convert_and_compare(store, reference: Path, out: Path, options, env=None) -> None:
    proc = run_script("zarr_to_ome.py", store, out, *options, "--quiet", env=env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert store_files(out) == store_files(reference)
    for got, want in zip(levels_of(out), levels_of(reference), strict=True):
        np.testing.assert_array_equal(got, want)
    assert _multiscales(out)["datasets"] == _multiscales(reference)["datasets"]


@pytest.mark.parametrize("kind", ["our v2 store", "v3 sharded store", "plain array"])
@pytest.mark.parametrize("options", list(OPTIONS))
def test_output_equals_scroll_to_ome_of_the_same_voxels_as_slices(scan, tmp_path, options,
                                                                   kind):
    base, vol, _ = scan
    store = make_input(kind, tmp_path if kind != "our v2 store" else base, vol)
    convert_and_compare(store, from_slices(scan, OPTIONS[options]), tmp_path / "ref.zarr",
                        OPTIONS[options])


def test_a_store_over_http_converts_like_the_slices(scan, tmp_path, running):
    from scrollzarr import serve
    base, vol, _ = scan
    options = OPTIONS["v3 sharded zstd, crop, uint8"]
    make_input("v3 sharded store", tmp_path / "data", vol)
    server = running(serve.StoreServer(tmp_path / "data"))
    convert_and_compare(server.url + "v3.zarr", from_slices(scan, options),
                        tmp_path / "ref.zarr", [*options, "--cache_dir", tmp_path / "c"])


def test_a_store_on_s3_converts_like_the_slices(scan, tmp_path, s3_server):
    from zarr_inputs import upload
    base, vol, _ = scan
    options = OPTIONS["gaussian, small budget"]
    url = upload(base / "own.zarr", s3_server, "scans/own.zarr")
    convert_and_compare(url, from_slices(scan, options), tmp_path / "ref.zarr",
                        [*options, "--cache_gb", "0"], env=s3_server)


def test_kill_9_mid_run_then_resume_gives_the_same_store(scan, tmp_path):
    base, vol, _ = scan
    store = make_input("plain array", tmp_path, vol)
    options = ["--chunk_size", "8", "--nlevels", "3", "--max_gb", "0.0005",
               "--num_threads", "1", "--quiet"]
    whole, out = tmp_path / "whole" / "o.zarr", tmp_path / "o.zarr"
    whole.parent.mkdir()
    run_script("zarr_to_ome.py", store, whole, *options, check=True)
    proc = run_script("zarr_to_ome.py", store, out, *options,
                      env={"SCROLLZARR_KILL_AT": "task:3", "SCROLLZARR_JOURNAL_SECONDS": "0"})
    assert proc.returncode == -9, proc.stderr
    again = run_script("zarr_to_ome.py", store, out, *options)
    assert again.returncode == 1
    assert "zarr_to_ome.py" in again.stderr and "--resume" in again.stderr
    run_script("zarr_to_ome.py", store, out, *options, "--resume", check=True)
    files = lambda root: {p.relative_to(root).as_posix(): p.read_bytes()  # noqa: E731
                          for p in sorted(root.rglob("*")) if p.is_file()}
    assert files(out) == files(whole)


def test_the_resume_hint_repeats_level_and_remote_options(scan, tmp_path):
    base, vol, _ = scan
    store = write_store(tmp_path / "in.zarr", vol, paths=("s0", "s1"))
    out = tmp_path / "o.zarr"
    options = ["--level", "s1", "--chunk_size", "8", "--max_gb", "0.0005",
               "--num_threads", "1", "--cache_ttl", "5", "--quiet"]
    proc = run_script("zarr_to_ome.py", store, out, *options,
                      env={"SCROLLZARR_KILL_AT": "task:2", "SCROLLZARR_JOURNAL_SECONDS": "0"})
    assert proc.returncode == -9
    again = run_script("zarr_to_ome.py", store, out, *options)
    hint = again.stderr.split("continue it with: ")[1]
    for word in ("zarr_to_ome.py", str(store), "--level s1", "--cache_ttl 5",
                 "--chunk_size 8", "--resume"):
        assert word in hint, (word, hint)
    assert run_script("zarr_to_ome.py", store, out, *options, "--resume").returncode == 0
    assert levels_of(out)[0].shape == tuple(-(-n // 2) for n in vol.shape)


def test_voxel_size_and_translation_carry_over_unless_overridden(tmp_path):
    vol = papyrus()
    store = write_store(tmp_path / "in.zarr", vol, voxel_size=7.91,
                        translation=(7.91 * 1000, 7.91 * 40, 0.0))
    out = tmp_path / "o.zarr"
    run_script("zarr_to_ome.py", store, out, "--chunk_size", "16", "--nlevels", "2",
               "--ranges", "8:,,4:", "--quiet", check=True)
    ms = _multiscales(out)
    assert [a.get("unit") for a in ms["axes"]] == ["micrometer"] * 3
    transforms = ms["datasets"][0]["coordinateTransformations"]
    assert transforms[0]["scale"] == [7.91] * 3
    assert transforms[1]["translation"] == pytest.approx([7.91 * 1004, 7.91 * 40,
                                                          7.91 * 8])
    level1 = ms["datasets"][1]["coordinateTransformations"]
    assert level1[0]["scale"] == [15.82] * 3
    assert level1[1]["translation"] == pytest.approx([7.91 * 1004.5, 7.91 * 40.5,
                                                      7.91 * 8.5])
    # from level "1": its voxels are twice as large and its origin is in its own voxels
    out1 = tmp_path / "o1.zarr"
    run_script("zarr_to_ome.py", store, out1, "--level", "1", "--nlevels", "1", "--quiet",
               check=True)
    t = _multiscales(out1)["datasets"][0]["coordinateTransformations"]
    assert t[0]["scale"] == [15.82] * 3
    assert t[1]["translation"] == pytest.approx([7.91 * 1000, 7.91 * 40, 0.0])
    out2 = tmp_path / "o2.zarr"
    run_script("zarr_to_ome.py", store, out2, "--voxel_size", "2.5", "--nlevels", "1",
               "--quiet", check=True)
    t = _multiscales(out2)["datasets"][0]["coordinateTransformations"]
    assert t[0]["scale"] == [2.5] * 3
    assert t[1]["translation"] == pytest.approx([2.5 * 1000, 2.5 * 40, 0.0])


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("breakage, args, message", [
    ("missing level", ["--level", "1"],
     r"^error: .*in\.zarr: --level 1 is declared but its array is missing"),
    ("unknown codec", [], r"^error: .*in\.zarr: level '0': codec 'jpegxx' cannot be decoded"),
    ("no such level", ["--level", "7"], r"^error: .*in\.zarr: --level 7 is not a dataset"),
    ("output inside the input", [], r"^error: .*OUTPUT .* lies (in|inside)"),
])
def test_a_broken_input_is_one_line_and_stays_untouched(tmp_path, breakage, args, message):
    import re
    store = write_store(tmp_path / "in.zarr", papyrus())
    out = tmp_path / "o.zarr"
    if breakage == "missing level":
        for p in sorted((store / "1").rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        (store / "1").rmdir()
    elif breakage == "unknown codec":
        zarray = store / "0" / ".zarray"
        zarray.write_text(zarray.read_text().replace('"compressor": null',
                                                     '"compressor": {"id": "jpegxx"}'))
    elif breakage == "output inside the input":
        out = store / "o.zarr"
    before = _tree(store)
    proc = run_script("zarr_to_ome.py", store, out, *args)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert re.search(message, proc.stderr.strip()), proc.stderr
    assert _tree(store) == before and not out.exists()


def test_a_missing_finest_level_is_skipped_with_a_note(tmp_path):
    vol = papyrus()
    store = write_store(tmp_path / "in.zarr", vol, paths=("0", "1", "2"))
    for p in sorted((store / "0").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (store / "0").rmdir()
    out = tmp_path / "o.zarr"
    proc = run_script("zarr_to_ome.py", store, out, "--nlevels", "1")
    assert proc.returncode == 0, proc.stderr
    assert "declared level '0' is missing, skipped" in proc.stderr
    np.testing.assert_array_equal(levels_of(out)[0], vol[::2, ::2, ::2])


@pytest.mark.parametrize("ranges, obytes", [(None, None), (",,5:", None), (",3:", 1)])
def test_each_input_chunk_is_read_once_when_slabs_or_bands_cut_them(tmp_path, ranges,
                                                                    obytes):
    """Tasks of 16 planes over input chunks shifted by a z crop (band by band, each
    chunk layer is kept for the next slab) or a y crop (slab by slab, the row of chunks
    two bands share is kept for the next band), values mapped or not: every stored byte
    is read once (counted by the source); aligned input needs no cache at all."""
    from scrollzarr.convert import Options, convert
    from scrollzarr.sources.zarr_input import ZarrSource
    from zarr_inputs import stored_chunk_bytes, write_array

    vol = random_volume((40, 256, 24), seed=1, high=60000)
    store = write_array(tmp_path / "in.zarr", vol, chunks=16)
    source = ZarrSource(store)
    convert(source, tmp_path / "o.zarr", Options(
        chunk_size=8, nlevels=2, max_gb=0.0005, num_threads=2, quiet=True, ranges=ranges,
        obytes=obytes))
    assert source.bytes_read == stored_chunk_bytes(store)
    assert (source.cache_bytes == 0) == (ranges is None)
    level0 = levels_of(tmp_path / "o.zarr")[0]
    crop = (slice(5 if ranges == ",,5:" else 0, None), slice(3 if obytes else 0, None))
    np.testing.assert_array_equal(level0, vol[crop] >> (8 if obytes else 0))


def test_dask_worker_processes_read_the_input_like_local_threads(scan, tmp_path):
    """--scheduler local: the job travels to worker processes, whose copies of the source
    open the store again; the output is the same as the threads'."""
    base, vol, _ = scan
    options = OPTIONS["v3 sharded zstd, crop, uint8"]
    store = make_input("plain array", tmp_path, vol)
    out = tmp_path / "dask" / "ref.zarr"
    out.parent.mkdir()
    proc = run_script("zarr_to_ome.py", store, out, *options, "--scheduler", "local",
                      "--workers", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert store_files(out) == store_files(from_slices(scan, options))
