"""ZG-7 worker write block."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql as pgsql
from pydantic import Field, model_validator

from zerodrift.config import LoadedConfig
from zerodrift.context import GateContext
from zerodrift.gates.base import EvidenceStep, Gate, GateConfig, GateResult, Input
from zerodrift.gates.common import upgraded_databases
from zerodrift.hookspecs import hookimpl
from zerodrift.onboard.hooks import InitContext
from zerodrift.urls import user_of

OPERATIONS = ("INSERT", "UPDATE", "DELETE")
#: SQLSTATE classes that mean "something else blocked the write" (PostgreSQL Appendix A).
_OTHER_BLOCKERS = {"42501": "permission denied", "23": "a constraint", "42P01": "a missing table",
                   "42704": "an undefined object"}
#: insufficient_privilege: a role that may not write (or a row-level security WITH CHECK
#: refusal) is a design choice, not a defect — shown, not counted as proof
_NOT_ALLOWED = "42501"
#: what zerodrift appends to every write to see the rows it touched (tableoid: the partition)
_RETURNING = " RETURNING tableoid::oid, ctid::text"
#: a function named in an error's CONTEXT lines, e.g. ``PL/pgSQL function fn_guard() line 4 at RAISE``,
#: ``SQL function "f" statement 1``, ``PL/Python function "f"`` (PostgreSQL's error context callbacks)
_CONTEXT_FUNCTION = re.compile(r'function\s+"?([^"\s(]+)')

COLUMN_SQL = """
SELECT a.attname FROM pg_attribute a
 WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
   AND a.attidentity = '' AND a.attgenerated = ''
 ORDER BY a.attnum LIMIT 1
"""
TRIGGERS_SQL = """
SELECT t.tgname, t.tgenabled, p.proname, t.tgfoid::regprocedure::text
  FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE t.tgrelid = %s::regclass AND NOT t.tgisinternal ORDER BY t.tgname
"""
#: the ``ALTER ROLE … SET`` defaults a login as the role gets in this database (PostgreSQL
#: docs, ALTER ROLE: role-and-database settings override role-wide ones, which come first here)
ROLE_DEFAULTS_SQL = """
SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
 WHERE r.rolname = %s
   AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
 ORDER BY s.setdatabase
"""
#: rows a write returned that are visible afterwards in the same transaction (read as the session user)
VISIBLE_SQL = """
SELECT count(*) FROM {table} t JOIN unnest(%s::oid[], %s::tid[]) AS w(rel, tid)
  ON t.tableoid = w.rel AND t.ctid = w.tid
