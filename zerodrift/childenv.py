"""zerodrift's secrets, held in memory, and the allowlisted environment of the target's processes.

Two rules keep key material and the server's superuser password away from the code
under test (migrations, ``env.py``, the Celery app, the refresh path):

1. :func:`take_secrets` runs once when the CLI starts. It moves the variables in
   :data:`SECRET_NAMES` out of ``os.environ`` into this module's memory, so no process
   zerodrift starts later inherits them, and overwrites their bytes in the process's
   initial environment block, which Linux keeps showing in ``/proc/<pid>/environ``
   (proc(5), "/proc/pid/environ") even after ``unsetenv``.
2. :func:`base_environment` builds every target process's environment from an allowlist
   (:data:`ALLOWED_NAMES`, :data:`ALLOWED_PREFIXES`) plus the names the config lists in
   ``target.pass_env``; everything else of zerodrift's environment — CI tokens
   (``GITHUB_TOKEN``, ``ACTIONS_*``), cloud credentials, ``ZERODRIFT_*`` — stays out.
   It also sets ``PYTHONDONTWRITEBYTECODE=1``: a run must not leave ``__pycache__``
   folders in the checkout it proves, or the next run's ZG-0 would find the tree dirty
   (Python's "-B" option; bytecode already compiled elsewhere is still read).
"""

from __future__ import annotations

import ctypes
import fnmatch
import os
import sys

#: zerodrift's own secrets: read once, kept in memory, never in a child's environment.
SECRET_NAMES = ("ZERODRIFT_SIGNING_KEY", "ZERODRIFT_SIGNING_KEY_PASSPHRASE", "ZERODRIFT_ADMIN_URL")

#: Variables a target process receives from zerodrift's environment when set: what an
#: interpreter needs to start and behave as in a shell (search path, home, user, locale,
#: temporary folder, virtual environment, shared libraries).
ALLOWED_NAMES = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
                 "VIRTUAL_ENV", "LD_LIBRARY_PATH", "PYTHONPATH")
#: Prefixes of allowed names (the locale categories, locale(7)).
ALLOWED_PREFIXES = ("LC_",)

_held: dict[str, str] = {}


def take_secrets(environ=None) -> dict[str, str]:
    """Move zerodrift's secrets (:data:`SECRET_NAMES`) from ``environ`` (default ``os.environ``)
    into memory; returns what is held. Idempotent: a second call keeps what the first took
    and takes what was set since. Never raises."""
    env = os.environ if environ is None else environ
    for name in SECRET_NAMES:
        if name in env:
            _held[name] = env.pop(name)
            if env is os.environ:
                _scrub_initial_environment(name)
    return dict(_held)


def secret(name: str) -> str | None:
    """The value of one of :data:`SECRET_NAMES`: the one taken at start, else the current
    environment's (library use without the CLI), else None."""
    return _held.get(name) or os.environ.get(name) or None


def config_environ() -> dict[str, str]:
    """``os.environ`` with the held secrets put back: what config loading reads
    (``ZERODRIFT_ADMIN_URL`` overrides ``server.admin_url``). Never handed to a process."""
    return {**os.environ, **_held}


def forget_secrets() -> None:
    """Drop what :func:`take_secrets` held (tests)."""
    _held.clear()


def base_environment(pass_env: list[str] | tuple[str, ...] = (), environ=None) -> dict[str, str]:
    """The inherited part of a target process's environment: the variables of ``environ``
    (default ``os.environ``) named in :data:`ALLOWED_NAMES`, starting with
    :data:`ALLOWED_PREFIXES`, or matching a ``pass_env`` entry (a name or a shell-style
    pattern such as ``AWS_*``, fnmatch rules). :data:`SECRET_NAMES` are never included,
    whatever ``pass_env`` says. ``PYTHONDONTWRITEBYTECODE`` is always ``1`` (see the
    module's docstring)."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for name, value in env.items():
        if name in SECRET_NAMES:
            continue
        if (name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)
                or any(fnmatch.fnmatchcase(name, pattern) for pattern in pass_env)):
            out[name] = value
    out["PYTHONDONTWRITEBYTECODE"] = "1"
    return out


def forbid_core_dumps_and_tracing() -> None:
    """Mark this process non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``, prctl(2)): processes of
    the same user without ``CAP_SYS_PTRACE`` can then no longer read its memory or
    ``/proc/<pid>/environ``. Children get their own dumpable flag back at exec. Linux only;
    a no-op elsewhere or when the call fails."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def _initial_environment_block() -> tuple[int, int] | None:
    """(start, end) addresses of this process's initial environment strings, from
    ``/proc/self/stat`` fields 50 and 51 (``env_start``, ``env_end``, proc(5))."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read()
        fields = stat[stat.rindex(b")") + 2:].split()
        # fields[0] is field 3 (state): field n is fields[n - 3]
        return int(fields[47]), int(fields[48])
    except (OSError, ValueError, IndexError):
        return None


def _scrub_initial_environment(name: str) -> None:
    """Overwrite ``NAME=value`` with zero bytes where it lies in the initial environment
    block (after ``unsetenv`` the bytes stay there and ``/proc/<pid>/environ`` shows
    them). Only that block is written — never heap memory a C library may have freed."""
    if not sys.platform.startswith("linux"):
        return
    block = _initial_environment_block()
    if block is None:
        return
    start, end = block
    prefix = name.encode() + b"="
    # os.environ.pop already called unsetenv, so the entry is gone from ``environ``: find the
    # bytes in the block itself
    size = end - start
    if size <= 0 or size > 16 * 1024 * 1024:
        return
    raw = ctypes.string_at(start, size)
    offset = 0
    while True:
        found = raw.find(prefix, offset)
        if found < 0:
            return
        if found == 0 or raw[found - 1] == 0:  # the start of an entry, not the middle of a value
            stop = raw.find(b"\0", found)
            stop = size if stop < 0 else stop
            ctypes.memset(start + found, 0, stop - found)
        offset = found + len(prefix)


__all__ = ["SECRET_NAMES", "ALLOWED_NAMES", "ALLOWED_PREFIXES", "take_secrets", "secret", "config_environ",
           "forget_secrets", "base_environment", "forbid_core_dumps_and_tracing"]
