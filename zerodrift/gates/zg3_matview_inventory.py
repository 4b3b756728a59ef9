"""ZG-3 matview inventory."""

from __future__ import annotations

from pydantic import Field

from zerodrift.config import LoadedConfig
from zerodrift.context import GateContext
from zerodrift.gates.base import Gate, GateConfig, GateResult, Input
from zerodrift.gates.common import fresh_and_existing, load_failure
from zerodrift.hookspecs import hookimpl
from zerodrift.onboard.hooks import FAIL, FUNCTION_KINDS, OK, InitContext, TargetImport

MATVIEWS_SQL = (
    "SELECT schemaname, matviewname FROM pg_matviews WHERE schemaname = ANY(%s) ORDER BY schemaname, matviewname"
)


class InventoryConfig(GateConfig):
    registry: str = Field("", description="module:attribute of the app's matview registry (a list of names, or a callable returning one).")
    schemas: list[str] = Field(default_factory=lambda: ["public"], description="Schemas whose matviews are inventoried.")


def normalise(names: list[str], schemas: list[str]) -> set[str]:
    """Registry names as ``schema.name``; a bare name belongs to the first configured schema."""
    out = set()
    for name in names:
        out.add(name if "." in name else f"{schemas[0]}.{name}")
    return out


class MatviewInventoryGate(Gate):
    """ZG-3: the materialized views in the database are exactly the app's registry.

    Imports the registry from the target (``registry = "module:attribute"``; a list,
    or a callable returning one) in the target's interpreter and compares it with
    ``pg_matviews`` in the configured schemas, in both directions, on the fresh
    database and on every database ZG-2 brought to head (each upgrade path). A view the
    registry names but the database lacks is never refreshed by anyone; a view the
    database has but the registry lacks goes stale silently. Without a registry the
    gate is SKIPPED, and publishes no registry (ZG-4 then covers every matview). A
    registry whose module raises while it is imported or called is a FAIL naming the
    stage and the target's exception; a path that names no module or attribute is an
    ERROR saying what to fix.
    """

    id = "ZG-3"
    title = "Matview inventory"
    config_model = InventoryConfig
    inputs = ("db.fresh", Input("dbs.existing", optional=True, at_start=False))
    provides = ("matview.registry",)
    needs = ("server", "target")

    @classmethod
    def skip_reason(cls, cfg: InventoryConfig, loaded: LoadedConfig) -> str:
        """SKIPPED without ``registry``."""
        if cfg is not None and cfg.registry:
            return ""
        return f"registry is not configured in [gates.{cls.id}] (e.g. registry = \"app.core.matview_registry:MATERIALIZED_VIEWS\")"

    @classmethod
    def target_imports(cls, cfg: InventoryConfig) -> list[TargetImport]:
        """The registry: a list of names, or a function returning one."""
        if cfg is None or not cfg.registry:
            return []

        def judge(kind: str, value):
            if isinstance(value, list):
                return OK, f"{cfg.registry} imports: {kind} of {len(value)} names"
            if kind not in FUNCTION_KINDS:
                return FAIL, f"{cfg.registry} is a {kind}, not a list of view names (or a callable returning one)"
            return None

        return [TargetImport("registry", "registry", cfg.registry, judge)]

    @classmethod
    def propose_config(cls, init: InitContext) -> None:
        """The first registry candidate that imports as a list of names, with the matviews the
        migrations create that it does not list; else a TODO and a commented-out table."""
        facts = init.facts
        usable = init.verified("registry", facts.registries, "registry")
        if facts.registries and usable:
            reg = usable[0]
            size = f" ({len(reg.value)} names)" if isinstance(reg.value, list) else ""
            init.comment(f"matview registry found in {init.rel(reg.file)}{size}.")
            if facts.matviews and isinstance(reg.value, list):
                missing = sorted(set(facts.matviews) - {v.split(".")[-1] for v in reg.value if isinstance(v, str)})
                if missing:
                    init.comment(f"note: the migrations create matviews the registry does not list: {', '.join(missing)} "
                                 f"({cls.id} will say whether they still exist at head).")
            if len(usable) > 1:
                init.todo("other candidates: " + ", ".join(c.path for c in usable[1:]) + "; keep the one the app refreshes from.")
            init.table()
            init.key("registry", reg.path)
            init.key("schemas", ["public"])
        elif not facts.registries:
            init.todo("no matview registry found (a module-level list or tuple whose name contains MATVIEW or MATERIALIZED"
                      + (f"; the migrations create {len(facts.matviews)} matviews" if facts.matviews else "")
                      + f"): name the app's list of materialized views, or {cls.id} stays SKIPPED.")
            init.table(commented=True)
            init.commented_key("registry", "app.core.matview_registry:MATERIALIZED_VIEWS")

    def run(self, ctx: GateContext, result: GateResult) -> None:
        cfg: InventoryConfig = ctx.gate_config
        fresh = ctx.require(result, "db.fresh", "no fresh database at head to inventory")
        if fresh is None:
            return
        step, answer = ctx.target.probe("import_object.py", {"path": cfg.registry, "call": True}, db=fresh,
                                        role=ctx.config.roles.runtime or None, title=f"import registry {cfg.registry}")
        result.add_step(step)
        if answer is None or not answer.get("ok"):
            load_failure(result, answer, step.output, f"registry {cfg.registry}", "registry loads",
                         "check [gates.ZG-3] registry and target.pythonpath")
            return
        value = answer["value"]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            result.fail_with_error(f"registry {cfg.registry} is a {answer.get('type')}, expected a list of view names")
            return
        registry = normalise(value, cfg.schemas)
        duplicates = sorted({v for v in value if value.count(v) > 1})
        if duplicates:
            result.check("registry has no duplicates", False, f"listed more than once: {', '.join(duplicates)}")
        ctx.artifacts.publish("matview.registry", sorted(registry))
        result.facts["registry"] = sorted(registry)

        databases = fresh_and_existing(ctx, result, fresh, "inventoried")
        result.headline = f"{len(registry)} registered views = pg_matviews on {' + '.join(lbl for lbl, _ in databases)}"
        for label, db in databases:
            out = ctx.run_sql(result, db, MATVIEWS_SQL, params=(cfg.schemas,), title=f"pg_matviews ({label})")
            if not out.ok:
                result.check(f"{label}: inventory read", False, f"{out.sqlstate}: {out.error}")
                continue
            in_db = {f"{s}.{n}" for s, n in out.rows}
            missing = sorted(registry - in_db)
            unregistered = sorted(in_db - registry)
            result.check(f"{label}: every registered view exists", not missing,
                         f"all {len(registry)} registered views exist" if not missing
                         else f"registered but missing from {db.name}: {', '.join(missing)}")
            result.check(f"{label}: every matview is registered", not unregistered,
                         f"all {len(in_db)} matviews in {', '.join(cfg.schemas)} are registered" if not unregistered
                         else f"in {db.name} but not in the registry: {', '.join(unregistered)}")


@hookimpl
def zerodrift_gates():
    return [MatviewInventoryGate]
