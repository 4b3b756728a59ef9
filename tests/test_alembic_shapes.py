"""Alembic setups as real projects have them (tests/shapes): each passes ZG-1 and ZG-2 with only
config, and each broken variant fails for the right reason.

Shapes: a package-style ``script_location``; a versions folder ``env.py`` sets at run time;
Flask-Migrate with an app factory (``target.flask_app``); an async ``env.py`` that must run in
an AnyIO worker thread (``target.alembic_runner``); two histories and a third, unconfigured
one. A configuration whose script directory holds no revision exits 2 in ``run`` and ``doctor``.
Real PostgreSQL, real alembic subprocesses.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import git
import pytest

from tests.backends import commit_all, edit
from zerodrift.errors import EXIT_USAGE, UsageError
from zerodrift.runner import RunOptions, run

SHAPES = Path(__file__).resolve().parent / "shapes"
GATES = ["ZG-1", "ZG-2"]


def make_shape(tmp_path: Path, name: str) -> Path:
    """Copy ``tests/shapes/<name>`` into ``tmp_path/repo/backend`` of a new git repository (committed)."""
    root = tmp_path / "repo"
    backend = root / "backend"
    shutil.copytree(SHAPES / name, backend, ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".gitignore").write_text("__pycache__/\nproofs/\n")
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "zerodrift tests")
        cw.set_value("user", "email", "tests@zerodrift.invalid")
    commit_all(root, f"{name} shape")
    return backend


def _run(backend: Path, admin_url: str, gates=GATES):
    return run(RunOptions(target=backend, admin_url=admin_url, gates=gates))


def _result(report, gate_id):
    return next(r for r in report.results if r.gate_id == gate_id)


def _check(result, name_part):
    return next(c for c in result.checks if name_part in c.name)


def _statuses(report):
    return {r.gate_id: r.status.value for r in report.results}


def _failing_zg1(backend: Path, admin_url: str):
    """ZG-1's result on ``backend``, asserted FAIL."""
    report = _run(backend, admin_url, gates=["ZG-1"])
    zg1 = _result(report, "ZG-1")
    assert zg1.status.value == "FAIL", _explain(report)
    return zg1


def _explain(report):
    return [(r.gate_id, r.error, [(c.name, c.status.value, c.detail[:300]) for c in r.checks
                                  if c.status.value != "PASS"]) for r in report.results]


@pytest.mark.parametrize("shape, heads", [
    ("package_location", ["p002_note"]),
    ("runtime_versions", ["r002_note"]),
    ("flask_migrate", ["f002_note"]),
    ("anyio_thread", ["a002_note"]),
])
def test_shape_passes_with_only_config(admin_url, tmp_path, shape, heads):
    backend = make_shape(tmp_path, shape)
    gates = GATES + (["ZG-8"] if shape == "flask_migrate" else [])  # env.py's options, read in the app context
    report = _run(backend, admin_url, gates=gates)
    assert _statuses(report) == {gate: "PASS" for gate in gates}, _explain(report)
    assert report.head == heads
    # the upgrade really ran the revisions: ZG-2 upgraded from the first revision to the head
    assert _check(_result(report, "ZG-2"), "current equals head").status.value == "PASS"


def test_two_histories_are_proven_and_an_unconfigured_one_is_named(admin_url, tmp_path):
    backend = make_shape(tmp_path, "two_histories")
    report = _run(backend, admin_url)
    assert _statuses(report) == {"ZG-1": "PASS", "ZG-2": "PASS"}, _explain(report)
    zg1 = _result(report, "ZG-1")
    assert sorted(zg1.facts["heads"]) == ["b002_note", "c002_note"]
    assert zg1.facts["unconfigured_histories"] == {"plugins/audit/migrations": 1}
    table = next(t for t in zg1.tables if t["title"] == "Migration histories")
    rows = {row[0]: row for row in table["rows"]}
    assert rows["migrations/versions"][1:] == [2, "c002_note", "configured: migrated by ZG-1"]
    assert rows["plugins/billing/migrations"][1:] == [2, "b002_note", "configured: migrated by ZG-1"]
    assert rows["plugins/audit/migrations"][3] == "exists, not configured: not proven"


