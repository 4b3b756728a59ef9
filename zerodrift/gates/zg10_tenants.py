"""ZG-10 tenant isolation by row-level security."""

from __future__ import annotations

import re
import time
from typing import Literal

import psycopg
from psycopg import sql as pgsql
from pydantic import Field

from zerodrift.config import LoadedConfig
from zerodrift.context import GateContext, SqlOutcome, psql_table
from zerodrift.gates.base import EvidenceStep, Gate, GateConfig, GateResult, Input
from zerodrift.gates.common import fresh_and_existing
from zerodrift.hookspecs import hookimpl
from zerodrift.onboard.hooks import InitContext
from zerodrift.urls import user_of

#: SQLSTATE of "new row violates row-level security policy" (PostgreSQL Appendix A, class 42).
RLS_VIOLATION = "42501"


class TenantConfig(GateConfig):
    setting: str = Field("", description="The session setting (GUC) that carries the tenant, e.g. "
                                         "`app.current_tenant_id`. Empty: the gate is SKIPPED.")
    tables: list[str] = Field(default_factory=list, description="Tenant tables (`table` or `schema.table`); empty: "
                              "every table of a non-system schema with a `tenant_column` column.")
    tenant_column: str = Field("tenant_id", description="The column holding the tenant of a row.")
    tenant_a: str = Field("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", description="Tenant A (the one the runtime role acts as).")
    tenant_b: str = Field("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb", description="Tenant B (whose rows must stay out of reach).")
    fixture_sql: str = Field("", description="SQL run as the admin user before the checks (rolled back after them) that "
                             "puts rows of both tenants in every tenant table; `{tenant_a}` and `{tenant_b}` are "
                             "replaced by the two tenant values.")
    without_setting: Literal["zero_rows", "error"] = Field("zero_rows", description="What a read without the setting "
                                                           "must give: `zero_rows`, or `error` (the policy raises).")



def policy_settings(migration_sql: list[tuple[str, str]]) -> list[str]:
    """The settings (GUCs) read by ``CREATE POLICY`` statements of the migrations' SQL
    (``(file name, SQL)`` pairs), in order of appearance: the tenant setting's candidates."""
    from zerodrift.onboard.init import SETTING_READ

    found: list[str] = []
    for _label, sql in migration_sql:
        for statement in re.findall(r"\bCREATE\s+POLICY\b.*?(?:;|$)", sql, re.I | re.S):
            found.extend(m.group("name") for m in SETTING_READ.finditer(statement))
    return list(dict.fromkeys(found))


