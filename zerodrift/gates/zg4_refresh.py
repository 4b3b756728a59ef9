"""ZG-4 refresh viability."""

from __future__ import annotations

from psycopg import sql as pgsql
from pydantic import Field

from zerodrift.config import LoadedConfig
from zerodrift.context import GateContext
from zerodrift.gates.base import Gate, GateConfig, GateResult, Input
from zerodrift.gates.common import fresh_and_existing
from zerodrift.hookspecs import hookimpl
from zerodrift.onboard.hooks import InitContext

# Unique indexes usable by REFRESH ... CONCURRENTLY: valid, unique, no WHERE clause,
# no expression column (PostgreSQL docs, REFRESH MATERIALIZED VIEW, "CONCURRENTLY").
FACTS_SQL = """
SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner), c.relispopulated,
       pg_has_role(%(role)s, c.relowner, 'USAGE') AS owns,
       {maintain} AS maintain,
       (SELECT string_agg(i.relname, ', ' ORDER BY i.relname)
          FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
         WHERE x.indrelid = c.oid AND x.indisunique AND x.indisvalid
           AND x.indpred IS NULL AND x.indexprs IS NULL) AS usable,
       (SELECT string_agg(i.relname || ' (' ||
                 concat_ws(', ', CASE WHEN NOT x.indisvalid THEN 'invalid' END,
                                 CASE WHEN x.indpred IS NOT NULL THEN 'has a WHERE clause' END,
                                 CASE WHEN x.indexprs IS NOT NULL THEN 'has an expression column' END) || ')',
                 '; ' ORDER BY i.relname)
          FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
         WHERE x.indrelid = c.oid AND x.indisunique
           AND NOT (x.indisvalid AND x.indpred IS NULL AND x.indexprs IS NULL)) AS unusable
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'm' AND n.nspname = ANY(%(schemas)s)
 ORDER BY 1, 2
"""


class RefreshConfig(GateConfig):
    schemas: list[str] = Field(default_factory=lambda: ["public"], description="Schemas whose matviews are refreshed when no registry is configured.")


