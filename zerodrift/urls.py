"""PostgreSQL URL handling: swap database or user, change scheme, mask passwords.

URLs follow libpq's URI form (PostgreSQL docs, "Connection Strings" 34.1.1); a Unix
socket directory is carried as the ``host`` query parameter, which libpq, psycopg
and SQLAlchemy's PostgreSQL dialects all accept.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from zerodrift.errors import UsageError

_SCHEME_RE = re.compile(r"^postgres(ql)?(\+[a-z0-9_]+)?://", re.I)
MASK = "***"


def check_url(url: str, what: str = "server URL") -> str:
    """Return ``url`` if it is a postgresql:// URL, else raise UsageError saying what is expected."""
    if not _SCHEME_RE.match(url or ""):
        raise UsageError(
            f"{what} {mask(url)!r} is not a PostgreSQL URL: expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME"
        )
    return url


def with_parts(url: str, *, dbname: str | None = None, user: str | None = None, password: str | None = "",
               scheme: str | None = None) -> str:
    """Return ``url`` with the database, user (and then password) or scheme replaced.

    ``password=""`` keeps the current password only when the user is unchanged;
    a different ``user`` drops the password unless one is given.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, _, hostport = netloc.rpartition("@")
    old_user, _, old_password = userinfo.partition(":")
    new_user = old_user if user is None else quote(user, safe="")
    if user is None or user == unquote(old_user):
        new_password = old_password if password == "" else (quote(password, safe="") if password else "")
    else:
        new_password = quote(password, safe="") if password else ""
    userinfo = new_user + (f":{new_password}" if new_password else "")
    netloc = f"{userinfo}@{hostport}" if userinfo else hostport
    path = parts.path if dbname is None else "/" + quote(dbname, safe="")
    new_scheme = parts.scheme if scheme is None else scheme
    return urlunsplit((new_scheme, netloc, path, parts.query, parts.fragment))


def database_of(url: str) -> str:
    """The database name in ``url`` (empty when none)."""
    return unquote(urlsplit(url).path.lstrip("/"))


def user_of(url: str) -> str:
    """The user name in ``url`` (empty when none)."""
    userinfo = urlsplit(url).netloc.rpartition("@")[0]
    return unquote(userinfo.partition(":")[0])


def password_of(url: str) -> str:
    """The password in ``url`` (empty when none)."""
    userinfo = urlsplit(url).netloc.rpartition("@")[0]
    return unquote(userinfo.partition(":")[2])


def libpq(url: str) -> str:
    """``url`` with a plain ``postgresql`` scheme (drops a SQLAlchemy ``+driver``)."""
    return with_parts(url, scheme="postgresql")


def mask(url: str) -> str:
    """``url`` with its password (and any password query parameter) replaced by ***."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":" + MASK
    netloc = f"{userinfo}@{hostport}" if at else parts.netloc
    query = parts.query
    if query:
        pairs = [(k, MASK if k.lower() == "password" else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="/*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
