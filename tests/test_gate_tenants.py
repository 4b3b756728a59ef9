"""ZG-10 tenant isolation on the example backend and on broken variants."""

from __future__ import annotations

from tests.backends import add_revision, commit_all, edit, make_backend
from zerodrift.runner import RunOptions, run


def _gate(report, gate_id):
    return next(r for r in report.results if r.gate_id == gate_id)


def _checks(result, status):
    return {c.name: c.detail for c in result.checks if c.status.value == status}


def test_example_isolates_tenants_on_fresh_and_existing(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    zg10 = _gate(run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-2", "ZG-10"])), "ZG-10")
    assert zg10.status.value == "PASS", (zg10.summary, zg10.error)
    passed = _checks(zg10, "PASS")
    for db in ("fresh", "existing"):
        for table in ("public.attribution_events", "public.attribution_allocations"):
            assert f"RLS enabled and forced on {table} ({db})" in passed
            assert passed[f"tenant A reads only its own rows on {table} ({db})"].startswith("1 row(s) of tenant A")
            for check in ("rows cannot move to tenant B", "no row can be inserted into tenant B"):
                assert passed[f"{check} on {table} ({db})"].startswith("refused: new row violates row-level security")
        assert f"app_user is neither superuser nor BYPASSRLS ({db})" in passed


def test_unforced_rls_missing_with_check_and_missing_policy_fail(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_tenant_breakage", "0012_comments", '''
        # RLS enabled but not forced, on a table the runtime role owns: the owner bypasses the policy
        op.execute("ALTER TABLE attribution_allocations NO FORCE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE attribution_allocations OWNER TO app_user")
        # an INSERT policy whose WITH CHECK checks no tenant (PostgreSQL applies USING where a
        # policy has no WITH CHECK, so a bare missing clause does not leak; this one does)
        op.execute("CREATE POLICY events_ingest ON attribution_events FOR INSERT WITH CHECK (true)")
        # a tenant table without any policy (nor RLS)
        op.execute("CREATE TABLE tenant_notes (id serial PRIMARY KEY, tenant_id uuid NOT NULL, note text)")
        op.execute("GRANT SELECT, INSERT, UPDATE ON tenant_notes TO app_user")
    ''')
    edit(backend / "zerodrift.toml", '''       ('{tenant_b}', 'b0000000-0000-4000-8000-00000000000b', 'paid', 200);
"""''', '''       ('{tenant_b}', 'b0000000-0000-4000-8000-00000000000b', 'paid', 200);
INSERT INTO tenant_notes (tenant_id, note) VALUES ('{tenant_a}', 'a'), ('{tenant_b}', 'b');
"""''')
    commit_all(backend.parent, "variant")
    zg10 = _gate(run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-10"])), "ZG-10")
    assert zg10.status.value == "FAIL"
    failed, passed = _checks(zg10, "FAIL"), _checks(zg10, "PASS")
    allocations = "public.attribution_allocations (fresh)"
    assert ("RLS enabled but not forced on public.attribution_allocations: its owner app_user bypasses the policies"
            " — and app_user is that owner") == failed[f"RLS enabled and forced on {allocations}"]
    assert "leak: with tenant A's setting app_user reads 1 row(s) of other tenants from public.attribution_allocations" \
        in failed[f"tenant A reads only its own rows on {allocations}"]
    inserted = failed["no row can be inserted into tenant B on public.attribution_events (fresh)"]
    assert "leak: app_user with tenant A's setting wrote a row of tenant B into public.attribution_events" in inserted
    assert "events_ingest (INSERT, WITH CHECK)" in inserted
    # its reads and moves stay isolated: PostgreSQL checks an UPDATE's new row against the SELECT policy too
    assert "tenant A reads only its own rows on public.attribution_events (fresh)" in passed
    assert "rows cannot move to tenant B on public.attribution_events (fresh)" in passed
    notes = "public.tenant_notes (fresh)"
    assert failed[f"policy on {notes}"] == "public.tenant_notes has a tenant_id column and no policy"
    assert failed[f"RLS enabled and forced on {notes}"].startswith("RLS is not enabled on public.tenant_notes")
    assert "leak: app_user without app.current_tenant_id reads 2 row(s) of public.tenant_notes" in \
        failed[f"no rows without the setting on {notes}"]


def test_every_upgraded_database_is_checked_and_one_built_from_a_release_can_fail_alone(admin_url, tmp_path):
    """The release v1 shipped 0007 without FORCE; the file was later fixed in place. A fresh
    database is forced, the database production upgraded from v1 is not: ZG-10 must say so
    for that path, beside the path that passes."""
    import git

    backend = make_backend(tmp_path / "repo", commit=False)
    rls = backend / "migrations" / "versions" / "0007_tenant_rls.py"
    edit(rls, '        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")\n', "")
    commit_all(backend.parent, "v1: RLS enabled, not forced")
    git.Repo(backend.parent).create_tag("v1")
    edit(rls, '        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")\n',
         '        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")\n'
         '        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")\n')
    with (backend / "zerodrift.toml").open("a") as fh:
        fh.write('\n[[gates.ZG-2.paths]]\nfrom_ref = "v1"\n')
    commit_all(backend.parent, "0007 fixed in place; the release path is configured")
    zg10 = _gate(run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-2", "ZG-10"])), "ZG-10")
    assert zg10.status.value == "FAIL", (zg10.summary, zg10.error)
    failed, passed = _checks(zg10, "FAIL"), _checks(zg10, "PASS")
    table = "public.attribution_events"
    assert f"RLS enabled and forced on {table} (fresh)" in passed
    assert f"RLS enabled and forced on {table} (existing (revision 0004_merge_branches))" in passed
    assert f"RLS enabled and forced on {table} (existing (ref v1))" in failed, sorted(failed)
