"""End-to-end: ZG-0, ZG-1 and ZG-2 on the example backend and on broken variants.

Every gate is shown both ways: PASS on the intact backend, FAIL for the right
reason on a broken one. Real PostgreSQL, real alembic subprocesses.
"""

from __future__ import annotations

import json
import re

import psycopg
import pytest

from tests.backends import add_revision, commit_all, edit, make_backend
from zerodrift.errors import EXIT_GATE_FAILED, EXIT_OK
from zerodrift.ledger.render import write_proof_pack
from zerodrift.runner import RunOptions, run


def _run(target, admin_url, tmp_path, gates=None):
    report = run(RunOptions(target=target, admin_url=admin_url, output=tmp_path / "proof", gates=gates or []))
    write_proof_pack(report)
    return report


def _result(report, gate_id):
    return next(r for r in report.results if r.gate_id == gate_id)


def _check(result, name_part):
    return next(c for c in result.checks if name_part in c.name)


def _leftover_databases(admin_url, run_id):
    with psycopg.connect(admin_url) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"zd_{run_id}_%",))]


def test_example_backend_passes_and_leaves_nothing(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    report = _run(backend, admin_url, tmp_path, gates=["ZG-0", "ZG-1", "ZG-2"])
    statuses = {r.gate_id: r.status.value for r in report.results}
    assert statuses == {"ZG-0": "PASS", "ZG-1": "PASS", "ZG-2": "PASS"}, [r.summary for r in report.results]
    assert report.exit_code == EXIT_OK
    # the data checks really ran and compared values
    zg2 = _result(report, "ZG-2")
    assert _check(zg2, "idempotency_key backfilled").status.value == "PASS"
    assert _check(zg2, "catalog equals fresh").status.value == "PASS"
    # ZG-1's second migration really ran under the shifted clock and zone, read in the job after env.py
    clock = _check(_result(report, "ZG-1"), "clock and time zone differ")
    assert clock.status.value == "PASS" and "(libfaketime), TZ=Pacific/Kiritimati in effect" in clock.detail
    assert "tm_gmtoff=+50400 s" in clock.detail
    assert _check(_result(report, "ZG-1"), "migration's clock on fresh_b").status.value == "PASS"
    # throwaway databases were created and all dropped
    assert sorted(report.dropped_databases) == sorted(
        f"zd_{report.run_id}_{p}" for p in ("fresh", "fresh_b", "existing"))
    assert _leftover_databases(admin_url, report.run_id) == []
    # the proof pack holds the facts
    data = json.loads((report.output_dir / "ledger.json").read_text())
    assert data["provenance"]["commit"] == report.provenance.commit
    assert data["target"]["head"] == ["0012_comments"]
    assert len(data["schema_fingerprint"]) == 64
    ledger = (report.output_dir / "ledger.md").read_bytes()
    assert report.provenance.commit.encode() in ledger
    assert b"| ZG-1 Fresh migration determinism | PASS |" in ledger
    # an exit status is shown only where a process's status was observed: a SQL statement has none
    text = ledger.decode()
    sql_steps = re.findall(r"^- \*\*alembic_version table\*\* — [^\n]*$", text, re.M)
    assert len(sql_steps) == 2 and all(line.endswith("s, no exit status") for line in sql_steps), sql_steps
    assert re.search(r"^- \*\*git status\*\* — [0-9.]+ s, exit 0$", text, re.M)
    assert ledger.endswith(b"\n") and b"\r\n" not in ledger and b" \n" not in ledger
    assert (report.output_dir / "ZG-1" / "fresh.snapshot.json").is_file()
    # the ledger's one-line command recomputes the fingerprint from the attached snapshot
    import subprocess

    from zerodrift.ledger.render import fingerprint_command

    FINGERPRINT_COMMAND = fingerprint_command("ZG-1/fresh.snapshot.json")

    assert FINGERPRINT_COMMAND.encode() in ledger
    assert b"fresh catalog snapshot `ZG-1/fresh.snapshot.json`" in ledger  # named by the gate that computed it
    recomputed = subprocess.run(FINGERPRINT_COMMAND, shell=True, cwd=report.output_dir, capture_output=True, text=True)
    assert recomputed.stdout.strip() == data["schema_fingerprint"], recomputed.stderr


def test_dirty_tree_fails_zg0_and_output_folder_does_not_count(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    # zerodrift's own output inside the repo (not git-ignored here) must not count
    report = run(RunOptions(target=backend, admin_url=admin_url, output=None, gates=["ZG-0"]))
    write_proof_pack(report)
    assert _result(report, "ZG-0").status.value == "PASS"
    report = run(RunOptions(target=backend, gates=["ZG-0"]))
    assert _result(report, "ZG-0").status.value == "PASS", "a written proof pack made the tree dirty"
    (backend / "notes.txt").write_text("untracked")
    report = run(RunOptions(target=backend, gates=["ZG-0"]))
    zg0 = _result(report, "ZG-0")
    assert zg0.status.value == "FAIL"
    assert "backend/notes.txt" in _check(zg0, "clean working tree").detail


def test_allow_dirty_is_not_a_pass_and_names_the_working_tree_diff(tmp_path):
    import subprocess

    backend = make_backend(tmp_path / "repo")
    edit(backend / "zerodrift.toml", "[gates.ZG-0]\n", "[gates.ZG-0]\nallow_dirty = true\n")  # a modified tracked file
    (backend / "blob.bin").write_bytes(bytes(range(256)) * 4)  # an untracked binary file
    zg0 = _result(run(RunOptions(target=backend, gates=["ZG-0"])), "ZG-0")
    assert zg0.status.value == "SKIPPED", zg0.summary
    assert zg0.summary.startswith("the proof is of the working tree, not of commit")
    digest = zg0.facts["working_tree_diff_sha256"]
    assert f"sha256:{digest}" in zg0.summary
    assert zg0.facts["modified_paths"] == ["backend/zerodrift.toml", "backend/blob.bin"]
    clean = _check(zg0, "clean working tree")
    assert clean.status.value == "SKIPPED" and "backend/blob.bin" in clean.detail
    # the digest is reproducible by the command in the evidence, and it covers untracked content byte for byte
    step = next(s for s in zg0.evidence if s.title.startswith("working tree diff"))
    shown = subprocess.run(step.command, shell=True, cwd=backend.parent, capture_output=True, text=True, check=True)
    assert shown.stdout.split()[0] == digest
    assert subprocess.run(["git", "status", "--porcelain"], cwd=backend.parent, capture_output=True,
                          text=True).stdout.startswith(" M backend/zerodrift.toml")  # the own index is untouched
    (backend / "blob.bin").write_bytes(bytes(range(256)) * 3 + bytes(range(255, -1, -1)))
    again = _result(run(RunOptions(target=backend, gates=["ZG-0"])), "ZG-0")
    assert again.status.value == "SKIPPED" and again.facts["working_tree_diff_sha256"] != digest


def test_scope_check_names_paths_outside_allowed_globs(tmp_path):
    backend = make_backend(tmp_path / "repo")
    root = backend.parent
    import git

    git.Repo(root).git.branch("base")
    (backend / "app" / "new_module.py").write_text("X = 1\n")
    (root / "frontend.js").write_text("// not backend\n")
    with (backend / "zerodrift.toml").open("a") as fh:
        fh.write('\n[gates.ZG-0.__placeholder__]\n')  # replaced below
    edit(backend / "zerodrift.toml", "[gates.ZG-0]\n", '[gates.ZG-0]\nbase_ref = "base"\nallowed_paths = ["backend/**"]\n')
    edit(backend / "zerodrift.toml", "\n[gates.ZG-0.__placeholder__]\n", "")
    commit_all(root, "change")
    zg0 = _result(run(RunOptions(target=backend, gates=["ZG-0"])), "ZG-0")
    scope = _check(zg0, "allowed paths")
    assert scope.status.value == "FAIL"
    assert "frontend.js" in scope.detail and "new_module" not in scope.detail
    (root / "frontend.js").unlink()
    commit_all(root, "drop frontend")
    zg0 = _result(run(RunOptions(target=backend, gates=["ZG-0"])), "ZG-0")
    assert _check(zg0, "allowed paths").status.value == "PASS"


def test_two_heads_fail_zg1_naming_both(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_left", "0012_comments", "op.execute('CREATE TABLE left_t (id int)')")
    add_revision(backend, "0013_right", "0012_comments", "op.execute('CREATE TABLE right_t (id int)')")
    commit_all(backend.parent, "two heads")
    report = _run(backend, admin_url, tmp_path, gates=["ZG-1"])
    zg1 = _result(report, "ZG-1")
    assert zg1.status.value == "FAIL"
    heads = _check(zg1, "exactly one head")
    assert heads.status.value == "FAIL"
    assert "0013_left" in heads.detail and "0013_right" in heads.detail
    assert report.exit_code == EXIT_GATE_FAILED


def test_missing_backfill_fails_zg2_data_check(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    rev = backend / "migrations" / "versions" / "0005_idempotency_key.py"
    edit(rev, '    op.execute("UPDATE attribution_events SET idempotency_key', '    pass  # op.execute("UPDATE attribution_events SET idempotency_key')
    edit(rev, '    op.execute("ALTER TABLE attribution_events ALTER COLUMN idempotency_key SET NOT NULL")\n', "")
    commit_all(backend.parent, "backfill forgotten")
    report = _run(backend, admin_url, tmp_path, gates=["ZG-1", "ZG-2"])
    assert _result(report, "ZG-1").status.value == "PASS"
    zg2 = _result(report, "ZG-2")
    assert zg2.status.value == "FAIL"
    check = _check(zg2, "idempotency_key backfilled")
    assert check.status.value == "FAIL" and "returned 1, expected 0" in check.detail
    # the schema itself is the same both ways: the data check is what caught it
    assert _check(zg2, "catalog equals fresh").status.value == "PASS"


# A revision that behaves differently when the database already holds data:
# each variant leaves the upgrade path with a schema the fresh path lacks.
DRIFT_VARIANTS = {
    "index": ("CREATE INDEX idx_events_session ON attribution_events (session_id)",
              ("indexes", "idx_events_session")),
    "constraint name": ("ALTER TABLE tenants ADD CONSTRAINT ck_tenants_name_legacy CHECK (name <> '')",
                        ("constraints", "ck_tenants_name_legacy")),
    "default": ("ALTER TABLE tenants ALTER COLUMN notification_email SET DEFAULT 'ops@example.com'",
                ("columns", "tenants.notification_email")),
    "grant": ("GRANT DELETE ON tenants TO app_user", ("tables", "tenants")),
    "owner": ("ALTER TABLE tenants OWNER TO app_rw", ("tables", "tenants")),
}


@pytest.mark.parametrize("variant", sorted(DRIFT_VARIANTS))
def test_upgrade_path_drift_fails_zg2_with_a_diff_row(admin_url, tmp_path, variant):
    ddl, (kind, obj) = DRIFT_VARIANTS[variant]
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_data_dependent", "0012_comments", f"""
        bind = op.get_bind()
        if bind.execute(sa.text("SELECT EXISTS (SELECT 1 FROM attribution_events)")).scalar():
            op.execute({ddl!r})
    """)
    commit_all(backend.parent, f"data-dependent {variant}")
    report = _run(backend, admin_url, tmp_path, gates=["ZG-1", "ZG-2"])
    assert _result(report, "ZG-1").status.value == "PASS"
    zg2 = _result(report, "ZG-2")
    check = _check(zg2, "catalog equals fresh")
    assert check.status.value == "FAIL", check.detail
    rows = [line for line in check.detail.splitlines()]
    assert any(kind in line and obj in line for line in rows), check.detail
    diff_file = report.output_dir / "ZG-2" / "fresh-vs-existing.diff.txt"
    assert obj.split(".")[0] in diff_file.read_text()


def test_migration_that_raises_on_the_upgraded_database_fails_zg2(admin_url, tmp_path):
    """A finding about the target: FAIL (JUnit <failure>) naming the revision and PostgreSQL's error, not ERROR."""
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_email_check", "0012_comments",
                 "op.execute(\"ALTER TABLE tenants ADD CONSTRAINT ck_no_email CHECK (notification_email IS NULL)\")")
    commit_all(backend.parent, "a constraint the seeded rows violate")
    report = _run(backend, admin_url, tmp_path, gates=["ZG-1", "ZG-2"])
    assert _result(report, "ZG-1").status.value == "PASS"
    zg2 = _result(report, "ZG-2")
    assert zg2.status.value == "FAIL" and not zg2.error
    upgrade = _check(zg2, "upgrade to head")
    assert upgrade.status.value == "FAIL"
    assert "in revision 0013_email_check" in upgrade.detail and 'check constraint "ck_no_email"' in upgrade.detail
    assert f"zd_{report.run_id}_existing" in upgrade.detail
    junit = (report.output_dir / "junit.xml").read_text()
    case = junit[junit.index('name="ZG-2'):]
    assert case.index("<failure") < case.index("</testcase>") and "<error" not in case[:case.index("</testcase>")]


def test_upgraded_database_without_a_fresh_snapshot_is_not_a_pass(admin_url, tmp_path):
    """0013 raises on an empty database only: ZG-1 builds no fresh snapshot, so ZG-2 cannot compare."""
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_needs_rows", "0012_comments",
                 "op.execute(\"SELECT 1 / (SELECT count(*) FROM tenants)\")")
    commit_all(backend.parent, "a data migration that divides by the row count")
    report = _run(backend, admin_url, tmp_path, gates=["ZG-1", "ZG-2"])
    zg1 = _result(report, "ZG-1")
    assert zg1.status.value == "FAIL" and "division by zero" in zg1.summary
    zg2 = _result(report, "ZG-2")
    assert zg2.status.value == "ERROR"
    assert "could not be compared with a fresh one: no fresh snapshot (ZG-1 ended FAIL" in zg2.error
    assert _check(zg2, "upgrade to head").status.value == "PASS"
