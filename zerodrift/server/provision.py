"""Throwaway databases and roles on a server (docs/architecture.md, "Vocabulary").

A throwaway database is named ``zd_<run id>_<purpose>`` and marked with
``COMMENT ON DATABASE`` naming the run; it is the only kind of database zerodrift
drops, and it checks the marker again right before dropping. Roles are
cluster-wide: missing ones are created, existing ones are never altered or dropped.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg import sql

from zerodrift.errors import EnvironmentProblem
from zerodrift.procs import pid_alive
from zerodrift.urls import mask, with_parts

MARKER_PREFIX = "zerodrift throwaway database; run "
#: A database kept with --keep: the next run and ``gc`` leave it alone (``gc --kept`` drops it).
KEPT_PREFIX = "zerodrift kept database; run "
#: Advisory lock key (bigint) every run holds in shared mode on an external server while
#: it uses roles; dropping the roles a run created needs it exclusively, i.e. no other run.
PRESENCE_LOCK_KEY = 0x7A64_726F_6C65  # "zdrole"
#: ``COMMENT ON ROLE`` of a role a run created (:meth:`Provisioner.ensure_roles`), so that a later
#: run can tell a leftover of a killed or ``--keep`` run from a role someone else made
ROLE_MARKER_PREFIX = "zerodrift role; created by run "
#: Databases dropped at once, each on its own session. On PostgreSQL 15 every ``DROP
#: DATABASE`` asks for an immediate checkpoint and waits for it (1-8 s on a busy server);
#: concurrent drops share one (a checkpoint requested while another runs is done once).
DROP_SESSIONS = 16
_PURPOSE_RE = re.compile(r"[^a-z0-9_]+")


def generate_password() -> str:
    """A password for a role this run creates: 32 URL-safe random characters (192 bits)."""
    return secrets.token_urlsafe(24)


def new_run_id() -> str:
    """A short random run id (8 lowercase hex digits)."""
    return secrets.token_hex(4)


@dataclass(frozen=True)
class Database:
    """A throwaway database: its name and the admin URL pointed at it."""

    name: str
    purpose: str
    admin_url: str

    def url(self, user: str | None = None, password: str | None = "", scheme: str | None = None) -> str:
        """URL of this database as ``user`` (default: the admin user)."""
        return with_parts(self.admin_url, dbname=self.name, user=user, password=password, scheme=scheme)


_COMMENT_RE = re.compile(
    r"^(?P<prefix>" + re.escape(MARKER_PREFIX) + "|" + re.escape(KEPT_PREFIX) + r")(?P<run>[0-9a-f]+); purpose (?P<purpose>[^;]*); host (?P<host>[^;]*); "
    r"pid (?P<pid>\d+); created (?P<created>[^;]+)$")


@dataclass(frozen=True)
class Leftover:
    """A throwaway database of some run, with what its marker says and why it may go."""

    name: str
    run_id: str
    host: str
    pid: int
    created: datetime
    reason: str  #: why it counts as abandoned ("" when it does not)


def find_leftovers(admin_url: str, *, older_than_s: float = 24 * 3600, kept: bool = False) -> list[Leftover]:
    """Databases carrying zerodrift's marker, each with the reason it is abandoned.

    A database is abandoned when its run's process on this host is gone, or (runs on
    other hosts) when it is older than ``older_than_s`` seconds. Names that match
    ``zd_*`` but lack a well-formed marker are never listed.
    """
    out: list[Leftover] = []
    now = datetime.now(timezone.utc)
    me = socket.gethostname()
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname LIKE 'zd\\_%'"
        ).fetchall()
    for name, comment in rows:
        m = _COMMENT_RE.match(comment or "")
        if not m or not name.startswith(f"zd_{m.group('run')}_"):
            continue
        created = datetime.fromisoformat(m.group("created"))
        pid = int(m.group("pid"))
        reason = ""
        if m.group("prefix") == KEPT_PREFIX:
            if not kept:
                continue
            reason = "kept with --keep (gc --kept)"
        elif m.group("host") == me and not pid_alive(pid):
            reason = f"its run's process {pid} on this host is gone"
        elif (now - created).total_seconds() > older_than_s:
            reason = f"older than {older_than_s / 3600:.0f} h"
        out.append(Leftover(name, m.group("run"), m.group("host"), pid, created, reason))
    return sorted(out, key=lambda lo: lo.name)


def drop_leftovers(admin_url: str, leftovers: list[Leftover]) -> list[str]:
    """Drop the abandoned ones (those with a reason), re-checking each marker first; returns
    the names dropped (several at once, see :data:`DROP_SESSIONS`)."""

    def drop(lo: Leftover) -> str | None:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                               (lo.name,)).fetchone()
            if row is None or not (row[0] or "").startswith((f"{MARKER_PREFIX}{lo.run_id};", f"{KEPT_PREFIX}{lo.run_id};")):
                return None
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(lo.name)))
            return lo.name

    return _in_parallel(drop, [lo for lo in leftovers if lo.reason])


def _in_parallel(drop: Callable[[Any], str | None], items: list) -> list[str]:
    """``drop(item)`` for every item, up to :data:`DROP_SESSIONS` at once; the names it returned
    (None: not dropped), in the order of ``items``. Raises the first error."""
    from concurrent.futures import ThreadPoolExecutor

    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(DROP_SESSIONS, len(items))) as pool:
        return [name for name in pool.map(drop, items) if name]


class Provisioner:
    """Creates and drops the throwaway databases of one run; ensures roles.

    Thread-safe: gates running in parallel may create databases at once.
    """

    def __init__(self, admin_url: str, run_id: str, setup_sql: str = "") -> None:
        self.admin_url = admin_url
        self.run_id = run_id
        #: ``[target] setup_sql``: run as the admin in each new database (see :meth:`create_database`)
        self.setup_sql = setup_sql
        #: databases setup_sql ran in, in order
        self.setup_ran: list[str] = []
        self.created: list[Database] = []
        self.created_roles: list[str] = []
        #: roles a killed or finished zerodrift run left behind that this run took over (:meth:`ensure_roles`)
        self.adopted_roles: list[str] = []
        #: role -> password generated by this run for a role it created (or adopted) with LOGIN
        self.passwords: dict[str, str] = {}
        #: the per-run migration login role (:meth:`create_migration_role`), once created
        self.migration_role: str | None = None
        self._lock = threading.Lock()
        self._presence: psycopg.Connection | None = None
        # creation may run in several gate threads; once cleanup starts no new database may
        # appear, and cleanup waits for creations in flight so it can drop them too
        self._closing = False
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)

    def hold_presence(self) -> None:
        """Announce this run to other zerodrift runs on the server (shared advisory lock,
        held on an admin session until :meth:`drop_created_roles`)."""
        self._presence = self._connect()
        self._presence.execute("SELECT pg_advisory_lock_shared(%s)", (PRESENCE_LOCK_KEY,))

    def create_migration_role(self) -> tuple[str, bool]:
        """Create ``zd_<run id>_migrator``: the login role the target's migrations run as when
        ``roles.migration`` is empty, so the target never receives the admin's URL.

        It gets LOGIN, a generated password (in :attr:`passwords`), SUPERUSER when the admin
        is one (histories that create extensions, roles or event triggers need it) — else
        membership in the admin's role — and ``ALTER ROLE … SET role`` to the admin's role:
        its sessions act as the admin user (``current_user``; PostgreSQL docs, "SET ROLE"
        and "ALTER ROLE"), so objects are owned as if the admin had run the migrations and
        the schema fingerprint does not depend on the run. :meth:`retire_migration_role`
        drops it. Returns (name, superuser). Raises EnvironmentProblem when the admin may not
        create it.
        """
        from zerodrift.errors import EnvironmentProblem

        name = f"zd_{self.run_id}_migrator"
        password = generate_password()
        with self._connect() as conn:
            admin, superuser = conn.execute(
                "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN {} PASSWORD {}").format(
                        sql.Identifier(name), sql.SQL("SUPERUSER" if superuser else "NOSUPERUSER"), sql.Literal(password)))
                    if not superuser:
                        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(admin), sql.Identifier(name)))
                    conn.execute(sql.SQL("ALTER ROLE {} SET role TO {}").format(sql.Identifier(name), sql.Literal(admin)))
            except psycopg.Error as exc:
                raise EnvironmentProblem(
                    f"cannot create the run's migration role {name} as {admin}: {str(exc).strip()}; set roles.migration to "
                    "an existing role the migrations should run as") from exc
        with self._lock:
            self.created_roles.append(name)
            self.passwords[name] = password
            self.migration_role = name
        return name, bool(superuser)

    def retire_migration_role(self) -> str:
        """Drop the per-run migration role (no other run ever uses it); when PostgreSQL
        refuses (something still depends on it), take its LOGIN and password away instead.
        Returns a note for the ledger ("" when dropped or never created)."""
        name = self.migration_role
        if name is None:
            return ""
        with self._connect() as conn:
            try:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
                note = ""
            except psycopg.errors.DependentObjectsStillExist:
                conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN NOSUPERUSER PASSWORD NULL").format(sql.Identifier(name)))
                note = f"kept {name} without LOGIN or password: still referenced"
        with self._lock:
            self.created_roles = [r for r in self.created_roles if r != name]
            self.passwords.pop(name, None)
            self.migration_role = None
        return note

    def drop_created_roles(self) -> tuple[list[str], str]:
        """Drop the roles this run created, if no other zerodrift run is active.

        Returns (dropped, note). A role that still has dependencies (privileges or
        objects in other databases) is kept: PostgreSQL refuses DROP ROLE then
        (docs, "Dropping Roles"), and zerodrift never forces it.
        """
        if self._presence is not None:
            self._presence.close()
            self._presence = None
        ours = self.created_roles + [r for r in self.adopted_roles if r not in self.created_roles]
        if not ours:
            return [], ""
        dropped: list[str] = []
        kept: list[str] = []
        with self._connect() as conn:
            if not conn.execute("SELECT pg_try_advisory_lock(%s)", (PRESENCE_LOCK_KEY,)).fetchone()[0]:
                self._forget_passwords(conn, ours)
                return [], f"kept {', '.join(ours)}: another zerodrift run on this server may use them"
            try:
                for name in reversed(ours):
                    try:
                        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
                        dropped.append(name)
                    except psycopg.errors.DependentObjectsStillExist:
                        kept.append(name)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (PRESENCE_LOCK_KEY,))
            self._forget_passwords(conn, kept)
        with self._lock:
            self.created_roles = [r for r in self.created_roles if r not in dropped]
            self.adopted_roles = [r for r in self.adopted_roles if r not in dropped]
        return dropped, (f"kept {', '.join(kept)}: still referenced elsewhere" if kept else "")

    def _forget_passwords(self, conn: psycopg.Connection, roles: list[str]) -> None:
        """``PASSWORD NULL`` for kept roles that got a generated password from this run: the
        target's code saw it, so it must not outlive the run."""
        for name in roles:
            if self.passwords.pop(name, None) is not None:
                try:
                    conn.execute(sql.SQL("ALTER ROLE {} PASSWORD NULL").format(sql.Identifier(name)))
                except psycopg.Error:
                    pass  # dropped meanwhile

    @property
    def marker(self) -> str:
        return f"{MARKER_PREFIX}{self.run_id}"

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10)

    def check_privileges(self, roles: list[str], migration_role: bool) -> None:
        """The admin login may do what a run does: create databases (CREATEDB) and, when the
        run creates a role (``migration_role``: the run's own, or one of ``roles`` that does not
        exist yet), roles (CREATEROLE) — or it is a superuser (PostgreSQL docs, "Role
        Attributes"). Raises EnvironmentProblem (exit 3) naming the role and what it lacks,
        before anything is created."""
        with self._connect() as conn:
            user, superuser, createdb, createrole = conn.execute(
                "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            existing = {r for (r,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (roles,))}
        if superuser:
            return
        creates_roles = migration_role or bool(set(roles) - existing)
        missing = [name for name, has, needed in (("CREATEDB", createdb, True), ("CREATEROLE", createrole, creates_roles))
                   if needed and not has]
        if missing:
            raise EnvironmentProblem(
                f"the admin role {user} of {mask(self.admin_url)} lacks {' and '.join(missing)}: a run creates a "
                "throwaway database per proof" + (" and a login role for the target's migrations" if creates_roles else "")
                + f". Give --admin-url (server.admin_url) a superuser, or ALTER ROLE {user} "
                + " ".join(missing) + "; or leave the URL out to use the embedded server")

    def database_name(self, purpose: str) -> str:
        """``zd_<run id>_<purpose>``, lowercase, at most 63 bytes (NAMEDATALEN - 1)."""
        clean = _PURPOSE_RE.sub("_", purpose.lower()).strip("_") or "db"
        return f"zd_{self.run_id}_{clean}"[:63]

    def create_database(self, purpose: str, *, run_setup: bool = True) -> Database:
        """Create and mark ``zd_<run id>_<purpose>`` from template0; returns it.

        With ``run_setup`` (the default) and a :attr:`setup_sql`, that SQL then runs in it
        as the admin role, before anything else (so before its first migration), and the
        database is added to :attr:`setup_ran`. Raises psycopg errors unchanged (the runner
        reports them), and EnvironmentProblem when setup_sql fails.
        """
        name = self.database_name(purpose)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        comment = f"{self.marker}; purpose {purpose}; host {socket.gethostname()}; pid {os.getpid()}; created {stamp}"
        with self._lock:
            if self._closing:
                raise RuntimeError("the run is ending: no new throwaway database is created")
            self._in_flight += 1
        try:
            with self._connect() as conn:
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(name)))
                db = Database(name=name, purpose=purpose, admin_url=self.admin_url)
                with self._lock:
                    self.created.append(db)
                conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(comment)))
            if run_setup and self.setup_sql.strip():
                self._run_setup(db)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._idle.notify_all()
        return db

    def _run_setup(self, db: Database) -> None:
        from zerodrift.errors import EnvironmentProblem

        try:
            with psycopg.connect(db.url(), autocommit=True, connect_timeout=10) as conn:
                conn.execute(self.setup_sql)
        except psycopg.Error as exc:
            raise EnvironmentProblem(f"target.setup_sql failed in {db.name}: {str(exc).strip()}") from exc
        with self._lock:
            self.setup_ran.append(db.name)

    def _drop_if_ours(self, db: Database) -> bool:
        """Drop ``db`` when its comment still carries this run's marker; True when dropped."""
        with self._connect() as conn:
            row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                               (db.name,)).fetchone()
            if row is None or not (row[0] or "").startswith(self.marker + ";"):
                return False
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name)))
            return True

    def drop_database(self, db: Database) -> None:
        """Drop one database this run created (its marker is checked first)."""
        self._drop_if_ours(db)
        with self._lock:
            self.created = [d for d in self.created if d.name != db.name]

    def mark_kept(self) -> list[str]:
        """Re-mark this run's databases as kept (``--keep``): later runs and ``gc`` leave them."""
        kept = []
        with self._lock:
            self._closing = True
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=60)
            todo = list(self.created)
        with self._connect() as conn:
            for db in todo:
                row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                                   (db.name,)).fetchone()
                if row and (row[0] or "").startswith(self.marker + ";"):
                    comment = KEPT_PREFIX + row[0][len(MARKER_PREFIX):]
                    conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(db.name), sql.Literal(comment)))
                    kept.append(db.name)
        return kept

    def drop_all(self) -> list[str]:
        """Drop every database this run created whose marker still names this run.

        Returns the names dropped. A database whose comment no longer carries the
        marker is left alone (it is not provably ours).
        """
        with self._lock:
            self._closing = True
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=60)
            todo = list(self.created)
        dropped = _in_parallel(lambda db: db.name if self._drop_if_ours(db) else None, todo)
        with self._lock:
            self.created = [db for db in self.created if db.name not in dropped]
        return dropped

    def ensure_roles(self, names: list[str], login: set[str]) -> tuple[list[str], list[str]]:
        """Create the roles in ``names`` that do not exist yet.

        Roles in ``login`` get LOGIN and a password generated for this run (in
        :attr:`passwords`: the URLs handed to the target carry it); each created role is marked
        (``COMMENT ON ROLE``, :data:`ROLE_MARKER_PREFIX`). Existing roles are left exactly as
        they are — except a login role an earlier zerodrift run created and left behind (killed,
        ``--keep``, or kept while another run was active) when no other zerodrift run is active
        on the server now: nobody can know its password, so this run adopts it (a new generated
        password; at the end dropped, or kept without password, like its own;
        :attr:`adopted_roles`). Returns (created, already existing — adopted ones included).
        """
        created: list[str] = []
        existing: list[str] = []
        with self._connect() as conn:
            for name in names:
                password = generate_password() if name in login else None
                try:
                    if password:
                        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                            sql.Identifier(name), sql.Literal(password)))
                        self.passwords[name] = password
                    else:
                        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
                    conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(
                        sql.Identifier(name), sql.Literal(ROLE_MARKER_PREFIX + self.run_id)))
                    created.append(name)
                except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                    existing.append(name)  # exists, or a concurrent run just created it
                    if password and self._left_by_zerodrift(conn, name) and not self._others_active(conn):
                        conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                            sql.Identifier(name), sql.Literal(password)))
                        self.passwords[name] = password
                        with self._lock:
                            self.adopted_roles.append(name)
        with self._lock:
            self.created_roles.extend(created)
        return created, existing

    @staticmethod
    def _left_by_zerodrift(conn: psycopg.Connection, name: str) -> bool:
        """True when role ``name`` carries a zerodrift run's marker (:data:`ROLE_MARKER_PREFIX`)."""
        row = conn.execute("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s",
                           (name,)).fetchone()
        return bool(row and (row[0] or "").startswith(ROLE_MARKER_PREFIX))

    def _others_active(self, conn: psycopg.Connection) -> bool:
        """True when a zerodrift run other than this one holds the presence lock (a bigint
        advisory lock: ``classid`` holds its high 32 bits, ``objid`` its low ones; PostgreSQL
        docs, "pg_locks")."""
        mine = self._presence.info.backend_pid if self._presence is not None else 0
        return bool(conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> %s "
            "AND classid = %s AND objid = %s AND objsubid = 1",
            (mine, PRESENCE_LOCK_KEY >> 32, PRESENCE_LOCK_KEY & 0xFFFFFFFF)).fetchone()[0])
