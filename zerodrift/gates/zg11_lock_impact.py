"""ZG-11 lock impact: what each revision of the upgrade path locks and rewrites, observed."""

from __future__ import annotations

import fnmatch
import json
from typing import Literal

from pydantic import Field

from zerodrift.config import LoadedConfig
from zerodrift.context import GateContext
from zerodrift.errors import EnvironmentProblem
from zerodrift.gates.base import Gate, GateConfig, GateResult
from zerodrift.gates.common import revisions_text
from zerodrift.hookspecs import hookimpl
from zerodrift.lock_impact import FAILING_KINDS, FIXES, KINDS, LockWaiver, Observation, evaluate, mode_name

#: A table a statement worked on with no lock left at any observation point (CREATE INDEX CONCURRENTLY
#: releases its session lock before its command ends).
NO_LOCK = "none held at command end"
#: Rows of the per-revision table shown openly; the rest are in a collapsed table.
OPEN_ROWS = 25

#: Tables (and populated materialized views) of the target's schemas.
TABLES_SQL = """
SELECT c.oid::bigint AS oid, n.nspname AS schema, c.relname AS name
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp)' AND (c.relkind <> 'm' OR c.relispopulated)
ORDER BY 2, 3
"""


def _ident(name: str) -> str:
    """A quoted SQL identifier (SQL Syntax, "Identifiers and Key Words")."""
    return '"' + name.replace('"', '""') + '"'


def has_rows_sql(tables: list[tuple]) -> str:
    """One statement telling, for each (oid, schema, name), whether the table holds a row
    (run as the admin, who bypasses row security)."""
    return "\nUNION ALL\n".join(f"SELECT {int(oid)}::bigint AS oid, EXISTS (SELECT 1 FROM ONLY {_ident(s)}.{_ident(n)}) "
                                 "AS has_rows" for oid, s, n in tables)


#: The event trigger that lets the probe see the locks a DDL command holds at its end, also when the
#: statement commits itself (autocommit, CREATE INDEX CONCURRENTLY). It only appends to a session setting.
DDL_OBSERVER_SQL = """
CREATE SCHEMA zerodrift_observer;
CREATE FUNCTION zerodrift_observer.ddl_command_end() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM set_config('zerodrift.ddl_locks', coalesce(current_setting('zerodrift.ddl_locks', true), '')
    || json_build_object('tag', tg_tag, 'locks', coalesce(
         (SELECT json_agg(json_build_array(l.relation::bigint, l.mode)) FROM pg_locks l
          WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())), '[]'))::text
    || E'\\n', false);
END
$fn$;
GRANT USAGE ON SCHEMA zerodrift_observer TO PUBLIC;
CREATE EVENT TRIGGER zerodrift_ddl_locks ON ddl_command_end EXECUTE FUNCTION zerodrift_observer.ddl_command_end();
"""


class LockImpactConfig(GateConfig):
    from_revision: str = Field("", description="Revision the database is built at before seeding; empty: [gates.ZG-2] from_revision.")
    seed_sql: str = Field("", description="SQL run at from_revision as the migration role; empty (and no seed_sql_file): [gates.ZG-2]'s seed when the path starts at [gates.ZG-2]'s from_revision.")
    seed_sql_file: str = Field("", description="File holding the seed SQL, relative to the config root.")
    hot_tables: list[str] | None = Field(None, description="Tables judged hot (schema.table shell patterns, e.g. public.orders); default: every table that exists before the upgrade and holds a row after the seed.")
    fail_on: list[Literal["rewrite", "index_build", "write_under_lock", "scan_under_lock"]] = Field(
        default_factory=lambda: list(FAILING_KINDS),
        description="Finding kinds that FAIL (the others are reported): rewrite, index_build (without CONCURRENTLY), "
                    "write_under_lock (rows written while a hot table is held in SHARE or stronger), scan_under_lock "
                    "(rows scanned, e.g. a constraint validated, while one is).")
    waivers: list[LockWaiver] = Field(default_factory=list, description="Reviewed findings accepted until an expiry date, each with a reason.")


