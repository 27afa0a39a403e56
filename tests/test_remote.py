"""Rendering from remote OME-Zarr volumes over HTTP, with the on-disk cache.

Stores are laid out like the published ones (zarr v2, NGFF 0.4, uint8, no compressor,
"/" chunk keys, all-zero chunks absent; 16^3 chunks instead of 128^3 to stay small),
served by the project's own StoreServer (or a plain password-protected http.server, the
way the data server behaves). Renders run as real processes of ppm_to_layers.py; the
remote render must equal the local render of the same directory byte for byte.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr

from conftest import ROOT, run_script
from scrollzarr import serve
from scrollzarr.errors import ScrollError
from scrollzarr.ngff import open_volume
from scrollzarr.ppm import write_ppm
from scrollzarr.remote import RemoteOptions, open_store
from scrollzarr.remote.diskcache import DiskCache, Hit

SHAPE = (48, 64, 80)  # (z, y, x)
CHUNK = 16
LAYERS = ("--number_of_layers", "9", "--number_of_stacked_layers", "5",
          "--interval", "1.5", "--block_size", "16", "--quiet")
USER, PASSWORD = "reader", "s3cret-pa55-that-must-not-leak"


# --- building stores and segments ---------------------------------------------------------

def papyrus(shape=SHAPE, seed=1) -> np.ndarray:
    """uint8 volume with a masked (zero) background: chunks there are never written."""
    vol = np.random.default_rng(seed).integers(1, 256, size=shape).astype(np.uint8)
    vol[:, :, 48:] = 0
    vol[:16, :16, :] = 0
    return vol


def public_store(path: Path, volume: np.ndarray, paths=("0", "1", "2"), first_factor=1,
                 compressors=None, translation=None, zarr_format=2, shards=None) -> Path:
    """An OME-Zarr store the way the published ones are: datasets with unitless scales
    (the factor of each level), no translation, each level the previous one halved by
    picking, absent all-zero chunks. Level ``paths[i]`` holds ``volume`` reduced
    ``2**i`` times and has scale ``first_factor * 2**i``."""
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    datasets = []
    for i, name in enumerate(paths):
        data = volume[::2 ** i, ::2 ** i, ::2 ** i]
        kwargs = dict(shape=data.shape, chunks=(CHUNK,) * 3, dtype=data.dtype,
                      compressors=compressors, fill_value=0,
                      config={"write_empty_chunks": False})
        if zarr_format == 2:
            kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        elif shards:
            kwargs["shards"] = (shards,) * 3
        group.create_array(name, **kwargs)[...] = data
        factor = float(first_factor * 2 ** i)
        transforms = [{"type": "scale", "scale": [factor] * 3}]
        if translation is not None:
            transforms.append({"type": "translation", "translation": list(translation)})
        datasets.append({"path": name, "coordinateTransformations": transforms})
    ms = {"version": "0.4", "name": "scroll", "datasets": datasets,
          "axes": [{"name": a, "type": "space"} for a in "zyx"]}
    if zarr_format == 2:
        group.attrs["multiscales"] = [ms]
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [{**ms, "version": None}]}
    return path


def segment(path: Path, scale: float = 1.0, shift=(0.0, 0.0, 0.0), height=36,
            width=70) -> Path:
    """A curved .ppm through SHAPE that also crosses the masked background; points in
    scroll voxels times ``scale`` plus ``shift`` (x, y, z)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    x = 4.0 + u * 1.02
    y = 30.0 + 7.0 * np.sin(u / 9.0) + 2.0 * np.cos(v / 6.0)
    z = 5.0 + v * 1.1
    n = np.stack([0.25 * np.sin(u / 13.0), np.ones_like(u), 0.15 * np.cos(v / 7.0)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    pts = np.stack([x, y, z], -1) * scale + np.asarray(shift)
    data = np.concatenate([pts, n], -1)
    data[8:12, 30:40] = 0  # unmapped hole
    write_ppm(path, data)
    return path


def render(ppm: Path, store, out: Path, *extra, env=None):
    return run_script("ppm_to_layers.py", ppm, store, out, out / "stack.tif", *LAYERS,
                      *extra, env=env)


def outputs(out: Path) -> dict[str, bytes]:
    """The rendered images of OUT_DIR by name (not the manifest, which records options)."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())
            if p.name != ".scrollzarr-layers.json"}


def chunk_requests(server) -> list:
    return [r for r in server.requests_seen if not r[1].rsplit("/", 1)[-1].startswith(
        (".z", "zarr.json"))]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A published-style store, a segment and the local render of both."""
    root = tmp_path_factory.mktemp("published")
    public_store(root / "data" / "scroll.zarr", papyrus())
    ppm = segment(root / "seg.ppm")
    proc = render(ppm, root / "data" / "scroll.zarr", root / "local")
    assert proc.returncode == 0, proc.stderr
    return root, ppm, outputs(root / "local")


# --- HTTP ---------------------------------------------------------------------------------

def test_http_render_equals_local_and_a_second_render_makes_no_request(
        published, tmp_path, running):
    root, ppm, local = published
    server = running(serve.StoreServer(root / "data"))
    url = server.url + "scroll.zarr"
    cache = tmp_path / "cache"
    proc = render(ppm, url, tmp_path / "out1", "--cache_dir", cache)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # --quiet, and no aiohttp warning about open sessions
    assert outputs(tmp_path / "out1") == local
    first = server.requests_seen
    statuses = {s for _, _, s in first}
    assert 404 in statuses, "the masked background must be read as absent chunks"
    assert statuses <= {200, 404}
    # every object is fetched once: metadata, chunks and absences alike
    assert len({p for _, p, _ in first}) == len(first)
    server.clear_requests()
    proc = render(ppm, url, tmp_path / "out2", "--cache_dir", cache)
    assert proc.returncode == 0, proc.stderr
    assert outputs(tmp_path / "out2") == local
    assert server.requests_seen == []


def test_metadata_and_absences_expire_after_the_ttl_chunk_data_does_not(
        published, tmp_path, running):
    root, ppm, local = published
    server = running(serve.StoreServer(root / "data"))
    url = server.url + "scroll.zarr"
    args = ("--cache_dir", tmp_path / "cache", "--cache_ttl", "0")
    assert render(ppm, url, tmp_path / "out1", *args).returncode == 0
    server.clear_requests()
    proc = render(ppm, url, tmp_path / "out2", *args)
    assert proc.returncode == 0, proc.stderr
    assert outputs(tmp_path / "out2") == local
    seen = server.requests_seen
    assert seen and all(s == 404 or p.rsplit("/", 1)[-1] in (".zattrs", ".zarray")
                        for _, p, s in seen), seen
    assert not [r for r in seen if r[2] == 200 and r[1].rsplit("/", 1)[-1][0].isdigit()]


def test_a_server_killed_mid_run_ends_it_with_one_line_and_no_layer_file(
        published, tmp_path):
    root, ppm, _ = published
    # the server in a process of its own, so that kill -9 really kills it
    # python -c imports from its working directory: the checkout (cwd=ROOT)
    code = ("import sys, time; from scrollzarr import serve;"
            "s = serve.StoreServer(sys.argv[2]); s.start(); print(s.url, flush=True)\n"
            "while True:\n print(len(s.requests_seen), flush=True); time.sleep(0.005)")
    server = subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(root / "data")],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        url = server.stdout.readline().strip() + "scroll.zarr"
        out = tmp_path / "out"
        # many small tiles and layers: the run lasts long after the first chunk
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "ppm_to_layers.py"), ppm, url, out,
             out / "stack.tif", "--number_of_layers", "41", "--block_size", "4",
             "--cache_dir", tmp_path / "cache", "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in server.stdout:
            if int(line) >= 8:  # metadata and a few chunks served
                break
        server.send_signal(signal.SIGKILL)
        server.wait()
        _, stderr = proc.communicate(timeout=120)
    finally:
        server.kill()
        server.wait()
    assert proc.returncode == 1, stderr
    assert stderr.startswith("error: ") and len(stderr.strip().splitlines()) == 1, stderr
    assert url.rsplit("/", 1)[0] in stderr
    assert not list(out.glob("*.tif")) and not list(out.glob("*.partial"))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """A plain file server (the standard library's), with bodiless answers at hand."""

    def answer(self, status: int, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _thread_server(handler_class, directory: Path, **attributes):
    """Serve ``directory`` with ``handler_class`` in a thread; ``attributes`` are set on
    the server (its handlers read them). Stop with shutdown() and server_close()."""
    handler = lambda *a, **kw: handler_class(*a, directory=str(directory), **kw)  # noqa
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in attributes.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _AuthHandler(_QuietHandler):
    """The data server's way: 401 with a challenge unless the right basic auth is sent;
    chunks of level 1 are redirected to another origin (a CDN) when ``redirect_to`` is
    set. Every Authorization header received is recorded in ``authorizations``."""

    def do_GET(self):  # noqa: N802
        self.server.authorizations.append(self.headers.get("Authorization"))
        if self.server.check:
            token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") != "Basic " + token:
                self.answer(401, WWW_Authenticate='Basic realm="scrolls"')
                return
        if self.server.redirect_to and self.path.startswith("/scroll.zarr/1/") and \
                self.path[-1].isdigit():
            self.answer(302, Location=self.server.redirect_to + self.path)
            return
        super().do_GET()


def _auth_server(directory: Path, check: bool = True, redirect_to: str = ""):
    return _thread_server(_AuthHandler, directory, check=check, redirect_to=redirect_to,
                          authorizations=[])


@pytest.fixture
def protected(published):
    server = _auth_server(published[0] / "data")
    yield f"http://127.0.0.1:{server.server_address[1]}/scroll.zarr"
    server.shutdown()
    server.server_close()


def test_credentials_are_not_sent_to_another_origin_a_redirect_leads_to(
        published, tmp_path):
    root, ppm, _ = published
    cdn = _auth_server(root / "data", check=False)
    origin = _auth_server(root / "data",
                          redirect_to=f"http://localhost:{cdn.server_address[1]}")
    try:
        url = f"http://127.0.0.1:{origin.server_address[1]}/scroll.zarr"
        env = {"SCROLL_PASSWORD": PASSWORD, "NETRC": str(tmp_path / "no-netrc")}
        proc = render(ppm, url, tmp_path / "out", "--user", USER, "--level", "1",
                      "--cache_dir", tmp_path / "cache", env=env)
        assert proc.returncode == 0, proc.stderr
        local = render(ppm, root / "data" / "scroll.zarr", tmp_path / "local", "--level",
                       "1")
        assert outputs(tmp_path / "out") == outputs(tmp_path / "local")
        assert cdn.authorizations and set(cdn.authorizations) == {None}
        assert local.returncode == 0
    finally:
        for server in (cdn, origin):
            server.shutdown()
            server.server_close()


def test_password_protected_server_with_user_and_password_from_the_environment(
        published, protected, tmp_path):
    _, ppm, local = published
    env = {"SCROLL_PASSWORD": PASSWORD, "NETRC": str(tmp_path / "no-netrc")}
    proc = render(ppm, protected, tmp_path / "out", "--user", USER, "--cache_dir",
                  tmp_path / "cache", env=env)
    assert proc.returncode == 0, proc.stderr
    assert outputs(tmp_path / "out") == local
    cached = b"".join(p.read_bytes() for p in (tmp_path / "cache").rglob("location"))
    assert USER.encode() in cached and PASSWORD.encode() not in cached


def test_password_protected_server_without_credentials_is_one_line_naming_user(
        published, protected, tmp_path):
    _, ppm, _ = published
    env = {"NETRC": str(tmp_path / "no-netrc")}
    proc = render(ppm, protected, tmp_path / "out", "--cache_dir", tmp_path / "cache",
                  env=env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "HTTP 401" in proc.stderr and "--user" in proc.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_password_from_netrc_and_never_in_messages(published, protected, tmp_path):
    _, ppm, local = published
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    proc = render(ppm, protected, tmp_path / "out", "--cache_dir", tmp_path / "cache",
                  env={"NETRC": str(netrc)})
    assert proc.returncode == 0, proc.stderr
    assert outputs(tmp_path / "out") == local
    assert PASSWORD not in proc.stderr + proc.stdout


# --- zarr v3 sharded, codecs --------------------------------------------------------------

def test_v3_sharded_store_over_http_reads_byte_ranges_once_and_matches_local(
        tmp_path, running):
    volume = papyrus()
    public_store(tmp_path / "data" / "v3.zarr", volume, zarr_format=3, shards=32)
    ppm = segment(tmp_path / "seg.ppm")
    assert render(ppm, tmp_path / "data" / "v3.zarr", tmp_path / "local").returncode == 0
    server = running(serve.StoreServer(tmp_path / "data"))
    url = server.url + "v3.zarr"
    proc = render(ppm, url, tmp_path / "out", "--cache_dir", tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    assert outputs(tmp_path / "out") == outputs(tmp_path / "local")
    assert any(s == 206 for _, _, s in server.requests_seen), "shards read by ranges"
    server.clear_requests()
    assert render(ppm, url, tmp_path / "out2", "--cache_dir",
                  tmp_path / "cache").returncode == 0
    assert server.requests_seen == []
    # in-process: what the cache fetched is what zarr needed, once
    opened = open_volume(url, options=RemoteOptions(cache_dir=tmp_path / "cache2"))
    np.testing.assert_array_equal(opened.array[...], volume)
    stats = opened.array.store.stats
    on_disk = sum(p.stat().st_size for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert 0 < stats.fetched_bytes <= on_disk  # no byte of the store fetched twice


@pytest.mark.parametrize("compressor,dtype", [
    (None, np.uint8), (None, np.uint16), (numcodecs.Blosc(cname="lz4", clevel=5), np.uint8),
    (numcodecs.Zstd(level=3), np.uint16)], ids=["raw8", "raw16", "blosc8", "zstd16"])
def test_remote_levels_decode_like_local_ones(tmp_path, running, compressor, dtype):
    volume = papyrus().astype(dtype) * (257 if dtype == np.uint16 else 1)
    public_store(tmp_path / "data" / "s.zarr", volume, compressors=compressor)
    server = running(serve.StoreServer(tmp_path / "data"))
    for path, step in (("0", 1), ("2", 4)):
        opened = open_volume(server.url + "s.zarr", path,
                             RemoteOptions(cache_dir=tmp_path / "cache"))
        assert opened.level == path and opened.factor == (1 / step,) * 3
        np.testing.assert_array_equal(opened.array[...], volume[::step, ::step, ::step])


def test_a_codec_zarr_cannot_decode_is_named(tmp_path, running):
    public_store(tmp_path / "data" / "s.zarr", papyrus())
    meta = tmp_path / "data" / "s.zarr" / "0" / ".zarray"
    doc = json.loads(meta.read_text())
    doc["compressor"] = {"id": "jpegxx", "level": 3}
    meta.write_text(json.dumps(doc))
    server = running(serve.StoreServer(tmp_path / "data"))
    with pytest.raises(ScrollError, match=r"s\.zarr: level '0': codec 'jpegxx' cannot be "
                       "decoded"):
        open_volume(server.url + "s.zarr", options=RemoteOptions(cache_dir=tmp_path / "c"))


# --- levels through datasets[].path -------------------------------------------------------

def test_a_missing_declared_level_is_skipped_with_a_note(published, tmp_path, running):
    root, ppm, _ = published
    data = tmp_path / "data"
    shutil.copytree(root / "data" / "scroll.zarr", data / "broken.zarr")
    shutil.rmtree(data / "broken.zarr" / "0")
    server = running(serve.StoreServer(data))
    url = server.url + "broken.zarr"
    proc = render(ppm, url, tmp_path / "out", "--cache_dir", tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    # --quiet silences notes: ask again without it through the library
    opened = open_volume(url, options=RemoteOptions(cache_dir=tmp_path / "cache"))
    assert opened.level == "1" and opened.factor == (0.5, 0.5, 0.5)
    assert opened.notes == (f"note: {url}: declared level '0' is missing, skipped",)
    local = render(ppm, data / "broken.zarr", tmp_path / "local", "--level", "1")
    assert local.returncode == 0, local.stderr
    assert outputs(tmp_path / "out") == outputs(tmp_path / "local")
    asked = render(ppm, url, tmp_path / "out0", "--level", "0", "--cache_dir",
                   tmp_path / "cache")
    assert asked.returncode == 1 and len(asked.stderr.strip().splitlines()) == 1
    assert "--level 0 is declared but its array is missing" in asked.stderr
    proc = run_script("ppm_to_layers.py", ppm, url, tmp_path / "noted",
                      "--number_of_layers", "3", "--number_of_stacked_layers", "1",
                      "--cache_dir", tmp_path / "cache")
    assert proc.returncode == 0 and "declared level '0' is missing" in proc.stderr
    # the same note for a store on the local disk
    proc = run_script("ppm_to_layers.py", ppm, data / "broken.zarr", tmp_path / "noted2",
                      "--number_of_layers", "3", "--number_of_stacked_layers", "1")
    assert proc.returncode == 0
    assert f"note: {data / 'broken.zarr'}: declared level '0' is missing" in proc.stderr


def test_level_by_path_on_a_store_whose_datasets_start_at_3(tmp_path, running):
    coarse = papyrus()  # the data of level "3": scroll voxels / 8
    shift = (16.0, 24.0, 8.0)  # (z, y, x) translation of level "3", scroll voxels
    public_store(tmp_path / "data" / "derived.zarr", coarse, paths=("3", "4"),
                 first_factor=8, translation=shift)
    # reference: the same data as a plain array, the segment mapped by hand (x, y, z);
    # multiplying by 1/8 is exact, so both renders compute the same float64 indices
    plain = zarr.create_array(store=str(tmp_path / "plain.zarr"), shape=coarse.shape,
                              chunks=(CHUNK,) * 3, dtype=coarse.dtype, zarr_format=2,
                              chunk_key_encoding={"name": "v2", "separator": "/"},
                              compressors=None, fill_value=0)
    plain[...] = coarse
    ppm_ref = segment(tmp_path / "ref.ppm")
    ppm = segment(tmp_path / "seg.ppm", scale=8.0, shift=np.asarray(shift)[::-1] * 1.0)
    server = running(serve.StoreServer(tmp_path / "data"))
    url = server.url + "derived.zarr"
    opened = open_volume(url, options=RemoteOptions(cache_dir=tmp_path / "cache"))
    assert opened.level == "3" and opened.factor == (0.125,) * 3
    assert opened.offset == tuple(-s / 8 for s in shift)
    assert open_volume(url, "4", RemoteOptions(cache_dir=tmp_path / "cache")).factor == (
        1 / 16,) * 3
    proc = render(ppm, url, tmp_path / "out", "--level", "3", "--interval", "12",
                  "--cache_dir", tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    ref = render(ppm_ref, tmp_path / "plain.zarr", tmp_path / "ref", "--interval", "1.5")
    assert ref.returncode == 0, ref.stderr
    assert outputs(tmp_path / "out") == outputs(tmp_path / "ref")
    wrong = render(ppm, url, tmp_path / "out0", "--level", "0", "--cache_dir",
                   tmp_path / "cache")
    assert wrong.returncode == 1
    assert "--level 0 is not a dataset of this store (datasets: '3', '4')" in wrong.stderr


# --- the store and the cache on their own -------------------------------------------------

def test_bad_locations_are_one_line_errors(tmp_path):
    for location, message in [
            (tmp_path / "nothing.zarr", "no such file or directory"),
            ("ftp://host/s.zarr", "unsupported location"),
            (f"https://{USER}:{PASSWORD}@host/s.zarr", "remove the user:password@ part")]:
        with pytest.raises(ScrollError, match=message) as err:
            open_store(location, RemoteOptions(cache_dir=tmp_path / "c"))
        assert PASSWORD not in str(err.value)


def test_bad_remote_options_are_usage_errors(tmp_path):
    for option in ("--cache_gb", "--cache_ttl"):
        proc = run_script("ppm_to_layers.py", "a.ppm", "b.zarr", tmp_path, option, "-1")
        assert proc.returncode == 2 and option in proc.stderr


def test_the_cache_bound_holds_for_processes_writing_at_once(tmp_path):
    root = tmp_path / "cache"
    bound = 400_000
    code = ("import sys\n"
            "from scrollzarr.remote.diskcache import DiskCache\n"
            "c = DiskCache(sys.argv[2], int(sys.argv[3])); p = c.place(sys.argv[4])\n"
            "for i in range(300): c.store(p, '%064x' % i, bytes([i % 256]) * 5000)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(root),
                               str(bound), f"http://host/{n}.zarr"], cwd=ROOT)
             for n in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    cache = DiskCache(root, bound)
    assert cache.total_bytes <= bound * (1 + 3 / 20)
    cache.evict()
    assert cache.total_bytes <= bound
    # every entry left is whole (written to a temporary name, then renamed)
    for n in range(3):
        place = cache.place(f"http://host/{n}.zarr")
        for i in range(300):
            hit = cache.lookup(place, "%064x" % i, None, 0)
            assert hit is None or hit.data == bytes([i % 256]) * 5000
    assert not list(root.rglob(".tmp-*"))


def test_least_recently_used_entries_are_evicted_first(tmp_path):
    cache = DiskCache(tmp_path / "c", 10 * (1000 + 4096))
    place = cache.place("s3://bucket/s.zarr (endpoint aws)")
    for i in range(10):
        cache.store(place, f"{i:064x}", b"x" * 1000)
        os.utime(place / f"{i:064x}"[:2] / f"{i:064x}", (1000 + i, time.time()))
    assert cache.lookup(place, f"{0:064x}", None, 0) is not None  # used now: the newest
    cache.store(place, f"{99:064x}", b"y" * 1000)  # over the bound: evict to 90 %
    assert cache.lookup(place, f"{0:064x}", None, 0) is not None
    assert cache.lookup(place, f"{1:064x}", None, 0) is None
    assert cache.lookup(place, f"{99:064x}", None, 0).data == b"y" * 1000
    assert cache.total_bytes <= cache.max_bytes


def test_an_entry_keeps_its_metadata_and_one_kind_replaces_another(tmp_path):
    cache = DiskCache(tmp_path / "c", 1_000_000)
    place = cache.place("http://host/s.zarr/ (proxy)")
    name = "%064x" % 7
    cache.store(place, name, b"\n{body}\n", {"status": 206, "headers": {"ETag": '"x"'}})
    hit = cache.lookup(place, name, None, 3600)
    assert hit == Hit(b"\n{body}\n", {"status": 206, "headers": {"ETag": '"x"'}})
    cache.store(place, name, None)  # vanished upstream
    assert cache.lookup(place, name, None, 3600) == Hit(None)
    time.sleep(0.01)
    assert cache.lookup(place, name, None, 0) is None  # older than its time to live
    cache.store(place, name, b"plain")  # back, without metadata
    assert cache.lookup(place, name, None, 3600) == Hit(b"plain")
    assert sorted(p.name for p in (place / name[:2]).iterdir()) == [name]  # one kind


def test_a_cache_reopened_with_a_smaller_bound_evicts_at_once(tmp_path):
    cache = DiskCache(tmp_path / "c", 100 * (1000 + 4096))
    place = cache.place("http://host/s.zarr")
    for i in range(20):
        cache.store(place, f"{i:064x}", b"x" * 1000, {"status": 200})
    smaller = DiskCache(tmp_path / "c", 5 * (1000 + 4096))
    assert smaller.total_bytes <= smaller.max_bytes and smaller.evictions > 0
    files = [p for p in place.rglob("*.meta")]
    assert 0 < len(files) <= 5


def test_two_renders_sharing_a_small_cache_at_once_both_equal_local(
        published, tmp_path, running):
    root, ppm, local = published
    server = running(serve.StoreServer(root / "data"))
    url = server.url + "scroll.zarr"
    # ~100 KiB: far less than the chunks the segment reads, so both evict all the time
    args = ("--cache_dir", tmp_path / "cache", "--cache_gb", "0.0001")
    procs = [subprocess.Popen(
        [sys.executable, str(ROOT / "ppm_to_layers.py"), ppm, url, tmp_path / f"out{i}",
         tmp_path / f"out{i}" / "stack.tif", *LAYERS, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
    assert outputs(tmp_path / "out0") == local and outputs(tmp_path / "out1") == local
    held = sum(p.stat().st_size + 4096 for p in (tmp_path / "cache").rglob("*")
               if p.is_file() and p.name != "location" and p.parent != tmp_path / "cache")
    assert held <= 0.0001 * 2**30 * (1 + 2 / 20)


def test_no_disk_cache_with_cache_gb_0_every_render_asks_again(published, tmp_path,
                                                               running):
    root, ppm, local = published
    server = running(serve.StoreServer(root / "data"))
    url = server.url + "scroll.zarr"
    for n in range(2):
        server.clear_requests()
        proc = render(ppm, url, tmp_path / f"out{n}", "--cache_dir", tmp_path / "cache",
                      "--cache_gb", "0")
        assert proc.returncode == 0, proc.stderr
        assert outputs(tmp_path / f"out{n}") == local
        assert chunk_requests(server)
    assert not (tmp_path / "cache").exists()


def test_default_cache_dir_follows_xdg_cache_home(tmp_path, monkeypatch):
    from scrollzarr.remote import default_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "scrollzarr" / "stores"
    assert default_cache_dir("proxy") == tmp_path / "scrollzarr" / "proxy"


class _FlakyHandler(_QuietHandler):
    """Answers 503 to the first ``failures`` requests of every path, then serves."""

    def do_GET(self):  # noqa: N802
        count = self.server.counts.get(self.path, 0)
        self.server.counts[self.path] = count + 1
        if count < self.server.failures:
            self.answer(503)
            return
        super().do_GET()


@pytest.mark.parametrize("failures", [2, 10])
def test_transient_server_errors_are_retried_a_bounded_number_of_times(tmp_path,
                                                                       failures):
    volume = papyrus((16, 32, 32))
    public_store(tmp_path / "data" / "s.zarr", volume, paths=("0",))
    server = _thread_server(_FlakyHandler, tmp_path / "data", counts={},
                            failures=failures)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/s.zarr"
        options = RemoteOptions(cache_dir=tmp_path / "cache")
        if failures < options.attempts:
            np.testing.assert_array_equal(open_volume(url, options=options).array[...],
                                          volume)
            assert set(server.counts.values()) == {failures + 1}
        else:
            with pytest.raises(ScrollError, match=r"s\.zarr/zarr\.json: HTTP 503 .*"
                               r"\(after 4 attempts\)"):
                open_volume(url, options=options)
            assert server.counts == {"/s.zarr/zarr.json": options.attempts}
    finally:
        server.shutdown()
        server.server_close()


def _with_typed_password(cmd: list[str], password: str, env: dict,
                         timeout: float = 240) -> tuple[int, str]:
    """Run ``cmd`` with a terminal (a pty) as stdin and stderr and no controlling
    terminal, so that getpass prompts on stderr and reads stdin; type ``password`` at
    its prompt. Return (exit code, everything written to the terminal)."""
    import pty
    import select

    leader, follower = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=follower, stdout=subprocess.DEVNULL,
                            stderr=follower, env=env, start_new_session=True)
    os.close(follower)
    typed, seen = False, b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([leader], [], [], 0.2)[0]:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the process closed the terminal
                    chunk = b""
                if not chunk and proc.poll() is not None:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
            if not typed and b"password for" in seen:
                os.write(leader, password.encode() + b"\n")
                typed = True
        proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    return proc.returncode, seen.decode(errors="replace")


def test_a_password_typed_at_the_prompt_reaches_the_local_dask_workers(
        published, protected, tmp_path):
    root = published[0]
    env = {k: v for k, v in os.environ.items() if k != "SCROLL_PASSWORD"}
    env["NETRC"] = str(tmp_path / "no-netrc")
    options = ["--chunk_size", "32", "--nlevels", "2", "--quiet"]
    cmd = [sys.executable, str(ROOT / "zarr_to_ome.py"), protected + "/0",
           str(tmp_path / "dask.zarr"), "--user", USER, "--cache_gb", "0",
           "--scheduler", "local", "--workers", "2", *options]
    code, said = _with_typed_password(cmd, PASSWORD, env)
    assert code == 0, said
    assert said.count("password for") == 1 and PASSWORD not in said
    local = run_script("zarr_to_ome.py", root / "data" / "scroll.zarr" / "0",
                       tmp_path / "local.zarr", *options, check=True)
    assert local.returncode == 0

    def files(out):
        return {p.relative_to(out).as_posix(): p.read_bytes()
                for p in sorted(out.rglob("*")) if p.is_file()
                and p.name not in (".zattrs", "zarr.json", ".zmetadata")}
    assert files(tmp_path / "dask.zarr") == files(tmp_path / "local.zarr")
