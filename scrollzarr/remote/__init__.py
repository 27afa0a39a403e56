"""Reading stores that live elsewhere: HTTP(S) and S3 locations, their credentials and
an on-disk cache. One package for the renderer, the proxy and every other remote reader.

Use :func:`open_store` (a zarr store for a path or URL) with :class:`RemoteOptions`, and in
scripts :func:`add_remote_arguments` / :func:`remote_options` for the shared options.
"""

from .location import is_remote
from .options import RemoteOptions, add_remote_arguments, default_cache_dir, remote_options


def __getattr__(name: str):
    # open_store loads zarr (and aiohttp, s3fs when used): only for a caller that uses it
    if name == "open_store":
        from .store import open_store

        return open_store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["RemoteOptions", "add_remote_arguments", "default_cache_dir", "is_remote",
           "open_store", "remote_options"]
