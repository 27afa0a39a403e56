"""HTTP servers that let a browser (Neuroglancer) read our stores, on tornado.

* :class:`StoreServer` (``static.py``) serves the zarr stores under a local directory
  read-only: only zarr metadata files and chunk keys inside a store (``stores.py``, the
  allowlist), with byte ranges and CORS for those files only.
* :class:`ProxyServer` (``proxy.py``) serves a remote, password-protected store through
  this machine, adding the credentials; it keeps its answers on disk within a byte
  budget in the remote reader's :class:`DiskCache` (``scrollzarr/remote/diskcache.py``).
* ``viewer.py`` describes stores for a local Neuroglancer viewer.
* ``base.py``: what both servers share (a tornado server in a background thread, one
  status for every request, bounded concurrency, idle timeouts, plain error lines).

Both record every request (method, path, status) in ``requests_seen`` so tests and
``--debug`` can tell which resolution levels a viewer asked for.
"""

from ..remote.auth import PASSWORD_ENV, check_upstream_url, credentials
from .base import IDLE_TIMEOUT, MAX_CONCURRENT
from ..remote.diskcache import DiskCache
from .proxy import (CACHE_404_TTL, ProxyHandler, ProxyServer, UpstreamError,
                    detect_remote_stores)
from .ranges import RangeNotSatisfiable, parse_range
from .static import StoreFileHandler, StoreServer
from .stores import (SEARCH_DEPTH, STORE_MARKERS, StoreInfo, detect_stores, source_url,
                     store_scheme)

__all__ = [
    "CACHE_404_TTL", "DiskCache", "IDLE_TIMEOUT", "MAX_CONCURRENT", "PASSWORD_ENV",
    "ProxyHandler", "ProxyServer", "RangeNotSatisfiable", "SEARCH_DEPTH", "STORE_MARKERS",
    "StoreFileHandler", "StoreInfo", "StoreServer", "UpstreamError", "check_upstream_url",
    "credentials", "detect_remote_stores", "detect_stores",
    "parse_range", "source_url", "store_scheme",
]
