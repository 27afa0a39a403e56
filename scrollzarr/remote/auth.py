"""Credentials for password-protected HTTP servers: one place for the proxy, the renderer
and every other reader of remote stores.

The password comes from the environment (``SCROLL_PASSWORD``) or a netrc file, never from
the command line, and is never repeated in a message.
"""

from __future__ import annotations

import base64
import getpass
import netrc
import os
import re
import stat
import sys
import urllib.parse

from ..errors import ScrollError

#: Environment variable holding the upstream password for ``--user``.
PASSWORD_ENV = "SCROLL_PASSWORD"
#: Passwords typed at this process's prompt, by (host, user): asked once per run, and
#: handed to the worker processes this process starts (:func:`worker_environment`).
_typed: dict[tuple[str, str], str] = {}


def credentials(url: str, user: str | None, env: dict | None = None,
                interactive: bool | None = None) -> tuple[str, str] | None:
    """Find the basic-auth ``(user, password)`` for the upstream ``url``.

    The password comes from the environment variable ``SCROLL_PASSWORD``, else from the
    netrc file (``$NETRC`` or ``~/.netrc``) entry for the URL's host (its login is used
    when ``user`` is None, and must equal ``user`` otherwise), else, when stdin is a
    terminal and ``user`` is given, from a prompt that does not echo (asked once per
    process and host; :func:`worker_environment` hands it on). A netrc file that
    group or others may read, or that belongs to another user, is refused
    (:func:`check_private`). Returns None when
    no user is given and no netrc entry exists (an upstream without a password). Raises
    :class:`ScrollError` when a user is given but no password can be found.
    """
    env = os.environ if env is None else env
    host = urllib.parse.urlsplit(url).hostname or ""
    password = env.get(PASSWORD_ENV)
    if password:
        if not user:
            raise ScrollError(f"{PASSWORD_ENV} is set but --user is missing")
        return user, password
    entry = _netrc_entry(host, env)
    if entry is not None:
        login, secret = entry
        if user is None or user == login:
            return login, secret
    if user is None:
        return None
    if (host, user) in _typed:
        return user, _typed[host, user]
    if interactive is None:
        interactive = sys.stdin.isatty()
    if interactive:
        secret = getpass.getpass(f"password for {user} at {host}: ")
        if secret:
            _typed[host, user] = secret
            return user, secret
    raise ScrollError(f"--user {user}: no password; set {PASSWORD_ENV} or add a "
                      f"'machine {host} login {user} password ...' line to ~/.netrc")


def _netrc_entry(host: str, env) -> tuple[str, str] | None:
    path = env.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.isfile(path):
        return None
    check_private(path)
    try:
        auth = netrc.netrc(path).authenticators(host)
    except netrc.NetrcParseError as exc:
        # the parser quotes the offending token, which may be the password: say where
        reason = exc.msg if "permissive" in exc.msg else f"syntax error on line {exc.lineno}"
        raise ScrollError(f"{path}: cannot use it ({reason})") from None
    except OSError as exc:
        raise ScrollError(f"{path}: cannot read it ({exc.strerror})") from None
    if not auth or not auth[2]:
        return None
    return auth[0], auth[2]


def worker_environment() -> dict[str, str]:
    """Environment variables that give worker processes started by this process (a dask
    LocalCluster on this machine) the password typed at its prompt: ``{PASSWORD_ENV:
    password}``, or nothing when none was typed (the workers then find the password as
    this process did, in the environment or ~/.netrc). Workers on other machines must
    have their own (they are not sent a password over the network)."""
    typed = set(_typed.values())
    return {PASSWORD_ENV: typed.pop()} if len(typed) == 1 else {}


def check_private(path: str) -> None:
    """Refuse a credentials file that others may read or change, as ftp and Python's
    netrc do for ``~/.netrc`` (here for any netrc file we read): it must belong to
    this user and have no group or other permission bits. Raises :class:`ScrollError`
    naming the file, its mode and the fix."""
    if os.name != "posix":
        return
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ScrollError(f"{path}: cannot read it ({exc.strerror})") from None
    if st.st_uid != os.getuid():
        raise ScrollError(f"{path}: belongs to another user (uid {st.st_uid}); a file "
                          "with passwords must be your own")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ScrollError(f"{path}: group or others may read it (mode "
                          f"{stat.S_IMODE(st.st_mode):04o}); run chmod 600 {path}")


def basic_auth_header(user: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP basic auth."""
    token = base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")
    return "Basic " + token


def check_upstream_url(url: str) -> str:
    """Validate a ``--proxy`` URL and return it with exactly one trailing slash.

    Raises :class:`ScrollError` for anything but http(s), and for URLs with credentials
    in them (``user:pass@``), which would end up in shell history and process lists.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ScrollError(f"--proxy {_without_userinfo(url)}: expected an http:// or "
                          "https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ScrollError(f"--proxy {_without_userinfo(url)}: remove the user:password@ "
                          f"part; pass --user NAME and the password in {PASSWORD_ENV} or "
                          "~/.netrc")
    if parts.query or parts.fragment:
        raise ScrollError(f"--proxy {url}: a store URL has no ?query or #fragment")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/")
                                    + "/", "", ""))


def _without_userinfo(url: str) -> str:
    # Never repeat a password back, even in an error message.
    return re.sub(r"//[^/@]*@", "//", url)
