"""serve_ome.py without a browser: the local server (CORS, ranges, no traversal), the
authenticating proxy (credentials stay inside, cache bounded) and the script itself.

Everything runs over real sockets on 127.0.0.1 against real zarr stores on disk. The
password-protected upstream (:class:`Upstream`) is our own store server with basic auth
in front; other test modules import it.
"""

from __future__ import annotations

import base64
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import zarr

from conftest import ROOT, run_script
from scrollzarr import serve
from scrollzarr.errors import ScrollError
from scrollzarr.ngff import image_attributes
from scrollzarr.serve.viewer import contrast_window, describe_store

USER = "scrollreader"
PASSWORD = "pa55-W0rd_that-must-not-leak"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
SECRETS = (PASSWORD, TOKEN, "SESSIONCOOKIE")


# --------------------------------------------------------------------------- helpers

def make_store(path: Path, volume: np.ndarray, zarr_format: int = 2, chunk: int = 16,
               shard: int | None = None, nlevels: int = 2) -> Path:
    """An OME-Zarr store of ``volume`` with ``nlevels`` levels (nearest downsampling)."""
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    levels = []
    for level in range(nlevels):
        data = volume[::2 ** level, ::2 ** level, ::2 ** level]
        kwargs = dict(shape=data.shape, chunks=(chunk,) * 3, dtype=data.dtype,
                      compressors=None, fill_value=0,
                      config={"write_empty_chunks": False})
        if zarr_format == 2:
            kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        elif shard:
            kwargs["shards"] = (shard,) * 3
        arr = group.create_array(str(level), **kwargs)
        arr[...] = data
        levels.append((str(level), "nearest" if level else "none"))
    group.attrs.update(image_attributes(levels, zarr_format=zarr_format))
    return path


def block_volume(shape=(32, 48, 64), seed=0) -> np.ndarray:
    vol = np.random.default_rng(seed).integers(1, 60000, size=shape).astype(np.uint16)
    vol[:, :, :16] = 0  # a whole column of absent chunks
    return vol


def get(url: str, headers: dict | None = None, method: str = "GET"):
    """(status, headers, body) of a real HTTP request; HTTP errors are answers too."""
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


