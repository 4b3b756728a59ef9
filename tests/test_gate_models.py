"""ZG-8 models match the migrations, on the example backend and on broken variants."""

from __future__ import annotations

from tests.backends import commit_all, edit, make_backend
from zerodrift.runner import RunOptions, run


def _gate(report, gate_id):
    return next(r for r in report.results if r.gate_id == gate_id)


def test_example_models_match_the_migrations(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    zg8 = _gate(run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-8"])), "ZG-8")
    assert zg8.status.value == "PASS", (zg8.summary, zg8.error)
    assert zg8.facts["models"]["tables"] == 3 and zg8.facts["models"]["differences"] == 0
    # compare_server_default = True comes from the example's env.py (read as `alembic check` reads it)
    assert zg8.facts["models"]["options"]["compare_server_default"] is True
    assert "compare_server_default" in zg8.facts["models"]["options_from_env_py"]


def test_model_and_migration_columns_missing_on_either_side_fail(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    models = backend / "app" / "models.py"
    # a column in the models that no migration creates, and one the migrations create that the models lost
    edit(models, '    notification_email: Mapped[str | None] = mapped_column(Text)\n',
         '    notification_email: Mapped[str | None] = mapped_column(Text)\n'
         '    billing_plan: Mapped[str | None] = mapped_column(Text)\n')
    edit(models, "    event_type: Mapped[str] = mapped_column(Text, nullable=False, server_default=text(\"'purchase'::text\"))\n", "")
    # a nullability and a default that differ, and one known false positive waived, one ignored
    edit(models, "session_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)",
         "session_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=True)")
    edit(models, "server_default=text(\"'v1'::text\")", "server_default=text(\"'v2'::text\")")
    edit(backend / "zerodrift.toml", 'metadata = "app.models:Base.metadata"', '''metadata = "app.models:Base.metadata"
ignore = ["columns:public.tenants.billing_*"]

[[gates.ZG-8.waivers]]
kind = "columns"
object = "public.attribution_allocations.model_version"
attribute = "default"
reason = "model_version default is rendered by the application"
expires = "2999-12-31"''')
    commit_all(backend.parent, "variant")
    zg8 = _gate(run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-8"])), "ZG-8")
    assert zg8.status.value == "FAIL"
    detail = next(c.detail for c in zg8.checks if c.name == "models match the migrations" and c.status.value == "FAIL")
    assert "created by the migrations, missing from the models: public.attribution_events.event_type" in detail
    assert "public.attribution_events.session_id nullable" in detail
    assert "1 waived" in detail
    rows = {(r[0], r[2], r[3]): r for r in zg8.tables[0]["rows"]}
    assert rows[("extra object", "public.attribution_events.event_type", "(object)")][4:6] == ["absent", "present"]
    assert rows[("definition changed", "public.attribution_events.session_id", "nullable")][4:6] == ["true", "false"]
    assert rows[("default changed", "public.attribution_allocations.model_version", "default")][6].startswith("WAIVED")
    ignored = next(t for t in zg8.tables if t["title"].startswith("Ignored"))
    assert ignored["rows"] == [["columns", "public.tenants.billing_plan", "(object)", "present", "absent",
                                "columns:public.tenants.billing_*"]]
    # without the ignore pattern the model-only column is a finding naming its side
    edit(backend / "zerodrift.toml", 'ignore = ["columns:public.tenants.billing_*"]', "")
    commit_all(backend.parent, "no ignore")
    zg8 = _gate(run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-8"])), "ZG-8")
    detail = next(c.detail for c in zg8.checks if c.status.value == "FAIL")
    assert "in the models, missing from the migrations: public.tenants.billing_plan" in detail


def test_include_object_of_env_py_is_honoured(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "app" / "models.py", '    notification_email: Mapped[str | None] = mapped_column(Text)\n',
         '    notification_email: Mapped[str | None] = mapped_column(Text)\n'
         '    billing_plan: Mapped[str | None] = mapped_column(Text)\n')
    # env.py's hook leaves the column out of autogenerate: the model-only column is not compared
    edit(backend / "migrations" / "env.py", "compare_server_default=True,",
         "compare_server_default=True,\n"
         "                          include_object=lambda obj, name, kind, reflected, other: "
         "not (kind == 'column' and name == 'billing_plan'),")
    commit_all(backend.parent, "variant")
    zg8 = _gate(run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-8"])), "ZG-8")
    assert zg8.status.value == "PASS", (zg8.summary, zg8.error)
    assert zg8.facts["models"]["options"]["include_object"].endswith("<lambda>")
    # the hook overridden by the config: the column is compared, and missing from the migrations
    edit(backend / "zerodrift.toml", 'metadata = "app.models:Base.metadata"',
         'metadata = "app.models:Base.metadata"\ninclude_object = "app.models:include_everything"')
    (backend / "app" / "models.py").write_text((backend / "app" / "models.py").read_text()
                                               + "\n\ndef include_everything(*args):\n    return True\n")
    commit_all(backend.parent, "override")
    zg8 = _gate(run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-8"])), "ZG-8")
    assert zg8.status.value == "FAIL"
    assert any("in the models, missing from the migrations: public.tenants.billing_plan" in c.detail for c in zg8.checks)
