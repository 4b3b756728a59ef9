"""ZG-7 worker write block."""

from __future__ import annotations

import re
import time

import psycopg
from psycopg import sql as pgsql
from pydantic import Field, model_validator

from zerodrift.gates.base import EvidenceStep, Gate, GateConfig, GateResult
from zerodrift.hookspecs import hookimpl
from zerodrift.urls import user_of

OPERATIONS = ("INSERT", "UPDATE", "DELETE")
#: SQLSTATE classes that mean "something else blocked the write" (PostgreSQL Appendix A).
_OTHER_BLOCKERS = {"42501": "permission denied", "23": "a constraint", "42P01": "a missing table"}

COLUMN_SQL = """
SELECT a.attname FROM pg_attribute a
 WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
   AND a.attidentity = '' AND a.attgenerated = ''
 ORDER BY a.attnum LIMIT 1
"""
TRIGGERS_SQL = """
SELECT t.tgname, t.tgenabled, p.proname
  FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE t.tgrelid = %s::regclass AND NOT t.tgisinternal ORDER BY t.tgname
"""


class WriteBlockConfig(GateConfig):
    tables: list[str] = Field(default_factory=list, description="Ingestion tables workers must not write.")
    worker_settings: dict[str, str] = Field(default_factory=dict, description="GUCs that put a session in worker context, e.g. {'app.execution_context' = 'worker'}.")
    expected_sqlstate: str = Field("", description="SQLSTATE the guard raises, e.g. P0001 or a custom code.")
    expected_message: str = Field("", description="Regular expression the guard's error message matches.")
    roles: list[str] = Field(default_factory=list, description="Roles to try; empty: the runtime role and the migration (admin) role.")
    fixture_sql: str = Field("", description="SQL run (as the admin, inside the rolled-back transaction) before the writes, e.g. a parent row.")
    insert_sql: dict[str, str] = Field(default_factory=dict, description="Per table, an INSERT of one valid row (required for each table).")

    @model_validator(mode="after")
    def _complete(self):
        if self.tables and not (self.expected_sqlstate or self.expected_message):
            raise ValueError("give expected_sqlstate and/or expected_message: the guard's own error")
        if self.tables and not self.worker_settings:
            raise ValueError("give worker_settings: the GUCs that mean worker context")
        missing = [t for t in self.tables if t not in self.insert_sql]
        if missing:
            raise ValueError(f"insert_sql has no statement for {', '.join(missing)}")
        return self