def raw_get(server, path: str):
    """GET with the path sent byte for byte (urllib would not send some of these)."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# A password-protected upstream, the way the scroll data server behaves: 401 with a
# WWW-Authenticate challenge without credentials, a session cookie with them. It also
# echoes the Authorization header back, so a proxy that passed headers on would leak.
# Switches: redirects (path -> Location), ignore_range, truncated (paths answered with a
# Content-Length larger than the body, then the connection cut), content_type (sent
# instead of the neutral one: a proxy must not pass it on), busy (path -> how many more
# requests get 503 Service Unavailable).
class _UpstreamHandler(serve.StoreFileHandler):
    async def prepare(self):
        super().prepare()
        self.server.authorizations.append(self.request.headers.get("Authorization"))
        if self.request.headers.get("Authorization") != "Basic " + TOKEN:
            self.set_status(401)
            self.set_header("WWW-Authenticate", 'Basic realm="scrolls"')
            self.finish(b"<html>401 Authorization Required</html>")
            return
        if self.server.busy.get(self.url_path(), 0) > 0:
            self.server.busy[self.url_path()] -= 1
            self.set_status(503)
            self.finish(b"busy")
            return
        target = self.server.redirects.get(self.url_path())
        if target:
            self.redirect(target)
            return
        if self.url_path() in self.server.truncated:
            self.set_header("Content-Length", "1000")
            self.write(b"x" * 10)
            await self.flush()
            self.request.connection.stream.close()
            return
        if self.server.ignore_range and "Range" in self.request.headers:
            del self.request.headers["Range"]

    def set_default_headers(self):
        super().set_default_headers()
        self.set_header("Set-Cookie", "session=SESSIONCOOKIE; HttpOnly")
        self.set_header("X-Echo-Authorization", self.request.headers.get("Authorization", ""))

    def get_content_type(self):
        return self.server.content_type or super().get_content_type()


class Upstream(serve.StoreServer):
    handler_class = _UpstreamHandler

    def __init__(self, root, ignore_range=False):
        super().__init__(root)
        self.ignore_range = ignore_range
        self.authorizations: list = []
        self.redirects: dict = {}
        self.truncated: set = set()
        self.content_type: str | None = None
        self.busy: dict = {}


class _WitnessHandler(serve.StoreFileHandler):
    """Another origin (a CDN a redirect may point to): remembers what it was sent."""

    def prepare(self):
        super().prepare()
        self.server.authorizations.append(self.request.headers.get("Authorization"))


class Witness(serve.StoreServer):
    handler_class = _WitnessHandler

    def __init__(self, root):
        super().__init__(root)
        self.authorizations: list = []


# --------------------------------------------------------------------------- ranges

@pytest.mark.parametrize("header,size,expected", [
    ("bytes=0-9", 100, (0, 10)),
    ("bytes=90-", 100, (90, 100)),
    ("bytes=-10", 100, (90, 100)),
    ("bytes=-1000", 100, (0, 100)),       # suffix longer than the file: all of it
    ("bytes=50-1000", 100, (50, 100)),    # end clipped to the file
    ("bytes=99-99", 100, (99, 100)),
    (None, 100, None),
    ("bytes=0-9,20-29", 100, None),       # several ranges: the whole file instead
    ("items=0-9", 100, None),             # unknown unit: ignored
    ("bytes=0-" + "9" * 5000, 100, (0, 100)),  # an end beyond any file: clipped
    ("bytes=-" + "9" * 5000, 100, (0, 100)),
])
def test_range_header_selects_the_right_bytes(header, size, expected):
    assert serve.parse_range(header, size) == expected


@pytest.mark.parametrize("header,size", [("bytes=100-", 100), ("bytes=200-300", 100),
                                         ("bytes=-0", 100), ("bytes=0-", 0),
                                         ("bytes=9-0", 100),  # last < first
                                         ("bytes=" + "9" * 5000 + "-", 100)])
def test_range_beyond_the_end_is_not_satisfiable(header, size):
    with pytest.raises(serve.RangeNotSatisfiable):
        serve.parse_range(header, size)


# --------------------------------------------------------------------------- local server

def raw_store(path: Path, files: dict[str, bytes], marker: str = ".zgroup") -> Path:
    """A directory that is a zarr store (its marker file) holding ``files``."""
    path.mkdir(parents=True, exist_ok=True)
    (path / marker).write_text('{"zarr_format": 2}')
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def test_server_sends_store_files_with_cors_and_answers_preflight(tmp_path, running):
    raw_store(tmp_path / "s.zarr", {"0/0/0/0": bytes(range(256))})
    server = running(serve.StoreServer(tmp_path))
    status, headers, body = get(server.url + "s.zarr/0/0/0/0")
    assert (status, body) == (200, bytes(range(256)))
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Content-Range" in headers["Access-Control-Expose-Headers"]
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert get(server.url + "s.zarr/.zgroup")[1]["Content-Type"] == "application/json"

    status, headers, body = get(server.url + "s.zarr/0/0/0/0", method="OPTIONS", headers={
        "Origin": "http://viewer.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range",
        "Access-Control-Request-Private-Network": "true"})
    assert status == 204 and body == b""
    assert "GET" in headers["Access-Control-Allow-Methods"]
    assert "range" in headers["Access-Control-Allow-Headers"].lower()
    assert headers["Access-Control-Allow-Private-Network"] == "true"


def test_server_answers_single_byte_ranges_with_206(tmp_path, running):
    data = bytes(range(256)) * 4
    raw_store(tmp_path / "s.zarr", {"0/c/0/0/0": data}, marker="zarr.json")
    server = running(serve.StoreServer(tmp_path / "s.zarr"))
    shard = server.url + "0/c/0/0/0"
    for header, (start, stop) in [("bytes=10-19", (10, 20)), ("bytes=1000-", (1000, 1024)),
                                  ("bytes=-24", (1000, 1024))]:
        status, headers, body = get(shard, {"Range": header})
        assert status == 206
        assert body == data[start:stop]
        assert headers["Content-Range"] == f"bytes {start}-{stop - 1}/1024"
        assert int(headers["Content-Length"]) == stop - start
    status, headers, body = get(shard, {"Range": "bytes=1024-"})
    assert status == 416 and headers["Content-Range"] == "bytes */1024"
    status, headers, _ = get(shard, {"Range": "bytes=0-3"}, method="HEAD")
    assert status == 206 and headers["Content-Length"] == "4"


def test_etag_is_size_and_mtime_and_changes_with_the_file(tmp_path, running):
    store = raw_store(tmp_path / "s.zarr", {"0/0/0/0": b"a" * 100})
    server = running(serve.StoreServer(store))
    etag = get(server.url + "0/0/0/0")[1]["ETag"]
    assert get(server.url + "0/0/0/0", {"If-None-Match": etag})[0] == 304
    (store / "0/0/0/0").write_bytes(b"b" * 101)  # a resumed conversion rewrote it
    status, headers, body = get(server.url + "0/0/0/0", {"If-None-Match": etag})
    assert (status, body) == (200, b"b" * 101) and headers["ETag"] != etag


def test_missing_chunk_is_404_with_cors(tmp_path, running):
    make_store(tmp_path / "scroll.zarr", block_volume())
    server = running(serve.StoreServer(tmp_path))
    status, headers, _ = get(server.url + "scroll.zarr/0/9/9/9")
    assert status == 404
    assert headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/%2e%2e/secret.txt", "/store/../../secret.txt",
    "/store/..%2f..%2fsecret.txt", "/store/%2e%2e%5c..%5csecret.txt", "/store/escape",
    "/store/escape/0", "/store/escape/s.zarr/0/0/0/0", "//etc/passwd", "/%2fetc/passwd",
    "/store/a%00b", "/store/0/0/0/1", "/store/0/0/0/2",
])
def test_server_never_serves_files_outside_its_root(tmp_path, running, path):
    (tmp_path / "secret.txt").write_text("secret")
    raw_store(tmp_path / "s.zarr", {"0/0/0/0": b"secret"})  # a store outside the root
    root = raw_store(tmp_path / "store", {"0/0/0/0": b"fine"})
    (root / "escape").symlink_to(tmp_path)  # a link that leads out of the root
    (root / "0/0/0/1").symlink_to(tmp_path / "secret.txt")  # a chunk that leads out
    (root / "0/0/0/2").symlink_to(tmp_path / "s.zarr/0/0/0/0")
    server = running(serve.StoreServer(root, mount="store"))
    assert raw_get(server, "/store/0/0/0/0") == (200, b"fine")
    status, body = raw_get(server, path)
    assert status in (400, 404)
    assert b"secret" not in body


def test_single_store_is_served_under_its_name_without_its_siblings(tmp_path, running):
    make_store(tmp_path / "scroll.zarr", block_volume())
    (tmp_path / "notes.txt").write_text("private")
    server = running(serve.StoreServer(tmp_path / "scroll.zarr", mount="scroll.zarr"))
    assert get(server.base_url + ".zgroup")[0] == 200
    assert server.base_url.endswith("/scroll.zarr/")
    assert raw_get(server, "/notes.txt")[0] == 404
    assert raw_get(server, "/scroll.zarr/../notes.txt")[0] == 404


def test_directory_listing_links_stay_inside(tmp_path, running):
    make_store(tmp_path / "a.zarr", block_volume())
    server = running(serve.StoreServer(tmp_path))
    status, _, body = get(server.url)
    assert status == 200 and b'href="a.zarr/"' in body
    status, _, _ = get(server.url + "a.zarr")  # redirected to a.zarr/ and listed
    assert status == 200


@pytest.mark.parametrize("zarr_format,shard", [(2, None), (3, None), (3, 32)])
def test_zarr_reads_the_same_volume_over_http(tmp_path, running, zarr_format, shard):
    vol = block_volume()
    make_store(tmp_path / "s.zarr", vol, zarr_format, shard=shard)
    server = running(serve.StoreServer(tmp_path))
    group = zarr.open_group(server.url + "s.zarr", mode="r")
    np.testing.assert_array_equal(group["0"][...], vol)
    np.testing.assert_array_equal(group["1"][...], vol[::2, ::2, ::2])
    statuses = {status for _, _, status in server.requests_seen}
    assert 404 in statuses  # the absent chunks were asked for and read as fill value
    if shard:
        assert 206 in statuses  # sharded chunks are read by byte range


def test_server_records_requested_paths(tmp_path, running):
    make_store(tmp_path / "s.zarr", block_volume())
    server = running(serve.StoreServer(tmp_path))
    get(server.url + "s.zarr/1/0/0/1")
    assert ("GET", "/s.zarr/1/0/0/1", 200) in server.requests_seen
    server.clear_requests()
    assert server.requests_seen == []


def test_store_detection_gives_zarr2_and_zarr3_urls(tmp_path):
    make_store(tmp_path / "v2.zarr", block_volume())
    make_store(tmp_path / "sub" / "v3.zarr", block_volume(), zarr_format=3)
    (tmp_path / "tiffs").mkdir()
    stores = serve.detect_stores(tmp_path)
    assert stores == [serve.StoreInfo("sub/v3.zarr", "zarr3"),
                      serve.StoreInfo("v2.zarr", "zarr2")]
    assert serve.detect_stores(tmp_path / "v2.zarr") == [serve.StoreInfo("", "zarr2")]
    assert (serve.source_url("zarr3", "http://127.0.0.1:9000/", "sub/v3.zarr")
            == "zarr3://http://127.0.0.1:9000/sub/v3.zarr/")


def test_viewer_description_uses_ngff_scale_units_and_a_data_contrast(tmp_path):
    vol = np.zeros((16, 32, 32), np.uint16)
    vol[:, :, 16:] = np.arange(1, 16 * 32 * 16 + 1).reshape(16, 32, 16)
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=2)
    group.create_array("0", data=vol, chunks=(16, 16, 16),
                       chunk_key_encoding={"name": "v2", "separator": "/"})
    group.attrs.update(image_attributes([("0", "none")], origin=(100, 0, 8),
                                        voxel_size=7.91))
    info = describe_store(str(tmp_path / "s.zarr"), "zarr2://x/")
    assert info.unit == "m"
    np.testing.assert_allclose(info.scales_xyz, [7.91e-6] * 3)
    np.testing.assert_allclose(info.origin_xyz, [8, 0, 100])
    np.testing.assert_allclose(info.center_xyz, [8 + 16, 16, 100 + 8])
    nonzero = vol[vol > 0]
    assert info.contrast == pytest.approx(tuple(np.percentile(nonzero, [1, 99])))
    assert contrast_window([zarr.zeros((4, 4, 4), dtype="u1")]) == (0.0, 1.0)


# --------------------------------------------------------------------------- credentials

def test_credentials_from_environment_netrc_or_nowhere(tmp_path):
    url = "https://dl.example.org/scrolls/"
    assert serve.credentials(url, USER, {serve.PASSWORD_ENV: PASSWORD}) == (USER, PASSWORD)
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine dl.example.org login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    env = {"NETRC": str(netrc)}
    assert serve.credentials(url, None, env) == (USER, PASSWORD)
    assert serve.credentials(url, USER, env) == (USER, PASSWORD)
    assert serve.credentials("https://other.org/", None, env) is None
    with pytest.raises(ScrollError, match="SCROLL_PASSWORD") as err:
        serve.credentials(url, "someone-else", env, interactive=False)
    assert PASSWORD not in str(err.value)


def test_broken_netrc_error_does_not_quote_the_password(tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine dl.example.org login {USER} password\n{PASSWORD} junk\n")
    netrc.chmod(0o600)
    with pytest.raises(ScrollError) as err:
        serve.credentials("https://dl.example.org/", USER, {"NETRC": str(netrc)},
                          interactive=False)
    assert PASSWORD not in str(err.value) and "line" in str(err.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_netrc_that_others_may_read_is_refused_in_one_line(tmp_path, mode):
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine dl.example.org login {USER} password {PASSWORD}\n")
    netrc.chmod(mode)
    with pytest.raises(ScrollError) as err:
        serve.credentials("https://dl.example.org/", None, {"NETRC": str(netrc)})
    message = str(err.value)
    assert message.startswith(str(netrc)) and f"{mode:04o}" in message
    assert "chmod 600" in message and "\n" not in message and PASSWORD not in message
    netrc.chmod(0o600)  # the fix the message names works
    assert serve.credentials("https://dl.example.org/", None,
                             {"NETRC": str(netrc)}) == (USER, PASSWORD)


def test_proxy_url_with_credentials_in_it_is_refused():
    with pytest.raises(ScrollError, match="--user") as err:
        serve.check_upstream_url(f"https://{USER}:{PASSWORD}@dl.example.org/s.zarr/")
    assert PASSWORD not in str(err.value)
    with pytest.raises(ScrollError, match="http"):
        serve.check_upstream_url("ftp://dl.example.org/s.zarr/")


# --------------------------------------------------------------------------- proxy

def _assert_nothing_secret(headers, body=b""):
    text = str(headers).lower() + body.decode("latin-1").lower()
    for secret in SECRETS:
        assert secret.lower() not in text
    for name in ("www-authenticate", "set-cookie", "x-echo-authorization", "authorization"):
        assert name not in {k.lower() for k in headers.keys()}


@pytest.mark.parametrize("ignore_range", [False, True])
def test_proxy_adds_credentials_and_passes_data_not_secrets(tmp_path, running, ignore_range):
    vol = block_volume()
    make_store(tmp_path / "s.zarr", vol, zarr_format=3, shard=32)
    upstream = running(Upstream(tmp_path, ignore_range=ignore_range))
    assert get(upstream.url + "s.zarr/zarr.json")[0] == 401  # refused without credentials
    proxy = running(serve.ProxyServer(upstream.url + "s.zarr/", (USER, PASSWORD)))

    status, headers, body = get(proxy.url + "zarr.json")
    assert status == 200 and b'"ome"' in body
    _assert_nothing_secret(headers, body)
    shard = (tmp_path / "s.zarr" / "0" / "c" / "0" / "0" / "1").read_bytes()
    status, headers, body = get(proxy.url + "0/c/0/0/1", {"Range": "bytes=-100"})
    assert status == 206 and body == shard[-100:]
    assert headers["Content-Range"] == f"bytes {len(shard) - 100}-{len(shard) - 1}/{len(shard)}"
    _assert_nothing_secret(headers, body)
    status, headers, body = get(proxy.url + "0/c/9/9/9")
    assert status == 404
    _assert_nothing_secret(headers, body)

    group = zarr.open_group(proxy.url, mode="r")  # what a viewer does, through the proxy
    np.testing.assert_array_equal(group["0"][...], vol)
    assert set(upstream.authorizations[1:]) == {"Basic " + TOKEN}


def test_proxy_with_a_wrong_password_answers_502_without_the_password(tmp_path, running,
                                                                      capfd):
    make_store(tmp_path / "s.zarr", block_volume())
    upstream = running(Upstream(tmp_path))
    proxy = running(serve.ProxyServer(upstream.url, (USER, "wrong-" + PASSWORD)))
    status, headers, body = get(proxy.url + "s.zarr/.zgroup")
    assert status == 502
    assert b"refused" in body and b"401" in body
    assert "wrong-" + PASSWORD not in body.decode() and USER not in body.decode()
    _assert_nothing_secret(headers, body)
    get(proxy.url + "s.zarr/.zarray")
    err = capfd.readouterr().err
    assert err.count("upstream refused access") == 1  # warned once, not per request
    assert "SCROLL_PASSWORD" in err and PASSWORD not in err
    assert "Traceback" not in err


def test_proxy_stays_under_the_upstream_path(tmp_path, running):
    make_store(tmp_path / "public" / "s.zarr", block_volume())
    (tmp_path / "private.txt").write_text("other data on the same host")
    upstream = running(Upstream(tmp_path))
    proxy = running(serve.ProxyServer(upstream.url + "public/", (USER, PASSWORD)))
    for path in ["/../private.txt", "/%2e%2e/private.txt", "/s.zarr/..%2f..%2fprivate.txt"]:
        status, body = raw_get(proxy, path)
        assert status == 404 and b"other data" not in body
    assert all("private" not in p for _, p, _ in upstream.requests_seen)


def test_redirects_are_followed_only_under_the_store_url(tmp_path, running):
    make_store(tmp_path / "s.zarr", block_volume())
    make_store(tmp_path / "other.zarr", block_volume())
    upstream = running(Upstream(tmp_path))
    cdn = running(Witness(tmp_path))
    upstream.redirects["/s.zarr/moved/.zgroup"] = cdn.url + "s.zarr/.zgroup"
    upstream.redirects["/s.zarr/sideways/.zgroup"] = "/other.zarr/.zgroup"
    upstream.redirects["/s.zarr/dots/.zgroup"] = "/s.zarr/%2e%2e/other.zarr/.zgroup"
    upstream.redirects["/s.zarr/same/.zgroup"] = "/s.zarr/.zgroup"
    proxy = running(serve.ProxyServer(upstream.url + "s.zarr/", (USER, PASSWORD)))
    for name in ("moved", "sideways", "dots"):
        status, headers, body = get(proxy.url + f"{name}/.zgroup")
        assert status == 502 and b"redirected outside" in body, name
        _assert_nothing_secret(headers, body)
    assert cdn.authorizations == [] and cdn.requests_seen == []  # never contacted
    assert not any(p.startswith("/other.zarr") for _, p, _ in upstream.requests_seen)
    status, _, body = get(proxy.url + "same/.zgroup")  # inside the store: followed
    assert status == 200 and b"zarr_format" in body


def test_remote_store_detection_through_the_proxy(tmp_path, running):
    make_store(tmp_path / "a.zarr", block_volume())
    make_store(tmp_path / "b.zarr", block_volume(), zarr_format=3)
    (tmp_path / "tiffs").mkdir()
    upstream = running(Upstream(tmp_path))
    proxy = running(serve.ProxyServer(upstream.url, (USER, PASSWORD)))
    assert serve.detect_remote_stores(proxy) == [serve.StoreInfo("a.zarr", "zarr2"),
                                                 serve.StoreInfo("b.zarr", "zarr3")]
    single = running(serve.ProxyServer(upstream.url + "b.zarr/", (USER, PASSWORD)))
    assert serve.detect_remote_stores(single) == [serve.StoreInfo("", "zarr3")]


def test_proxy_cache_answers_repeats_without_the_upstream(tmp_path, running):
    make_store(tmp_path / "s.zarr", block_volume())
    upstream = running(Upstream(tmp_path))
    cache = serve.DiskCache(tmp_path / "cache", 10_000_000)
    proxy = running(serve.ProxyServer(upstream.url + "s.zarr/", (USER, PASSWORD),
                                      cache=cache))
    first = [get(proxy.url + p) for p in ("0/0/0/1", "0/0/0/0", ".zattrs")]
    first.append(get(proxy.url + "0/0/0/1", {"Range": "bytes=8-15"}))  # whole file cached
    asked = len(upstream.requests_seen)
    again = [get(proxy.url + p) for p in ("0/0/0/1", "0/0/0/0", ".zattrs")]
    again.append(get(proxy.url + "0/0/0/1", {"Range": "bytes=8-15"}))
    assert len(upstream.requests_seen) == asked  # all four from the cache
    assert [(s, b) for s, _, b in again] == [(s, b) for s, _, b in first]
    assert [s for s, _, _ in again] == [200, 404, 200, 206]
    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert len([p for p in files if p.suffix in (".meta", ".missing")]) == 3
    for path in files:
        data = path.read_bytes()
        assert all(s.encode() not in data for s in SECRETS)


def _upstream_gets(upstream, path):
    return [r for r in upstream.requests_seen if r[0] == "GET" and r[1] == path]


def test_cached_404_expires_after_its_ttl(tmp_path, running):
    make_store(tmp_path / "s.zarr", block_volume())
    upstream = running(Upstream(tmp_path))
    cache = serve.DiskCache(tmp_path / "cache", 10_000_000)
    proxy = running(serve.ProxyServer(upstream.url + "s.zarr/", (USER, PASSWORD),
                                      cache=cache, cache_404_ttl=3600))
    assert get(proxy.url + "0/9/9/9")[0] == 404
    assert get(proxy.url + "0/9/9/9")[0] == 404
    assert len(_upstream_gets(upstream, "/s.zarr/0/9/9/9")) == 1  # the second from cache
    (tmp_path / "s.zarr/0/9/9").mkdir(parents=True)
    (tmp_path / "s.zarr/0/9/9/9").write_bytes(b"written later")  # the chunk appears
    short = running(serve.ProxyServer(upstream.url + "s.zarr/", (USER, PASSWORD),
                                      cache=cache, cache_404_ttl=0))
    time.sleep(0.01)
    status, _, body = get(short.url + "0/9/9/9")
    assert (status, body) == (200, b"written later")  # the expired 404 was asked again


def test_cache_keys_hold_the_full_upstream_url(tmp_path, running):
    raw_store(tmp_path / "a.zarr", {"0/0/0/0": b"from a"})
    raw_store(tmp_path / "b.zarr", {"0/0/0/0": b"from b"})
    upstream = running(Upstream(tmp_path))
    cache = serve.DiskCache(tmp_path / "cache", 10_000_000)  # one cache directory
    a = running(serve.ProxyServer(upstream.url + "a.zarr/", (USER, PASSWORD), cache=cache))
    b = running(serve.ProxyServer(upstream.url + "b.zarr/", (USER, PASSWORD), cache=cache))
    assert get(a.url + "0/0/0/0")[2] == b"from a"
    assert get(b.url + "0/0/0/0")[2] == b"from b"
    assert get(a.url + "0/0/0/0")[2] == b"from a"


def test_proxy_answers_carry_a_neutral_content_type(tmp_path, running):
    raw_store(tmp_path / "s.zarr", {"0/0/0/0": b"<script>alert(1)</script>"})
    upstream = running(Upstream(tmp_path))
    upstream.content_type = "text/html"  # what a hostile or careless upstream says
    proxy = running(serve.ProxyServer(upstream.url + "s.zarr/", (USER, PASSWORD)))
    for path, expected in [("0/0/0/0", "application/octet-stream"),
                           (".zgroup", "application/json")]:
        status, headers, _ = get(proxy.url + path)
        assert status == 200 and headers["Content-Type"] == expected
        assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, _ = get(proxy.url + "0/9/9/9")
    assert status == 404 and headers["Content-Type"].startswith("text/plain")
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_proxy_passes_only_store_keys(tmp_path, running):
    raw_store(tmp_path / "s.zarr", {"0/0/0/0": b"data", "notes.txt": b"private"})
    upstream = running(Upstream(tmp_path))
    proxy = running(serve.ProxyServer(upstream.url + "s.zarr/", (USER, PASSWORD)))
    for path in ("notes.txt", ".scrollzarr_journal/params.json", "0/0/0/0.partial", ""):
        status, headers, _ = get(proxy.url + path)
        assert status == 404 and "Access-Control-Allow-Origin" not in headers, path
    assert [p for _, p, _ in upstream.requests_seen] == []  # nothing asked upstream


def test_upstream_short_body_gives_502_and_the_proxy_keeps_serving(tmp_path, running,
                                                                  capfd):
    raw_store(tmp_path / "s.zarr", {"0/0/0/0": b"data"})
    upstream = running(Upstream(tmp_path))
    upstream.truncated.add("/s.zarr/0/0/0/1")
    proxy = running(serve.ProxyServer(upstream.url + "s.zarr/", (USER, PASSWORD)))
    status, headers, body = get(proxy.url + "0/0/0/1")
    assert status == 502 and b"no complete answer" in body
    _assert_nothing_secret(headers, body)
    assert get(proxy.url + "0/0/0/0")[:3:2] == (200, b"data")
    assert "Traceback" not in capfd.readouterr().err


def test_upstream_busy_or_failing_is_asked_again_with_the_remote_retry_policy(
        tmp_path, running, capfd):
    raw_store(tmp_path / "s.zarr", {"0/0/0/0": b"data", "0/0/0/1": b"more"})
    upstream = running(Upstream(tmp_path))
    upstream.busy["/s.zarr/0/0/0/0"] = 2  # two 503s, then the chunk
    upstream.busy["/s.zarr/0/0/0/1"] = 99  # never answers
    upstream.truncated.add("/s.zarr/0/0/0/2")
    proxy = running(serve.ProxyServer(upstream.url + "s.zarr/", (USER, PASSWORD),
                                      attempts=3))
    assert get(proxy.url + "0/0/0/0")[:3:2] == (200, b"data")
    assert len(_upstream_gets(upstream, "/s.zarr/0/0/0/0")) == 3
    status, _, body = get(proxy.url + "0/0/0/1")
    assert status == 502 and b"HTTP 503 (after 3 attempts)" in body
    assert len(_upstream_gets(upstream, "/s.zarr/0/0/0/1")) == 3
    status, _, body = get(proxy.url + "0/0/0/2")  # a body cut short: asked again too
    assert status == 502 and b"no complete answer" in body and b"after 3" in body
    wrong = running(serve.ProxyServer(upstream.url + "s.zarr/", (USER, "wrong")))
    before = len(upstream.requests_seen)
    assert get(wrong.url + "0/0/0/0")[0] == 502
    assert len(upstream.requests_seen) == before + 1  # a refusal is final at once
    assert "Traceback" not in capfd.readouterr().err


def test_upstream_ignoring_range_is_downloaded_once(tmp_path, running):
    data = bytes(range(256)) * 64
    raw_store(tmp_path / "s.zarr", {"0/c/0/0/0": data}, marker="zarr.json")
    upstream = running(Upstream(tmp_path, ignore_range=True))
    proxy = running(serve.ProxyServer(upstream.url + "s.zarr/", (USER, PASSWORD)))
    ranges = [(0, 99), (1000, 1999), (16000, 16383), (5, 5)]
    for start, stop in ranges:
        status, headers, body = get(proxy.url + "0/c/0/0/0",
                                    {"Range": f"bytes={start}-{stop}"})
        assert (status, body) == (206, data[start:stop + 1])
        assert headers["Content-Range"] == f"bytes {start}-{stop}/{len(data)}"
    with __import__("concurrent.futures").futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: get(proxy.url + "0/c/0/0/0",
                                              {"Range": f"bytes={i}-{i + 9}"}), range(16)))
    assert all(body == data[i:i + 10] for i, (_, _, body) in enumerate(answers))
    assert len(_upstream_gets(upstream, "/s.zarr/0/c/0/0/0")) == 1


def test_a_whole_file_range_answered_200_is_not_taken_for_ignoring_range(tmp_path,
                                                                         running):
    data = bytes(range(256)) * 64
    raw_store(tmp_path / "s.zarr", {"0/c/0/0/0": data}, marker="zarr.json")
    upstream = running(Upstream(tmp_path))
    proxy = running(serve.ProxyServer(upstream.url + "s.zarr/", (USER, PASSWORD)))
    assert get(proxy.url + "0/c/0/0/0", {"Range": "bytes=0-"})[2] == data  # 200 upstream
    assert not proxy.ignores_range
    status, _, body = get(proxy.url + "0/c/0/0/0", {"Range": "bytes=10-19"})
    assert (status, body) == (206, data[10:20])
    assert ("GET", "/s.zarr/0/c/0/0/0", 206) in upstream.requests_seen  # asked as a range


def test_disk_cache_stays_within_its_budget_and_evicts_least_recent(tmp_path, running):
    # the proxy's answers in the remote reader's cache: 2000-byte chunks, each accounted
    # with its status line and the cache's per-file overhead
    raw_store(tmp_path / "s.zarr", {f"0/0/0/{i}": bytes([i]) * 2000 for i in range(7)})
    upstream = running(Upstream(tmp_path))
    entry = 2000 + 200 + 4096  # body, JSON status line (~120 bytes), overhead
    cache = serve.DiskCache(tmp_path / "c", 5 * entry)  # five entries fit, six do not
    proxy = running(serve.ProxyServer(upstream.url + "s.zarr/", (USER, PASSWORD),
                                      cache=cache))
    place = next(p for p in (tmp_path / "c").iterdir() if p.is_dir())

    def entries():
        return {p: p.stat().st_size for p in place.rglob("*.meta")}

    seen: set = set()
    for i in range(5):
        assert get(proxy.url + f"0/0/0/{i}")[2] == bytes([i]) * 2000
        (path,) = set(entries()) - seen
        seen.add(path)
        os.utime(path, (1000 + i, time.time()))  # distinct, ordered last uses
    assert len(entries()) == 5
    assert get(proxy.url + "0/0/0/0")[0] == 200  # from the cache: 0 becomes the newest
    asked = len(upstream.requests_seen)
    assert get(proxy.url + "0/0/0/5")[0] == 200  # the sixth: evict
    on_disk = sum(entries().values()) + 4096 * len(entries())
    assert on_disk <= cache.max_bytes and cache.total_bytes <= cache.max_bytes
    for i in (0, 5):  # the newest two are still answered from the cache
        assert get(proxy.url + f"0/0/0/{i}")[2] == bytes([i]) * 2000
    assert len(upstream.requests_seen) == asked + 1
    assert get(proxy.url + "0/0/0/1")[0] == 200  # the least recently used went first
    assert len(upstream.requests_seen) == asked + 2
    reopened = serve.DiskCache(tmp_path / "c", 2 * entry)  # a smaller budget on restart
    assert sum(entries().values()) + 4096 * len(entries()) <= 2 * entry
    assert reopened.total_bytes <= 2 * entry


# --------------------------------------------------------------------------- the script

def start_script(*args, env=None):
    """Start serve_ome.py; return (process, list of the URL lines it printed)."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "serve_ome.py"), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    return proc