class RefreshViabilityGate(Gate):
    """ZG-4: the runtime role can REFRESH MATERIALIZED VIEW CONCURRENTLY every registered matview.

    For each matview in the registry (ZG-3; every matview in the configured schemas
    when there is none), on the fresh and the existing database, as the runtime role
    (``SET ROLE``) with its configured session settings (GUCs), asserts: the runtime
    role owns the view (or, on PostgreSQL 17+, holds MAINTAIN on it, e.g. through
    ``pg_maintain``); the view has at least one valid unique index without a WHERE
    clause or expression column (PostgreSQL's rule for CONCURRENTLY); the view is
    populated; and the refresh itself succeeds. A failure names the condition and
    PostgreSQL's error and hint.
    """

    id = "ZG-4"
    title = "Refresh viability as the runtime role"
    config_model = RefreshConfig
    inputs = ("db.fresh", "matview.registry", Input("dbs.existing", optional=True, at_start=False))
    needs = ("server",)

    @classmethod
    def skip_reason(cls, cfg: RefreshConfig, loaded: LoadedConfig) -> str:
        """SKIPPED without ``roles.runtime``."""
        return "" if loaded.config.roles.runtime else "roles.runtime is not configured: no runtime role to refresh as"

    @classmethod
    def propose_config(cls, init: InitContext) -> None:
        init.comment(f"{cls.id} refreshes every registered matview as roles.runtime; it needs no table of its own.")

    def run(self, ctx: GateContext, result: GateResult) -> None:
        cfg: RefreshConfig = ctx.gate_config
        role = ctx.config.roles.runtime
        fresh = ctx.require(result, "db.fresh", "nothing to refresh")
        if fresh is None:
            return
        registry = ctx.require(result, "matview.registry", "no matview registry result")
        if result.error:
            return
        databases = fresh_and_existing(ctx, result, fresh, "refreshed")
        settings = ctx.config.roles.runtime_settings
        version_num = int(ctx.server_version_num())
        maintain = "has_table_privilege(%(role)s, c.oid, 'MAINTAIN')" if version_num >= 170000 else "false"
        schemas = sorted({name.split(".", 1)[0] for name in registry}) if registry else cfg.schemas
        views_checked = 0
        for label, db in databases:
            with ctx.artifacts.exclusive(db.name):
                views_checked += self._refresh_all(ctx, result, label, db, role, settings, maintain, schemas,
                                                   registry, version_num)
        # counted from what ran (shown only when every check PASSed)
        result.headline = (f"{views_checked} matview refresh(es) CONCURRENTLY as {role} on "
                           f"{' + '.join(lbl for lbl, _ in databases)}")
        if not views_checked and not result.error:
            # connecting is not refreshing: with no view to refresh, nothing was proven
            result.skip(f"no materialized views to refresh (registry: {'none' if registry is None else 'empty'}; "
                        f"schemas {', '.join(schemas)})")

    @staticmethod
    def _refresh_all(ctx: GateContext, result, label, db, role, settings, maintain, schemas, registry, version_num) -> int:
        """Check every view on ``db``; returns how many views were checked."""
        # SET ROLE skips the login checks: assert them, or a role that cannot connect would pass
        login = ctx.run_sql(result, db, "SELECT rolcanlogin, has_database_privilege(rolname, current_database(), "
                            "'CONNECT') FROM pg_roles WHERE rolname = %s", params=(role,),
                            title=f"{role} can log in and connect ({label})")
        can_login, can_connect = (login.rows[0] if login.ok and login.rows else (False, False))
        result.check(f"{label}: {role} can connect", bool(can_login and can_connect),
                     f"{role} has LOGIN and CONNECT on {db.name}" if can_login and can_connect else
                     f"{role} " + ("does not exist" if not login.rows else
                                   "has no LOGIN" if not can_login else f"lacks CONNECT on {db.name}")
                     + ": the application could not connect to refresh anything")
        facts = ctx.run_sql(result, db, FACTS_SQL.format(maintain=maintain), params={"role": role, "schemas": schemas},
                            title=f"matview owners, unique indexes, populated ({label})")
        if not facts.ok:
            result.check(f"{label}: matview facts", False, f"{facts.sqlstate}: {facts.error}")
            return 0
        rows = {f"{r[0]}.{r[1]}": r for r in facts.rows}
        names = registry if registry is not None else sorted(rows)
        if not names:
            result.skip_check(f"{label}: matviews", "no materialized views to refresh")
        for name in names:
            row = rows.get(name)
            if row is None:
                result.check(f"{label}: {name}", False, f"{name} does not exist in {db.name}: nothing to refresh")
                continue
            _, _, owner, populated, owns, has_maintain, usable, unusable = row
            problems, notes = [], []
            if owns:
                notes.append(f"owner {owner}")
            elif has_maintain:
                notes.append(f"owner {owner}, {role} holds MAINTAIN")
            else:
                problems.append(f"owned by {owner}; {role} is neither the owner nor a member of it"
                                + (" and lacks MAINTAIN" if version_num >= 170000 else ""))
            if usable:
                notes.append(f"unique index {usable}")
            else:
                problems.append("no usable unique index" + (f" (unusable: {unusable})" if unusable else
                                                            " (none is unique)"))
            (notes if populated else problems).append("populated" if populated else "not populated (WITH NO DATA)")
            statement = pgsql.SQL("REFRESH MATERIALIZED VIEW CONCURRENTLY {}").format(
                pgsql.Identifier(*name.split(".", 1))).as_string(None)
            out = ctx.run_sql(result, db, statement, role=role, settings=settings,
                              title=f"refresh {name} as {role} ({label})")
            if out.ok:
                notes.append("REFRESH CONCURRENTLY succeeded")
            else:
                problems.append(f"REFRESH CONCURRENTLY failed: {out.sqlstate} {out.error}"
                                + (f" (hint: {out.hint})" if out.hint else ""))
            result.check(f"{label}: {name}", not problems,
                         "; ".join(problems) if problems else "; ".join(notes))
        return len(names)


@hookimpl
def zerodrift_gates():
    return [RefreshViabilityGate]