def test_async_env_template_with_asyncio_run_works_as_it_is(admin_url, tmp_path):
    """Alembic's async template (asyncio.run in env.py) needs no runner hook."""
    backend = make_shape(tmp_path, "anyio_thread")
    edit(backend / "zerodrift.toml", 'alembic_runner = "asyncsvc.migrate:run_alembic"\n', "")
    edit(backend / "migrations" / "env.py", "anyio.from_thread.run(run_async_migrations)",
         "import asyncio\n\nasyncio.run(run_async_migrations())")
    commit_all(backend.parent, "alembic's async template")
    report = _run(backend, admin_url, gates=["ZG-1"])
    assert _statuses(report) == {"ZG-1": "PASS"}, _explain(report)


def test_async_env_without_its_runner_fails_naming_the_worker_thread(admin_url, tmp_path):
    backend = make_shape(tmp_path, "anyio_thread")
    edit(backend / "zerodrift.toml", 'alembic_runner = "asyncsvc.migrate:run_alembic"\n', "")
    commit_all(backend.parent, "no runner")
    zg1 = _failing_zg1(backend, admin_url)
    upgrade = _check(zg1, "upgrade head on fresh")
    assert upgrade.status.value == "FAIL" and "worker thread" in upgrade.detail, upgrade.detail
    # the heads were still read from the script directory env.py resolved (up to where it stopped)
    assert zg1.facts["heads"] == ["a002_note"]


def test_flask_app_that_upgrades_itself_at_start_is_detected(admin_url, tmp_path):
    backend = make_shape(tmp_path, "flask_migrate")
    edit(backend / "flaskshape" / "__init__.py", "    return app\n",
         "    with app.app_context():  # migrates on start\n"
         "        from flask_migrate import upgrade\n\n"
         "        upgrade()\n    return app\n")
    commit_all(backend.parent, "upgrade on start")
    zg1 = _failing_zg1(backend, admin_url)
    before = _check(zg1, "fresh at no revision before zerodrift's upgrade")
    assert before.status.value == "FAIL"
    assert "already at f002_note before zerodrift's upgrade" in before.detail
    assert "migrates the database itself when it starts" in before.detail


def test_flask_migrate_without_flask_app_is_a_configuration_error(admin_url, tmp_path):
    backend = make_shape(tmp_path, "flask_migrate")
    edit(backend / "zerodrift.toml", 'flask_app = "flaskshape:create_app"\n', "")
    commit_all(backend.parent, "no flask_app")
    with pytest.raises(UsageError) as caught:
        _run(backend, admin_url, gates=["ZG-1"])
    message = str(caught.value)
    # alembic's own message, as `alembic upgrade` gives it with that alembic.ini, and the fix
    assert "script_location = (not set): CommandError: No 'script_location' key found" in message, message
    assert "this is Flask-Migrate's layout" in message and 'set target.flask_app = "module:create_app"' in message


def _no_revisions_backend(tmp_path: Path) -> Path:
    backend = make_shape(tmp_path, "package_location")
    (backend / "empty").mkdir()
    (backend / "empty" / "README").write_text("no revisions here\n")
    edit(backend / "alembic.ini", "prepend_sys_path = .\n", "prepend_sys_path = .\nversion_locations = %(here)s/empty\n")
    commit_all(backend.parent, "versions point at an empty folder")
    return backend


def test_no_revisions_is_a_configuration_error_in_run(admin_url, tmp_path):
    backend = _no_revisions_backend(tmp_path)
    with pytest.raises(UsageError) as caught:
        _run(backend, admin_url)
    message = str(caught.value)
    assert "no Alembic revision found — a configuration error" in message
    assert f"version_locations = {backend}/empty" in message.replace("%(here)s", str(backend))
    assert f"searched {backend}/empty: empty (no revision file)" in message
    assert "revision files exist elsewhere: shapepkg/migrations/versions (2)" in message
    assert "fix: point script_location" in message


