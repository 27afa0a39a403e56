"""Serve OME-Zarr stores to Neuroglancer, locally or through an authenticating proxy.

    python serve_ome.py STORE_OR_DIR [--port 9000] [--neuroglancer]
    SCROLL_PASSWORD=... python serve_ome.py --proxy https://HOST/PATH/ --user NAME
                                            [--cache_gb 20] [--neuroglancer]

Prints the Neuroglancer source URL of every store (``zarr2://...`` or ``zarr3://...``),
and with --neuroglancer the URL of a local viewer with the stores loaded; then serves
until Ctrl-C. Only zarr metadata and chunk files inside stores are served (never
dotfiles, the resume journal or other files); --max_concurrent bounds the requests
served at once (more get 503), --idle_timeout closes idle connections. See README.md,
"Viewing in Neuroglancer".
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from .. import cli
from ..errors import ScrollError
from .. import serve
from ..remote.options import default_cache_dir

LOCAL = "127.0.0.1"


def build_parser() -> argparse.ArgumentParser:
    p = cli.Parser(
        prog="serve_ome.py",
        description="Serve zarr stores over HTTP with CORS and byte ranges for "
                    "Neuroglancer, or proxy a password-protected remote store.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("store", nargs="?", default=None, metavar="STORE_OR_DIR",
                      help="a zarr store (scroll.zarr) or a directory of stores to serve")
    p.add_argument("--port", type=cli.number(int, minimum=0, maximum=65535), default=9000,
                   help="port to listen on (default 9000; 0 = any free port)")
    p.add_argument("--bind", default=LOCAL,
                   help="address to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--neuroglancer", action="store_true",
                   help="also start a local Neuroglancer viewer with the stores loaded")
    what.add_argument("--proxy", metavar="URL", default=None,
                      help="serve this remote http(s) store or directory of stores "
                           "instead of a local one, adding the credentials")
    p.add_argument("--user", default=None,
                   help=f"--proxy: user name; the password comes from ${serve.PASSWORD_ENV}"
                        ", ~/.netrc or a prompt, never from the command line")
    p.add_argument("--idle_timeout", type=cli.number(float, above=0),
                   default=serve.IDLE_TIMEOUT,
                   help="close a connection idle (or sending its headers) for this many "
                        f"seconds (default {serve.IDLE_TIMEOUT:g})")
    p.add_argument("--max_concurrent", type=cli.number(int, minimum=1, maximum=100_000),
                   default=serve.MAX_CONCURRENT,
                   help="requests served at once; more get 503 and are retried by the "
                        f"viewer (default {serve.MAX_CONCURRENT})")
    p.add_argument("--cache_gb", type=cli.number(float, minimum=0), default=0.0,
                   help="--proxy: keep fetched data in an on-disk cache of at most this "
                        "many GiB (default 0 = no cache)")
    p.add_argument("--cache_dir", default=None,
                   help="--proxy: cache directory (default ~/.cache/scrollzarr/proxy); "
                        "each upstream gets its own place in it")
    p.add_argument("--cache_404_ttl", type=cli.number(float, minimum=0), default=None,
                   help="--proxy --cache_gb: seconds a cached 'not found upstream' is "
                        f"believed before asking again (default {serve.CACHE_404_TTL:g})")
    cli.add_common_flags(p)
    return p


def main(args: argparse.Namespace) -> None:
    if args.proxy is None and (args.user or args.cache_gb or args.cache_dir
                               or args.cache_404_ttl is not None):
        raise ScrollError("--user, --cache_gb, --cache_dir and --cache_404_ttl need "
                          "--proxy")
    address = (args.bind, args.port)
    limits = dict(verbose=args.debug, idle_timeout=args.idle_timeout,
                  max_concurrent=args.max_concurrent)
    if args.proxy is None:
        server, stores, locations, names = _local(args.store, address, limits)
    else:
        server, stores, locations, names = _proxy(args, address, limits)
    if args.bind not in (LOCAL, "localhost", "::1"):
        what = ("the remote data, with your credentials," if args.proxy else "these stores")
        print(f"warning: listening on {args.bind}: anyone who can reach this machine on "
              f"port {server.server_address[1]} can read {what} without a password",
              file=sys.stderr)

    server.start()
    try:
        urls = [serve.source_url(s.scheme, server.base_url, s.path) for s in stores]
        for url in urls:
            print(url, flush=True)
        if not urls:
            cli.note(f"no zarr store found at the upstream; its URL is {server.base_url}"
                     " (append the store's path, e.g. zarr2://" + server.base_url
                     + "scroll.zarr/)", args.quiet)
        if args.neuroglancer and stores:
            from ..serve import viewer as ng
            layers = [ng.describe_store(loc, url, name=name)
                      for url, loc, name in zip(urls, locations, names)]
            for note in (n for layer in layers for n in layer.notes):
                cli.note(note, args.quiet)
            view = ng.start_viewer(args.bind)
            ng.show_layers(view, layers)
            print(f"viewer URL: {view.get_viewer_url()}", flush=True)
        elif urls:
            cli.note("paste the source URL into Neuroglancer's layer source box "
                     "(or run with --neuroglancer)", args.quiet)
        cli.note("serving; Ctrl-C stops", args.quiet)
        threading.Event().wait()
    except KeyboardInterrupt:
        cli.note("stopped", args.quiet)
    finally:
        server.stop()


def _name(url: str) -> str:
    """A layer name for a store at ``url``: its last path component (scroll.zarr)."""
    return url.rstrip("/").rsplit("/", 1)[-1] or "volume"


def _local(path: str, address, limits: dict):
    """(server, stores, where the viewer reads each store, layer names)."""
    root = Path(path)
    if not root.is_dir():
        raise ScrollError(f"{path}: not a directory (expected a zarr store or a "
                          "directory of stores)")
    stores = serve.detect_stores(root)
    if not stores:
        raise ScrollError(f"{path}: no zarr store found (looked for .zgroup, .zarray, "
                          f"zarr.json up to {serve.SEARCH_DEPTH} directories down)")
    root = root.resolve()
    if stores[0].path == "":
        # One store: serve just it, under its own name (siblings stay private).
        server = serve.StoreServer(root, address, mount=root.name, **limits)
        return server, stores, [str(root)], [root.name]
    server = serve.StoreServer(root, address, **limits)
    # layer names are the stores' paths: unique, unlike a/scroll.zarr and b/scroll.zarr
    return server, stores, [str(root / s.path) for s in stores], [s.path for s in stores]


def _proxy(args: argparse.Namespace, address, limits: dict):
    upstream = serve.check_upstream_url(args.proxy)
    auth = serve.credentials(upstream, args.user)
    if auth is None:
        cli.note("no --user and no ~/.netrc entry for this host: proxying without "
                 "credentials", args.quiet)
    cache = None
    if args.cache_gb > 0:
        directory = Path(args.cache_dir) if args.cache_dir else default_cache_dir("proxy")
        cache = serve.DiskCache(directory, int(args.cache_gb * 2**30))
        cli.note(f"cache: {directory} (at most {args.cache_gb:g} GiB)", args.quiet)
    ttl = serve.CACHE_404_TTL if args.cache_404_ttl is None else args.cache_404_ttl
    server = serve.ProxyServer(upstream, auth, address, cache=cache, cache_404_ttl=ttl,
                               **limits)
    try:
        stores = serve.detect_remote_stores(server)
    except serve.UpstreamError as exc:
        server.stop()
        raise ScrollError(f"--proxy {upstream}: {exc.detail}") from None
    except BaseException:
        server.stop()
        raise
    # the viewer reads metadata and a contrast sample through the proxy, like a browser
    locations = [server.base_url + s.path for s in stores]
    return server, stores, locations, [s.path or _name(upstream) for s in stores]


def entry(argv: list[str] | None = None) -> int:
    """Run the program on ``argv`` (default: the command line); return the exit code."""
    return cli.run(main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(entry())
