"""Lock observer probe: alembic jobs, with each statement of each revision observed.

Executed by the *target's* interpreter, like ``alembic_job.py`` (whose request and
answer it shares: one JSON request per line on stdin, one ``ZERODRIFT-RESULT`` line
per answer). A request with ``"observe": true`` adds ``"lock_impact"`` to the
answer: for every revision the upgrade applied, every statement the target sent
through SQLAlchemy, with what its backend held and changed. Observation relies on:

- **SQLAlchemy** ``before_cursor_execute`` / ``after_cursor_execute`` /
  ``handle_error`` events, listened on the ``Engine`` class, so every engine the
  target's ``env.py`` creates is seen (synchronous drivers: psycopg, psycopg2).
  Around each statement the probe runs one query of its own on the same DBAPI
  connection (a second cursor, so SQLAlchemy's events do not see it).
- **PostgreSQL** (documentation, 13.3 "Explicit Locking"): table-level locks are
  held until the transaction ends, and ``pg_locks`` shows the locks a backend holds,
  to that same backend, before it commits (``pid = pg_backend_pid()``).
  ``pg_class.relfilenode`` changes when a table is rewritten (documentation,
  "pg_class"; ALTER TABLE "Notes"). ``pg_stat_xact_user_tables`` counts, within the
  current transaction, the scans and row changes of each table ("The Cumulative
  Statistics System"). ``transaction_timestamp()`` is the same for every statement
  of one transaction, so a statement whose value differs before and after ran in
  transactions of its own (an autocommit block).
- An **event trigger** on ``ddl_command_end`` (zerodrift creates it before the
  job; see the gate) appends the locks held at the end of each DDL command to the
  session setting ``zerodrift.ddl_locks``: this is how the locks of a statement that
  commits itself (autocommit, ``CREATE INDEX CONCURRENTLY``) are seen at all.
- **Alembic**: ``MigrationContext.run_migrations`` iterates the steps of its
  ``_migrations_fn`` and runs each step's ``upgrade()`` — and, with
  ``transaction_per_migration``, commits — before asking for the next step; the
  probe wraps that iterator to know which revision each statement belongs to
  (Alembic 1.x).

Statements are reported as SQL text only (bound parameters never leave the
process), whitespace collapsed, ``PASSWORD '…'`` literals masked.
"""

from __future__ import annotations

import json
import re
import sys
import time

import alembic_job

OBSERVE = """
SELECT json_build_object(
  'tx', transaction_timestamp()::text,
  'locks', coalesce((SELECT json_agg(json_build_array(l.relation::bigint, l.mode))
                     FROM pg_locks l
                     WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
                       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())), '[]'),
  'stats', coalesce((SELECT json_object_agg(relid::bigint, json_build_array(
                               coalesce(seq_scan, 0) + coalesce(idx_scan, 0), n_tup_ins + n_tup_upd + n_tup_del))
                     FROM pg_stat_xact_user_tables), '{}'),
  'ddl', current_setting('zerodrift.ddl_locks', true),
  'reset', set_config('zerodrift.ddl_locks', '', false)
  {rels}
)::text
"""
RELS = """,
  'rels', coalesce((SELECT json_object_agg(c.oid::bigint, json_build_array(
                              n.nspname, c.relname, c.relkind::text, c.relfilenode::bigint, i.indrelid::bigint))
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    LEFT JOIN pg_index i ON i.indexrelid = c.oid
                    WHERE c.relkind IN ('r', 'p', 'm', 'i', 'I')
                      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'zerodrift_observer')
                      AND n.nspname !~ '^pg_(toast|temp)'), '{}')"""
QUERY_BEFORE = OBSERVE.replace("{rels}", "")
QUERY_AFTER = OBSERVE.replace("{rels}", RELS)
_PASSWORD = re.compile(r"(PASSWORD\s+)'(?:[^']|'')*'", re.IGNORECASE)
STATEMENT_CHARS = 400


def masked(statement: str) -> str:
    """One line of SQL text: whitespace collapsed, password literals masked, cut at STATEMENT_CHARS."""
    text = _PASSWORD.sub(r"\1'***'", " ".join(statement.split()))
    return text if len(text) <= STATEMENT_CHARS else text[:STATEMENT_CHARS - 1] + "…"


