"""Safety: secrets never leak, cleanup on SIGTERM, concurrent runs, clear errors with exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.backends import add_revision, commit_all, edit, make_backend
from zerodrift.server.provision import find_leftovers
from zerodrift.urls import with_parts


def _zerodrift(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "zerodrift.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def secret_admin(admin_url):
    """A superuser login with a distinctive password; the URL carries it."""
    role = f"zdtest_admin_{uuid.uuid4().hex[:8]}"
    password = f"Zebra-{uuid.uuid4().hex[:12]}-Secret"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")
    yield with_parts(admin_url, user=role, password=password, dbname="postgres"), password
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_no_password_reaches_any_output(secret_admin, tmp_path):
    url, password = secret_admin
    backend = make_backend(tmp_path / "repo")
    out = tmp_path / "proof"
    proc = _zerodrift("run", str(backend), "--admin-url", url, "--out", str(out), "--format", "json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert password not in proc.stdout and password not in proc.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:
        assert password.encode() not in path.read_bytes(), path
    assert "***" in (out / "ledger.md").read_text() or "ZG-5" in (out / "ledger.md").read_text()


def test_sigterm_mid_run_drops_its_databases(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    proc = subprocess.Popen([sys.executable, "-m", "zerodrift.cli", "run", str(backend), "--admin-url", admin_url,
                             "--out", str(tmp_path / "proof")], stderr=subprocess.PIPE, text=True)
    seen = []
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if "ZG-1 Fresh migration determinism: running" in line:
            break
    time.sleep(0.3)  # let it create databases
    mine = [lo for lo in find_leftovers(admin_url) if lo.pid == proc.pid]
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(60) == 130, "".join(seen) + rest
    assert "interrupted" in rest
    assert [lo for lo in find_leftovers(admin_url) if lo.pid == proc.pid] == [], f"left behind (had {mine})"


def test_two_concurrent_runs_on_one_server(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    procs = [subprocess.Popen([sys.executable, "-m", "zerodrift.cli", "run", str(backend), "--admin-url", admin_url,
                               "--out", str(tmp_path / f"proof{i}"), "-g", "ZG-2", "-g", "ZG-4"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all(not [lo for lo in find_leftovers(admin_url) if lo.pid == p.pid] for p in procs)


def test_migration_that_raises_is_an_error_naming_the_revision(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_boom", "0012_comments", "op.execute('ALTER TABLE no_such_table ADD COLUMN x int')")
    commit_all(backend.parent, "boom")
    proc = _zerodrift("run", str(backend), "--admin-url", admin_url, "--out", str(tmp_path / "proof"),
                      "-g", "ZG-0", "-g", "ZG-1", "--format", "json")
    assert proc.returncode == 1
    import json

    data = json.loads(proc.stdout)
    gates = {g["id"]: g for g in data["gates"]}
    assert gates["ZG-1"]["status"] == "ERROR"
    assert "0013_boom" in gates["ZG-1"]["error"] and "no_such_table" in gates["ZG-1"]["error"]
    assert gates["ZG-0"]["status"] == "PASS"  # independent gates still report


def test_usage_and_environment_errors(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    proc = _zerodrift("run", str(backend), "-g", "ZG-42")
    assert proc.returncode == 2 and "unknown gate id ZG-42" in proc.stderr
    proc = _zerodrift("run", str(tmp_path))
    assert proc.returncode == 2 and "no alembic.ini" in proc.stderr
    proc = _zerodrift("run", str(backend), "--python", "/nonexistent/python3")
    assert proc.returncode == 3 and "/nonexistent/python3" in proc.stderr
    proc = _zerodrift("run", str(backend), "--admin-url", "postgresql://nobody:pw@127.0.0.1:1/postgres")
    assert proc.returncode == 3 and "cannot connect" in proc.stderr and "pw@" not in proc.stderr
    proc = _zerodrift("run", str(backend), "--admin-url", "mysql://x")
    assert proc.returncode == 2 and "not a PostgreSQL URL" in proc.stderr
    edit(backend / "zerodrift.toml", "[gates.ZG-2]\n", "[gates.ZG-2]\nfrom_revison = \"x\"\n")
    proc = _zerodrift("run", str(backend))
    assert proc.returncode == 2
    assert "zerodrift.toml" in proc.stderr and "gates.ZG-2.from_revison" in proc.stderr and "unknown key" in proc.stderr
    edit(backend / "zerodrift.toml", "from_revison = \"x\"\n", "")
    edit(backend / "zerodrift.toml", "[target]\n", "[target]\njob_timeout = \"soon\"\n")
    proc = _zerodrift("run", str(backend))
    assert proc.returncode == 2 and "target.job_timeout" in proc.stderr
    (backend / "zerodrift.toml").write_text("[target\n")
    proc = _zerodrift("run", str(backend))
    assert proc.returncode == 2 and "not valid TOML" in proc.stderr


def test_gc_drops_only_marked_databases_of_dead_runs(admin_url, tmp_path):
    from zerodrift.server.provision import Provisioner

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    prov = Provisioner(admin_url, uuid.uuid4().hex[:8])
    db = prov.create_database("leftover")
    with psycopg.connect(admin_url, autocommit=True) as conn:  # pretend a dead process made it
        comment = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                               (db.name,)).fetchone()[0]
        conn.execute(f'COMMENT ON DATABASE "{db.name}" IS %s'.replace("%s", "'" + comment.replace(f"pid {os.getpid()}", f"pid {dead.pid}") + "'"))
        impostor = f"zd_{uuid.uuid4().hex[:8]}_unmarked"
        conn.execute(f'CREATE DATABASE "{impostor}"')
    try:
        proc = _zerodrift("gc", "--admin-url", admin_url, "--dry-run")
        assert db.name in proc.stdout and "drop" in proc.stdout and impostor not in proc.stdout
        proc = _zerodrift("gc", "--admin-url", admin_url)
        assert proc.returncode == 0
        with psycopg.connect(admin_url) as conn:
            names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        assert db.name not in names and impostor in names
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{impostor}"')
            conn.execute(f'DROP DATABASE IF EXISTS "{db.name}"')
