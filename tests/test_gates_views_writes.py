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
    assert matrix["columns"] == ["Table", "Operation", "app_user", "postgres"]
    # app_user may not DELETE: shown, but not counted as proof
    row = next(r for r in matrix["rows"] if r[:2] == ["attribution_events", "DELETE"])
    assert row[2] == "not counted" and row[3] == "blocked by guard"


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