def read_urls(proc, count: int, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        while len(lines) < count:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"serve_ome.py ended early: {proc.stderr.read()}")
            lines.append(line.strip())
    finally:
        timer.cancel()
    return lines


def stop_script(proc) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def test_script_prints_one_url_per_store_and_serves_until_ctrl_c(tmp_path):
    make_store(tmp_path / "v2.zarr", block_volume())
    make_store(tmp_path / "v3.zarr", block_volume(), zarr_format=3, shard=32)
    proc = start_script(tmp_path, "--port", 0)
    try:
        urls = read_urls(proc, 2)
        assert urls[0].startswith("zarr2://http://127.0.0.1:") and urls[0].endswith("/v2.zarr/")
        assert urls[1].startswith("zarr3://http://127.0.0.1:") and urls[1].endswith("/v3.zarr/")
        http_url = urls[1].removeprefix("zarr3://")
        status, headers, body = get(http_url + "zarr.json")
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    finally:
        code, _, err = stop_script(proc)
    assert code == 0, err


def test_script_proxy_cache_survives_a_restart_in_the_default_place(tmp_path, running):
    vol = block_volume()
    make_store(tmp_path / "s.zarr", vol)
    upstream = running(Upstream(tmp_path))
    env = {serve.PASSWORD_ENV: PASSWORD, "HOME": str(tmp_path),
           "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    chunk_gets = []
    for _ in range(2):  # the second run finds the first run's chunks on disk
        proc = start_script("--proxy", upstream.url + "s.zarr", "--user", USER,
                            "--port", 0, "--cache_gb", 0.01, "--quiet", env=env)
        try:
            (url,) = read_urls(proc, 1)
            group = zarr.open_group(url.removeprefix("zarr2://"), mode="r")
            np.testing.assert_array_equal(group["0"][...], vol)
        finally:
            code, _, err = stop_script(proc)
        assert code == 0, err
        chunk_gets.append(sum(1 for m, p, s in upstream.requests_seen
                              if m == "GET" and p.startswith("/s.zarr/0/") and s == 200))
    assert chunk_gets[0] > 0 and chunk_gets[1] == chunk_gets[0]  # none asked again
    (label,) = (tmp_path / "xdg" / "scrollzarr" / "proxy").glob("*/location")
    assert label.read_text().startswith(upstream.url + "s.zarr/")


def test_script_single_store_url_names_the_store(tmp_path):
    make_store(tmp_path / "scroll.zarr", block_volume())
    proc = start_script(tmp_path / "scroll.zarr", "--port", 0, "--quiet")
    try:
        (url,) = read_urls(proc, 1)
        assert url.startswith("zarr2://http://127.0.0.1:") and url.endswith("/scroll.zarr/")
        assert get(url.removeprefix("zarr2://") + "0/.zarray")[0] == 200
    finally:
        code, _, err = stop_script(proc)
    assert code == 0 and err == ""


def test_script_proxy_takes_the_password_from_the_environment(tmp_path, running):
    vol = block_volume()
    make_store(tmp_path / "s.zarr", vol)
    upstream = running(Upstream(tmp_path))
    env = {serve.PASSWORD_ENV: PASSWORD, "HOME": str(tmp_path)}
    proc = start_script("--proxy", upstream.url + "s.zarr", "--user", USER, "--port", 0,
                        "--cache_gb", 0.01, "--cache_dir", tmp_path / "cache", env=env)
    try:
        (url,) = read_urls(proc, 1)
        assert url.startswith("zarr2://http://127.0.0.1:") and PASSWORD not in url
        group = zarr.open_group(url.removeprefix("zarr2://"), mode="r")
        np.testing.assert_array_equal(group["0"][...], vol)
    finally:
        code, out, err = stop_script(proc)
    assert code == 0, err
    assert PASSWORD not in out + err and TOKEN not in out + err
    assert any((tmp_path / "cache").iterdir())


def test_script_proxy_with_a_refused_password_stops_at_once(tmp_path, running):
    make_store(tmp_path / "s.zarr", block_volume((4, 4, 4)))
    upstream = running(Upstream(tmp_path))
    env = {serve.PASSWORD_ENV: "wrong-" + PASSWORD, "HOME": str(tmp_path)}
    proc = run_script("serve_ome.py", "--proxy", upstream.url + "s.zarr/", "--user", USER,
                      "--port", 0, env=env, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: --proxy ") and proc.stderr.count("\n") == 1
    assert "refused access (user scrollreader, HTTP 401)" in proc.stderr
    assert PASSWORD not in proc.stderr + proc.stdout


def _busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("case,args,code,message", [
    ("no_store", ["{tmp}"], 1, "no zarr store found"),
    ("missing", ["{tmp}/nothere"], 1, "not a directory"),
    ("userinfo", ["--proxy", f"https://{USER}:{PASSWORD}@127.0.0.1/s.zarr"], 1, "--user"),
    ("both", ["{tmp}", "--proxy", "http://127.0.0.1/"], 2, "not allowed"),
    ("neither", [], 2, "required"),
    ("user_without_proxy", ["{tmp}/s.zarr", "--user", USER], 1, "need --proxy"),
    ("no_password", ["--proxy", "http://127.0.0.1:9/", "--user", USER], 1, "SCROLL_PASSWORD"),
    ("busy_port", ["{tmp}/s.zarr", "--port", "{busy}"], 1, "cannot listen"),
    ("port_range", ["{tmp}/s.zarr", "--port", "70000"], 2, "--port: must be at most 65535"),
    ("idle_nan", ["{tmp}/s.zarr", "--idle_timeout", "nan"], 2, "--idle_timeout/--idle-timeout: "
                                                                "expected a finite number"),
    ("idle_zero", ["{tmp}/s.zarr", "--idle_timeout", "0"], 2, "--idle-timeout: must be "
                                                              "greater than 0"),
    ("concurrent_zero", ["{tmp}/s.zarr", "--max_concurrent", "0"], 2, "--max-concurrent: "
                                                                      "must be at least 1"),
    ("cache_inf", ["--proxy", "http://127.0.0.1:9/", "--cache_gb", "inf"], 2, "--cache_gb"),
    ("ttl_negative", ["--proxy", "http://127.0.0.1:9/", "--cache_404_ttl", "-1"], 2,
     "--cache-404-ttl: must be at least 0"),
    ("ttl_without_proxy", ["{tmp}/s.zarr", "--cache_404_ttl", "10"], 1, "need --proxy"),
])
def test_script_reports_bad_input_in_one_line(tmp_path, case, args, code, message):
    (tmp_path / "empty").mkdir()
    make_store(tmp_path / "s.zarr", block_volume((4, 4, 4)))
    sock = _busy_port()
    try:
        busy = sock.getsockname()[1]
        argv = [a.format(tmp=tmp_path / "empty" if case == "no_store" else tmp_path,
                         busy=busy) for a in args]
        env = {"HOME": str(tmp_path)}
        env.pop(serve.PASSWORD_ENV, None)
        proc = subprocess.run([sys.executable, str(ROOT / "serve_ome.py"), *argv],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                              env={k: v for k, v in {**os.environ, **env}.items()
                                   if k != serve.PASSWORD_ENV})
    finally:
        sock.close()
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert PASSWORD not in proc.stderr + proc.stdout
    if code == 1:
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1


def test_script_warns_when_listening_beyond_this_machine(tmp_path):
    make_store(tmp_path / "s.zarr", block_volume((4, 4, 4)))
    proc = start_script(tmp_path / "s.zarr", "--port", 0, "--bind", "0.0.0.0")
    try:
        read_urls(proc, 1)
        time.sleep(0.2)
    finally:
        code, _, err = stop_script(proc)
    assert code == 0
    assert "warning: listening on 0.0.0.0" in err
