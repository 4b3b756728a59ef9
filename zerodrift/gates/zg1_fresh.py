"""ZG-1 fresh migration determinism."""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

from pydantic import Field

from zerodrift.catalog.clock_literals import Window, clock_literals
from zerodrift.catalog.diff import diff_snapshots
from zerodrift.catalog.drift import classify, format_drift, group_drift
from zerodrift.clock import FIRST_ZONE, SECOND_ZONE, ClockShift, format_offset, shift_seconds, verify
from zerodrift.context import GateContext
from zerodrift.gates.base import Gate, GateConfig, GateResult
from zerodrift.gates.common import INLINE_ROWS, add_drift_table, drift_detail, revisions_text
from zerodrift.hookspecs import hookimpl
from zerodrift.onboard.hooks import InitContext


#: Hash seeds of the two fresh migrations: a name from an unordered set differs between them.
HASH_SEEDS = ("0", "1")


class FreshConfig(GateConfig):
    expected_heads: list[str] = Field(default_factory=list, description="Head revisions the history must have; empty: exactly one head.")


class FreshMigrationGate(Gate):
    """ZG-1: two fresh databases migrate to the same head and the same schema, whatever the clock.

    PASS proves: the history has exactly one head (or exactly the configured
    ``expected_heads``); ``alembic upgrade head`` succeeds on two new empty databases;
    ``alembic current`` — and the ``alembic_version`` table read independently — equals
    the head on both; their catalog snapshots are equal although the second database was
    migrated under another clock, zone and hash seed; that clock and zone were really in
    effect in the migration process after ``env.py`` ran; and no date or timestamp
    literal in either catalog falls within the run's own time window.

    The first migration runs on the real clock with ``TZ``/``PGTZ`` UTC and
    ``PYTHONHASHSEED=0``; the second with its wall clock shifted by libfaketime by
    about 3 years 5 months 11 days 7 h 23 min 37 s (whole days added so that year,
    month, day, hour, minute and second all differ from the real clock, see
    :mod:`zerodrift.clock` for the mechanism and its limits), ``TZ``/``PGTZ``
    Pacific/Kiritimati (UTC+14) and ``PYTHONHASHSEED=1``. So a revision that bakes
    its own clock into the schema (``datetime.now()``, ``date.today()``, a name or
    comment from the current month) gives a diff row naming the object, at any hour.
    Each job reads its clock and zone after the upgrade; a target that overrode them
    (``env.py`` setting ``os.environ["TZ"]`` and calling ``time.tzset()``, or patching
    time) makes "clock and time zone differ" FAIL, naming the override; a target that only
    pins its own time zone (``TZ`` + ``time.tzset()`` in ``env.py``, a deliberate setting)
    leaves that check SKIPPED with the reason — never PASS, since independence from the
    zone was not shown.

    PostgreSQL's own ``now()``/``current_date`` run on the server's clock, which no
    process shift reaches: the catalog scan (:mod:`zerodrift.catalog.clock_literals`)
    covers them — a literal within the run's window (or the shifted window) is a FAIL
    row "value taken from the migration's clock".

    The heads are read from the script directory the upgrade uses: the alembic job runs
    ``env.py`` first (as ``alembic current`` does, nothing applied) and reads the revisions
    from the script directory as ``env.py`` left it (``zerodrift/probes/alembic_job.py``); one
    that holds no revision is a configuration error (exit 2, :mod:`zerodrift.scriptdir`), not
    a FAIL. With more than one version location, or folders of the backend holding revision
    files the configuration does not name, a "Migration histories" table lists which were
    migrated and which exist but were not configured (not proven). With ``target.flask_app``
    or ``target.alembic_runner`` the target's code runs in the job before zerodrift's upgrade:
    each fresh database's revision is read first, and a database already migrated then (an
    app that upgrades itself on start) is a FAIL — that upgrade would prove nothing.

    A revision that raises is a finding about the target: the upgrade check FAILs,
    naming the revision and PostgreSQL's error. ERROR is kept for what could not be
    done (the job process crashed or timed out, libfaketime could not be loaded).
    Publishes the first database and its snapshot for the gates that need a fresh
    database at head.
    """

    id = "ZG-1"
    title = "Fresh migration determinism"
    config_model = FreshConfig
    provides = ("db.fresh", "snapshot.fresh", "heads")
    header_facts = ("heads", "schema_fingerprint", "schema_snapshot")

    @classmethod
    def propose_config(cls, init: InitContext) -> None:
        """No input is needed: a comment with the heads found, and a TODO when there are several."""
        heads = init.facts.heads
        init.comment(f"{cls.id} needs no input: the history must have exactly one head (found: {', '.join(heads) or 'none'}).")
        if len(heads) > 1:
            init.todo(f"the migrations have {len(heads)} heads ({', '.join(heads)}): merge them, "
                      f"or list them in [gates.{cls.id}] expected_heads if that is intended.")
        init.table(commented=True)
        init.commented_key("expected_heads", heads if len(heads) > 1 else [])
    needs = ("server", "target")

    def run(self, ctx: GateContext, result: GateResult) -> None:
        cfg: FreshConfig = ctx.gate_config
        target = ctx.target
        upgrade_to = "heads" if len(cfg.expected_heads) > 1 else "head"
        role = ctx.migration_role
        window_start = dt.datetime.now(dt.timezone.utc)
        clocks = [ClockShift(0, FIRST_ZONE), ClockShift(shift_seconds(window_start), SECOND_ZONE)]
        result.facts["clocks"] = [c.describe() for c in clocks]
        with ThreadPoolExecutor(max_workers=2) as pool:
            dbs = list(pool.map(ctx.database, ["fresh", "fresh_b"]))
        tcfg = ctx.loaded.config.target
        # the app factory (target.flask_app) or the runner hook runs the target's code in the job before
        # zerodrift's upgrade: read the revision first, so an app that migrates itself at start is seen
        app_first = bool(tcfg.flask_app or tcfg.alembic_runner)
        upgrade = ([{"op": "clock"}] + ([{"op": "current", "before": True}] if app_first else [])
                   + [{"op": "upgrade", "revision": upgrade_to}, {"op": "current"}, {"op": "clock"}])
        jobs = [[{"op": "heads"}] + upgrade, list(upgrade)]

        def migrate(args):
            db, ops, clock, seed = args
            started = time.time()
            outcome = target.alembic_job(db, ops, role=role, extra_env={"PYTHONHASHSEED": seed}, clock=clock)
            return outcome, started, time.time()

        with ThreadPoolExecutor(max_workers=2) as pool:
            timed_outcomes = list(pool.map(migrate, zip(dbs, jobs, clocks, HASH_SEEDS)))
        window_end = dt.datetime.now(dt.timezone.utc)
        outcomes = [o for o, _, _ in timed_outcomes]
        for outcome in outcomes:
            result.add_steps(outcome.steps)

        heads = outcomes[0].values[0] if outcomes[0].values else None
        if heads is None:
            if outcomes[0].process_failed:
                result.fail_with_error(f"could not read the heads of the migration history: {outcomes[0].error}")
            else:  # the target's own scripts do not load (syntax error, bad down_revision)
                result.check("migration history loads", False, outcomes[0].error)
            return
        result.facts["heads"] = heads
        result.publish_header("heads", heads)
        self._histories(ctx, result, outcomes[0].extra.get("script"))
        if cfg.expected_heads:
            result.check("heads are the expected ones", sorted(heads) == sorted(cfg.expected_heads),
                         f"heads {revisions_text(heads)}; expected {revisions_text(sorted(cfg.expected_heads))}")
        else:
            result.check("exactly one head", len(heads) == 1,
                         f"head {heads[0]}" if len(heads) == 1 else
                         f"{len(heads)} heads: {revisions_text(heads)} — join them with `alembic merge heads`, "
                         "or list them in [gates.ZG-1] expected_heads")

        snapshots = []
        for db, outcome, ops in zip(dbs, outcomes, jobs):
            if app_first and not self._untouched_before_upgrade(result, db, outcome, ops, tcfg):
                continue
            upgraded = result.check(f"upgrade {upgrade_to} on {db.purpose}", outcome.ok,
                                    f"{db.name} upgraded" if outcome.ok else outcome.error)
            if not upgraded:
                if outcome.process_failed and not result.error:
                    # the job process itself did not finish: zerodrift could not run the migration
                    result.fail_with_error(f"the alembic job on {db.name} did not finish: {outcome.error}")
                continue
            current = outcome.values[len(ops) - 2] or []
            stored = ctx.run_sql(result, db, "SELECT version_num FROM alembic_version ORDER BY version_num",
                                 title="alembic_version table", role=None)
            stored_revs = sorted(r[0] for r in stored.rows) if stored.ok else None
            same = sorted(current) == sorted(heads) and stored_revs == sorted(heads)
            result.check(f"current equals head on {db.purpose}", same,
                         f"alembic current: {revisions_text(current)}; alembic_version: "
                         f"{revisions_text(stored_revs) if stored_revs is not None else stored.error}; heads: {revisions_text(heads)}")
            snapshots.append(db)

        clock_ok = self._check_clocks(result, dbs, clocks, timed_outcomes)

        with ThreadPoolExecutor(max_workers=2) as pool:  # the server-side work overlaps
            snapshots = list(zip(snapshots, pool.map(lambda db: ctx.snapshot(result, db, db.purpose), snapshots)))

        windows = [Window(window_start, window_end, f"the run's clock ({window_start:%Y-%m-%d %H:%M:%S}Z … "
                                                    f"{window_end:%H:%M:%S}Z)")]
        shifted = dt.timedelta(seconds=clocks[1].offset_s)
        windows.append(Window(window_start + shifted, window_end + shifted,
                              f"the shifted clock of {dbs[1].purpose} ({window_start + shifted:%Y-%m-%d %H:%M:%S}Z …)"))
        literal_count = 0
        for db, snap in snapshots:
            result.attachments[f"{db.purpose}.snapshot.json"] = snap.to_canonical_json()
            found = clock_literals(snap, windows)
            literal_count += len(found)
            result.check(f"no value taken from the migration's clock on {db.purpose}", not found,
                         "no date or timestamp literal of the catalog (defaults, constraints, view and function "
                         "bodies, comments, partition bounds, names) is within " + " or ".join(w.label for w in windows)
                         if not found else
                         f"value taken from the migration's clock: {len(found)} literal(s):\n"
                         + "\n".join(f.describe() for f in found[:INLINE_ROWS])
                         + (f"\n… and {len(found) - INLINE_ROWS} more" if len(found) > INLINE_ROWS else ""))
        if len(snapshots) == 2:
            (db_a, snap_a), (db_b, snap_b) = snapshots
            rows = diff_snapshots(snap_a, snap_b)
            drifts = classify(rows, snap_a, snap_b)
            groups = group_drift(drifts, snap_a, snap_b, db_a.purpose, db_b.purpose)
            detail = (f"{db_a.purpose} and {db_b.purpose} share schema fingerprint sha256:{snap_a.fingerprint[:16]}…"
                      if not rows else drift_detail(drifts, db_a.purpose, db_b.purpose, groups=groups))
            result.check("fresh catalog snapshots equal", not rows, detail)
            result.facts["schema_fingerprint"] = snap_a.fingerprint
            result.publish_header("schema_fingerprint", snap_a.fingerprint)
            result.publish_header("schema_snapshot", f"{self.id}/{db_a.purpose}.snapshot.json")
            result.facts["kinds_compared"] = list(snap_a.objects.keys())
            if rows:
                result.attachments["fresh-vs-fresh_b.diff.txt"] = format_drift(groups, db_a.purpose, db_b.purpose)
                add_drift_table(result, db_a.purpose, db_b.purpose, [("", groups)])
            if not rows and clock_ok and not literal_count:
                # shown only when the gate PASSes (GateResult.summary): each clause is one of its checks
                result.headline = (f"2 fresh databases → {revisions_text(heads)}, same fingerprint "
                                   f"sha256:{snap_a.fingerprint[:12]} with the second migrated at "
                                   f"{format_offset(clocks[1].offset_s)}, TZ={clocks[1].zone} (observed after env.py); "
                                   "no clock literal in the catalog")
        else:
            result.skip_check("fresh catalog snapshots equal", "a fresh upgrade failed; nothing to compare")
        if snapshots and outcomes[0].ok:
            ctx.artifacts.publish("heads", heads)
            ctx.artifacts.publish("db.fresh", snapshots[0][0])
            ctx.artifacts.publish("snapshot.fresh", snapshots[0][1])

    @staticmethod
    def _untouched_before_upgrade(result: GateResult, db, outcome, ops, tcfg) -> bool:
        """With target.flask_app / alembic_runner: the fresh database stood at no revision when
        zerodrift's upgrade started (the app's start-up did not migrate it). False (a FAIL) when it
        was already migrated: the upgrade the gate observes would then prove nothing."""
        index = next(i for i, op in enumerate(ops) if op.get("before"))
        if len(outcome.values) <= index or outcome.values[index] is None:
            return True  # the job stopped earlier; the upgrade check below reports it
        before = outcome.values[index]
        who = " and ".join(f"target.{k} = {getattr(tcfg, k)!r}" for k in ("flask_app", "alembic_runner")
                           if getattr(tcfg, k))
        return result.check(
            f"{db.purpose} at no revision before zerodrift's upgrade", not before,
            f"{db.name} had no alembic version when the upgrade started ({who} ran first)" if not before else
            f"{db.name} was already at {revisions_text(before)} before zerodrift's upgrade ran: the app "
            f"({who}) migrates the database itself when it starts, so the upgrade zerodrift observes proves nothing "
            "(ZG-2 neither) — keep the upgrade out of the app's start-up (run it as a deploy step, e.g. "
            "`flask db upgrade`), or point target.flask_app / target.alembic_runner at code that does not upgrade")

    def _histories(self, ctx: GateContext, result: GateResult, described) -> None:
        """The version locations alembic used (as env.py left them) in the facts; with more than one,
        or revision files in folders the configuration does not name, a ledger table of which
        histories were migrated and which exist but were not configured."""
        from zerodrift.scriptdir import histories_table

        if not described:
            return
        rows, unconfigured = histories_table(described, ctx.loaded.root, self.id)  # the backend's folder, not the whole repo
        if len(described.get("locations") or {}) > 1 or unconfigured:
            result.facts["version_locations"] = [row[0] for row in rows if not row[3].startswith("exists")]
            if unconfigured:
                result.facts["unconfigured_histories"] = unconfigured
            result.add_table("Migration histories", ["folder", "revisions", "heads", "status"], rows,
                             summary=f"{len(rows) - len(unconfigured)} configured (migrated here), "
                                     f"{len(unconfigured)} with revision files but not configured (not proven)")

    @staticmethod
    def _check_clocks(result: GateResult, dbs, clocks, timed_outcomes) -> bool:
        """The check that the two migrations ran under different clocks and zones, read in each
        job after the upgrade (so after env.py); returns True when it PASSed."""
        name = "clock and time zone differ between the two migrations"
        verdicts = []
        for db, clock, (outcome, started, ended) in zip(dbs, clocks, timed_outcomes):
            observed = outcome.values[-1] if outcome.ok and outcome.values else None
            if observed is None:
                result.skip_check(name, f"the job on {db.purpose} did not get past the upgrade; its clock was not read")
                return False
            verdicts.append((db, verify(clock, observed, started, ended)))
        result.facts["observed_clocks"] = {db.purpose: outcome.values[-1]
                                           for db, (outcome, _, _) in zip(dbs, timed_outcomes)}
        detail = "\n".join(f"{db.purpose}: {v.detail}" for db, v in verdicts)
        failed = [(db, v) for db, v in verdicts if not v.ok]
        if failed and all(v.environment for _, v in failed):
            result.fail_with_error(f"could not shift the clock of the target's interpreter: {failed[0][1].detail}",
                                   environment=True)
            return False
        if failed and all(v.zone_pinned for _, v in failed):
            # the target pins its own zone (a deliberate setting): the clock shift held, but
            # independence from the zone is not shown, so the check is not PASS (nor a FAIL)
            result.skip_check(name, "time zone independence not shown: the target pins its own time zone — "
                              + "; ".join(f"{db.purpose}: {v.detail}" for db, v in failed)
                              + f"\nthe clock shift itself was in effect ({clocks[1].describe()}); observed:\n" + detail)
            return False
        if failed:
            detail = "; ".join(f"{db.purpose}: {v.detail}" for db, v in failed) + "\n" + detail
            detail = "time independence not shown — " + detail
        return result.check(name, not failed, detail)


@hookimpl
def zerodrift_gates():
    return [FreshMigrationGate]
