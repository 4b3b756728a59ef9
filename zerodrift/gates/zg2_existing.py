"""ZG-2 existing-database path."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from zerodrift.catalog.diff import format_rows
from zerodrift.context import ArtifactUnavailable
from zerodrift.gates.base import Gate, GateConfig, GateResult
from zerodrift.gates.common import diff_detail, revisions_text
from zerodrift.hookspecs import hookimpl


class DataCheck(GateConfig):
    name: str = Field(description="What the check asserts, shown in the ledger.")
    sql: str = Field(description="A query returning one value (first column of the first row).")
    expect: Any = Field(description="The value it must return, e.g. 0.")


class ExistingConfig(GateConfig):
    from_revision: str = Field("", description="Older revision the existing database is built at, before seeding.")
    seed_sql: str = Field("", description="SQL run at from_revision as the migration role (data a real database would hold).")
    seed_sql_file: str = Field("", description="File holding the seed SQL, relative to the config root (instead of seed_sql).")
    data_checks: list[DataCheck] = Field(default_factory=list, description="Queries that must return the expected value after the upgrade.")

    @model_validator(mode="after")
    def _one_seed(self):
        if self.seed_sql and self.seed_sql_file:
            raise ValueError("give seed_sql or seed_sql_file, not both")
        return self


class ExistingDatabaseGate(Gate):
    """ZG-2: a database that lived through the upgrade ends like a fresh one.

    Builds the existing database at ``from_revision``, applies the configured seed
    (rows a real database holds before the newer revisions ran, so backfills have
    something to do), upgrades to head, and asserts: every step succeeded, ``current``
    equals head, each configured data check returns its expected value (e.g. no NULL
    left in a backfilled column), and the catalog snapshot equals ZG-1's fresh
    snapshot — zero drift between the fresh and the upgrade path. Without
    ``from_revision`` the gate is SKIPPED.
    """

    id = "ZG-2"
    title = "Existing-database upgrade path"
    config_model = ExistingConfig
    requires = ("snapshot.fresh",)
    provides = ("db.existing", "snapshot.existing")
    needs = ("server", "target")

    def run(self, ctx, result: GateResult) -> None:
        cfg: ExistingConfig = ctx.gate_config
        if not cfg.from_revision:
            result.skip("from_revision is not configured in [gates.ZG-2]: no existing-database path to prove")
            return
        seed = cfg.seed_sql
        if cfg.seed_sql_file:
            path = ctx.loaded.path(cfg.seed_sql_file)
            try:
                seed = path.read_text(encoding="utf-8")
            except OSError as exc:
                result.fail_with_error(f"[gates.ZG-2] seed_sql_file {path}: {exc}")
                return
        target = ctx.target
        role = ctx.migration_role
        db = ctx.database("existing")

        first = target.alembic_job(db, [{"op": "upgrade", "revision": cfg.from_revision}, {"op": "current"}], role=role)
        result.add_steps(first.steps)
        at_rev = first.ok and first.values[-1] == [cfg.from_revision]
        if not result.check(f"upgrade to {cfg.from_revision}", at_rev,
                            f"current is {revisions_text(first.values[-1])}" if first.ok else first.error):
            if not first.ok:
                result.fail_with_error(f"upgrade to {cfg.from_revision} failed on {db.name}: {first.error}")
            return

        if seed.strip():
            seeded = ctx.run_sql(result, db, seed, role=role, title=f"seed at {cfg.from_revision}")
            if not result.check("seed applied", seeded.ok,
                                "seed SQL committed" if seeded.ok else f"{seeded.sqlstate}: {seeded.error}"):
                return
        else:
            result.skip_check("seed applied", "no seed configured: backfills run on an empty database")

        second = target.alembic_job(db, [{"op": "heads"}, {"op": "upgrade", "revision": "heads"}, {"op": "current"}], role=role)
        result.add_steps(second.steps)
        heads = second.values[0] if second.values else None
        if not result.check("upgrade to head", second.ok, f"{cfg.from_revision} → {revisions_text(heads)}" if second.ok else second.error):
            result.fail_with_error(f"upgrade from {cfg.from_revision} to head failed on {db.name}: {second.error}")
            return
        current = second.values[-1]
        result.check("current equals head", sorted(current) == sorted(heads),
                     f"alembic current: {revisions_text(current)}; heads: {revisions_text(heads)}")

        for check in cfg.data_checks:
            outcome = ctx.run_sql(result, db, check.sql, role=role, title=f"data check: {check.name}")
            value = outcome.scalar()
            ok = outcome.ok and _equal(value, check.expect)
            result.check(f"data: {check.name}", ok,
                         f"returned {value!r}, expected {check.expect!r}" if outcome.ok else f"{outcome.sqlstate}: {outcome.error}")

        snap = ctx.snapshot(result, db, "existing")
        result.attachments["existing.snapshot.json"] = snap.to_canonical_json()
        ctx.artifacts.publish("db.existing", db)
        ctx.artifacts.publish("snapshot.existing", snap)
        try:
            fresh = ctx.artifacts.require("snapshot.fresh")
        except ArtifactUnavailable as exc:
            result.skip_check("catalog equals fresh database", f"no fresh snapshot to compare with: {exc}")
            return
        equal, detail, rows = diff_detail("fresh", "existing", fresh, snap)
        result.check("catalog equals fresh database", equal, detail)
        result.facts["schema_fingerprint"] = snap.fingerprint
        if rows:
            result.attachments["fresh-vs-existing.diff.txt"] = (format_rows(rows) + "\n").encode()


def _equal(value: Any, expected: Any) -> bool:
    if value == expected:
        return True
    return str(value) == str(expected)


@hookimpl
def zerodrift_gates():
    return [ExistingDatabaseGate]
