"""ZG-1 fresh migration determinism."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pydantic import Field

from zerodrift.catalog.diff import format_rows
from zerodrift.gates.base import Gate, GateConfig, GateResult
from zerodrift.catalog.diff import diff_snapshots
from zerodrift.catalog.drift import classify
from zerodrift.gates.common import drift_detail, revisions_text
from zerodrift.hookspecs import hookimpl


#: Environment of the second fresh migration: another time zone (UTC+14) and hash seed.
SECOND_ENV = {"TZ": "Pacific/Kiritimati", "PGTZ": "Pacific/Kiritimati", "PYTHONHASHSEED": "1"}


class FreshConfig(GateConfig):
    expected_heads: list[str] = Field(default_factory=list, description="Head revisions the history must have; empty: exactly one head.")


class FreshMigrationGate(Gate):
    """ZG-1: two fresh databases migrate to the same head and the same schema.

    Asserts that the history has exactly one head (or exactly the configured
    ``expected_heads``), that ``alembic upgrade head`` succeeds on two new empty
    databases, that ``alembic current`` — and the ``alembic_version`` table read
    independently — equals the head on both, and that their catalog snapshots are
    equal. The second database is migrated under another time zone (``TZ``/``PGTZ``
    UTC+14) and ``PYTHONHASHSEED``, so a migration whose result depends on when, where
    or in what set order it runs (a default computed from the clock at migration time,
    a name from an unordered set) shows up as a diff row naming the object.
    Publishes the first database and its snapshot for the gates that need a fresh
    database at head.
    """

    id = "ZG-1"
    title = "Fresh migration determinism"
    config_model = FreshConfig
    provides = ("db.fresh", "snapshot.fresh", "heads")
    needs = ("server", "target")

    def run(self, ctx, result: GateResult) -> None:
        cfg: FreshConfig = ctx.gate_config
        target = ctx.target
        upgrade_to = "heads" if len(cfg.expected_heads) > 1 else "head"
        role = ctx.migration_role
        with ThreadPoolExecutor(max_workers=2) as pool:
            dbs = list(pool.map(ctx.database, ["fresh", "fresh_b"]))
        jobs = [
            [{"op": "heads"}, {"op": "upgrade", "revision": upgrade_to}, {"op": "current"}],
            [{"op": "upgrade", "revision": upgrade_to}, {"op": "current"}],
        ]
        # the second database is migrated under another clock zone and hash seed, so DDL whose
        # result depends on when, where or in what set order it runs shows up as a diff row
        envs = [{"TZ": "UTC", "PGTZ": "UTC", "PYTHONHASHSEED": "0"}, SECOND_ENV]
        with ThreadPoolExecutor(max_workers=2) as pool:
            outcomes = list(pool.map(lambda args: target.alembic_job(args[0], args[1], role=role, extra_env=args[2]),
                                     zip(dbs, jobs, envs)))
        for outcome in outcomes:
            result.add_steps(outcome.steps)

        heads = outcomes[0].values[0] if outcomes[0].values else None
        if heads is None:
            result.fail_with_error(f"could not read the heads of the migration history: {outcomes[0].error}")
            return
        result.facts["heads"] = heads
        if cfg.expected_heads:
            result.check("heads are the expected ones", sorted(heads) == sorted(cfg.expected_heads),
                         f"heads {revisions_text(heads)}; expected {revisions_text(sorted(cfg.expected_heads))}")
        else:
            result.check("exactly one head", len(heads) == 1,
                         f"head {heads[0]}" if len(heads) == 1 else
                         f"{len(heads)} heads: {revisions_text(heads)} — join them with `alembic merge heads`, "
                         "or list them in [gates.ZG-1] expected_heads")

        heads_ok = result.checks[-1].status.value == "PASS"
        snapshots = []
        for db, outcome in zip(dbs, outcomes):
            upgraded = result.check(f"upgrade {upgrade_to} on {db.purpose}", outcome.ok,
                                    f"{db.name} upgraded" if outcome.ok else outcome.error)
            if not upgraded:
                if heads_ok and not result.error:
                    # the history is fine but a migration raised: the gate could not run
                    result.fail_with_error(f"a migration raised on {db.name}: {outcome.error}")
                continue
            current = outcome.values[-1] or []
            stored = ctx.run_sql(result, db, "SELECT version_num FROM alembic_version ORDER BY version_num",
                                 title="alembic_version table", role=None)
            stored_revs = sorted(r[0] for r in stored.rows) if stored.ok else None
            same = sorted(current) == sorted(heads) and stored_revs == sorted(heads)
            result.check(f"current equals head on {db.purpose}", same,
                         f"alembic current: {revisions_text(current)}; alembic_version: "
                         f"{revisions_text(stored_revs) if stored_revs is not None else stored.error}; heads: {revisions_text(heads)}")
            snapshots.append(db)
        with ThreadPoolExecutor(max_workers=2) as pool:  # the server-side work overlaps
            snapshots = list(zip(snapshots, pool.map(lambda db: ctx.snapshot(result, db, db.purpose), snapshots)))

        for db, snap in snapshots:
            result.attachments[f"{db.purpose}.snapshot.json"] = snap.to_canonical_json()
        if len(snapshots) == 2:
            (db_a, snap_a), (db_b, snap_b) = snapshots
            rows = diff_snapshots(snap_a, snap_b)
            detail = (f"{db_a.purpose} and {db_b.purpose} share schema fingerprint sha256:{snap_a.fingerprint[:16]}…"
                      if not rows else drift_detail(classify(rows, snap_a, snap_b), db_a.purpose, db_b.purpose))
            result.check("fresh catalog snapshots equal", not rows, detail)
            result.facts["schema_fingerprint"] = snap_a.fingerprint
            result.headline = (f"2 fresh databases → {revisions_text(heads)}, same fingerprint "
                               f"sha256:{snap_a.fingerprint[:12]}")
            result.facts["kinds_compared"] = list(snap_a.objects.keys())
            if rows:
                result.attachments["fresh-vs-fresh_b.diff.txt"] = format_rows(rows).encode()
        else:
            result.skip_check("fresh catalog snapshots equal", "a fresh upgrade failed; nothing to compare")
        if snapshots and outcomes[0].ok:
            ctx.artifacts.publish("heads", heads)
            ctx.artifacts.publish("db.fresh", snapshots[0][0])
            ctx.artifacts.publish("snapshot.fresh", snapshots[0][1])


@hookimpl
def zerodrift_gates():
    return [FreshMigrationGate]
