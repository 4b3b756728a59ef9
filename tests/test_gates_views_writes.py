"""ZG-3, ZG-4 and ZG-7 on the example backend and on broken variants.

Each broken variant must fail the right gate with a message that names the cause.
"""

from __future__ import annotations

import pytest

from tests.backends import add_revision, commit_all, edit, make_backend
from zerodrift.errors import UsageError
from zerodrift.runner import RunOptions, run


def _run(backend, admin_url, gates):
    commit_all(backend.parent, "variant")
    return run(RunOptions(target=backend, admin_url=admin_url, gates=gates))


def _gate(report, gate_id):
    return next(r for r in report.results if r.gate_id == gate_id)


def _failed(result):
    return [c for c in result.checks if c.status.value == "FAIL"]


def test_views_and_writes_pass_on_the_example(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    report = run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-2", "ZG-3", "ZG-4", "ZG-7"]))
    for gid in ("ZG-3", "ZG-4", "ZG-7"):
        result = _gate(report, gid)
        assert result.status.value == "PASS", (gid, result.summary, result.error)
    zg4 = _gate(report, "ZG-4")
    # three views on both databases, each refreshed as app_user
    refreshed = [c for c in zg4.checks if c.status.value == "PASS" and "mv_" in c.name]
    assert len(refreshed) == 6 and all("REFRESH CONCURRENTLY succeeded" in c.detail for c in refreshed)
    zg7 = _gate(report, "ZG-7")
    matrix = zg7.tables[0]
    assert matrix["columns"] == ["Database", "Table", "Operation", "app_user", "postgres"]
    # written on the fresh and on the upgraded database (fixture_sql is re-runnable there)
    assert {r[0] for r in matrix["rows"]} == {"fresh", "existing (revision 0004_merge_branches)"}
    # app_user may not DELETE: shown, but not counted as proof
    for row in (r for r in matrix["rows"] if r[1:3] == ["attribution_events", "DELETE"]):
        assert row[3] == "not counted" and row[4] == "blocked by guard"
    guard = next(c for c in zg7.checks if c.name == "existing (revision 0004_merge_branches): attribution_events: "
                 "guard trigger enabled")
    assert guard.status.value == "PASS" and guard.detail.startswith(
        "trg_block_worker_mutation_attribution_events (fn_block_worker_ingestion_mutation()): its function raised")
    insert = next(c for c in zg7.checks if c.name == "fresh: attribution_events: INSERT blocked for workers")
    assert "its rows are there" in insert.detail
    # the control ran first, in its own session, and its row was read back
    control = next(e for e in zg7.evidence if e.title.startswith("control writes as app_user"))
    assert "app.execution_context" not in control.output and "INSERT 0 1 (1 rows returned, 1 visible afterwards)" in control.output
    zg2 = _gate(report, "ZG-2")
    sequences = next(c for c in zg2.checks if c.name == "sequences ahead of their columns")
    assert sequences.status.value == "PASS" and sequences.detail.startswith("1 sequence(s)")


def test_registry_entry_without_view_fails_zg3(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "app" / "matview_registry.py", '"mv_daily_revenue_summary",', '"mv_daily_revenue_summary",\n    "mv_ghost",')
    zg3 = _gate(_run(backend, admin_url, ["ZG-3"]), "ZG-3")
    assert zg3.status.value == "FAIL"
    assert any("missing" in c.detail and "public.mv_ghost" in c.detail for c in _failed(zg3))


def test_view_missing_from_registry_fails_zg3(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "app" / "matview_registry.py", '    "mv_channel_performance",\n', "")
    zg3 = _gate(_run(backend, admin_url, ["ZG-3"]), "ZG-3")
    assert zg3.status.value == "FAIL"
    assert any("not in the registry" in c.detail and "public.mv_channel_performance" in c.detail for c in _failed(zg3))


def test_registry_that_does_not_import_is_an_error(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "zerodrift.toml", 'registry = "app.matview_registry:MATERIALIZED_VIEWS"', 'registry = "app.nope:VIEWS"')
    zg3 = _gate(_run(backend, admin_url, ["ZG-3"]), "ZG-3")
    assert zg3.status.value == "ERROR"
    assert "app.nope" in zg3.error and "ModuleNotFoundError" in zg3.error


def test_target_code_that_raises_on_import_fails_zg3_and_zg5_naming_the_stage(admin_url, tmp_path):
    """The configured paths are right; the target's own modules raise: a finding (FAIL), not an ERROR."""
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "app" / "matview_registry.py", "MATERIALIZED_VIEWS = [",
         'raise RuntimeError("registry needs REPORTING_DSN")\nMATERIALIZED_VIEWS = [')
    edit(backend / "app" / "celery_app.py", "import os\n", "import os\nos.environ['ATTRIBUTION_BROKER_SETTINGS']\n")
    report = _run(backend, admin_url, ["ZG-3", "ZG-5"])
    zg3, zg5 = _gate(report, "ZG-3"), _gate(report, "ZG-5")
    assert zg3.status.value == "FAIL" and not zg3.error
    (check,) = _failed(zg3)
    assert check.name == "registry loads"
    assert check.detail.startswith("registry app.matview_registry:MATERIALIZED_VIEWS raised at import module "
                                   "app.matview_registry: RuntimeError: registry needs REPORTING_DSN")
    assert zg5.status.value == "FAIL" and not zg5.error
    (check,) = _failed(zg5)
    assert check.name == "Celery app loads"
    assert "raised at import module app.celery_app: KeyError: 'ATTRIBUTION_BROKER_SETTINGS'" in check.detail


