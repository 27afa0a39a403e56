"""Serving is an allowlist: a directory holding a store beside a user's private files
(dotfiles, keys, the resume journal, half-written chunks, plain files, links and FIFOs)
shows the store's metadata and chunks and nothing else, in every way of asking."""

from __future__ import annotations

import os
import urllib.parse

import pytest

from scrollzarr import serve
from scrollzarr.journal import DIRNAME as JOURNAL
from test_serve import block_volume, get, make_store, raw_get

SECRET = b"TOP-SECRET-CONTENT"


@pytest.fixture
def home(tmp_path):
    """A home-like directory: a v2 and a sharded v3 store among private files."""
    make_store(tmp_path / "scroll.zarr", block_volume())
    make_store(tmp_path / "deep" / "v3.zarr", block_volume(), zarr_format=3, shard=32)
    private = {
        ".netrc": SECRET, ".ssh/id_rsa": SECRET, "notes.txt": SECRET, "0": SECRET,
        "deep/readme.md": SECRET,
        f"scroll.zarr/{JOURNAL}/params.json": SECRET,
        f"scroll.zarr/{JOURNAL}/done-0": SECRET,
        "scroll.zarr/0/0/0/5.partial": SECRET, "scroll.zarr/0/.0.tmp": SECRET,
        "scroll.zarr/.hidden": SECRET, "scroll.zarr/notes.txt": SECRET,
        "scroll.zarr/0/README": SECRET, "deep/v3.zarr/c.partial": SECRET,
    }
    for name, data in private.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    (tmp_path / "secret-dir").mkdir()
    (tmp_path / "secret-dir" / "key").write_bytes(SECRET)
    # links from inside the store: out of it, and to a private file inside it
    (tmp_path / "scroll.zarr" / "1" / "9").mkdir(parents=True)
    (tmp_path / "scroll.zarr" / "1" / "9" / "9").symlink_to(tmp_path / ".ssh")
    (tmp_path / "scroll.zarr" / "1" / "9" / "8").symlink_to(tmp_path / ".netrc")
    (tmp_path / "scroll.zarr" / "1" / "9" / "7").symlink_to(
        tmp_path / "scroll.zarr" / JOURNAL / "params.json")
    (tmp_path / "scroll.zarr" / "1" / "9" / "5").symlink_to(  # into a sibling store
        tmp_path / "deep" / "v3.zarr" / "zarr.json")
    os.mkfifo(tmp_path / "scroll.zarr" / "0" / "fifo")
    os.mkfifo(tmp_path / "scroll.zarr" / "1" / "9" / "6")  # a FIFO named like a chunk
    return tmp_path, private


def _all_paths(root):
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            yield os.path.relpath(os.path.join(dirpath, name), root)


def test_only_the_store_is_reachable(home, running):
    root, private = home
    server = running(serve.StoreServer(root))
    # every path on disk, asked plainly, encoded and with a trailing slash
    for rel in sorted(set(_all_paths(root)) | set(private)):
        for path in ("/" + rel, "/" + urllib.parse.quote(rel, safe=""), "/" + rel + "/",
                     "/scroll.zarr/../" + rel, "/deep/v3.zarr/../../" + rel):
            status, body = raw_get(server, path)
            assert SECRET not in body, path
            if any(part.startswith(".") and part not in serve.stores.METADATA_NAMES
                   for part in rel.split("/")) or rel in private:
                assert status in (400, 404), (path, status)
    # what a viewer needs is there
    assert get(server.url + "scroll.zarr/.zattrs")[0] == 200
    assert get(server.url + "scroll.zarr/0/.zarray")[0] == 200
    assert get(server.url + "scroll.zarr/0/0/0/1")[0] == 200
    assert get(server.url + "deep/v3.zarr/zarr.json")[0] == 200
    assert get(server.url + "deep/v3.zarr/0/c/0/0/0", {"Range": "bytes=-16"})[0] == 206


def test_listings_show_only_stores_and_store_keys(home, running):
    root, _ = home
    server = running(serve.StoreServer(root))
    status, _, body = get(server.url)
    assert status == 200
    assert b'href="deep/v3.zarr/"' in body and b'href="scroll.zarr/"' in body
    for hidden in (b"netrc", b"ssh", b"notes", b"secret-dir", b"readme", b'"0"'):
        assert hidden not in body
    status, headers, body = get(server.url + "scroll.zarr/")
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    assert b".zattrs" in body and b'href="0/"' in body
    for hidden in (JOURNAL.encode(), b"notes", b"hidden"):
        assert hidden not in body
    status, _, body = get(server.url + "scroll.zarr/0/0/0/")
    assert b"partial" not in body and b"fifo" not in body
    assert get(server.url + "secret-dir/")[0] == 404
    assert get(server.url + "deep/")[0] == 200  # leads to a store: lists just it


def test_refused_paths_get_no_cors_and_served_ones_do(home, running):
    root, _ = home
    server = running(serve.StoreServer(root))
    for path in (".netrc", "notes.txt", f"scroll.zarr/{JOURNAL}/params.json",
                 "scroll.zarr/notes.txt", "scroll.zarr/1/9/8", "scroll.zarr/1/9/7",
                 "scroll.zarr/1/9/5"):
        status, headers, _ = get(server.url + path, {"Origin": "http://evil.example"})
        assert status == 404 and "Access-Control-Allow-Origin" not in headers, path
        status, headers, _ = get(server.url + path, method="OPTIONS", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
        assert status == 404 and "Access-Control-Allow-Origin" not in headers, path
    for path in ("scroll.zarr/.zattrs", "scroll.zarr/0/0/0/1", "scroll.zarr/0/7/7/7"):
        _, headers, _ = get(server.url + path)
        assert headers["Access-Control-Allow-Origin"] == "*", path


def test_fifo_named_like_a_chunk_is_refused_not_waited_on(home, running):
    root, _ = home
    server = running(serve.StoreServer(root))
    assert raw_get(server, "/scroll.zarr/1/9/6")[0] == 404  # opening it would block
