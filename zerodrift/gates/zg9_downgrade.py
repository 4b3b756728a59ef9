"""ZG-9 downgrade round trip."""

from __future__ import annotations

import fnmatch

import psycopg

from pydantic import Field, model_validator

from zerodrift.catalog.diff import diff_snapshots
from zerodrift.catalog.drift import classify, format_drift, group_drift
from zerodrift.config import LoadedConfig
from zerodrift.context import GateContext
from zerodrift.gates.base import Gate, GateConfig, GateResult, timed
from zerodrift.gates.common import add_drift_table, drift_detail
from zerodrift.hookspecs import hookimpl
from zerodrift.onboard.hooks import InitContext


class DowngradeConfig(GateConfig):
    revisions: str = Field("", description="`all`: every revision of the history gets the round trip. Empty (and no "
                                           "`last`/`since`): the gate is SKIPPED.")
    last: int = Field(0, ge=0, description="Only the last N revisions (base → head order) get the round trip; the "
                                           "database is upgraded to the one before them first.")
    since: str = Field("", description="Only the revisions after this revision (its descendants) get the round trip.")
    irreversible: list[str] = Field(default_factory=list, description="Revisions whose downgrade is declared impossible "
                                    "(reported and listed, not failed). A downgrade() that is nothing but a `raise` is "
                                    "declared irreversible without being listed here.")
    downgrade_base: bool = Field(True, description="Also run `alembic downgrade base` from head and require that only "
                                 "the version table is left.")
    base_may_keep: list[str] = Field(default_factory=list, description="Objects `downgrade base` may leave, as "
                                     "`kind:object` shell patterns, e.g. `extensions:*` or `schemas:audit`.")

    @model_validator(mode="after")
    def _one_scope(self):
        chosen = [name for name, value in (("revisions", self.revisions), ("last", self.last), ("since", self.since))
                  if value]
        if self.revisions and self.revisions != "all":
            raise ValueError(f"revisions must be 'all' (got {self.revisions!r}); use last = N or since = "
                             "'<revision>' for part of the history")
        if len(chosen) > 1:
            raise ValueError(f"set one of revisions = 'all', last, since (got {', '.join(chosen)})")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.revisions or self.last or self.since)