class LockImpactGate(Gate):
    """ZG-11: no revision of the upgrade path blocks a hot table for longer than a catalog change.

    It builds its own database at the existing path's ``from_revision`` (own config,
    else ``[gates.ZG-2]``'s), applies the seed, notes the **hot tables** (default: every
    table that then holds a row; ``hot_tables`` names them instead), and upgrades to
    head in the target's interpreter with an observer (``zerodrift/probes/lock_probe.py``):
    around every statement of every revision it reads, on the migrating connection,
    ``pg_locks`` for its own backend (locks are held until commit, PostgreSQL 13.3),
    ``pg_class.relfilenode`` (a rewrite changes it), ``pg_stat_xact_user_tables`` (rows
    scanned and written within the transaction) and ``transaction_timestamp()`` (did
    the statement run in a transaction); an event trigger on ``ddl_command_end`` adds
    the locks held at the end of each DDL command, so the locks of a statement that
    commits itself (a plain ``CREATE INDEX`` in an autocommit block) are seen too, and
    an index that appears with no SHARE lock at its command's end was built
    ``CONCURRENTLY``. The method and its limits: docs/lock-impact.md.

    PASS proves, per revision: no hot table was held in SHARE or a stronger mode (one
    that blocks writes; ACCESS EXCLUSIVE also blocks reads) while a statement rewrote a
    hot table, built an index on one without ``CONCURRENTLY``, or wrote or scanned its
    rows (a backfill, a constraint validated without ``NOT VALID``) — unless a waiver
    with a reason and an expiry accepts it. A catalog-only ACCESS EXCLUSIVE (a column
    without a volatile default, a rename, a drop) is reported, not failed. The positive
    control: every revision that ran in a transaction showed the version table's lock
    to the observer. Locks taken and released inside one statement (a subtransaction
    rolled back in a function) are seen only if held at an observation point. Without
    a from_revision path the gate is SKIPPED.
    """

    id = "ZG-11"
    title = "Lock impact of the upgrade path"
    config_model = LockImpactConfig
    needs = ("server", "target")

    @classmethod
    def skip_reason(cls, cfg: LockImpactConfig, loaded: LoadedConfig) -> str:
        """SKIPPED without a from_revision, its own or ZG-2's."""
        if (cfg is not None and cfg.from_revision) or loaded.gate_table("ZG-2").get("from_revision"):
            return ""
        return (f"no existing path: set from_revision in [gates.{cls.id}] or [gates.ZG-2] "
                "(the revision an existing database is at, and a seed with its rows)")

    def run(self, ctx: GateContext, result: GateResult) -> None:
        cfg: LockImpactConfig = ctx.gate_config
        existing = ctx.loaded.gate_table("ZG-2")
        from_revision = cfg.from_revision or existing.get("from_revision", "")
        seed = self._seed(ctx, result, cfg, existing)
        if seed is None:
            return
        db = ctx.database("lock_impact")
        role = ctx.migration_role
        try:
            with ctx.target.alembic_session(db, role=role, probe="lock_probe.py") as session:
                self._walk(ctx, result, cfg, session, db, role, from_revision, seed)
        except EnvironmentProblem as exc:
            result.fail_with_error(str(exc), environment=True)

    @staticmethod
    def _seed(ctx: GateContext, result: GateResult, cfg: LockImpactConfig, existing: dict) -> str | None:
        """The seed SQL: this gate's own, else ZG-2's when the path starts at ZG-2's from_revision."""
        own = bool(cfg.seed_sql or cfg.seed_sql_file)
        shared = not own and cfg.from_revision in ("", existing.get("from_revision", ""))
        text = cfg.seed_sql if own else existing.get("seed_sql", "") if shared else ""
        file = cfg.seed_sql_file if own else existing.get("seed_sql_file", "") if shared else ""
        if file:
            path = ctx.loaded.path(file)
            try:
                return path.read_text(encoding="utf-8")
            except OSError as exc:
                where = "[gates.ZG-11]" if own else "[gates.ZG-2]"
                result.fail_with_error(f"{where} seed_sql_file {path}: {exc}")
                return None
        return text

    def _walk(self, ctx: GateContext, result, cfg, session, db, role, from_revision, seed) -> None:
        first = session.job([{"op": "upgrade", "revision": from_revision}, {"op": "current"}])
        result.add_steps(first.steps)
        at_rev = first.ok and first.values[-1] == [from_revision]
        if not result.check(f"upgrade to {from_revision}", at_rev,
                            f"current is {revisions_text(first.values[-1])}" if first.ok else first.error):
            if not first.ok:
                result.fail_with_error(f"upgrade to {from_revision} failed on {db.name}: {first.error}")
            return
        if seed.strip():
            seeded = ctx.run_sql(result, db, seed, role=role, title="seed")
            if not result.check("seed applied", seeded.ok,
                                "seed SQL committed" if seeded.ok else f"{seeded.sqlstate}: {seeded.error}"):
                return
        tables = ctx.run_sql(result, db, TABLES_SQL, title="tables of the existing database")
        if not tables.ok:
            result.fail_with_error(f"could not list the tables of {db.name}: {tables.error}")
            return
        if cfg.hot_tables is None:
            filled = ctx.run_sql(result, db, has_rows_sql(tables.rows), title="which tables hold rows (hot tables)") \
                if tables.rows else None
            if filled is not None and not filled.ok:
                result.fail_with_error(f"could not count the rows of {db.name}'s tables: {filled.error}")
                return
            with_rows = {str(oid) for oid, has in (filled.rows if filled else []) if has}
            hot = {str(oid): f"{s}.{n}" for oid, s, n in tables.rows if str(oid) in with_rows}
        else:
            hot = {str(oid): f"{s}.{n}" for oid, s, n in tables.rows
                   if any(fnmatch.fnmatchcase(f"{s}.{n}", p) for p in cfg.hot_tables)}
        observer = ctx.run_sql(result, db, DDL_OBSERVER_SQL, title="DDL observer (event trigger on ddl_command_end)")
        if not observer.ok:
            result.fail_with_error(f"could not create the DDL observer on {db.name}: {observer.error}")
            return
        second = session.job([{"op": "heads"}, {"op": "upgrade", "revision": "heads"}, {"op": "current"}], observe=True)
        for step in second.steps:
            if step.command.startswith("alembic upgrade"):
                step.title += " (observed: pg_locks, relfilenodes, row counters around each statement)"
        result.add_steps(second.steps)
        raw = second.extra.get("lock_impact")
        if raw is None:
            result.fail_with_error(f"the observed upgrade returned no observation: {second.error or 'no answer'}",
                                   environment=second.process_failed)
            return
        heads = second.values[0] if second.values else None
        result.check("upgrade to head (observed)", second.ok,
                     f"{from_revision} → {revisions_text(heads)}, {len(raw['revisions'])} revision(s)" if second.ok
                     else second.error)
        impacts = evaluate(raw, set(hot), cfg.waivers, tuple(cfg.fail_on))
        hot_names = [name for oid, name in hot.items() if oid not in _version_oids(raw)]
        self._report(result, cfg, raw, impacts, hot_names, from_revision)

    def _report(self, result, cfg, raw, impacts, hot_names, from_revision) -> None:
        result.attachments["lock-impact.json"] = json.dumps(raw, indent=1, sort_keys=True).encode()
        for error in raw.get("errors", []):
            result.skip_check("observation", f"an observation query failed: {error}")
        if not impacts:
            result.skip_check("lock impact", f"no revision runs after {from_revision}: nothing to observe")
            return
        transactional = [i for i in impacts if i.statements > i.autocommit]
        blind = [i.revision for i in transactional if not i.version_lock_seen]
        if blind:  # zerodrift could not see the target's statements: not a finding about the target
            result.fail_with_error(f"the observer saw no lock of the migrating backend in {revisions_text(blind)}: the "
                                   "target's statements did not pass through a SQLAlchemy engine with a synchronous "
                                   "driver (psycopg, psycopg2) — see docs/lock-impact.md")
        elif transactional:
            result.check("observer saw each revision's own locks", True,
                         f"the version table's lock was in pg_locks for the migrating backend in all {len(transactional)} "
                         "revision(s) that ran in a transaction")
        if not hot_names:
            result.skip_check("hot tables", "no table held a row after the seed: nothing is judged — seed the "
                              "existing path (seed_sql) or name hot_tables")
        result.facts["lock_impact"] = {
            "from_revision": from_revision, "hot_tables": sorted(hot_names),
            "fail_on": list(cfg.fail_on),
            "revisions": [_impact_fact(i, rev) for i, rev in zip(impacts, raw.get("revisions", []))]}
        waived = 0
        for impact in impacts:
            failing = [f for f in impact.findings if f.failing]
            waived += sum(1 for f in impact.findings if f.status == "WAIVED")
            if impact.errors:
                result.check(f"{impact.revision}: statements succeeded", False, impact.errors[0])
            if not hot_names:
                continue
            if failing:
                detail = f"{len(failing)} finding(s); first: " + failing[0].describe() + (
                    f" (waiver expired {failing[0].waiver.expires})" if failing[0].status == "EXPIRED" else "") + (
                    f". Fix: {FIXES[failing[0].kind]}; or waive it with a reason and an expiry "
                    "([[gates.ZG-11.waivers]])")
            else:
                detail = _quiet_detail(impact)
            result.check(f"{impact.revision}: no hot table blocked during row work", not failing, detail)
        used = {id(f.waiver) for i in impacts for f in i.findings if f.waiver is not None}
        for waiver in cfg.waivers:
            if id(waiver) not in used:
                result.skip_check(f"waiver {waiver.label}", f"stale: it matches no finding — remove it ({waiver.reason})")
        self._tables(result, impacts)
        if hot_names:
            result.headline = (f"{len(impacts)} revision(s) {from_revision} → head observed with {len(hot_names)} hot "
                               f"table(s): no rewrite, no index built without CONCURRENTLY, no rows scanned or written "
                               f"while a hot table was write-locked" + (f" ({waived} waived finding(s))" if waived else ""))

    @staticmethod
    def _tables(result, impacts) -> None:
        rows = []
        for impact in impacts:
            head = [impact.revision, impact.transaction, impact.statements, f"{impact.duration_s * 1000:.1f}"]
            if not impact.tables:
                rows.append(head + ["—", "", "", "", ""])
            for table, entry in sorted(impact.tables.items()):
                kinds = sorted({f"{f.kind} {f.status}" for f in impact.findings if f.table == table})
                rows.append(head + [table, "yes" if entry["hot"] else "no", mode_name(entry["mode"]) or NO_LOCK,
                                    "yes" if entry["rewritten"] else "no", ", ".join(kinds)])
        columns = ["Revision", "Transaction", "Statements", "Time (ms)", "Table", "Hot", "Strongest lock held",
                   "Rewritten", "Findings"]
        summary = (f"{len(impacts)} revision(s); per table the strongest lock held while each revision ran (taken by it, or earlier in its transaction) and whether it "
                   "rewrote it; ledger.json carries every statement (facts.lock_impact)")
        result.add_table("Lock impact per revision", columns, rows[:OPEN_ROWS], summary=summary)
        if len(rows) > OPEN_ROWS:
            result.add_table(f"Lock impact per revision (continued, {len(rows) - OPEN_ROWS} more rows)", columns,
                             rows[OPEN_ROWS:], collapsed=True)
        findings = [f for i in impacts for f in i.findings]
        if findings:
            result.add_table("Lock findings", ["Revision", "Statement", "Table", "Lock", "Rewrite", "Duration (ms)",
                                               "Finding", "Status"],
                             [[f.revision, f.statement, f.table, mode_name(f.mode), "yes" if f.rewritten else "no",
                               f"{f.duration_s * 1000:.1f}", KINDS[f.kind] + (f" ({f.cause})" if f.cause else ""),
                               f.status + (f": {f.waiver.reason} (until {f.waiver.expires})" if f.waiver else "")]
                              for f in findings],
                             summary=f"{sum(f.failing for f in findings)} failing, "
                                     f"{sum(f.status == 'WAIVED' for f in findings)} waived, "
                                     f"{sum(f.status == 'REPORTED' for f in findings)} reported")


