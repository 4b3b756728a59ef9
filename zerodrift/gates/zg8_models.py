"""ZG-8 models match the migrations."""

from __future__ import annotations

import ast
import fnmatch
import re
from types import SimpleNamespace

from pydantic import Field

from zerodrift.catalog.diff import DiffRow
from zerodrift.catalog.drift import (DEFAULT, DEFINITION, EXTRA, MISSING, Drift, Waiver, apply_waivers, format_drift,
                                     group_drift)
from zerodrift.config import LoadedConfig
from zerodrift.context import GateContext
from zerodrift.gates.base import Gate, GateConfig, GateResult
from zerodrift.gates.common import add_drift_table, drift_detail
from zerodrift.hookspecs import hookimpl
from zerodrift.onboard.hooks import InitContext

MODELS, MIGRATIONS = "models", "migrations"


class ModelsConfig(GateConfig):
    metadata: str = Field("", description="The application's SQLAlchemy MetaData (or declarative base) as "
                                          "`module:attribute`, imported in the target's interpreter, e.g. "
                                          "`app.models:Base.metadata`. Empty: the gate is SKIPPED.")
    compare_type: bool | None = Field(None, description="Compare column types (Alembic's `compare_type`); unset: "
                                      "what the target's env.py passes to `context.configure` (Alembic's default: true).")
    compare_server_default: bool | None = Field(None, description="Compare server defaults (Alembic's "
                                                "`compare_server_default`); unset: what env.py passes (default: false).")
    include_object: str = Field("", description="An `include_object` hook as `module:callable`, used instead of the "
                                                "one env.py passes to `context.configure`; empty: env.py's, if any.")
    ignore: list[str] = Field(default_factory=list, description="Differences that are not findings, as `kind:object` "
                              "shell patterns (kinds: tables, columns, indexes, constraints), e.g. "
                              "`indexes:public.mv_*`. Ignored rows are listed in the ledger, never counted.")
    waivers: list[Waiver] = Field(default_factory=list, description="Known differences accepted until an expiry "
                                  "date, each with a reason (as in ZG-2).")



#: Source that may define SQLAlchemy metadata (a declarative base or a MetaData()).
_METADATA_HINT = re.compile(r"\bDeclarativeBase\b|\bdeclarative_base\(|\bMetaData\(")


def metadata_candidates(modules: list) -> list:
    """The SQLAlchemy metadata the application's modules define at module level, best first:
    ``class X(DeclarativeBase)`` → ``X.metadata``, ``X = declarative_base()`` → ``X.metadata``,
    ``X = MetaData()`` → ``X``. ``modules`` are :class:`zerodrift.onboard.init.AppModule`; the
    result is :class:`zerodrift.onboard.init.Candidate` objects, outside test code and shallowest first."""
    from zerodrift.onboard.init import dotted

    found = []
    for mod in modules:
        if not _METADATA_HINT.search(mod.source):
            continue
        for node in mod.tree.body:
            if isinstance(node, ast.ClassDef) and any(dotted(b).split(".")[-1] == "DeclarativeBase" for b in node.bases):
                found.append((mod, mod.candidate(f"{node.name}.metadata")))
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for name in [t.id for t in targets if isinstance(t, ast.Name)]:
                    called = dotted(node.value.func).split(".")[-1] if isinstance(node.value, ast.Call) else ""
                    if called in ("declarative_base", "MetaData"):
                        found.append((mod, mod.candidate(name + (".metadata" if called != "MetaData" else ""))))
    found.sort(key=lambda mc: (mc[1].testish, mc[0].depth, mc[1].path))
    return [c for _, c in found]

