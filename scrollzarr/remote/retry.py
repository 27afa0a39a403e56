"""One retry policy for every remote request, whatever library made it.

Hand-written on purpose: aiohttp, fsspec's HTTP filesystem and tornado's client (the
proxy's) do not retry at all, while
s3fs and botocore each retry their own error sets with their own backoffs (multiplying
each other's attempts). Both libraries are set to a single attempt and this wrapper
decides: connection errors, timeouts, 429 and 5xx answers are retried with capped
exponential backoff and jitter; anything else (401, 403, other 4xx) is final at once.
Either way the caller gets one :class:`ScrollError` line naming the URL and the reason.
"""

from __future__ import annotations

import asyncio
import random
from typing import Awaitable, Callable, TypeVar

from ..errors import ScrollError
from .auth import PASSWORD_ENV

T = TypeVar("T")

#: First backoff (seconds), doubled per attempt, capped at :data:`MAX_BACKOFF`.
FIRST_BACKOFF = 0.25
MAX_BACKOFF = 4.0


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt`` (0-based): 0.25, 0.5, 1, 2, 4, 4 ..
    times a random factor in [0.5, 1) so that parallel requests do not retry in step."""
    return min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** attempt) * (0.5 + random.random() / 2)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception reports (aiohttp, botocore), if any."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(code, int):
            return code
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: connection failures, timeouts, dropped
    connections, 429 and 5xx answers."""
    status = status_of(exc)
    if status is not None:
        return status == 429 or status >= 500
    if isinstance(exc, (PermissionError, FileNotFoundError, IsADirectoryError)):
        return False
    if isinstance(exc, (OSError, asyncio.TimeoutError, TimeoutError)):
        return True  # aiohttp's connection errors are OSErrors too
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    if module.startswith(("aiohttp", "tornado")):  # ServerDisconnectedError,
        return True  # ClientPayloadError, HTTPTimeoutError, HTTPStreamClosedError ...
    if module.startswith("botocore"):  # EndpointConnectionError, ReadTimeoutError ...
        return "Connection" in name or "Timeout" in name or "HTTPClient" in name
    return False


def reason(exc: BaseException) -> str:
    """A short, one-line reason for ``exc`` that never repeats credentials."""
    status = status_of(exc)
    if status in (401, 403) or isinstance(exc, PermissionError):
        what = f"HTTP {status}" if status else "access denied"
        return (f"{what}: not allowed (HTTP: --user NAME with the password in "
                f"{PASSWORD_ENV} or ~/.netrc; S3: AWS credentials or a public bucket)")
    if status is not None:
        message = getattr(exc, "message", "") or ""
        return f"HTTP {status} {message}".strip()
    text = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def with_retries(call: Callable[[], Awaitable[T]], what: str, attempts: int) -> T:
    """Await ``call()`` up to ``attempts`` times while it fails transiently; raise
    :class:`ScrollError` ``"<what>: <reason>"`` when it fails for good."""
    for attempt in range(max(1, attempts)):
        try:
            return await call()
        except Exception as exc:  # noqa: BLE001 - every library's errors, classified below
            if not is_transient(exc) or attempt + 1 >= attempts:
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                raise ScrollError(f"{what}: {reason(exc)}{tries}") from exc
        await asyncio.sleep(backoff(attempt))
    raise AssertionError("unreachable")