def test_no_revisions_exits_2_in_run_and_doctor(admin_url, tmp_path):
    from typer.testing import CliRunner

    from zerodrift.cli import app

    backend = _no_revisions_backend(tmp_path)
    runner = CliRunner()
    ran = runner.invoke(app, ["run", str(backend), "--admin-url", admin_url, "--gate", "ZG-1"])
    assert ran.exit_code == EXIT_USAGE, ran.output
    assert "no Alembic revision found" in ran.output
    doctor = runner.invoke(app, ["doctor", str(backend), "--admin-url", admin_url])
    assert doctor.exit_code == EXIT_USAGE, doctor.output
    line = next(line for line in doctor.output.splitlines() if line.startswith("FAIL  alembic"))
    assert "no Alembic revision found" in line and "empty" in line, doctor.output


@pytest.mark.parametrize("shape", ["package_location", "runtime_versions", "flask_migrate", "anyio_thread"])
def test_doctor_resolves_the_script_directory_as_the_run_does(admin_url, tmp_path, shape):
    from typer.testing import CliRunner

    from zerodrift.cli import app

    backend = make_shape(tmp_path, shape)
    doctor = CliRunner().invoke(app, ["doctor", str(backend), "--admin-url", admin_url])
    lines = [line for line in doctor.output.splitlines() if line.startswith(("OK  alembic", "FAIL  alembic",
                                                                               "WARN  alembic"))]
    assert lines and all(line.startswith("OK") for line in lines), doctor.output
    assert any("2 revisions" in line for line in lines), lines


@pytest.mark.parametrize("shape, expected", [
    ("package_location", {"alembic_ini": "alembic.ini"}),
    ("runtime_versions", {"alembic_ini": "alembic.ini"}),
    ("flask_migrate", {"alembic_ini": "migrations/alembic.ini", "flask_app": "flaskshape:create_app"}),
    ("anyio_thread", {"alembic_ini": "alembic.ini", "alembic_runner": "asyncsvc.migrate:run_alembic"}),
])
def test_init_writes_the_config_of_each_shape(tmp_path, shape, expected):
    from zerodrift.onboard.init import init_config

    backend = make_shape(tmp_path, shape)
    (backend / "zerodrift.toml").unlink()
    init_config(backend)
    text = (backend / "zerodrift.toml").read_text()  # beside the migrations folder for Flask-Migrate too
    target = tomllib.loads(text)["target"]
    for key, value in expected.items():
        assert target.get(key) == value, (key, text)
    assert "script_location" not in "".join(line for line in text.splitlines() if "TODO" in line), text


def test_env_py_choosing_an_empty_history_is_a_configuration_error(admin_url, tmp_path):
    """The versions folder env.py sets at run time is the one judged: an empty one is exit 2, and the
    message says env.py changed the locations."""
    backend = make_shape(tmp_path, "runtime_versions")
    (backend / "histories" / "staging").mkdir()
    (backend / "histories" / "staging" / "README").write_text("not yet\n")
    edit(backend / "zerodrift.toml", 'url_scheme = "postgresql"\n',
         'url_scheme = "postgresql"\nenv = { SERVICE_HISTORY = "staging" }\n')
    commit_all(backend.parent, "an empty history")
    with pytest.raises(UsageError) as caught:
        _run(backend, admin_url, gates=["ZG-1"])
    message = str(caught.value)
    assert "histories/staging: empty (no revision file)" in message
    assert "env.py changed the version locations at run time" in message
    assert "revision files exist elsewhere: histories/main (2)" in message


def test_a_history_left_out_of_the_config_is_not_proven(admin_url, tmp_path):
    backend = make_shape(tmp_path, "two_histories")
    edit(backend / "alembic.ini", " %(here)s/plugins/billing/migrations", "")
    commit_all(backend.parent, "billing left out")
    zg1 = _failing_zg1(backend, admin_url)
    assert "heads c002_note; expected b002_note, c002_note" in _check(zg1, "heads are the expected ones").detail
    assert zg1.facts["unconfigured_histories"] == {"plugins/audit/migrations": 1, "plugins/billing/migrations": 2}