class Observer:
    """Collects per-revision statement observations while ``active``."""

    def __init__(self) -> None:
        self.active = False
        self.revisions: list[dict] = []
        self.current: dict | None = None
        self.names: dict[str, list] = {}  #: oid -> [schema, name, relkind, table oid of an index]
        self.rels: dict[str, list] | None = None
        self.version_table: list | None = None
        self.transaction_per_migration = None
        self.pending: dict | None = None
        self.errors: list[str] = []

    # -- revision boundaries ------------------------------------------------
    def wrap_steps(self, steps):
        for step in steps:
            info = step.info
            self.current = {"revision": ",".join(info.up_revision_ids) if info.is_upgrade else
                            ",".join(info.down_revision_ids) or "base",
                            "from": ",".join(info.down_revision_ids if info.is_upgrade else info.up_revision_ids),
                            "upgrade": bool(info.is_upgrade), "statements": []}
            self.revisions.append(self.current)
            yield step
        self.current = None

    # -- statements ---------------------------------------------------------
    @staticmethod
    def _dbapi(conn):
        """The DBAPI connection under a SQLAlchemy Connection (``dbapi_connection`` since SQLAlchemy 1.4.24)."""
        fairy = conn.connection
        return getattr(fairy, "dbapi_connection", None) or fairy.connection

    def _query(self, dbapi_connection, sql: str) -> dict:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(sql)
            value = cursor.fetchone()[0]
        finally:
            cursor.close()
        return json.loads(value) if isinstance(value, str) else value

    def before(self, conn, statement) -> None:
        if not self.active or self.current is None:
            return
        dbapi = self._dbapi(conn)
        first = self.rels is None
        try:
            state = self._query(dbapi, QUERY_AFTER if first else QUERY_BEFORE)
        except Exception as exc:  # the transaction may be failed already: the statement will say why
            self.errors.append(f"before {masked(statement)[:80]}: {exc}")
            self.pending = None
            return
        if first:
            self.rels = state["rels"]
            self._learn(self.rels)
        self.pending = {"state": state, "started": time.perf_counter(), "statement": statement}

    def after(self, conn, statement) -> None:
        pending, self.pending = self.pending, None
        if pending is None or self.current is None:
            return
        elapsed = time.perf_counter() - pending["started"]
        dbapi = self._dbapi(conn)
        try:
            state = self._query(dbapi, QUERY_AFTER)
        except Exception as exc:
            self.errors.append(f"after {masked(statement)[:80]}: {exc}")
            return
        self.current["statements"].append(self._record(pending, state, elapsed))

    def failed(self, context) -> None:
        pending, self.pending = self.pending, None
        if pending is None or self.current is None:
            return
        self.current["statements"].append({
            "sql": masked(pending["statement"]), "duration_s": time.perf_counter() - pending["started"],
            "error": str(context.original_exception).strip().splitlines()[0] if context.original_exception else "failed",
            "in_transaction": None, "held": [], "new": [], "ddl": [], "rewritten": [], "indexes": [],
            "read": [], "written": []})

    def _learn(self, rels: dict[str, list]) -> None:
        for oid, (schema, name, kind, _filenode, table) in rels.items():
            self.names[oid] = [schema, name, kind, str(table) if table else None]

    def _record(self, pending: dict, after: dict, elapsed: float) -> dict:
        before = pending["state"]
        rels_before, rels_after = self.rels or {}, after["rels"]
        self._learn(rels_after)
        self.rels = rels_after
        in_transaction = before["tx"] == after["tx"]
        ddl = [json.loads(line) for line in (after.get("ddl") or "").splitlines() if line.strip()]
        held_before = {(str(o), m) for o, m in before["locks"]}
        held_after = {(str(o), m) for o, m in after["locks"]}
        seen_in_ddl = {(str(o), m) for entry in ddl for o, m in entry["locks"]}
        rewritten = sorted(oid for oid, row in rels_after.items()
                           if row[2] in ("r", "m") and oid in rels_before and rels_before[oid][3] != row[3])
        indexes = sorted([oid, str(row[4])] for oid, row in rels_after.items()
                         if row[2] in ("i", "I") and oid not in rels_before and row[4])
        read, written = [], []
        if in_transaction:  # pg_stat_xact_* restarts at each commit
            for oid, (scans, changes) in after["stats"].items():
                old = before["stats"].get(oid, [0, 0])
                if scans > old[0]:
                    read.append(oid)
                if changes > old[1]:
                    written.append(oid)
        return {"sql": masked(pending["statement"]), "duration_s": elapsed, "error": "",
                "in_transaction": in_transaction, "tx": after["tx"] if in_transaction else None,
                "held": sorted(held_after if in_transaction else set()),
                "new": sorted((held_after | seen_in_ddl) - held_before),
                "ddl": [entry["tag"] for entry in ddl],
                "rewritten": rewritten, "indexes": indexes, "read": sorted(read), "written": sorted(written)}

    def report(self) -> dict:
        return {"revisions": self.revisions, "names": self.names, "version_table": self.version_table,
                "transaction_per_migration": self.transaction_per_migration, "errors": self.errors}


OBSERVER = Observer()


def install() -> None:
    """Listen on every SQLAlchemy engine and wrap Alembic's step iterator."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        OBSERVER.before(conn, statement)

    @event.listens_for(Engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        OBSERVER.after(conn, statement)

    @event.listens_for(Engine, "handle_error")
    def _error(context):
        OBSERVER.failed(context)

    original = MigrationContext.run_migrations

    def run_migrations(self, **kw):
        if OBSERVER.active:
            OBSERVER.version_table = [self.version_table_schema, self.version_table]
            OBSERVER.transaction_per_migration = bool(self._transaction_per_migration)
            steps = self._migrations_fn
            self._migrations_fn = lambda heads, ctx: OBSERVER.wrap_steps(steps(heads, ctx))
        return original(self, **kw)

    MigrationContext.run_migrations = run_migrations


def main() -> int:
    install()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        global OBSERVER
        OBSERVER = Observer()
        OBSERVER.active = bool(request.get("observe"))
        answer = alembic_job.run_job(request)
        if request.get("observe"):
            answer["lock_impact"] = OBSERVER.report()
        OBSERVER.active = False
        sys.stdout.write(alembic_job.RESULT_PREFIX + json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