class TenantIsolationGate(Gate):
    """ZG-10: the runtime role sees and writes only its own tenant's rows.

    On the fresh database (and the existing one when ZG-2 runs), inside one transaction
    that is rolled back at the end (so other gates see nothing of it): the fixture puts
    rows of tenant A and tenant B into every tenant table (as the admin user); then, for
    each tenant table:

    * row-level security is enabled **and** forced (``pg_class.relrowsecurity`` and
      ``relforcerowsecurity``): without FORCE the table's owner — often the runtime role
      itself — bypasses every policy (PostgreSQL docs, "Row Security Policies");
    * the table has at least one policy (enabled RLS without a policy denies everything:
      not isolation but an outage);
    * with no tenant setting, the runtime role reads zero rows (or gets the policy's
      error, ``without_setting = "error"``), while the admin user sees the fixture rows
      (positive control);
    * with tenant A's setting it reads A's rows (positive control: at least one) and no
      row of any other tenant;
    * with tenant A's setting, an INSERT of a copy of one of A's rows carrying tenant B
      fails with SQLSTATE 42501 (the policies' ``WITH CHECK``), while the same INSERT as
      tenant A gets past the policies (positive control: it succeeds or stops at a
      constraint, which PostgreSQL checks after the policies);
    * with tenant A's setting, an UPDATE moving A's rows to tenant B fails with SQLSTATE
      42501 "new row violates row-level security policy" (the policy's ``WITH CHECK``,
      or its ``USING`` where it has none), while the same UPDATE keeping the tenant
      succeeds (positive control: the role may update, so the refusal is the policy's).

    And once: the runtime role is neither superuser nor ``BYPASSRLS`` (either skips every
    policy). FAIL rows name the table, its policies and what leaked. Without ``setting``
    or ``roles.runtime`` the gate is SKIPPED.
    """

    id = "ZG-10"
    title = "Tenant isolation"
    config_model = TenantConfig
    inputs = ("db.fresh", Input("dbs.existing", optional=True, at_start=False))
    needs = ("server",)

    @classmethod
    def skip_reason(cls, cfg: TenantConfig, loaded: LoadedConfig) -> str:
        """SKIPPED without ``setting`` or without ``roles.runtime``."""
        if cfg is None or not cfg.setting:
            return (f"not configured: set [gates.{cls.id}] setting (the tenant GUC, e.g. app.current_tenant_id) "
                    "and roles.runtime")
        return "" if loaded.config.roles.runtime else "roles.runtime is not configured"

    @classmethod
    def propose_config(cls, init: InitContext) -> None:
        """Always commented out (the fixture rows are the user's), with the setting the policies read."""
        settings = policy_settings(init.facts.migration_sql)
        if settings:
            init.todo(f"{cls.id} (tenant isolation) is SKIPPED until fixture_sql puts rows of two tenants ({{tenant_a}}, "
                      f"{{tenant_b}}) in every tenant table; the migrations' policies read {', '.join(settings)}.")
        else:
            init.comment(f"no row-level security policy reading a setting was found in the migrations: {cls.id} stays "
                         "SKIPPED.")
        init.table(commented=True)
        init.commented_key("setting", settings[0] if settings else "app.current_tenant_id")
        init.commented_key("fixture_sql", "TODO: INSERT rows of '{tenant_a}' and '{tenant_b}' into every tenant table")

    def run(self, ctx: GateContext, result: GateResult) -> None:
        cfg: TenantConfig = ctx.gate_config
        role = ctx.config.roles.runtime
        fresh = ctx.require(result, "db.fresh", "no fresh database to prove isolation on")
        if fresh is None:
            return
        databases = fresh_and_existing(ctx, result, fresh, "checked")
        matrix: list[list[str]] = []
        tables_checked = 0
        for label, db in databases:
            with ctx.artifacts.exclusive(db.name), psycopg.connect(db.url(), connect_timeout=10) as conn:
                session = _Session(conn, result, db)
                try:
                    tables_checked += self._prove(session, result, cfg, label, role, matrix)
                finally:
                    conn.rollback()
        result.add_table("Tenant isolation per table", ["Database", "Table", "RLS", "Policies", "No setting",
                                                         "Tenant A reads", "Move to B", "Insert as B"], matrix)
        if tables_checked and not any(c.status.value == "FAIL" for c in result.checks):
            result.headline = (f"{tables_checked} tenant table check(s) on {' + '.join(l for l, _ in databases)}: "
                               f"RLS forced, {role} reads and writes only tenant A's rows")

    def _prove(self, s: "_Session", result: GateResult, cfg: TenantConfig, label: str, role: str, matrix) -> int:
        flags = s.run("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", (role,),
                      title=f"{role}: superuser or BYPASSRLS?")
        if not flags.rows:
            result.fail_with_error(f"roles.runtime {role!r} does not exist on the {label} database")
            return 0
        superuser, bypass = flags.rows[0]
        result.check(f"{role} is neither superuser nor BYPASSRLS ({label})", not (superuser or bypass),
                     f"rolsuper={superuser}, rolbypassrls={bypass}" + (
                         f": {role} bypasses every row-level security policy" if superuser or bypass else ""))
        tables = self._tables(s, cfg)
        if not tables:
            result.check(f"tenant tables exist ({label})", False,
                         f"no table {'named in tables' if cfg.tables else f'with a {cfg.tenant_column} column'}")
            return 0
        if cfg.fixture_sql:
            fixture = s.run(cfg.fixture_sql.replace("{tenant_a}", cfg.tenant_a).replace("{tenant_b}", cfg.tenant_b),
                            title="fixture: rows of tenants A and B (rolled back at the end)")
            if not fixture.ok:
                result.fail_with_error(f"fixture_sql failed on the {label} database: {fixture.error}")
                return 0
        col = pgsql.Identifier(cfg.tenant_column)
        # the reads without a setting come first: once set in a session, a GUC reads '' rather than NULL
        for table in tables:
            table["none"] = s.run(pgsql.SQL("SELECT count(*) FROM {}").format(table["ident"]), role=role,
                                  title=f"{table['name']}: read as {role} without {cfg.setting}")
        checked = 0
        for table in tables:
            name, ident = table["name"], table["ident"]
            where = f"{name} ({label})"
            policies = ", ".join(f"{p} ({cmd}, {'WITH CHECK' if chk else 'no WITH CHECK'})"
                                 for p, cmd, chk in table["policies"]) or "no policy"
            row = [label, name, "forced" if table["forced"] else "enabled, not forced" if table["enabled"]
                   else "disabled", policies]
            result.check(f"RLS enabled and forced on {where}", table["enabled"] and table["forced"],
                         "relrowsecurity and relforcerowsecurity are set" if table["enabled"] and table["forced"] else
                         (f"RLS enabled but not forced on {name}: its owner {table['owner']} bypasses the policies"
                          + (f" — and {role} is that owner" if table["owner"] == role else "")) if table["enabled"] else
                         f"RLS is not enabled on {name}: every role with SELECT sees every tenant's rows")
            result.check(f"policy on {where}", bool(table["policies"]),
                         policies if table["policies"] else
                         f"{name} has a {cfg.tenant_column} column and no policy")
            counts = s.run(pgsql.SQL("SELECT count(*) FILTER (WHERE {c}::text = %s), count(*) FILTER (WHERE {c}::text = %s) "
                                     "FROM {t}").format(c=col, t=ident), (cfg.tenant_a, cfg.tenant_b),
                           title=f"{name}: fixture rows of A and B (admin, positive control)")
            a_rows, b_rows = counts.rows[0] if counts.ok else (0, 0)
            if not (a_rows and b_rows):
                result.fail_with_error(f"the fixture left no rows of {'tenant A' if not a_rows else 'tenant B'} in "
                                       f"{name} on the {label} database: set [gates.ZG-10] fixture_sql to insert "
                                       "rows of both tenants into every tenant table")
                return checked
            none = table["none"]
            if cfg.without_setting == "error":
                ok = not none.ok
                text = (f"error without the setting: {none.error}" if ok else
                        f"read {none.scalar()} row(s) without {cfg.setting}; the policy was expected to raise")
            else:
                ok = none.ok and none.scalar() == 0
                text = (f"0 rows without {cfg.setting} (admin sees {a_rows + b_rows} fixture rows)" if ok else
                        f"{none.error}" if not none.ok else
                        f"leak: {role} without {cfg.setting} reads {none.scalar()} row(s) of {name} (policies: {policies})")
            result.check(f"no rows without the setting on {where}", ok, text)
            row.append("0 rows" if none.ok and none.scalar() == 0 else "error" if not none.ok else f"{none.scalar()} rows")
            settings = {cfg.setting: cfg.tenant_a}
            reads = s.run(pgsql.SQL("SELECT count(*) FILTER (WHERE {c}::text = %s), count(*) FILTER (WHERE {c}::text "
                                    "IS DISTINCT FROM %s) FROM {t}").format(c=col, t=ident), (cfg.tenant_a, cfg.tenant_a),
                          role=role, settings=settings, title=f"{name}: read as {role} with tenant A")
            own, other = reads.rows[0] if reads.ok else (0, 0)
            result.check(f"tenant A reads only its own rows on {where}", reads.ok and own > 0 and other == 0,
                         f"{own} row(s) of tenant A, none of another tenant" if reads.ok and own and not other else
                         reads.error if not reads.ok else
                         f"leak: with tenant A's setting {role} reads {other} row(s) of other tenants from {name} "
                         f"(policies: {policies})" if other else
                         f"positive control failed: {role} with tenant A's setting reads none of A's {a_rows} row(s) "
                         f"of {name}, so the isolation is not shown")
            row.append(f"{own} own, {other} other")
            keep = s.run(pgsql.SQL("UPDATE {t} SET {c} = {c} WHERE {c}::text = %s").format(c=col, t=ident),
                         (cfg.tenant_a,), role=role, settings=settings, title=f"{name}: UPDATE keeping tenant A "
                                                                              "(positive control)")
            move = s.run(pgsql.SQL("UPDATE {t} SET {c} = %s WHERE {c}::text = %s").format(c=col, t=ident),
                         (cfg.tenant_b, cfg.tenant_a), role=role, settings=settings,
                         title=f"{name}: UPDATE moving tenant A's rows to tenant B")
            refused = not move.ok and move.sqlstate == RLS_VIOLATION and "row-level security" in move.error
            kept = keep.ok and keep.status.split()[-1:] != ["0"]
            if refused and kept:
                result.check(f"rows cannot move to tenant B on {where}", True,
                             f"refused: {move.error}; the same UPDATE keeping tenant A succeeded ({keep.status})")
                row.append("refused")
            elif not move.ok and not refused:
                result.check(f"rows cannot move to tenant B on {where}", False,
                             f"the UPDATE failed for another reason than the policy ({move.sqlstate}: {move.error}), "
                             "so WITH CHECK is not shown")
                row.append("other error")
            elif not refused:
                result.check(f"rows cannot move to tenant B on {where}", False,
                             f"leak: {role} with tenant A's setting moved rows into tenant B ({move.status}); no policy's "
                             f"WITH CHECK refused the new rows (policies: {policies})")
                row.append(f"moved ({move.status})")
            else:
                result.check(f"rows cannot move to tenant B on {where}", False,
                             f"positive control failed: the UPDATE keeping tenant A gave {keep.error or keep.status}, "
                             "so the refusal of the move is not shown to be the policy's")
                row.append("refused, control failed")
            row.append(self._insert(s, result, cfg, role, settings, table, where, policies))
            matrix.append(row)
            checked += 1
        return checked

    @staticmethod
    def _insert(s: "_Session", result: GateResult, cfg: TenantConfig, role: str, settings, table, where: str,
                policies: str) -> str:
        """INSERT a copy of one of A's rows as tenant B, then as tenant A (positive control).

        PostgreSQL checks the policies' WITH CHECK before NOT NULL, CHECK and unique
        constraints (nodeModifyTable.c, ExecInsert), so an integrity error (SQLSTATE class
        23, e.g. the copied primary key) means the row got past the policies."""
        copy = pgsql.SQL("INSERT INTO {t} OVERRIDING SYSTEM VALUE SELECT (jsonb_populate_record(NULL::{t}, to_jsonb(x) "
                         "|| jsonb_build_object({n}, %s::text))).* FROM {t} x WHERE x.{c}::text = %s LIMIT 1").format(
            t=table["ident"], n=pgsql.Literal(cfg.tenant_column), c=pgsql.Identifier(cfg.tenant_column))
        into_b = s.run(copy, (cfg.tenant_b, cfg.tenant_a), role=role, settings=settings,
                       title=f"{table['name']}: INSERT a row of tenant B as tenant A")
        into_a = s.run(copy, (cfg.tenant_a, cfg.tenant_a), role=role, settings=settings,
                       title=f"{table['name']}: the same INSERT as tenant A (positive control)")
        refused = not into_b.ok and into_b.sqlstate == RLS_VIOLATION and "row-level security" in into_b.error
        passed_policy = into_a.ok or into_a.sqlstate.startswith("23")
        name = f"no row can be inserted into tenant B on {where}"
        if refused and passed_policy:
            result.check(name, True, f"refused: {into_b.error}; as tenant A the same row passed the policies "
                                     f"({into_a.status or into_a.error})")
            return "refused"
        if into_b.ok or into_b.sqlstate.startswith("23"):
            result.check(name, False, f"leak: {role} with tenant A's setting wrote a row of tenant B into "
                                      f"{table['name']}: it passed every policy's WITH CHECK "
                                      f"({into_b.status or into_b.error}) (policies: {policies})")
            return "passed the policies"
        if not refused:
            result.check(name, False, f"the INSERT failed for another reason than the policy ({into_b.sqlstate}: "
                                      f"{into_b.error}), so WITH CHECK is not shown")
            return "other error"
        result.check(name, False, f"positive control failed: as tenant A the same INSERT gave {into_a.sqlstate}: "
                                  f"{into_a.error}, so the refusal is not shown to be the policy's")
        return "refused, control failed"

    @staticmethod
    def _tables(s: "_Session", cfg: TenantConfig) -> list[dict]:
        found = s.run(
            "SELECT n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner), "
            "  coalesce((SELECT json_agg(json_build_array(p.polname, p.polcmd, p.polwithcheck IS NOT NULL) "
            "            ORDER BY p.polname) FROM pg_policy p WHERE p.polrelid = c.oid), '[]') "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "  AND n.nspname NOT LIKE 'pg\\_%%' "
            "  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = %s "
            "              AND a.attnum > 0 AND NOT a.attisdropped) "
            "ORDER BY 1, 2", (cfg.tenant_column,), title=f"tables with a {cfg.tenant_column} column")
        cmds = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}
        tables = []
        for schema, name, enabled, forced, owner, policies in found.rows:
            qualified = f"{schema}.{name}"
            if cfg.tables and name not in cfg.tables and qualified not in cfg.tables:
                continue
            tables.append({"name": qualified, "ident": pgsql.Identifier(schema, name), "enabled": enabled,
                           "forced": forced, "owner": owner,
                           "policies": [(p, cmds.get(c, c), chk) for p, c, chk in policies]})
        return tables