"""
#: tgenabled values that fire in an ordinary session (session_replication_role = origin)
_FIRING = ("O", "A")


class WriteBlockConfig(GateConfig):
    tables: list[str] = Field(default_factory=list, description="Ingestion tables workers must not write.")
    worker_settings: dict[str, str] = Field(default_factory=dict, description="GUCs that put a session in worker context, e.g. {'app.execution_context' = 'worker'}.")
    expected_sqlstate: str = Field("", description="SQLSTATE the guard raises, e.g. P0001 or a custom code.")
    expected_message: str = Field("", description="Regular expression the guard's error message matches.")
    roles: list[str] = Field(default_factory=list, description="Roles to try; empty: the runtime role and the migration (admin) role.")
    fixture_sql: str = Field("", description="SQL run (as the admin, inside the rolled-back transaction) before the writes, e.g. a parent row. It also runs on every upgraded database, which may hold these rows already: make it re-runnable (ON CONFLICT DO NOTHING). It runs in the control session too: it must not set the worker settings.")
    insert_sql: dict[str, str] = Field(default_factory=dict, description="Per table, an INSERT of one valid row (required for each table; no RETURNING clause: zerodrift adds its own to read the row back).")
    guard_triggers: dict[str, str] = Field(default_factory=dict, description="Per table, the name of the guard trigger; default: the trigger whose function raised the guard's error on the worker writes (read from the error's CONTEXT).")
    operations: dict[str, list[str]] = Field(default_factory=dict, description="Per table, the operations it allows at all (INSERT, UPDATE, DELETE; default all three), e.g. {audit_log = [\"INSERT\"]} for an append-only table. An operation left out is not attempted as a worker write; instead ZG-7 proves it is blocked for every role, without worker context.")

    @model_validator(mode="after")
    def _complete(self):
        if self.tables and not (self.expected_sqlstate or self.expected_message):
            raise ValueError("give expected_sqlstate and/or expected_message: the guard's own error")
        if self.tables and not self.worker_settings:
            raise ValueError("give worker_settings: the GUCs that mean worker context")
        missing = [t for t in self.tables if t not in self.insert_sql]
        if missing:
            raise ValueError(f"insert_sql has no statement for {', '.join(missing)}")
        returning = [t for t, s in self.insert_sql.items() if re.search(r"\breturning\b", s, re.IGNORECASE)]
        if returning:
            raise ValueError(f"insert_sql for {', '.join(returning)} has a RETURNING clause: leave it out "
                             "(zerodrift appends RETURNING tableoid, ctid to read the row back)")
        unknown = [t for t in self.guard_triggers if t not in self.tables]
        if unknown:
            raise ValueError(f"guard_triggers names {', '.join(unknown)}, which is not in tables")
        unknown = [t for t in self.operations if t not in self.tables]
        if unknown:
            raise ValueError(f"operations names {', '.join(unknown)}, which is not in tables")
        for table, ops in self.operations.items():
            wrong = [o for o in ops if o.upper() not in OPERATIONS]
            if wrong:
                raise ValueError(f"operations for {table} lists {', '.join(map(repr, wrong))}: "
                                 f"use {', '.join(OPERATIONS)}")
            if not ops:
                raise ValueError(f"operations for {table} is empty: a table no one may write is not an ingestion "
                                 "table; leave it out of tables")
        self.operations = {t: [o.upper() for o in ops] for t, ops in self.operations.items()}
        return self

    def allowed(self, table: str) -> tuple[str, ...]:
        """The operations ``table`` allows (``operations``; default INSERT, UPDATE, DELETE)."""
        ops = self.operations.get(table)
        return tuple(o for o in OPERATIONS if ops is None or o in ops)


@dataclass
class Attempt:
    """One write: the error PostgreSQL raised, or the (tableoid, ctid) of each row it
    returned and how many of them are visible afterwards in the same transaction."""

    error: psycopg.Error | None = None
    returned: list[tuple[int, str]] | None = None
    visible: int = 0
    #: for an operation the table does not allow: rows the role could read before the write
    #: (None: it may not read them), so "touched 0 rows" is known to mean "blocked"
    seen: int | None = None

    @property
    def functions(self) -> list[str]:
        """Functions in the error's CONTEXT, innermost (the one that raised) first, bare names."""
        context = (self.error.diag.context or "") if self.error is not None else ""
        return [name.rsplit(".", 1)[-1].strip('"') for name in _CONTEXT_FUNCTION.findall(context)]


class _FixtureFailed(Exception):
    """fixture_sql raised on a database (the message names it and PostgreSQL's error): a write
    without worker context failed there, so nothing on that database is proven (a FAIL)."""


