"""ZG-2 existing-database path."""

from __future__ import annotations

import re
import time
from typing import Any

import psycopg
from pydantic import Field, model_validator

from zerodrift.catalog.diff import diff_snapshots
from zerodrift.catalog.drift import Waiver, apply_waivers, classify, format_drift, group_drift
from zerodrift.catalog.sequences import owned_sequences
from zerodrift.config import LoadedConfig
from zerodrift.context import ArtifactUnavailable, GateContext, psql_table
from zerodrift.errors import EnvironmentProblem, UsageError
from zerodrift.gates.base import EvidenceStep, Gate, GateConfig, GateResult, Input
from zerodrift.gates.common import add_drift_table, drift_detail, revisions_text, sql_value
from zerodrift.hookspecs import hookimpl
from zerodrift.onboard.hooks import DoctorContext, InitContext
from zerodrift.urls import user_of
from zerodrift.worktree import RefWorktree, migration_folders

class DataCheck(GateConfig):
    name: str = Field(description="What the check asserts, shown in the ledger.")
    sql: str = Field(description="A query returning one value (first column of the first row).")
    expect: Any = Field(description="The value it must return, e.g. 0.")


class UpgradePath(GateConfig):
    """One way an existing database came to be, before it is upgraded to head."""

    name: str = Field("", description="Label in the ledger; default: the ref or revision.")
    from_revision: str = Field("", description="Build the database with today's migration files up to this revision.")
    from_ref: str = Field("", description="Build it with the migration files of this git ref (tag, branch, SHA), to that ref's head (or `revision`).")
    revision: str = Field("", description="With from_ref: build the old database up to this revision of the ref's history instead of its head(s), e.g. the revision ZG-2's seed is written for.")
    python: str = Field("", description="With from_ref: interpreter that builds the old database (path or command; relative paths from the config root), e.g. a venv holding the release's own dependencies; today's upgrade keeps target.python.")
    env: dict[str, str] = Field(default_factory=dict, description="With from_ref: environment variables for building the old database, over target.env (names shown in evidence, values never).")
    sparse: bool = Field(True, description="With from_ref: check out only the folders the migrations need (alembic.ini's folder, script_location, prepend_sys_path, target.pythonpath); false: the whole tree.")
    seed_sql: str = Field("", description="SQL applied before the upgrade, as the migration role; default for a from_ref path whose revision is the gate's from_revision: the gate's seed.")
    seed_sql_file: str = Field("", description="File holding the seed SQL, relative to the config root.")
    data_checks: list[DataCheck] | None = Field(None, description="Checks after the upgrade; default: the gate's data_checks where the gate's seed applies (its from_revision path, a from_ref path with revision = from_revision and no seed of its own), else none.")

    @model_validator(mode="after")
    def _one_origin(self):
        if bool(self.from_revision) == bool(self.from_ref):
            raise ValueError("give exactly one of from_revision or from_ref")
        if self.seed_sql and self.seed_sql_file:
            raise ValueError("give seed_sql or seed_sql_file, not both")
        if self.from_revision and (self.revision or self.python or self.env):
            raise ValueError("revision, python and env belong to from_ref paths; a from_revision path uses "
                             "today's files and target.python")
        return self

    @property
    def label(self) -> str:
        return self.name or (f"ref {self.from_ref}" if self.from_ref else f"revision {self.from_revision}")


class ExistingConfig(GateConfig):
    from_revision: str = Field("", description="Older revision the (first) existing database is built at, before seeding.")
    seed_sql: str = Field("", description="SQL run at from_revision as the migration role (data a real database would hold).")
    seed_sql_file: str = Field("", description="File holding the seed SQL, relative to the config root (instead of seed_sql).")
    data_checks: list[DataCheck] = Field(default_factory=list, description="Queries that must return the expected value after the upgrade.")
    paths: list[UpgradePath] = Field(default_factory=list, description="More upgrade paths, e.g. from the last release tags (from_ref).")
    waivers: list[Waiver] = Field(default_factory=list, description="Known drift rows accepted until an expiry date, each with a reason.")

    @model_validator(mode="after")
    def _one_seed(self):
        if self.seed_sql and self.seed_sql_file:
            raise ValueError("give seed_sql or seed_sql_file, not both")
        return self

    def seed_of(self, path: UpgradePath) -> tuple[str, str, bool]:
        """``(seed_sql, seed_sql_file, inherited)`` for ``path``: its own seed, else — for a
        from_ref path built up to the gate's ``from_revision`` (``revision``), the schema the
        gate's seed is written for — the gate's seed and data checks (``inherited`` True)."""
        if path.seed_sql or path.seed_sql_file or not path.from_ref:
            return path.seed_sql, path.seed_sql_file, False
        if self.from_revision and path.revision == self.from_revision and (self.seed_sql or self.seed_sql_file):
            return self.seed_sql, self.seed_sql_file, True
        return "", "", False

    def all_paths(self) -> list[UpgradePath]:
        first = ([UpgradePath(from_revision=self.from_revision, seed_sql=self.seed_sql,
                              seed_sql_file=self.seed_sql_file)] if self.from_revision else [])
        return first + list(self.paths)