MATVIEW_VARIANTS = {
    "owned by the migration role": (
        "op.execute('ALTER MATERIALIZED VIEW mv_channel_performance OWNER TO CURRENT_USER')",
        "owned by postgres"),
    "unique index with a WHERE clause": (
        "op.execute('DROP INDEX idx_mv_channel_performance_unique')\n"
        "op.execute('CREATE UNIQUE INDEX idx_mv_channel_performance_partial ON mv_channel_performance (tenant_id, channel) WHERE tenant_id IS NOT NULL')",
        "has a WHERE clause"),
    "no unique index": (
        "op.execute('DROP INDEX idx_mv_channel_performance_unique')\n"
        "op.execute('CREATE INDEX idx_mv_channel_performance_plain ON mv_channel_performance (tenant_id, channel)')",
        "no usable unique index"),
    "not populated": (
        "op.execute('DROP MATERIALIZED VIEW mv_channel_performance')\n"
        "op.execute('CREATE MATERIALIZED VIEW mv_channel_performance AS SELECT tenant_id, channel, count(*) AS events "
        "FROM attribution_events GROUP BY tenant_id, channel WITH NO DATA')\n"
        "op.execute('CREATE UNIQUE INDEX idx_mv_channel_performance_unique ON mv_channel_performance (tenant_id, channel)')\n"
        "op.execute('ALTER MATERIALIZED VIEW mv_channel_performance OWNER TO app_user')",
        "not populated"),
}


@pytest.mark.parametrize("variant", sorted(MATVIEW_VARIANTS))
def test_broken_matview_fails_zg4_naming_the_condition(admin_url, tmp_path, variant):
    body, cause = MATVIEW_VARIANTS[variant]
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_break_matview", "0012_comments", body)
    zg4 = _gate(_run(backend, admin_url, ["ZG-4"]), "ZG-4")
    assert zg4.status.value == "FAIL"
    failed = _failed(zg4)
    assert failed and all("mv_channel_performance" in c.name for c in failed)
    assert all(cause in c.detail for c in failed), [c.detail for c in failed]
    # PostgreSQL's own refusal is shown too
    assert all("REFRESH CONCURRENTLY failed" in c.detail for c in failed)


def test_missing_guard_trigger_fails_zg7(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_drop_guard", "0012_comments",
                 "op.execute('DROP TRIGGER trg_block_worker_mutation_attribution_allocations ON attribution_allocations')")
    zg7 = _gate(_run(backend, admin_url, ["ZG-7"]), "ZG-7")
    assert zg7.status.value == "FAIL"
    names = {c.name for c in _failed(zg7)}
    assert "attribution_allocations: guard trigger enabled" in names
    assert "attribution_allocations: INSERT blocked for workers" in names
    assert not any(n.startswith("attribution_events") for n in names)
    insert = next(c for c in _failed(zg7) if c.name == "attribution_allocations: INSERT blocked for workers")
    assert "guard did not fire" in insert.detail