class WriteBlockGate(Gate):
    """ZG-7: workers cannot write the ingestion tables — and the guard is what stops them.

    For each configured table, operation (INSERT, UPDATE, DELETE) and role (default:
    the runtime role and the migration role), on the fresh database and on every
    database ZG-2 upgraded (what production has), in transactions that are always
    rolled back:

    * **control first**, in a new session in which the worker settings were never set
      (a custom setting once set stays defined as ``''`` for the rest of a session, so
      a guard calling ``current_setting(name)`` without ``missing_ok`` would pass a
      control run after it): with the role's ``ALTER ROLE … SET`` defaults (read from
      ``pg_db_role_setting``, as a login gets them) and ``roles.runtime_settings``, the
      write must succeed, and the rows it returned (``RETURNING tableoid, ctid``) must
      be visible afterwards in the same transaction — an INSERT that reports success
      without its row there (a BEFORE trigger returning NULL) is a FAIL. A control
      refused with ``insufficient_privilege`` (42501) is shown, not counted; any other
      control error (e.g. a duplicate key on an upgraded database whose identity
      sequence is behind its rows, or the guard blocking every write) is a FAIL naming
      the database and PostgreSQL's error;
    * then, in another new session with the worker GUCs set (``SET LOCAL``), the same
      write must fail with the guard's own error (configured SQLSTATE and/or message),
      not with a permission or constraint error.

    The guard is identified, per table and database: the trigger on that table whose
    function raised the guard's error (read from the error's CONTEXT lines, e.g.
    ``PL/pgSQL function f() line 4 at RAISE``, innermost first), or the configured
    ``guard_triggers`` name; it must exist and fire in ordinary sessions. A table
    whose enabled triggers are all unrelated to the guard's error is a FAIL.
    An operation a table does not allow at all (``operations``, e.g. UPDATE and DELETE
    of an append-only table) is not attempted as a worker write; in the control session
    it must be blocked for every role — it raises (a trigger, a rule, a privilege), or it
    touches no row although the role can read rows of the table (a row is inserted as
    the admin first). A role for which it writes a row is a FAIL.
    PASS proves: on each database, for each table and operation it allows, at least one
    role was blocked by the identified guard while its control write really wrote; for
    each operation it does not allow, every role was blocked.
    """

    id = "ZG-7"
    title = "Worker write block"
    config_model = WriteBlockConfig
    inputs = ("db.fresh", Input("dbs.existing", optional=True, at_start=False))
    needs = ("server",)

    @classmethod
    def skip_reason(cls, cfg: WriteBlockConfig, loaded: LoadedConfig) -> str:
        """SKIPPED without ``tables``."""
        if cfg is not None and cfg.tables:
            return ""
        return f"no ingestion tables configured in [gates.{cls.id}] (tables, worker_settings, expected_sqlstate, insert_sql)"

    @classmethod
    def propose_config(cls, init: InitContext) -> None:
        """Always commented out (the guard's inputs are the user's), with the write guard the
        migrations define as the proposal."""
        facts = init.facts
        init.todo(f"{cls.id} (workers cannot write the ingestion tables) is SKIPPED until tables, the worker settings, "
                  "the guard's error and one valid INSERT per table are given.")
        if facts.worker_settings:
            init.comment(f"the migrations have a write guard keyed on {', '.join(facts.worker_settings)}"
                         + (f" raising SQLSTATE {facts.guard_sqlstate}" if facts.guard_sqlstate else "")
                         + (f" on {', '.join(facts.guard_tables)}" if facts.guard_tables else "") + ".")
        init.table(commented=True)
        init.commented_key("tables", facts.guard_tables or ["TODO_ingestion_table"])
        init.commented_key("worker_settings", facts.worker_settings or {"app.execution_context": "worker"})
        init.commented_key("expected_sqlstate", facts.guard_sqlstate or "P0001")
        init.commented_key("expected_message", facts.guard_message or "TODO: a regular expression of the guard's message")
        init.commented_key("fixture_sql", "TODO: rows the INSERTs need (a tenant, a parent row)")
        init.table("insert_sql", commented=True)
        for table in facts.guard_tables or ["TODO_ingestion_table"]:
            init.commented_key(table, f"INSERT INTO {table} (…) VALUES (…)")

    def run(self, ctx: GateContext, result: GateResult) -> None:
        cfg: WriteBlockConfig = ctx.gate_config
        fresh = ctx.require(result, "db.fresh", "no fresh database at head")
        if fresh is None:
            return
        admin = user_of(fresh.admin_url)
        roles = cfg.roles or [r for r in dict.fromkeys([ctx.config.roles.runtime, ctx.config.roles.migration or admin]) if r]

        rows: list[list[str]] = []
        guards: dict[str, set[str]] = {}
        labelled = bool(ctx.artifacts.produced_by("dbs.existing"))  # more than one database: name each in the checks
        databases = [("fresh", fresh)]
        for index in range(2):  # the fresh database first (it is ready), then the upgraded ones once ZG-2 is done
            for label, db in (databases if index == 0 else upgraded_databases(ctx, result, "written", name_paths=True)):
                if index:
                    databases.append((label, db))
                prefix = f"{label}: " if labelled else ""
                try:
                    matrix = self._prove_database(ctx, result, cfg, db, roles, prefix, guards)
                except _FixtureFailed as exc:  # a write without worker context failed: not set up, not proven
                    result.check(f"{prefix}fixture_sql runs", False, str(exc))
                    matrix = {}
                rows += [[label, t, op if op in cfg.allowed(t) else f"{op} (not allowed)",
                          *(matrix.get((t, op, r), ("not run", ""))[0] for r in roles)]
                         for t in cfg.tables for op in OPERATIONS]

        result.add_table("Write-block matrix (worker write → verdict, beside a control write without worker context)",
                         ["Database", "Table", "Operation", *roles], rows)
        names = ", ".join(sorted(n for ns in guards.values() for n in ns)) or "none identified"
        restricted = [f"{op} on {t}" for t in cfg.tables for op in OPERATIONS if op not in cfg.allowed(t)]
        result.headline = (f"{len(cfg.tables)} tables × INSERT/UPDATE/DELETE"
                           + (f" ({', '.join(restricted)} blocked for every role)" if restricted else "")
                           + f" blocked by {cfg.expected_sqlstate or 'the guard'} "
                           f"in worker context on {' + '.join(lbl for lbl, _ in databases)}, raised by "
                           f"{names}; each beside a control write in a session that never set the worker settings, "
                           "its rows read back")

    # -- one database -------------------------------------------------------
    def _prove_database(self, ctx: GateContext, result, cfg: WriteBlockConfig, db, roles, prefix, guards) -> dict[tuple[str, str, str], tuple[str, str]]:
        guard_re = re.compile(cfg.expected_message) if cfg.expected_message else None
        matrix: dict[tuple[str, str, str], tuple[str, str]] = {}
        workers: dict[tuple[str, str, str], Attempt] = {}
        with ctx.artifacts.exclusive(db.name):
            for role in roles:
                controls = self._attempts(ctx, result, cfg, db, role, worker=False)
                attempts = self._attempts(ctx, result, cfg, db, role, worker=True)
                for table in cfg.tables:
                    for op in OPERATIONS:
                        if (table, op) not in controls:
                            matrix[(table, op, role)] = ("not counted", "no column to update")
                            continue
                        if op not in cfg.allowed(table):
                            matrix[(table, op, role)] = _not_allowed_verdict(op, controls[(table, op)], db.name)
                            continue
                        workers[(table, op, role)] = worker = attempts[(table, op)]
                        matrix[(table, op, role)] = self._verdict(table, op, worker, controls[(table, op)], cfg,
                                                                  guard_re, db.name)

        for table in cfg.tables:
            raised = [w for (t, _, _), w in workers.items() if t == table and w.error is not None
                      and _is_guard(w.error, cfg, guard_re)]
            guard = self._check_guard(ctx, result, cfg, db, table, raised, prefix)
            if guard:
                guards.setdefault(table, set()).add(guard)
            for op in OPERATIONS:
                cells = {role: matrix.get((table, op, role), ("not run", "")) for role in roles}
                if op not in cfg.allowed(table):
                    refused = {r: why for r, (verdict, why) in cells.items() if verdict != "blocked for everyone"}
                    result.check(f"{prefix}{table}: {op} blocked for every role", not refused,
                                 f"{table} does not allow {op} ([gates.ZG-7.operations]); without worker context "
                                 + "; ".join(f"as {r}: {why}" for r, (_, why) in cells.items()) if not refused else
                                 f"{table} is configured without {op} but it is not blocked for every role: "
                                 + "; ".join(f"as {r}: {why}" for r, why in refused.items()))
                    continue
                proved = [r for r, (verdict, _) in cells.items() if verdict == "blocked by guard"]
                failed = {r: why for r, (verdict, why) in cells.items() if verdict == "FAIL"}
                not_counted = {r: why for r, (verdict, why) in cells.items() if verdict == "not counted"}
                if failed:
                    detail = "; ".join(f"as {r}: {why}" for r, why in failed.items())
                elif proved:
                    detail = f"guard error as {', '.join(proved)} while the control write succeeded and its rows are there"
                    if not_counted:
                        detail += "; not counted: " + "; ".join(f"{r} ({why})" for r, why in not_counted.items())
                else:
                    detail = "no role proved the guard: " + "; ".join(f"{r}: {why}" for r, why in not_counted.items())
                result.check(f"{prefix}{table}: {op} blocked for workers", bool(proved) and not failed, detail)
        return matrix

    def _check_guard(self, ctx: GateContext, result, cfg: WriteBlockConfig, db, table: str, raised: list[Attempt], prefix: str) -> str:
        """The check "guard trigger enabled" for ``table``; returns the guard's trigger name ('' when none)."""
        name = f"{prefix}{table}: guard trigger enabled"
        triggers = ctx.run_sql(result, db, TRIGGERS_SQL, params=(table,), title=f"triggers on {table} ({db.name})")
        if not triggers.ok:
            result.check(name, False, f"could not read the triggers of {table} on {db.name}: {triggers.sqlstate}: {triggers.error}")
            return ""
        listing = "; ".join(f"{t} ({fn}, {'enabled' if en in _FIRING else 'not firing: tgenabled ' + en})"
                            for t, en, _, fn in triggers.rows) or "none"
        by_function: dict[str, list[tuple]] = {}
        for row in triggers.rows:
            by_function.setdefault(row[2], []).append(row)
        configured = cfg.guard_triggers.get(table)
        if configured:
            found = [r for r in triggers.rows if r[0] == configured]
            how = "configured in guard_triggers"
        else:
            found = []
            for attempt in raised:  # the innermost function that is a trigger function on this table
                hit = next((by_function[f] for f in attempt.functions if f in by_function), None)
                if hit:
                    found = hit
                    break
            how = "its function raised the guard's error on the worker writes"
        if not found:
            if configured:
                why = f"the configured guard trigger {configured} is not on {table} in {db.name}"
            elif raised:
                seen = sorted({f for a in raised for f in a.functions}) or ["no function in the error's CONTEXT"]
                why = (f"the guard's error came from {', '.join(seen)}, which no trigger on {table} calls "
                       "(name the trigger in guard_triggers)")
            else:
                why = f"no worker write to {table} raised the guard's error, so no trigger on it is the guard"
            result.check(name, False, f"{why}; triggers on {table}: {listing}")
            return ""
        tgname, enabled, _, function = found[0]
        firing = enabled in _FIRING
        result.check(name, firing, f"{tgname} ({function}): {how}; tgenabled {enabled}" if firing else
                     f"{tgname} ({function}) is not firing in ordinary sessions (tgenabled {enabled}); "
                     f"triggers on {table}: {listing}")
        return tgname

    # -- one session --------------------------------------------------------
    def _attempts(self, ctx: GateContext, result, cfg: WriteBlockConfig, db, role: str, *, worker: bool) -> dict[tuple[str, str], Attempt]:
        """Every table × operation as ``role`` in one new session and one transaction, rolled back.

        ``worker`` sets the worker GUCs (``SET LOCAL``) first; otherwise the session never
        sets them. Raises _FixtureFailed when fixture_sql raises."""
        log: list[str] = []
        out: dict[tuple[str, str], Attempt] = {}
        started = time.perf_counter()
        kind = "worker context" if worker else "control, a session that never set the worker settings"
        with psycopg.connect(db.url(), connect_timeout=10) as conn:
            try:
                cur = conn.cursor()
                if cfg.fixture_sql.strip():
                    try:
                        cur.execute(cfg.fixture_sql)
                    except psycopg.Error as exc:
                        again = (" — it runs on the fresh and on every upgraded database: if the row is already there, "
                                 "make it re-runnable (INSERT … ON CONFLICT DO NOTHING)") if exc.diag.sqlstate == "23505" else ""
                        raise _FixtureFailed(f"[gates.ZG-7] fixture_sql failed on {db.name} (as {user_of(db.admin_url)}, "
                                             f"no worker context): {_blocker(exc)}{again}") from exc
                    log.append(f"-- fixture (as {user_of(db.admin_url)})\n{cfg.fixture_sql.strip()}")
                # rows for the worker UPDATE and DELETE to meet (the control session inserts its own, and
                # one more for an operation the table does not allow, so that "no row touched" means blocked)
                needing = cfg.tables if worker else [t for t in cfg.tables if len(cfg.allowed(t)) < len(OPERATIONS)]
                for table in needing:
                    self._setup_row(cur, cfg.insert_sql[table], f"row for the {'worker' if worker else 'control'} writes "
                                    f"to {table} (as {user_of(db.admin_url)}, before any worker setting)", log)
                defaults = [entry.split("=", 1) for (entry,) in cur.execute(ROLE_DEFAULTS_SQL, (role,)).fetchall()]
                cur.execute(pgsql.SQL("SET LOCAL ROLE {}").format(pgsql.Identifier(role)))
                log.append(f"SET LOCAL ROLE {role};")
                for label, settings in (("ALTER ROLE … SET default", dict(defaults)),
                                        ("roles.runtime_settings", ctx.config.roles.runtime_settings),
                                        ("worker context", cfg.worker_settings if worker else {})):
                    for name, value in settings.items():
                        cur.execute("SELECT set_config(%s, %s, true)", (name, value))
                        log.append(f"SET LOCAL {name} = '{value}';  -- {label}")
                for table in cfg.tables:
                    cur.execute("SAVEPOINT zd_table")  # each table starts from the fixture state (a DELETE may cascade)
                    column = cur.execute(COLUMN_SQL, (table,)).fetchone()
                    ident = pgsql.Identifier(table).as_string(conn)
                    col = pgsql.Identifier(column[0]).as_string(conn) if column else None
                    statements = {
                        "INSERT": cfg.insert_sql[table].strip().rstrip(";"),
                        "UPDATE": f"UPDATE {ident} SET {col} = {col}" if col else None,
                        "DELETE": f"DELETE FROM {ident}",
                    }
                    for op in OPERATIONS:  # in turn: the control UPDATE and DELETE meet the row the INSERT wrote
                        if statements[op] is None:
                            continue
                        if op not in cfg.allowed(table):
                            if not worker:  # not a worker write at all: blocked for every role, shown in the control
                                seen = self._readable(cur, ident)
                                out[(table, op)] = attempt = self._write(
                                    cur, ident, statements[op] + _RETURNING, role,
                                    f"{op} {table} as {role}, not allowed on {table} ({seen if seen is not None else 'no'}"
                                    " rows readable by the role)", log)
                                attempt.seen = seen
                            continue
                        out[(table, op)] = self._write(cur, ident, statements[op] + _RETURNING, role,
                                                       f"{op} {table} as {role}, {kind}", log)
                    cur.execute("ROLLBACK TO SAVEPOINT zd_table")
            finally:
                conn.rollback()
                log.append("ROLLBACK;")
        result.add_step(EvidenceStep(title=f"{'worker writes' if worker else 'control writes'} as {role} ({db.name})",
                                     command=f"(a new session, one transaction, rolled back) as {role}",
                                     role=role, database=db.name, duration_s=time.perf_counter() - started,
                                     output="\n".join(log)))
        return out

    @staticmethod
    def _setup_row(cur, statement: str, label: str, log: list[str]) -> None:
        """Insert a row zerodrift needs, in a savepoint; a failure is logged, not raised (the control shows it)."""
        cur.execute("SAVEPOINT zd_setup")
        try:
            cur.execute(statement)
            status = cur.statusmessage or ""
            cur.execute("RELEASE SAVEPOINT zd_setup")
            log.append(f"-- {label}\n{statement.strip()};\n{status}")
        except psycopg.Error as exc:
            cur.execute("ROLLBACK TO SAVEPOINT zd_setup")
            log.append(f"-- {label}\n{statement.strip()};\nERROR:  {exc.diag.message_primary}\nSQLSTATE: {exc.diag.sqlstate}")

    @staticmethod
    def _readable(cur, table_ident: str) -> int | None:
        """Rows of the table the current role can read (None when it may not read it)."""
        cur.execute("SAVEPOINT zd_read")
        try:
            count = cur.execute(f"SELECT count(*) FROM {table_ident}").fetchone()[0]
            cur.execute("RELEASE SAVEPOINT zd_read")
            return count
        except psycopg.Error:
            cur.execute("ROLLBACK TO SAVEPOINT zd_read")
            return None

    @staticmethod
    def _write(cur, table_ident: str, statement: str, role: str, label: str, log: list[str]) -> Attempt:
        """Run one write in a savepoint; on success, count its returned rows still visible (as the session user)."""
        cur.execute("SAVEPOINT zd_attempt")
        try:
            cur.execute(statement)
            returned = [(int(oid), tid) for oid, tid in cur.fetchall()]
            status = cur.statusmessage or ""
        except psycopg.Error as exc:
            cur.execute("ROLLBACK TO SAVEPOINT zd_attempt")
            diag = exc.diag
            context = f"\nCONTEXT:  {diag.context.strip()}" if diag.context else ""
            log.append(f"-- {label}\n{statement};\nERROR:  {diag.message_primary}\nSQLSTATE: {diag.sqlstate}{context}")
            return Attempt(error=exc)
        # read back as the session user (not subject to the role's privileges or row security)
        cur.execute("SET LOCAL ROLE NONE")
        visible = cur.execute(VISIBLE_SQL.format(table=table_ident),
                              ([oid for oid, _ in returned], [tid for _, tid in returned])).fetchone()[0]
        cur.execute(pgsql.SQL("SET LOCAL ROLE {}").format(pgsql.Identifier(role)))
        log.append(f"-- {label}\n{statement};\n{status} ({len(returned)} rows returned, {visible} visible afterwards)")
        return Attempt(returned=returned, visible=visible)

    @staticmethod
    def _verdict(table: str, op: str, w: Attempt, c: Attempt, cfg, guard_re, db_name: str) -> tuple[str, str]:
        if c.error is not None:
            if _is_guard(c.error, cfg, guard_re):
                return ("FAIL", f"control write also fails with the guard's own error ({c.error.diag.sqlstate}: "
                                f"{c.error.diag.message_primary}) on {db_name}: the guard blocks every write, not only workers'")
            if c.error.diag.sqlstate == _NOT_ALLOWED:
                return ("not counted", f"role may not write: control failed with {_blocker(c.error)}")
            hint = (f" — if {table} does not allow {op} for anyone (e.g. an append-only table), list the operations "
                    f"it allows in [gates.ZG-7.operations] ({table} = [\"INSERT\"]) and ZG-7 proves {op} is blocked "
                    "for every role instead") if op != "INSERT" else ""
            return ("FAIL", f"control write also fails on {db_name} without worker context: {_blocker(c.error)}{hint}")
        if op == "INSERT" and (not c.returned or c.visible < len(c.returned)):
            return ("FAIL", f"write reported success but the row is not there on {db_name} "
                            f"({len(c.returned or [])} rows returned, {c.visible} visible afterwards): a trigger "
                            "or rule discarded it")
        if not c.returned:
            return ("not counted", "control touched 0 rows, so no trigger fired")
        if op == "UPDATE" and c.visible < len(c.returned):
            return ("FAIL", f"write reported success but the updated rows are not there on {db_name} "
                            f"({len(c.returned)} returned, {c.visible} visible afterwards)")
        if op == "DELETE" and c.visible:
            return ("FAIL", f"write reported success but {c.visible} deleted rows are still there on {db_name}")
        if w.error is None:
            return ("FAIL", f"worker write succeeded ({len(w.returned or [])} rows) on {db_name}: the guard did not fire")
        if not _is_guard(w.error, cfg, guard_re):
            return ("FAIL", f"worker write blocked by {_blocker(w.error)}, not by the guard "
                            f"(expected {cfg.expected_sqlstate or ''} {cfg.expected_message or ''})".rstrip())
        return ("blocked by guard", f"{w.error.diag.sqlstate}: {w.error.diag.message_primary}")