class ExistingDatabaseGate(Gate):
    """ZG-2: a database that lived through the upgrade ends like a fresh one.

    For each upgrade path — ``from_revision`` (today's migration files up to an older
    revision) and any ``paths`` with ``from_ref`` (an older release's own migration
    files, checked out in a temporary sparse git worktree, up to that release's head or
    its ``revision``, with the path's own ``python`` and ``env`` when given; this is
    how production databases were really built, and it catches old revision files
    edited in place) — it builds a database, applies the seed (rows a real database
    holds, so backfills have something to do), upgrades to head with the current
    tree, and asserts: every step succeeded, ``current`` equals head, every sequence
    owned by a column (serial, identity: ``pg_depend`` deptype ``a``/``i``) returns a
    value above the column's ``max`` next (else every insert taking the default fails
    on upgraded installs while fresh ones work), each data check returns its expected
    value, and the catalog snapshot equals ZG-1's fresh snapshot. Drift rows carry a
    class (missing/extra object, definition or default changed, name differs,
    owner/privilege differs, column position differs); configured waivers accept known
    rows until they expire. Without a path the gate is SKIPPED.

    A migration that raises on an existing database is a FAIL naming the revision and
    PostgreSQL's error; ERROR is kept for what zerodrift could not do (an alembic
    process that did not finish, a ref missing from the clone) and for a comparison
    that could not be made because ZG-1 built no fresh snapshot — never a PASS.
    Every database that reached head is published (``dbs.existing``) so ZG-7 proves
    its writes there too.
    """

    id = "ZG-2"
    title = "Existing-database upgrade path"
    config_model = ExistingConfig
    #: builds its own database alongside ZG-1; needs the fresh snapshot only at the end
    inputs = (Input("snapshot.fresh", at_start=False),)
    #: ``dbs.existing``: ``[(path label, Database or None)]``, every path's database once the gate is done
    #: (None: that path did not reach head), so other gates can prove their facts on each upgraded database
    provides = ("db.existing", "snapshot.existing", "dbs.existing")
    from_ref_key = "paths"  # zerodrift run --from-ref REF adds [[gates.ZG-2.paths]] from_ref = REF
    needs = ("server", "target")

    @classmethod
    def skip_reason(cls, cfg: ExistingConfig, loaded: LoadedConfig) -> str:
        """SKIPPED without an upgrade path: neither ``from_revision`` nor a ``paths`` entry."""
        if cfg is not None and cfg.all_paths():
            return ""
        return f"no upgrade path: set from_revision (or paths with from_ref) in [gates.{cls.id}]"

    @classmethod
    def propose_config(cls, init: InitContext) -> None:
        from zerodrift.gates.zg2_onboard import propose

        propose(cls.id, init)

    @classmethod
    def doctor(cls, doc: DoctorContext) -> None:
        from zerodrift.gates.zg2_onboard import check

        check(cls.id, doc)

    def run(self, ctx: GateContext, result: GateResult) -> None:
        cfg: ExistingConfig = ctx.gate_config
        paths = cfg.all_paths()
        self.drift_groups: list[tuple[str, list]] = []  #: (path label, drift groups) for the drift table
        all_rows = []
        self.upgraded: list[tuple[str, object]] = []  #: (path label, database at head or None)
        for index, path in enumerate(paths):
            purpose = "existing" if index == 0 else f"existing_{index + 1}"
            prefix = "" if len(paths) == 1 else f"[{path.label}] "
            try:
                rows = self._prove_path(ctx, result, cfg, path, purpose, prefix, publish=index == 0)
            except (EnvironmentProblem, UsageError) as exc:  # one path's problem: the others still run
                environment = isinstance(exc, EnvironmentProblem) or result.environment_error
                result.fail_with_error("; ".join(filter(None, [result.error, f"{prefix}{exc}"])), environment=environment)
                rows = None
            if rows is not None:
                all_rows.extend((path.label, d) for d in rows)
            elif index == 0:
                ctx.artifacts.publish("db.existing", None)
            if len(self.upgraded) == index:
                self.upgraded.append((path.label, None))
        ctx.artifacts.publish("dbs.existing", self.upgraded)
        compared = [c for c in result.checks if c.name.endswith("catalog equals fresh database")]
        schema = ("schema = fresh" if compared and all(c.status.value == "PASS" for c in compared)
                  else "schema NOT compared with the fresh database")
        result.headline = f"{len(paths)} upgrade path(s) ({', '.join(p.label for p in paths)}) → head; data checks hold; {schema}"
        used = {id(d.waiver) for _, d in all_rows if d.waiver is not None}
        for waiver in cfg.waivers:
            if id(waiver) not in used:
                result.skip_check(f"waiver {waiver.label}", f"stale: it matches no drift row — remove it ({waiver.reason})")
        if all_rows:
            add_drift_table(result, "fresh", "existing", self.drift_groups)

    # -- one path ----------------------------------------------------------
    def _prove_path(self, ctx: GateContext, result: GateResult, cfg: ExistingConfig, path: UpgradePath, purpose: str,
                    prefix: str, publish: bool):
        seed, seed_file, self.inherited = cfg.seed_of(path)
        if seed_file:
            seed_path = ctx.loaded.path(seed_file)
            try:
                seed = seed_path.read_text(encoding="utf-8")
            except OSError as exc:
                result.fail_with_error(f"{prefix}[gates.ZG-2] seed_sql_file {seed_path}: {exc}")
                return None
        target = ctx.target
        role = ctx.migration_role
        db = ctx.database(purpose)
        # one alembic process for both jobs of this path (before and after the seed)
        with target.alembic_session(db, role=role) as session:
            return self._build_and_upgrade(ctx, result, cfg, path, purpose, prefix, publish, db, seed, session)

    def _build_from_ref(self, ctx: GateContext, result: GateResult, path: UpgradePath, prefix: str, db) -> bool:
        """Build ``db`` with the migration files of ``path.from_ref`` (a temporary worktree,
        sparse unless ``sparse = false``) up to ``path.revision`` or that ref's heads, with the
        path's own interpreter and environment when given. True when the database stands there.
        Raises EnvironmentProblem for git and interpreter failures."""
        target, ref = ctx.target, path.from_ref
        root = ctx.provenance.repo_root
        if root is None:
            raise UsageError(f"from_ref {ref!r} needs the target to be in a git repository")
        tcfg = ctx.loaded.config.target
        folders = (migration_folders(root, target.alembic_ini, [ctx.loaded.path(p) for p in tcfg.pythonpath])
                   if path.sparse else None)
        checkout = RefWorktree(root, ref, shallow=ctx.provenance.shallow, folders=folders)
        with checkout as (folder, sha):
            result.add_step(EvidenceStep(title=f"{prefix}check out {ref}", command=checkout.command,
                                         output=f"{ref} = {sha}\nchecked out: {', '.join(checkout.checked_out) or '(nothing)'}"))
            old = target.rebased(root, folder)
            if path.python or path.env:
                old = old.with_interpreter(path.python, path.env, where=f"python of [[gates.ZG-2.paths]] {path.label}")
            goal = path.revision or "heads"
            first = old.alembic_job(db, [{"op": "heads"}, {"op": "upgrade", "revision": goal}, {"op": "current"}],
                                    role=ctx.migration_role)
            for step in first.steps:
                step.title = f"{step.title} (files of {ref} @ {sha[:12]})"
            result.add_steps(first.steps)
            old_heads = first.values[0] if first.values else None
            expected = [path.revision] if path.revision else sorted(old_heads or [])
            current = sorted(first.values[-1] or []) if first.ok else []
            # alembic takes a unique prefix of a revision id as that revision
            at_rev = first.ok and (current == expected or (bool(path.revision) and len(current) == 1
                                                           and current[0].startswith(path.revision)))
            label = f"{prefix}build with the migrations of {ref}" + (f" up to {path.revision}" if path.revision else "")
            if at_rev:
                detail = (f"{ref} ({sha[:12]}) at {revisions_text(current)} (its heads: {revisions_text(old_heads)})"
                          if path.revision else f"{ref} ({sha[:12]}) head {revisions_text(old_heads)}")
            elif first.ok:
                detail = f"current is {revisions_text(first.values[-1])}, expected {revisions_text(expected)}"
            else:
                detail = _job_failure(first, db) + _sparse_hint(first.error, checkout, path)
            if result.check(label, at_rev, detail):
                return True
            if path.revision and "Can't locate revision" in first.error:  # the configuration names a revision the ref lacks
                result.fail_with_error(f"{prefix}[[gates.ZG-2.paths]] revision {path.revision!r} is not in the history "
                                       f"of {ref} (its heads: {revisions_text(old_heads)}): name a revision of that "
                                       f"release (git checkout {ref} && alembic history)")
            elif first.process_failed:
                result.fail_with_error(f"{prefix}building the database with {ref}'s migrations could not run: {first.error}")
            return False

    def _build_and_upgrade(self, ctx: GateContext, result, cfg, path, purpose, prefix, publish, db, seed, session):
        role = ctx.migration_role
        if path.from_ref:
            if not self._build_from_ref(ctx, result, path, prefix, db):
                return None
        else:
            first = session.job([{"op": "upgrade", "revision": path.from_revision}, {"op": "current"}])
            result.add_steps(first.steps)
            at_rev = first.ok and first.values[-1] == [path.from_revision]
            if not result.check(f"{prefix}upgrade to {path.from_revision}", at_rev,
                                f"current is {revisions_text(first.values[-1])}" if first.ok else _job_failure(first, db)):
                if first.process_failed:
                    result.fail_with_error(f"{prefix}upgrade to {path.from_revision} could not run on {db.name}: {first.error}")
                return None

        if seed.strip():
            seeded = ctx.run_sql(result, db, seed, role=role, title=f"{prefix}seed")
            if not result.check(f"{prefix}seed applied", seeded.ok,
                                "seed SQL committed" if seeded.ok else f"{seeded.sqlstate}: {seeded.error}"):
                return None
        elif path.from_ref and (cfg.seed_sql or cfg.seed_sql_file):
            at = path.revision or "its head"
            result.skip_check(f"{prefix}seed applied", f"ZG-2's seed is written for from_revision {cfg.from_revision} "
                              f"and this path builds {path.from_ref} up to {at}: set revision = \"{cfg.from_revision}\" "
                              "in the path to seed it (and run the gate's data checks), or give it its own seed_sql")
        else:
            result.skip_check(f"{prefix}seed applied", "no seed configured: backfills run on an empty database")

        second = session.job([{"op": "heads"}, {"op": "upgrade", "revision": "heads"}, {"op": "current"}])
        result.add_steps(second.steps)
        heads = second.values[0] if second.values else None
        if not result.check(f"{prefix}upgrade to head", second.ok,
                            f"→ {revisions_text(heads)}" if second.ok else _job_failure(second, db)):
            if second.process_failed:  # zerodrift could not run the job; a migration that raised is the FAIL above
                result.fail_with_error(f"{prefix}upgrade to head could not run on {db.name}: {second.error}")
            return None
        current = second.values[-1]
        if result.check(f"{prefix}current equals head", sorted(current) == sorted(heads),
                        f"alembic current: {revisions_text(current)}; heads: {revisions_text(heads)}"):
            self.upgraded.append((path.label, db))
        check_sequences(ctx, result, db, prefix)

        # the gate's data checks belong with its seed: its from_revision path, and a from_ref path that inherits it
        default_checks = cfg.data_checks if ((path.from_revision == cfg.from_revision and publish)
                                             or self.inherited) else []
        for check in (path.data_checks if path.data_checks is not None else default_checks):
            outcome = ctx.run_sql(result, db, check.sql, role=role, title=f"{prefix}data check: {check.name}")
            value = outcome.scalar()
            ok = outcome.ok and _equal(value, check.expect)
            result.check(f"{prefix}data: {check.name}", ok,
                         f"returned {sql_value(value)}, expected {sql_value(check.expect)}" if outcome.ok else f"{outcome.sqlstate}: {outcome.error}")

        snap = ctx.snapshot(result, db, purpose)
        result.attachments[f"{purpose}.snapshot.json"] = snap.to_canonical_json()
        if publish:
            ctx.artifacts.publish("db.existing", db)
            ctx.artifacts.publish("snapshot.existing", snap)
            result.facts["schema_fingerprint"] = snap.fingerprint
        result.facts.setdefault("fingerprints", {})[path.label] = snap.fingerprint
        try:
            fresh = ctx.artifacts.require("snapshot.fresh")
        except ArtifactUnavailable as exc:  # no comparison made: never a PASS
            result.fail_with_error(f"{prefix}the upgraded database could not be compared with a fresh one: "
                                   f"no fresh snapshot ({exc})")
            return None
        rows = diff_snapshots(fresh, snap)
        report = apply_waivers(classify(rows, fresh, snap), cfg.waivers)
        failing = report.failing
        waived = [d for d in report.rows if d.status == "WAIVED"]
        groups = group_drift(report.rows, fresh, snap, "fresh", purpose)
        if rows:
            self.drift_groups.append((path.label, groups))
        if not rows:
            detail = f"same schema fingerprint sha256:{snap.fingerprint[:16]}…"
        elif not failing:
            detail = f"{len(waived)} drift row(s), all waived"
        else:
            detail = drift_detail(failing, "fresh", purpose, waived=len(waived), groups=groups)
        result.check(f"{prefix}catalog equals fresh database", not failing, detail)
        if rows:
            result.attachments[f"fresh-vs-{purpose}.diff.txt"] = format_drift(groups, "fresh", purpose)
        return report.rows