class _Session:
    """Statements on one connection inside one transaction, each in a savepoint (an error
    does not end the transaction), each recorded as an evidence step."""

    def __init__(self, conn: psycopg.Connection, result: GateResult, db) -> None:
        self.conn, self.result, self.db = conn, result, db

    def run(self, statement, params: tuple | None = None, *, role: str | None = None,
            settings: dict[str, str] | None = None, title: str = "") -> SqlOutcome:
        outcome = SqlOutcome()
        started = time.perf_counter()
        text = statement.as_string(self.conn) if isinstance(statement, pgsql.Composable) else statement
        prefix = (f"SET LOCAL ROLE {role};\n" if role else "") + "".join(
            f"SET LOCAL {k} = '{v}';\n" for k, v in (settings or {}).items())
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                if role:
                    cur.execute(pgsql.SQL("SET LOCAL ROLE {}").format(pgsql.Identifier(role)))
                for name, value in (settings or {}).items():
                    cur.execute("SELECT set_config(%s, %s, true)", (name, value))
                cur.execute(statement, params)
                outcome.status = cur.statusmessage or ""
                if cur.description:
                    outcome.columns = [d.name for d in cur.description]
                    outcome.rows = cur.fetchall()
                if role:
                    cur.execute("RESET ROLE")
        except psycopg.Error as exc:
            diag = getattr(exc, "diag", None)
            outcome.error = (diag.message_primary if diag and diag.message_primary else str(exc)).strip()
            outcome.sqlstate = (diag.sqlstate if diag else "") or ""
        shown = psql_table(outcome.columns, outcome.rows) if outcome.columns else outcome.status
        if outcome.error:
            shown = f"ERROR:  {outcome.error}\nSQLSTATE: {outcome.sqlstate}"
        self.result.add_step(EvidenceStep(
            title=title or text.strip().splitlines()[0][:80], command=prefix + text.strip()
            + (f"\n-- parameters: {params!r}" if params else ""), role=role or user_of(self.db.admin_url),
            database=self.db.name, duration_s=time.perf_counter() - started, output=shown))
        return outcome


@hookimpl
def zerodrift_gates():
    return [TenantIsolationGate]