def _not_allowed_verdict(op: str, c: Attempt, db_name: str) -> tuple[str, str]:
    """Verdict of a write of an operation the table does not allow, by one role without
    worker context: blocked when it raised, or when it touched no row although the role
    can read rows of the table (a trigger returning NULL, a DO INSTEAD NOTHING rule)."""
    if c.error is not None:
        return ("blocked for everyone", _blocker(c.error))
    if c.returned:
        return ("FAIL", f"{op} wrote {len(c.returned)} row(s) on {db_name}: the table allows it")
    if c.seen:
        return ("blocked for everyone", f"touched 0 of the {c.seen} rows it can read (a trigger or rule discarded it)")
    return ("FAIL", f"{op} touched no row and the role can read no row of the table on {db_name}, so nothing shows "
                    "it is blocked (make a row readable by the role: insert_sql, roles.runtime_settings)")


def _is_guard(err: psycopg.Error, cfg: WriteBlockConfig, guard_re) -> bool:
    """True when ``err`` is the guard's own error (configured SQLSTATE and/or message)."""
    ok = True
    if cfg.expected_sqlstate:
        ok = ok and err.diag.sqlstate == cfg.expected_sqlstate
    if guard_re is not None:
        ok = ok and bool(guard_re.search(err.diag.message_primary or ""))
    return ok


def _blocker(err: psycopg.Error) -> str:
    """What blocked a write, e.g. ``a constraint (23505: duplicate key value …)`` (SQLSTATE classes: PostgreSQL Appendix A)."""
    state = err.diag.sqlstate or ""
    what = _OTHER_BLOCKERS.get(state) or _OTHER_BLOCKERS.get(state[:2]) or "another error"
    return f"{what} ({state}: {err.diag.message_primary})"


@hookimpl
def zerodrift_gates():
    return [WriteBlockGate]