def _sparse_hint(error: str, checkout: RefWorktree, path: UpgradePath) -> str:
    """When a sparse worktree's job failed on a module that the ref holds outside the
    folders checked out: what was checked out and the fix. Empty otherwise."""
    missing = re.search(r"No module named '([^'.]+)", error)
    elsewhere = checkout.left_out(missing.group(1)) if missing else []
    if not elsewhere:
        return ""
    return (f" — {path.from_ref} holds {', '.join(elsewhere)} outside the sparse worktree, which held only "
            f"{', '.join(checkout.checked_out)} (alembic.ini's folder, script_location, prepend_sys_path, "
            "target.pythonpath): add its folder to target.pythonpath, or set sparse = false in this path")


def _job_failure(job, db) -> str:
    """A failed alembic job's error (it names the revision and PostgreSQL's error) and the database."""
    return f"{job.error} (database {db.name})"


def check_sequences(ctx: GateContext, result: GateResult, db, prefix: str) -> None:
    """The check "sequences ahead of their columns" on an upgraded database: every
    sequence owned by a column (serial, identity; :mod:`zerodrift.catalog.sequences`)
    returns a value above the column's ``max`` next, or the next insert that takes the
    default fails with a duplicate key. Records the evidence step."""
    started = time.perf_counter()
    try:
        with psycopg.connect(db.url(), connect_timeout=10) as conn:
            states = owned_sequences(conn)
    except psycopg.Error as exc:
        result.check(f"{prefix}sequences ahead of their columns", False,
                     f"could not read the sequences of {db.name}: {exc.diag.sqlstate}: {exc.diag.message_primary}")
        return
    rows = [(s.table, s.column, s.sequence, s.last_value, s.is_called, s.next_value, f"{s.bound} {s.extreme}",
             "BEHIND" if s.behind else "ok") for s in states]
    result.add_step(EvidenceStep(
        title=f"{prefix}sequences owned by columns ({db.name})", command="SELECT last_value, is_called FROM <sequence>, "
        "max(<column>) FROM <table> for every sequence owned by a column (pg_depend deptype 'a' or 'i')",
        role=user_of(db.admin_url), database=db.name, duration_s=time.perf_counter() - started,
        output=psql_table(["table", "column", "sequence", "last_value", "is_called", "next", "data", "state"], rows)))
    if not states:
        result.skip_check(f"{prefix}sequences ahead of their columns", "no sequence is owned by a column (serial, identity)")
        return
    behind = [s for s in states if s.behind]
    result.check(f"{prefix}sequences ahead of their columns", not behind,
                 f"{len(states)} sequence(s) owned by columns, each ahead of its column's data" if not behind else
                 "; ".join(f"{s.table}.{s.column}: sequence {s.sequence} last_value {s.last_value} "
                           f"(is_called {str(s.is_called).lower()}, next {s.next_value}) but {s.bound}({s.column}) = "
                           f"{s.extreme}" for s in behind)
                 + " — the next insert that takes the default fails with a duplicate key (a setval is missing)")


def _equal(value: Any, expected: Any) -> bool:
    if value == expected:
        return True
    return value is not None and str(value) == str(expected)


@hookimpl
def zerodrift_gates():
    return [ExistingDatabaseGate]
