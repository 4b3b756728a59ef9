"""ZG-9 downgrade round trip on the example backend and on broken variants."""

from __future__ import annotations

from tests.backends import commit_all, edit, make_backend
from zerodrift.ledger.model import ledger_data
from zerodrift.ledger.render import render_markdown
from zerodrift.runner import RunOptions, run


def _gate(report, gate_id):
    return next(r for r in report.results if r.gate_id == gate_id)


def _checks(result, status):
    return {c.name: c.detail for c in result.checks if c.status.value == status}


def _revision(backend, revision, down_revision, upgrade, downgrade):
    (backend / "migrations" / "versions" / f"{revision}.py").write_text(
        f'"""Test revision {revision}."""\nfrom alembic import op\n\n'
        f"revision = {revision!r}\ndown_revision = {down_revision!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade() -> None:\n    {upgrade}\n\n\ndef downgrade() -> None:\n    {downgrade}\n")


def test_example_round_trips_every_revision_and_the_ledger_says_so(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    report = run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-9"]))
    zg9 = _gate(report, "ZG-9")
    assert zg9.status.value == "PASS", (zg9.summary, zg9.error)
    passed = _checks(zg9, "PASS")
    # every revision, the merge and both branches included, went down one step and up again
    for rev in ("0001_tenants", "0003a_event_channel", "0003b_allocations", "0004_merge_branches", "0012_comments"):
        assert f"downgrade of {rev} leaves no trace" in passed and f"re-upgrade of {rev} gives the same schema" in passed
    assert "downgrade base leaves only the version table" in passed
    assert zg9.facts["downgrades"]["round_trips"] == 13 and not zg9.facts["downgrades"]["irreversible"]
    ledger = render_markdown(ledger_data(report)).decode()
    assert "ZG-9 downgraded and upgraded again 13 revision(s) with equal catalog snapshots" in ledger
    assert "`alembic downgrade` is never run" not in ledger


def test_forgotten_index_irreversible_and_failing_downgrades(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    # an index the downgrade forgets, a downgrade declared impossible, a downgrade that raises
    _revision(backend, "0013_irreversible", "0012_comments",
              "op.execute('CREATE TABLE archive (id int)')",
              "raise NotImplementedError('archive rows cannot be restored')")
    # IF NOT EXISTS: the re-upgrade succeeds, so only the snapshot comparison can see the leftover
    _revision(backend, "0014_tenant_name_index", "0013_irreversible",
              "op.execute('CREATE INDEX IF NOT EXISTS idx_tenants_name ON tenants (name)')", "pass")
    _revision(backend, "0015_broken_downgrade", "0014_tenant_name_index",
              "op.execute('CREATE TABLE scratch (id int)')", "op.execute('DROP TABLE scratch_typo')")
    edit(backend / "zerodrift.toml", 'revisions = "all"', "last = 4")
    commit_all(backend.parent, "variant")
    zg9 = _gate(run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-9"])), "ZG-9")
    assert zg9.status.value == "FAIL"
    failed, skipped = _checks(zg9, "FAIL"), _checks(zg9, "SKIPPED")
    trace = failed["downgrade of 0014_tenant_name_index leaves a trace"]
    assert "extra object" in trace and "idx_tenants_name" in trace
    assert "re-upgrade of 0014_tenant_name_index gives the same schema" in _checks(zg9, "PASS")
    assert "irreversible: raise NotImplementedError('archive rows cannot be restored')" == skipped["round trip 0013_irreversible"]
    broken = failed["downgrade 0015_broken_downgrade"]
    assert "0015_broken_downgrade" in broken and 'table "scratch_typo" does not exist' in broken
    # only the last 4 revisions were walked: 0012 is the first
    assert "downgrade of 0012_comments leaves no trace" in _checks(zg9, "PASS")
    assert "downgrade of 0011_worker_write_block leaves no trace" not in _checks(zg9, "PASS")
    # the walk stops at the failed downgrade, so downgrade base is not claimed
    assert not any("downgrade base" in name for name in _checks(zg9, "PASS"))
    assert zg9.facts["downgrades"]["irreversible"] == {"0013_irreversible": "raise NotImplementedError('archive rows cannot be restored')"}
