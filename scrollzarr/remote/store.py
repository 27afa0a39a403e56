"""Open a store wherever it lives: a local path, an ``http(s)://`` URL or an ``s3://`` URL.

Remote stores are zarr's :class:`~zarr.storage.FsspecStore` over fsspec's HTTP
filesystem or s3fs, behind :class:`~.cached.CachedStore` (disk cache, retries, one-line
errors). Both libraries are set to one attempt per request (the wrapper retries) and to
plain GETs (s3fs would otherwise send a HEAD before every whole-object read).

HTTP: basic auth with ``--user`` and the password from ``SCROLL_PASSWORD`` or ~/.netrc
(:func:`.auth.credentials`), sent as a per-request ``Authorization`` header: aiohttp
drops that header when a redirect leads to another origin (a CDN), whereas a
session-wide ``auth=`` would be sent there again (checked with aiohttp 3.14).

S3: the endpoint is ``AWS_ENDPOINT_URL`` when set (else AWS); credentials come from the
standard environment variables, the shared files or a profile (``AWS_PROFILE``); with
none the requests are unsigned (a public bucket). The cloud instance-metadata service is
never asked: ``AWS_EC2_METADATA_DISABLED=true`` is set for this process before botocore
looks for credentials (the only switch botocore has; it is read from the environment).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import urllib.parse
import weakref

from zarr.abc.store import Store
from zarr.core.sync import _get_loop as _zarr_loop
from zarr.storage import FsspecStore, LocalStore

from ..errors import ScrollError
from .auth import _without_userinfo, basic_auth_header, credentials
from .cached import CachedStore
from .diskcache import DiskCache
from .location import local_path
from .options import RemoteOptions

#: Seconds to wait for a connection, and for each read of an answer.
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0

_caches: dict[tuple[str, int], DiskCache] = {}


def open_store(location: str | os.PathLike, options: RemoteOptions | None = None) -> Store:
    """A read-only zarr store of ``location``: a local path (or ``file://`` URL) as a
    :class:`~zarr.storage.LocalStore`; an ``http(s)://`` or ``s3://`` URL as a
    :class:`~.cached.CachedStore` (``options``: credentials and cache; None = defaults).

    Raises :class:`ScrollError` naming the location for an unknown scheme, a URL with a
    password in it, a missing local directory or an unusable cache directory. Nothing is
    fetched here: errors of the server appear at the first read.
    """
    options = options or RemoteOptions()
    text = str(location)
    parts = urllib.parse.urlsplit(text)
    path = local_path(location)
    if path is not None:
        return LocalStore(path, read_only=True)
    if parts.scheme not in ("http", "https", "s3"):
        raise ScrollError(f"{_without_userinfo(text)}: unsupported location (expected a "
                          "local path or an http://, https:// or s3:// URL)")
    if parts.username is not None or parts.password is not None:
        raise ScrollError(f"{_without_userinfo(text)}: remove the user:password@ part; "
                          "pass --user NAME and the password in SCROLL_PASSWORD or ~/.netrc")
    if parts.query or parts.fragment or not parts.netloc:
        raise ScrollError(f"{text}: expected SCHEME://HOST/PATH without ?query or #fragment")
    url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"),
                                   "", ""))
    if parts.scheme == "s3":
        fs, path, cache_key = _s3(url)
    else:
        fs, path, cache_key = _http(url, options)
    inner = FsspecStore(fs, path=path, read_only=True)
    cache = _cache(options) if options.cache_gb > 0 else None
    store = CachedStore(inner, url, cache, options.cache_ttl, options.attempts, cache_key)
    _close_with(store, fs)
    return store


def _http(url: str, options: RemoteOptions):
    import aiohttp
    from fsspec.implementations.http import HTTPFileSystem

    client_kwargs = {"timeout": aiohttp.ClientTimeout(
        total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT)}
    found = credentials(url, options.user, interactive=options.interactive)
    request_kwargs = {}
    if found is not None:
        request_kwargs["headers"] = {"Authorization": basic_auth_header(*found)}
    fs = HTTPFileSystem(asynchronous=True, skip_instance_cache=True,
                        client_kwargs=client_kwargs, **request_kwargs)
    # the user is part of the cache key: another account may see other data
    key = url if found is None else f"{url} (user {found[0]})"
    return fs, url, key


def _s3(url: str):
    import botocore.session
    import s3fs

    # never ask the instance-metadata service (a 1 s timeout, twice, off the cloud, and a
    # surprise on it): botocore reads this switch from the environment only
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    anonymous = botocore.session.get_session().get_credentials() is None
    config = {"retries": {"max_attempts": 1, "mode": "standard"},
              "connect_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT}
    fs = s3fs.S3FileSystem(anon=anonymous, asynchronous=True, skip_instance_cache=True,
                           max_concurrency=1, endpoint_url=endpoint or None,
                           config_kwargs=config)
    fs.retries = 1  # s3fs's own retry loop: one attempt, retry.with_retries decides
    key = f"{url} (endpoint {endpoint or 'aws'})"
    return fs, url[len("s3://"):], key


def _cache(options: RemoteOptions) -> DiskCache:
    """One DiskCache per (root, bound) in a process: its running total is then shared by
    every store opened with the same options."""
    root = options.cache_root.expanduser().resolve()
    key = (str(root), options.cache_bytes)
    if key not in _caches:
        _caches[key] = DiskCache(root, options.cache_bytes)
    return _caches[key]


def _close_with(store: Store, fs) -> None:
    """Close ``fs``'s HTTP session once ``store`` is garbage or the interpreter exits
    (aiohttp otherwise prints "Unclosed client session" after our output)."""
    _finalizers[:] = [f for f in _finalizers if f.alive]
    finalizer = weakref.finalize(store, _close_session, fs)
    finalizer.atexit = False  # _close_all runs it, before zarr stops its event loop
    _finalizers.append(finalizer)


def _close_session(fs) -> None:
    # only a session that exists: set_session() would create one
    client = getattr(fs, "_session", None) or getattr(fs, "_s3", None)
    if client is None:
        return
    loop = _zarr_loop()
    if not loop.is_running():
        return
    future = asyncio.run_coroutine_threadsafe(client.close(), loop)
    try:
        on_loop = asyncio.get_running_loop() is loop
    except RuntimeError:
        on_loop = False
    if not on_loop:  # garbage collected on zarr's own loop thread: cannot wait there
        try:
            future.result(timeout=5)
        except Exception:  # noqa: BLE001 - closing; nothing left to report to
            pass


_finalizers: list[weakref.finalize] = []


@atexit.register  # registered after zarr's own exit handler, so it runs before it
def _close_all() -> None:
    for finalizer in _finalizers:
        # detach, not call: weakref's own exit handler, registered with the first
        # finalizer (later than this one, so it runs earlier), turns every call into a
        # no-op; a run that ended in an error still holds its stores here
        info = finalizer.detach()
        if info is not None:
            _, func, args, kwargs = info
            func(*args, **kwargs)