def _version_oids(raw) -> set[str]:
    return Observation(raw).version_oids


def _quiet_detail(impact) -> str:
    waived = [f for f in impact.findings if f.status == "WAIVED"]
    reported = [f for f in impact.findings if f.status == "REPORTED"]
    parts = [f"{impact.statements} statement(s), transaction: {impact.transaction}"]
    if impact.tables:
        parts.append("locks held: " + ", ".join(f"{t} {mode_name(e['mode']) or NO_LOCK}"
                                                for t, e in sorted(impact.tables.items())))
    if reported:
        parts.append("reported: " + "; ".join(f"{KINDS[f.kind]} on {f.table}" for f in reported[:3]))
    if waived:
        parts.append(f"{len(waived)} finding(s) waived: {waived[0].waiver.reason} (until {waived[0].waiver.expires})")
    return "; ".join(parts)


def _impact_fact(impact, rev: dict) -> dict:
    return {"revision": impact.revision, "transaction": impact.transaction, "duration_s": impact.duration_s,
            "tables": impact.tables,
            "findings": [{"statement": f.statement, "table": f.table, "mode": mode_name(f.mode), "kind": f.kind,
                          "rewritten": f.rewritten, "duration_s": f.duration_s, "cause": f.cause, "status": f.status,
                          "waiver": f.waiver.reason if f.waiver else None} for f in impact.findings],
            "statements": rev["statements"]}


@hookimpl
def zerodrift_gates():
    return [LockImpactGate]