class WriteBlockGate(Gate):
    """ZG-7: workers cannot write the ingestion tables — and the guard is what stops them.

    For each configured table, operation (INSERT, UPDATE, DELETE) and role (default:
    the runtime role and the migration role), inside one transaction that is always
    rolled back, on the fresh database: first with the worker GUCs set (``SET LOCAL``)
    the write must fail with the guard's own error (configured SQLSTATE and/or
    message); then, as the positive control, the same write without the worker
    context must succeed and touch at least one row. A write blocked by a permission
    or constraint error instead is a FAIL naming what blocked it; a role whose
    control write fails is shown but not counted as proof. The guard trigger must be
    enabled and row counts must be unchanged afterwards.
    """

    id = "ZG-7"
    title = "Worker write block"
    config_model = WriteBlockConfig
    requires = ("db.fresh",)
    needs = ("server",)

    def run(self, ctx, result: GateResult) -> None:
        cfg: WriteBlockConfig = ctx.gate_config
        if not cfg.tables:
            result.skip("no ingestion tables configured in [gates.ZG-7] (tables, worker_settings, expected_sqlstate, insert_sql)")
            return
        db = ctx.require(result, "db.fresh", "no fresh database at head")
        if db is None:
            return
        admin = user_of(db.admin_url)
        roles = cfg.roles or [r for r in dict.fromkeys([ctx.config.roles.runtime, ctx.config.roles.migration or admin]) if r]
        settings = ctx.config.roles.runtime_settings

        counts_before = self._counts(ctx, result, db, cfg.tables, "before")
        for table in cfg.tables:
            triggers = ctx.run_sql(result, db, TRIGGERS_SQL, params=(table,), title=f"triggers on {table}")
            enabled = [r[0] for r in triggers.rows if r[1] in ("O", "A")]
            disabled = [r[0] for r in triggers.rows if r[1] not in ("O", "A")]
            result.check(f"{table}: guard trigger enabled", bool(enabled),
                         f"enabled: {', '.join(enabled)}" + (f"; not firing: {', '.join(disabled)}" if disabled else "")
                         if enabled else (f"no enabled trigger on {table}" + (f" (disabled: {', '.join(disabled)})" if disabled else "")
                                          if triggers.ok else f"{triggers.sqlstate}: {triggers.error}"))

        matrix: dict[tuple[str, str, str], tuple[str, str]] = {}
        with ctx.artifacts.exclusive(db.name):
            for role in roles:
                self._try_role(ctx, result, db, cfg, role, settings, matrix)

        for table in cfg.tables:
            for op in OPERATIONS:
                cells = {role: matrix.get((table, op, role), ("not run", "")) for role in roles}
                proved = [r for r, (verdict, _) in cells.items() if verdict == "blocked by guard"]
                failed = {r: why for r, (verdict, why) in cells.items() if verdict == "FAIL"}
                not_counted = {r: why for r, (verdict, why) in cells.items() if verdict == "not counted"}
                if failed:
                    detail = "; ".join(f"as {r}: {why}" for r, why in failed.items())
                elif proved:
                    detail = f"guard error as {', '.join(proved)} while the control write succeeded"
                    if not_counted:
                        detail += "; not counted: " + "; ".join(f"{r} ({why})" for r, why in not_counted.items())
                else:
                    detail = "no role proved the guard: " + "; ".join(f"{r}: {why}" for r, why in not_counted.items())
                result.check(f"{table}: {op} blocked for workers", bool(proved) and not failed, detail)
        result.add_table("Write-block matrix (worker write → verdict; control write without worker context)",
                         ["Table", "Operation", *roles],
                         [[t, op, *(matrix.get((t, op, r), ("not run", ""))[0] for r in roles)]
                          for t in cfg.tables for op in OPERATIONS])

        result.headline = (f"{len(cfg.tables)} tables × INSERT/UPDATE/DELETE blocked by "
                           f"{cfg.expected_sqlstate or 'the guard'} in worker context, each beside a successful control write")
        counts_after = self._counts(ctx, result, db, cfg.tables, "after")
        result.check("row counts unchanged", counts_before == counts_after and bool(counts_after),
                     f"before {counts_before}, after {counts_after}")

    @staticmethod
    def _counts(ctx, result, db, tables, label) -> dict[str, int]:
        counts = {}
        for table in tables:
            out = ctx.run_sql(result, db, pgsql.SQL("SELECT count(*) FROM {}").format(pgsql.Identifier(table)).as_string(None),
                              title=f"row count {table} ({label})")
            if out.ok:
                counts[table] = out.scalar()
        return counts

    def _try_role(self, ctx, result, db, cfg: WriteBlockConfig, role: str, settings, matrix) -> None:
        log: list[str] = []
        started = time.perf_counter()
        guard_re = re.compile(cfg.expected_message) if cfg.expected_message else None
        with psycopg.connect(db.url(), connect_timeout=10) as conn:
            try:
                cur = conn.cursor()

                def attempt(statement: str, label: str) -> tuple[int | None, psycopg.Error | None]:
                    cur.execute("SAVEPOINT zd_attempt")
                    try:
                        cur.execute(statement)
                        rows = cur.rowcount
                        cur.execute("RELEASE SAVEPOINT zd_attempt")
                        log.append(f"-- {label}\n{statement};\n{cur.statusmessage or ''} ({rows} rows)")
                        return rows, None
                    except psycopg.Error as exc:
                        cur.execute("ROLLBACK TO SAVEPOINT zd_attempt")
                        diag = exc.diag
                        log.append(f"-- {label}\n{statement};\nERROR:  {diag.message_primary}\nSQLSTATE: {diag.sqlstate}")
                        return None, exc

                if cfg.fixture_sql.strip():
                    cur.execute(cfg.fixture_sql)
                    log.append(f"-- fixture (as {user_of(db.admin_url)})\n{cfg.fixture_sql.strip()}")
                cur.execute(pgsql.SQL("SET LOCAL ROLE {}").format(pgsql.Identifier(role)))
                log.append(f"SET LOCAL ROLE {role};")
                for name, value in settings.items():
                    cur.execute("SELECT set_config(%s, %s, true)", (name, value))
                    log.append(f"SET LOCAL {name} = '{value}';")
                for table in cfg.tables:
                    # each table starts from the fixture state (a control DELETE may cascade)
                    cur.execute("SAVEPOINT zd_table")
                    column = cur.execute(COLUMN_SQL, (table,)).fetchone()
                    ident = pgsql.Identifier(table).as_string(conn)
                    col = pgsql.Identifier(column[0]).as_string(conn) if column else None
                    statements = {
                        "INSERT": cfg.insert_sql[table],
                        "UPDATE": f"UPDATE {ident} SET {col} = {col}" if col else None,
                        "DELETE": f"DELETE FROM {ident}",
                    }
                    for op in OPERATIONS:
                        statement = statements[op]
                        if statement is None:
                            matrix[(table, op, role)] = ("not counted", "no updatable column")
                            continue
                        # worker attempt first, rolled back to its savepoint with the GUCs
                        cur.execute("SAVEPOINT zd_worker")
                        for name, value in cfg.worker_settings.items():
                            cur.execute("SELECT set_config(%s, %s, true)", (name, value))
                        log.append("SAVEPOINT zd_worker; " + " ".join(
                            f"SET LOCAL {n} = '{v}';" for n, v in cfg.worker_settings.items()))
                        w_rows, w_err = attempt(statement, f"{op} {table} as {role} in worker context")
                        cur.execute("ROLLBACK TO SAVEPOINT zd_worker")
                        log.append("ROLLBACK TO SAVEPOINT zd_worker;  -- worker GUCs reverted")
                        c_rows, c_err = attempt(statement, f"{op} {table} as {role}, control (no worker context)")
                        matrix[(table, op, role)] = self._verdict(w_rows, w_err, c_rows, c_err, cfg, guard_re)
                    cur.execute("ROLLBACK TO SAVEPOINT zd_table")
            finally:
                conn.rollback()
                log.append("ROLLBACK;")
        result.add_step(EvidenceStep(title=f"write attempts as {role}", command=f"(one transaction, rolled back) as {role}",
                                     role=role, database=db.name, duration_s=time.perf_counter() - started,
                                     output="\n".join(log)))

    @staticmethod
    def _verdict(w_rows, w_err, c_rows, c_err, cfg, guard_re) -> tuple[str, str]:
        def is_guard(err) -> bool:
            ok = True
            if cfg.expected_sqlstate:
                ok = ok and err.diag.sqlstate == cfg.expected_sqlstate
            if guard_re is not None:
                ok = ok and bool(guard_re.search(err.diag.message_primary or ""))
            return ok

        def blocker(err) -> str:
            state = err.diag.sqlstate or ""
            what = _OTHER_BLOCKERS.get(state) or _OTHER_BLOCKERS.get(state[:2]) or "another error"
            return f"{what} ({state}: {err.diag.message_primary})"

        if c_err is not None:
            if is_guard(c_err):
                return ("not counted", f"control write also fails with the guard's own error ({c_err.diag.sqlstate}: "
                                       f"{c_err.diag.message_primary}): the guard blocks every write, not only workers'")
            if w_err is not None and is_guard(w_err):
                return ("not counted", f"control write also fails: {blocker(c_err)}")
            return ("not counted", f"role may not write: control failed with {blocker(c_err)}")
        if not c_rows:
            return ("not counted", "control touched 0 rows, so no trigger fired")
        if w_err is None:
            return ("FAIL", f"worker write succeeded ({w_rows} rows): the guard did not fire")
        if not is_guard(w_err):
            return ("FAIL", f"worker write blocked by {blocker(w_err)}, not by the guard "
                            f"(expected {cfg.expected_sqlstate or ''} {cfg.expected_message or ''})".rstrip())
        return ("blocked by guard", f"{w_err.diag.sqlstate}: {w_err.diag.message_primary}")


@hookimpl
def zerodrift_gates():
    return [WriteBlockGate]