class ModelsMatchGate(Gate):
    """ZG-8: the application's SQLAlchemy models describe the schema the migrations build.

    On ZG-1's fresh database at head, the metadata named by ``metadata`` is imported in
    the target's interpreter and compared with the database by Alembic's own comparison
    (:func:`alembic.autogenerate.compare_metadata`, what ``alembic check`` runs), with the
    options the target's ``env.py`` passes to ``context.configure`` (``compare_type``,
    ``compare_server_default``, ``include_object``, ``include_name``, ``include_schemas``,
    the version table; read by running ``env.py`` as ``alembic check`` does, applying
    nothing), each overridden by this table's key when set. Each
    difference is a FAIL row in the drift vocabulary of ZG-1/ZG-2, models on the left and
    migrations on the right: ``missing object`` = only the models have it (the migrations
    never create it), ``extra object`` = only the migrations create it (the models do not
    know it), ``definition changed`` (type, nullable, comment), ``default changed``.
    ``ignore`` patterns and ``waivers`` (with an expiry) accept known false positives of
    autogenerate; ignored rows are still listed. What autogenerate does not compare
    (check constraints, triggers, policies, views, matviews, grants) is not proven here:
    ZG-1/ZG-2 compare those between databases. Without ``metadata`` the gate is SKIPPED.
    """

    id = "ZG-8"
    title = "Models match the migrations"
    config_model = ModelsConfig
    inputs = ("db.fresh",)
    needs = ("server", "target")

    @classmethod
    def skip_reason(cls, cfg: ModelsConfig, loaded: LoadedConfig) -> str:
        """SKIPPED without ``metadata``."""
        if cfg is not None and cfg.metadata:
            return ""
        return f'not configured: set [gates.{cls.id}] metadata = "module:attribute" (the SQLAlchemy MetaData)'

    @classmethod
    def propose_config(cls, init: InitContext) -> None:
        """The first SQLAlchemy metadata found outside test code, as active config."""
        models = [c for c in metadata_candidates(init.facts.app_modules) if not c.testish]
        if models:
            init.comment(f"SQLAlchemy metadata found in {init.rel(models[0].file)}; {cls.id} imports it in the target's "
                         "interpreter and compares it with the fresh database (set compare_* as env.py does).")
            if len(models) > 1:
                init.todo("other candidates: " + ", ".join(c.path for c in models[1:]) + "; keep the application's models.")
            init.table()
            init.key("metadata", models[0].path)
        else:
            init.comment("no SQLAlchemy metadata found (a DeclarativeBase subclass, declarative_base() or MetaData()): "
                         f"{cls.id} stays SKIPPED.")
            init.table(commented=True)
            init.commented_key("metadata", "app.models:Base.metadata")

    def run(self, ctx: GateContext, result: GateResult) -> None:
        cfg: ModelsConfig = ctx.gate_config
        db = ctx.require(result, "db.fresh", "ZG-8 compares the models with the fresh database at head")
        if db is None:
            return
        url_env = ctx.config.target.migration_url_env[0]
        options = {k: v for k, v in (("compare_type", cfg.compare_type),
                                     ("compare_server_default", cfg.compare_server_default)) if v is not None}
        request = {"metadata": cfg.metadata, "url_env": url_env, "alembic_ini": str(ctx.target.alembic_ini),
                   "options": options, "include_object": cfg.include_object}
        tcfg = ctx.config.target
        # env.py runs as the alembic jobs run it (in the app's context, through the runner hook)
        request.update({k: getattr(tcfg, k) for k in ("flask_app", "alembic_runner") if getattr(tcfg, k)})
        step, answer = ctx.target.probe("models_probe.py", request, db=db, role=ctx.migration_role, runtime=False,
                                        title="alembic.autogenerate.compare_metadata(models, fresh database)")
        result.add_step(step)
        if answer is None:
            result.fail_with_error(f"the models probe did not finish: {step.output.strip().splitlines()[-1:]}")
            return
        if not answer["ok"]:
            result.fail_with_error(f"could not compare {cfg.metadata} with the database: {answer['error']}")
            return
        rows, ignored = [], []
        for d in answer["differences"]:
            row = DiffRow(d["kind"], d["object"], d["attribute"], d["models"], d["database"])
            pattern = next((p for p in cfg.ignore if fnmatch.fnmatchcase(f"{row.kind}:{row.object}", p)), None)
            (ignored if pattern else rows).append((row, pattern, d["op"]))
        report = apply_waivers([Drift(r, _drift_class(r)) for r, _, _ in rows], cfg.waivers)
        failing = report.failing
        waived = len(report.rows) - len(failing)
        no_catalog = SimpleNamespace(objects={})  # rows come from autogenerate, not from two catalog snapshots
        groups = group_drift(report.rows, no_catalog, no_catalog, MODELS, MIGRATIONS)
        result.facts["models"] = {"tables": answer["tables"], "differences": len(rows), "ignored": len(ignored),
                                  "waived": waived, "options": answer.get("options", {}),
                                  "options_from_env_py": answer.get("env_options", [])}
        if report.rows:
            add_drift_table(result, MODELS, MIGRATIONS, [("", groups)])
            result.attachments["models-vs-migrations.diff.txt"] = format_drift(groups, MODELS, MIGRATIONS)
        if ignored:
            result.add_table("Ignored by [gates.ZG-8] ignore (not counted)", ["Kind", "Object", "Attribute", "Models",
                             "Migrations", "Pattern"], [[r.kind, r.object, r.attribute, str(r.left), str(r.right), p]
                                                        for r, p, _ in ignored])
        for waiver in report.stale_waivers:
            result.skip_check(f"waiver {waiver.label}", f"stale: it matches no difference — remove it ({waiver.reason})")
        detail = (drift_detail(failing, MODELS, MIGRATIONS, waived, groups) + "; " + _sides(failing)) if failing else (
            f"{answer['tables']} model table(s) match the schema at head (Alembic {answer.get('alembic_version', '?')} "
            f"compare_metadata)" + (f"; {waived} waived" if waived else "") + (f"; {len(ignored)} ignored" if ignored else ""))
        result.check("models match the migrations", not failing, detail)
        if not failing:
            result.headline = f"{answer['tables']} model tables equal the fresh schema by Alembic's autogenerate comparison"


def _drift_class(row: DiffRow) -> str:
    """The drift class of an autogenerate difference (models left, migrations right)."""
    if row.attribute == "(object)":
        return MISSING if row.left == "present" else EXTRA
    return DEFAULT if row.attribute == "default" else DEFINITION


def _sides(failing) -> str:
    """Which side has each object: the reader's next step differs (write a migration, or fix the model)."""
    only_models = [d.row.object for d in failing if d.row.attribute == "(object)" and d.row.left == "present"]
    only_db = [d.row.object for d in failing if d.row.attribute == "(object)" and d.row.right == "present"]
    parts = []
    if only_models:
        parts.append(f"in the models, missing from the migrations: {', '.join(only_models[:5])}")
    if only_db:
        parts.append(f"created by the migrations, missing from the models: {', '.join(only_db[:5])}")
    changed = [f"{d.row.object} {d.row.attribute}" for d in failing if d.row.attribute != "(object)"]
    if changed:
        parts.append(f"different on both sides: {', '.join(changed[:5])}")
    return "; ".join(parts)


@hookimpl
def zerodrift_gates():
    return [ModelsMatchGate]