class DowngradeRoundTripGate(Gate):
    """ZG-9: every revision on the path can be downgraded and upgraded again without a trace.

    On one throwaway database walked step by step, for each revision R of the path (base →
    head order; `revisions = "all"`, the `last` N, or those `since` a revision): ``alembic
    upgrade R`` and a catalog snapshot; ``alembic downgrade R@-1`` (one step, R only — on a
    branched history the sibling branch stays applied; a merge revision goes down to a
    parent, which unmerges it) and a snapshot that must equal the
    one taken before R was applied ("downgrade leaves a trace" otherwise: an index, a
    grant, a type the downgrade forgot); ``alembic upgrade R`` again and a snapshot that
    must equal the first ("re-upgrade differs" otherwise). A downgrade or re-upgrade that
    raises FAILs naming the revision and the error. Then, from head, ``alembic downgrade
    base`` must succeed and leave a catalog equal to that of the same database before its
    first revision, but for the version table (``base_may_keep`` lists what else may differ). Diff rows use the drift vocabulary of ZG-1/ZG-2; the version table
    (``alembic_version``) itself is left out of the comparisons (its presence is
    alembic's, not the revision's).

    A revision whose ``downgrade()`` is declared irreversible (its body is nothing but a
    ``raise``, or it is listed in ``irreversible``) gets no round trip: it is reported as
    irreversible and listed in the ledger; ``downgrade base`` is then SKIPPED, since it
    cannot pass that revision. Without ``revisions``/``last``/``since`` the gate is SKIPPED.
    """

    id = "ZG-9"
    title = "Downgrade round trip"
    config_model = DowngradeConfig
    needs = ("server", "target")

    @classmethod
    def skip_reason(cls, cfg: DowngradeConfig, loaded: LoadedConfig) -> str:
        """SKIPPED without ``revisions``, ``last`` or ``since``."""
        if cfg is not None and cfg.configured:
            return ""
        return f"not configured: set [gates.{cls.id}] revisions = \"all\" (or last = N, or since = \"<revision>\")"

    @classmethod
    def propose_config(cls, init: InitContext) -> None:
        """Every revision: the round trip needs no input of the user's."""
        init.comment(f"{cls.id} downgrades every revision one step and upgrades it again; a downgrade() that only raises "
                     "is reported as irreversible, not failed.")
        init.table()
        init.key("revisions", "all")

    def run(self, ctx: GateContext, result: GateResult) -> None:
        cfg: DowngradeConfig = ctx.gate_config
        db = ctx.database("downgrade")
        # one session reads every snapshot of the walk (three per revision): idle between
        # them, it holds no lock the migrations could wait on
        with psycopg.connect(db.url(), connect_timeout=10) as self._snapshot_conn:
            empty = self._snapshot(ctx, result, db, "new database, before any revision")
            with ctx.target.alembic_session(db, role=ctx.migration_role) as session:
                self._walk(ctx, result, cfg, db, session, empty)

    def _snapshot(self, ctx, result: GateResult, db, label: str):
        """The catalog snapshot of the walk's database through the walk's session (:meth:`run`)."""
        return ctx.snapshot(result, db, label, conn=self._snapshot_conn)

    def _walk(self, ctx: GateContext, result: GateResult, cfg: DowngradeConfig, db, session, empty) -> None:
        history = session.job([{"op": "history"}])
        result.add_steps(history.steps)
        if not history.ok:
            if history.process_failed:
                result.fail_with_error(f"could not read the migration history: {history.error}")
            else:
                result.check("migration history loads", False, history.error)
            return
        revisions = history.values[0]
        by_id = {r["revision"]: r for r in revisions}
        order = [r["revision"] for r in revisions]
        try:
            path = self._path(cfg, order, by_id)
        except ValueError as exc:
            result.fail_with_error(str(exc))
            return
        version_table = "alembic_version"
        before = set(order[:order.index(path[0])]) if path else set(order)
        facts = {"ran": True, "revisions": path, "irreversible": {}, "round_trips": 0, "downgrade_base": None}
        result.facts["downgrades"] = facts
        walk_timer = timed()
        applied = set(before)
        applied_heads = self._heads(before, by_id)
        if applied_heads:
            job = session.job([{"op": "upgrade", "revision": h} for h in applied_heads])
            result.add_steps(job.steps)
            if not job.ok:
                result.check(f"upgrade to {', '.join(applied_heads)} (start of the path)", False, job.error)
                return
        previous = (self._snapshot(ctx, result, db, "before " + path[0]) if applied_heads else empty) if path else None
        rows_table: list[list[str]] = []
        stopped = self._round_trips(ctx, result, cfg, db, session, path, by_id, applied, previous, facts, rows_table)
        facts["walk_s"] = round(walk_timer.elapsed, 3)
        if stopped:
            rest = path[path.index(stopped) + 1:]
            rows_table += [[rev, "not walked", f"the walk stopped at {stopped}"] for rev in rest]
            if rest:
                result.skip_check("revisions after the failure", f"not walked: {', '.join(rest)} (the walk stopped at {stopped})")
        result.add_table("Downgrade round trip per revision", ["Revision", "Outcome", "Detail"], rows_table,
                         summary=f"{facts['round_trips']} round trip(s), {len(facts['irreversible'])} irreversible, "
                                 f"{facts['walk_s']:.1f} s on {db.name}")
        if stopped:
            return
        if cfg.downgrade_base:
            self._downgrade_base(ctx, result, cfg, db, session, facts, version_table, empty)
        if not any(c.status.value == "FAIL" for c in result.checks):
            result.headline = (f"{facts['round_trips']} revision(s) downgraded and upgraded again with equal snapshots"
                               + (f", {len(facts['irreversible'])} irreversible" if facts["irreversible"] else "")
                               + ("; downgrade base leaves only the version table" if facts["downgrade_base"] else ""))

    def _round_trips(self, ctx: GateContext, result, cfg, db, session, path, by_id, applied, previous, facts, rows_table) -> str:
        """Walk ``path`` (see the class docstring); returns the revision the walk stopped at, or ''."""
        version_table = "alembic_version"
        for rev in path:
            info = by_id[rev]
            up = session.job([{"op": "upgrade", "revision": rev}])
            result.add_steps(up.steps)
            if not result.check(f"upgrade {rev}", up.ok, f"{rev} applied" if up.ok else up.error):
                rows_table.append([rev, "upgrade failed", up.error])
                return rev
            applied.add(rev)
            after = self._snapshot(ctx, result, db, f"at {rev}")
            declared = info["irreversible"] or ("listed in [gates.ZG-9] irreversible" if rev in cfg.irreversible else "")
            if declared:
                facts["irreversible"][rev] = declared
                result.skip_check(f"round trip {rev}", f"irreversible: {declared}")
                rows_table.append([rev, "irreversible", declared])
                previous = after
                continue
            if not _step(session, result, rows_table, rev, "downgrade", self._one_step_below(rev, info, applied),
                         f"downgrade {rev}", f"{rev} undone", f"downgrade of {rev} failed"):
                return rev
            undone = self._snapshot(ctx, result, db, f"after downgrading {rev}")
            trace = self._compare(result, previous, undone, version_table, f"before {rev}", f"after downgrade of {rev}",
                                  f"downgrade of {rev} leaves no trace", f"downgrade of {rev} leaves a trace")
            if not _step(session, result, rows_table, rev, "upgrade", rev, f"upgrade {rev} again", f"{rev} applied again",
                         f"re-upgrade of {rev} failed"):
                return rev
            redone = self._snapshot(ctx, result, db, f"at {rev} again")
            differs = self._compare(result, after, redone, version_table, f"at {rev}", f"at {rev} again",
                                    f"re-upgrade of {rev} gives the same schema", f"re-upgrade of {rev} differs")
            facts["round_trips"] += 1
            rows_table.append([rev, "round trip" if not (trace or differs) else "FAIL",
                               "; ".join(x for x in (trace and f"downgrade leaves {trace} diff row(s)",
                                                      differs and f"re-upgrade differs by {differs} row(s)") if x)
                               or "equal snapshots"])
            previous = redone
        return ""

    @staticmethod
    def _path(cfg: DowngradeConfig, order: list[str], by_id: dict) -> list[str]:
        if cfg.revisions == "all":
            return list(order)
        if cfg.last:
            return order[-cfg.last:]
        if cfg.since not in by_id:
            raise ValueError(f"[gates.ZG-9] since = {cfg.since!r} is not a revision of the history "
                             f"(revisions: {', '.join(order)})")
        descendants: set[str] = set()
        for rev in order:  # base → head: a revision's parents come first
            if cfg.since in by_id[rev]["down_revisions"] or descendants & set(by_id[rev]["down_revisions"]):
                descendants.add(rev)
        return [r for r in order if r in descendants]

    @staticmethod
    def _one_step_below(rev: str, info: dict, applied: set[str]) -> str:
        """The ``alembic downgrade`` target that undoes ``rev`` alone (Alembic's revision
        syntax): ``<rev>@-1`` steps down ``rev``'s own branch and leaves sibling branches
        applied; a merge revision goes down to one of its parents, which unmerges it (both
        parents stay applied); the only applied revision goes down to ``base``."""
        if len(info["down_revisions"]) > 1:
            return info["down_revisions"][0]
        if applied == {rev}:
            return "base"
        return f"{rev}@-1"

    @staticmethod
    def _heads(applied: set[str], by_id: dict) -> list[str]:
        """Revisions of ``applied`` that no other applied revision names as its parent."""
        parents = {p for r in applied for p in by_id[r]["down_revisions"]}
        return sorted(applied - parents)

    @staticmethod
    def _compare(result: GateResult, left, right, version_table: str, left_label: str, right_label: str,
                 pass_name: str, fail_name: str) -> int:
        """A check that two snapshots are equal apart from the version table; returns the count of rows."""
        rows = [r for r in diff_snapshots(left, right) if not _is_version_table(r.object, version_table)]
        if not rows:
            result.check(pass_name, True, f"{left_label} and {right_label} equal")
            return 0
        drifts = classify(rows, left, right)
        groups = group_drift(drifts, left, right, left_label, right_label)
        result.check(fail_name, False, drift_detail(drifts, left_label, right_label, groups=groups))
        add_drift_table(result, left_label, right_label, [("", groups)])
        result.attachments[f"{right_label.replace(' ', '-')}.diff.txt"] = format_drift(groups, left_label, right_label)
        return len(rows)

    def _downgrade_base(self, ctx: GateContext, result, cfg, db, session, facts, version_table, empty) -> None:
        name = "downgrade base leaves only the version table"
        if facts["irreversible"]:
            result.skip_check(name, "irreversible revision(s) on the way down: " + ", ".join(facts["irreversible"]))
            return
        job = session.job([{"op": "upgrade", "revision": "heads"}, {"op": "downgrade", "revision": "base"}])
        result.add_steps(job.steps)
        if not job.ok:
            result.check(name, False, f"downgrade base from head failed: {job.error}")
            facts["downgrade_base"] = False
            return
        snap = self._snapshot(ctx, result, db, "after downgrade base")
        rows = [r for r in diff_snapshots(empty, snap) if not _is_version_table(r.object, version_table)
                and not any(fnmatch.fnmatchcase(f"{r.kind}:{r.object}", p) for p in cfg.base_may_keep)]
        facts["downgrade_base"] = not rows
        if not rows:
            result.check(name, True, "the catalog equals a new database's but for the version table")
            return
        drifts = classify(rows, empty, snap)
        groups = group_drift(drifts, empty, snap, "new database", "after downgrade base")
        result.check(name, False, "downgrade base leaves a trace: " + drift_detail(drifts, "new database",
                                                                                  "after downgrade base", groups=groups))
        add_drift_table(result, "new database", "after downgrade base", [("", groups)])


def _step(session, result: GateResult, rows_table: list, rev: str, op: str, target: str, name: str, done: str,
          failed: str) -> bool:
    """Run ``alembic <op> <target>`` in the walk's session as the check ``name``; on failure
    the revision's table row says so. Returns whether it succeeded."""
    job = session.job([{"op": op, "revision": target}])
    result.add_steps(job.steps)
    if result.check(name, job.ok, done if job.ok else f"{failed}: {job.error}"):
        return True
    rows_table.append([rev, failed.split(" of ")[0], job.error])
    return False


def _is_version_table(identity: str, version_table: str) -> bool:
    """True for the version table and its columns, constraints and indexes (any schema)."""
    relation = identity.split("/", 1)[0]
    parts = relation.split(".")
    return parts[1] == version_table if len(parts) > 1 else relation == version_table


@hookimpl
def zerodrift_gates():
    return [DowngradeRoundTripGate]