def test_guards_that_pass_only_beside_a_worker_session_fail_zg7(admin_url, tmp_path):
    """Allocations: a guard reading current_setting() without missing_ok breaks every session that never
    set the setting (app_user gets it from ALTER ROLE … IN DATABASE … SET, as a real login does; postgres
    does not). Events: the guard is disabled and the only enabled trigger is unrelated."""
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_strict_guard", "0012_comments", '''
        op.execute("""
        CREATE FUNCTION fn_strict_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('app.execution_context') = 'worker' THEN
                RAISE EXCEPTION 'ingestion tables are read-only in worker context' USING ERRCODE = 'ZW001';
            END IF;
            RETURN COALESCE(NEW, OLD);
        END $$""")
        op.execute("DROP TRIGGER trg_block_worker_mutation_attribution_allocations ON attribution_allocations")
        op.execute("CREATE TRIGGER trg_strict_guard BEFORE INSERT OR UPDATE OR DELETE ON attribution_allocations "
                   "FOR EACH ROW EXECUTE FUNCTION fn_strict_guard()")
        op.execute("DO $$ BEGIN EXECUTE format('ALTER ROLE app_user IN DATABASE %I SET app.execution_context = %L', "
                   "current_database(), 'api'); END $$")
        op.execute("CREATE FUNCTION fn_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN COALESCE(NEW, OLD); END $$")
        op.execute("CREATE TRIGGER trg_audit BEFORE INSERT OR UPDATE OR DELETE ON attribution_events "
                   "FOR EACH ROW EXECUTE FUNCTION fn_audit()")
        op.execute("ALTER TABLE attribution_events DISABLE TRIGGER trg_block_worker_mutation_attribution_events")
    ''')
    zg7 = _gate(_run(backend, admin_url, ["ZG-7"]), "ZG-7")
    assert zg7.status.value == "FAIL", zg7.error
    checks = {c.name: c for c in zg7.checks}
    insert = checks["attribution_allocations: INSERT blocked for workers"]
    assert insert.status.value == "FAIL"
    assert "as postgres: control write also fails" in insert.detail and "without worker context" in insert.detail
    assert 'unrecognized configuration parameter "app.execution_context"' in insert.detail
    assert "app_user" not in insert.detail  # its login default defines the setting: its control wrote
    row = next(r for r in zg7.tables[0]["rows"] if r[1:3] == ["attribution_allocations", "INSERT"])
    assert row[3:] == ["blocked by guard", "FAIL"]
    # the guard is the trigger whose function raised the guard's error
    assert checks["attribution_allocations: guard trigger enabled"].status.value == "PASS"
    assert checks["attribution_allocations: guard trigger enabled"].detail.startswith("trg_strict_guard (fn_strict_guard())")
    guard = checks["attribution_events: guard trigger enabled"]
    assert guard.status.value == "FAIL"
    assert "no worker write to attribution_events raised the guard's error" in guard.detail
    assert "trg_audit (fn_audit(), enabled)" in guard.detail and "not firing: tgenabled D" in guard.detail
    assert "guard did not fire" in checks["attribution_events: INSERT blocked for workers"].detail


def test_control_write_whose_row_a_trigger_discards_fails_zg7(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_discard_rows", "0012_comments", '''
        # the application's inserts vanish (the fixture, written as the admin, stays)
        op.execute("CREATE FUNCTION fn_discard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "IF current_user = 'app_user' THEN RETURN NULL; END IF; RETURN NEW; END $$")
        op.execute("CREATE TRIGGER trg_zz_discard BEFORE INSERT ON attribution_events "
                   "FOR EACH ROW EXECUTE FUNCTION fn_discard()")
    ''')
    edit(backend / "zerodrift.toml", 'expected_message = "read-only in worker context"',
         'expected_message = "read-only in worker context"\nguard_triggers = { attribution_allocations = "trg_gone" }')
    zg7 = _gate(_run(backend, admin_url, ["ZG-7"]), "ZG-7")
    assert zg7.status.value == "FAIL"
    checks = {c.name: c for c in zg7.checks}
    insert = checks["attribution_events: INSERT blocked for workers"]
    assert insert.status.value == "FAIL"
    assert "as app_user: write reported success but the row is not there" in insert.detail
    assert "0 rows returned" in insert.detail
    assert checks["attribution_events: UPDATE blocked for workers"].status.value == "PASS"
    guard = checks["attribution_allocations: guard trigger enabled"]
    assert guard.status.value == "FAIL" and "the configured guard trigger trg_gone is not on attribution_allocations" in guard.detail


def test_sequence_behind_its_rows_fails_zg2_and_the_upgraded_database_fails_zg7(admin_url, tmp_path):
    """The seed writes an allocation with an explicit id and no setval: fresh installs work, every
    insert on the upgraded database collides with that row."""
    backend = make_backend(tmp_path / "repo", commit=False)
    with (backend / "seed.sql").open("a") as fh:
        fh.write("INSERT INTO attribution_allocations (id, tenant_id, event_id, channel, allocated_cents) OVERRIDING SYSTEM VALUE\n"
                 "VALUES (2, '11111111-1111-1111-1111-111111111111', '33333333-3333-3333-3333-333333333333', 'email', 1);\n")
    report = _run(backend, admin_url, ["ZG-2", "ZG-7"])
    zg2 = _gate(report, "ZG-2")
    assert zg2.status.value == "FAIL"
    sequences = next(c for c in zg2.checks if c.name == "sequences ahead of their columns")
    assert sequences.status.value == "FAIL"
    assert ("attribution_allocations.id: sequence attribution_allocations_id_seq last_value 1 "
            "(is_called true, next 2) but max(id) = 2") in sequences.detail
    zg7 = _gate(report, "ZG-7")
    assert zg7.status.value == "FAIL"
    failed = {c.name: c.detail for c in _failed(zg7)}
    assert list(failed) == ["existing (revision 0004_merge_branches): attribution_allocations: INSERT blocked for workers"]
    detail = next(iter(failed.values()))
    existing = f"zd_{report.run_id}_existing"
    assert f"control write also fails on {existing}" in detail and "23505: duplicate key value" in detail


def test_runtime_role_without_insert_privilege_is_not_proof(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_revoke_insert", "0012_comments",
                 "op.execute('REVOKE INSERT ON attribution_events FROM app_user')")
    edit(backend / "zerodrift.toml", 'expected_message = "read-only in worker context"',
         'expected_message = "read-only in worker context"\nroles = ["app_user"]')
    zg7 = _gate(_run(backend, admin_url, ["ZG-7"]), "ZG-7")
    assert zg7.status.value == "FAIL"
    insert = next(c for c in zg7.checks if c.name == "attribution_events: INSERT blocked for workers")
    assert insert.status.value == "FAIL"
    assert "no role proved the guard" in insert.detail and "permission denied" in insert.detail


def test_guard_that_breaks_every_write_fails_zg7(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_broken_guard", "0012_comments", '''
        op.execute("""
        CREATE OR REPLACE FUNCTION fn_block_worker_ingestion_mutation() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ingestion tables are read-only in worker context (table=%)', TG_TABLE_NAME
                USING ERRCODE = 'ZW001';
        END;
        $$
        """)
    ''')
    edit(backend / "zerodrift.toml", "fixture_sql = \"\"\"\n", "fixture_sql = \"\"\"\nSET LOCAL session_replication_role = replica;\n")
    edit(backend / "zerodrift.toml", "VALUES ('11111111-1111-1111-1111-111111111111', now(), gen_random_uuid(), 'zg7-fixture', now(), 100);\n",
         "VALUES ('11111111-1111-1111-1111-111111111111', now(), gen_random_uuid(), 'zg7-fixture', now(), 100);\n"
         "SET LOCAL session_replication_role = origin;\n")
    zg7 = _gate(_run(backend, admin_url, ["ZG-7"]), "ZG-7")
    assert zg7.status.value == "FAIL"
    insert = next(c for c in zg7.checks if c.name == "attribution_events: INSERT blocked for workers")
    assert insert.status.value == "FAIL" and "control write also fails" in insert.detail


def test_zg7_config_without_insert_statement_is_a_usage_error(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "zerodrift.toml", 'tables = ["attribution_events", "attribution_allocations"]',
         'tables = ["attribution_events", "attribution_allocations", "tenants"]')
    commit_all(backend.parent, "variant")
    with pytest.raises(UsageError) as info:
        run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-7"]))
    assert "gates.ZG-7" in str(info.value) and "tenants" in str(info.value)


APPEND_ONLY = '''
    op.execute("""
    CREATE TABLE audit_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text NOT NULL);
    CREATE TABLE audit_notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text NOT NULL);
    GRANT SELECT, INSERT, UPDATE, DELETE ON audit_log, audit_notes TO app_user;
    CREATE FUNCTION fn_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'ZA001';
    END;
    $$;
    -- audit_log: no UPDATE or DELETE for anyone; audit_notes: only DELETE is blocked (UPDATE slipped through)
    CREATE TRIGGER trg_append_only BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION fn_append_only();
    CREATE TRIGGER trg_append_only BEFORE DELETE ON audit_notes FOR EACH ROW EXECUTE FUNCTION fn_append_only();
    CREATE TRIGGER trg_block_worker_mutation BEFORE INSERT OR UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION fn_block_worker_ingestion_mutation();
    CREATE TRIGGER trg_block_worker_mutation BEFORE INSERT OR UPDATE OR DELETE ON audit_notes
        FOR EACH ROW EXECUTE FUNCTION fn_block_worker_ingestion_mutation();
    """)
'''


def _append_only_backend(tmp_path, tables, operations):
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_append_only", "0012_comments", APPEND_ONLY)
    edit(backend / "zerodrift.toml", 'tables = ["attribution_events", "attribution_allocations"]',
         f'tables = ["attribution_events", "attribution_allocations", {", ".join(map(repr, tables))}]'.replace("'", '"'))
    config = backend / "zerodrift.toml"
    edit(config, "[gates.ZG-7.insert_sql]\n", "[gates.ZG-7.insert_sql]\n" + "".join(
        f"{t} = \"INSERT INTO {t} (note) VALUES ('zg7')\"\n" for t in tables))
    config.write_text(config.read_text() + "\n[gates.ZG-7.operations]\n" + "".join(
        f'{t} = ["INSERT"]\n' for t in operations))
    return backend


def test_append_only_table_passes_zg7_with_its_operations(admin_url, tmp_path):
    backend = _append_only_backend(tmp_path, ["audit_log"], ["audit_log"])
    zg7 = _gate(_run(backend, admin_url, ["ZG-7"]), "ZG-7")
    assert zg7.status.value == "PASS", (zg7.summary, zg7.error, [(c.name, c.detail) for c in _failed(zg7)])
    for op in ("UPDATE", "DELETE"):
        check = next(c for c in zg7.checks if c.name == f"audit_log: {op} blocked for every role")
        assert check.status.value == "PASS"
        assert "as app_user: another error (ZA001: audit_log is append-only)" in check.detail, check.detail
        assert "as postgres: another error (ZA001: audit_log is append-only)" in check.detail, check.detail
        assert not any(c.name == f"audit_log: {op} blocked for workers" for c in zg7.checks)
    insert = next(c for c in zg7.checks if c.name == "audit_log: INSERT blocked for workers")
    assert insert.status.value == "PASS"
    rows = {tuple(r[1:3]): r[3:] for r in zg7.tables[0]["rows"]}
    assert rows[("audit_log", "UPDATE (not allowed)")] == ["blocked for everyone", "blocked for everyone"]
    # the not-allowed writes were never tried in worker context
    worker = next(e for e in zg7.evidence if e.title.startswith("worker writes as app_user"))
    assert "UPDATE audit_log" not in worker.output and "INSERT INTO audit_log" in worker.output


def test_append_only_table_without_operations_and_an_update_that_slips_through_fail_zg7(admin_url, tmp_path):
    backend = _append_only_backend(tmp_path, ["audit_log", "audit_notes"], ["audit_notes"])
    zg7 = _gate(_run(backend, admin_url, ["ZG-7"]), "ZG-7")
    assert zg7.status.value == "FAIL"
    failed = {c.name: c.detail for c in _failed(zg7)}
    # audit_log is append-only but configured with every operation: the cause and the fix are named
    update = failed["audit_log: UPDATE blocked for workers"]
    assert "control write also fails" in update and "ZA001: audit_log is append-only" in update
    assert "[gates.ZG-7.operations]" in update
    # audit_notes is configured append-only, but its UPDATE writes
    slipped = failed["audit_notes: UPDATE blocked for every role"]
    assert "as app_user: UPDATE wrote 2 row(s)" in slipped and "as postgres: UPDATE wrote" in slipped, slipped
    delete = next(c for c in zg7.checks if c.name == "audit_notes: DELETE blocked for every role")
    assert delete.status.value == "PASS"
    assert not any(n.startswith("attribution_") for n in failed)
