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

from tests.backends import add_revision, commit_all, edit, latest_pack, make_backend
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
    # every gate's evidence is searched for the admin's password in the full run of
    # test_secrets.py (URL from the environment); here the URL comes as a flag, through
    # the gates that hand URLs to the target (alembic jobs, probes, beat's broker)
    proc = _zerodrift("run", str(backend), "--admin-url", url, "--out", str(out), "--format", "json",
                      "-g", "ZG-2", "-g", "ZG-5", "-g", "ZG-6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert password not in proc.stdout and password not in proc.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:
        assert password.encode() not in path.read_bytes(), path
    # the admin URL is shown, with its password masked (not merely absent)
    import json

    shown = json.loads((latest_pack(out) / "ledger.json").read_text())["server"]["url"]
    assert shown.startswith("postgresql://zdtest_admin_") and ":***@" in shown, shown


@pytest.mark.parametrize("delay", [0.0, 0.3, 1.0])
def test_sigterm_mid_run_drops_its_databases(admin_url, tmp_path, delay):
    backend = make_backend(tmp_path / "repo")
    proc = subprocess.Popen([sys.executable, "-m", "zerodrift.cli", "run", str(backend), "--admin-url", admin_url,
                             "--out", str(tmp_path / "proof")], stderr=subprocess.PIPE, text=True)
    seen = []
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if "ZG-1 Fresh migration determinism: running" in line:
            break
    time.sleep(delay)  # at different moments: while databases are being created, or migrated
    mine = [lo for lo in find_leftovers(admin_url) if lo.pid == proc.pid]
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(60) == 128 + signal.SIGTERM, "".join(seen) + rest
    # the interruption is the final line: interrupted gates are named as such, nothing (no FAIL or
    # ERROR from a gate thread winding down) is printed after it
    last = rest.rstrip("\n").splitlines()[-1]
    assert last.startswith("interrupted") and "gates interrupted: " in last and "ZG-1" in last, rest
    assert not any(word in line for line in rest.splitlines() for word in ("FAIL ", "ERROR ")), rest
    assert not (tmp_path / "proof").exists()  # no pack claims anything about an interrupted run
    assert [lo for lo in find_leftovers(admin_url) if lo.pid == proc.pid] == [], f"left behind (had {mine})"


def test_two_concurrent_runs_on_one_server(admin_url, tmp_path):
    """Two runs at once on one server keep to their own databases and roles. Neither logs in as
    roles.runtime: on a server that asks for passwords, the role one run creates has no password
    the other knows (test_a_runtime_role_that_existed_before_the_run_and_needs_a_password_…)."""
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "zerodrift.toml", 'runtime = "app_user"', 'runtime = ""')
    commit_all(backend.parent, "no runtime role")
    procs = [subprocess.Popen([sys.executable, "-m", "zerodrift.cli", "run", str(backend), "--admin-url", admin_url,
                               "--out", str(tmp_path / f"proof{i}"), "-g", "ZG-1", "-g", "ZG-2"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    verdicts = "\n".join(line for out in outputs for line in out.splitlines()
                         if line.startswith(("FAIL", "ERROR", "error")) or "│" in line)
    assert [p.returncode for p in procs] == [0, 0], verdicts
    assert all(not [lo for lo in find_leftovers(admin_url) if lo.pid == p.pid] for p in procs)


def test_a_runtime_role_that_existed_before_the_run_and_needs_a_password_is_an_environment_error(
        private_admin_url, tmp_path):
    """On a server that asks for passwords (the embedded one: scram-sha-256 over TCP), zerodrift
    can hand the target a password only for a role it created: an existing roles.runtime is an
    environment ERROR (exit 3) naming the role and the fix before any gate, not each gate's
    FAIL of the target (what another zerodrift run's role left on a shared server caused)."""
    backend = make_backend(tmp_path / "repo")
    # positive control: the role does not exist, zerodrift creates it with a generated password
    ok = _zerodrift("run", str(backend), "--admin-url", private_admin_url, "--out", str(tmp_path / "ok"),
                    "-g", "ZG-4")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with psycopg.connect(private_admin_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'app_user'").fetchone()[0] == 0
        conn.execute("CREATE ROLE app_user LOGIN")  # made by someone else: no password zerodrift knows
    bad = _zerodrift("run", str(backend), "--admin-url", private_admin_url, "--out", str(tmp_path / "bad"),
                     "-g", "ZG-4")
    said = bad.stdout + bad.stderr
    assert bad.returncode == 3, said
    assert "roles.runtime app_user exists on this server" in said and "DROP ROLE app_user" in said, said
    assert "Traceback" not in said and not (tmp_path / "bad").exists()
    assert find_leftovers(private_admin_url) == []


def test_a_runtime_role_an_earlier_run_left_is_taken_over_only_when_no_other_run_is_active(
        private_admin_url, tmp_path):
    """A --keep run leaves app_user (its kept databases' grants reference it) without a password.
    The next run, alone on the server, takes it over with a new password and passes; while
    another zerodrift run is active it must not (that run may use the role): exit 3."""
    from zerodrift.server.provision import PRESENCE_LOCK_KEY

    backend = make_backend(tmp_path / "repo")
    kept = _zerodrift("run", str(backend), "--admin-url", private_admin_url, "--out", str(tmp_path / "kept"),
                      "-g", "ZG-4", "--keep")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    with psycopg.connect(private_admin_url, autocommit=True) as other_run:  # another run is active
        other_run.execute("SELECT pg_advisory_lock_shared(%s)", (PRESENCE_LOCK_KEY,))
        busy = _zerodrift("run", str(backend), "--admin-url", private_admin_url, "--out", str(tmp_path / "busy"),
                          "-g", "ZG-4")
    assert busy.returncode == 3 and "roles.runtime app_user exists on this server" in busy.stdout + busy.stderr
    alone = _zerodrift("run", str(backend), "--admin-url", private_admin_url, "--out", str(tmp_path / "alone"),
                       "-g", "ZG-4", "--format", "json")
    assert alone.returncode == 0, alone.stdout + alone.stderr
    ledger = (latest_pack(tmp_path / "alone") / "ledger.md").read_text()
    assert "taken over from an earlier zerodrift run, with a new password: app_user" in ledger
    with psycopg.connect(private_admin_url, autocommit=True) as conn:  # no password outlives the run
        assert conn.execute("SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'app_user'").fetchone() in (
            None, (True,))


def test_migration_that_raises_is_a_failure_naming_the_revision(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_boom", "0012_comments", "op.execute('ALTER TABLE no_such_table ADD COLUMN x int')")
    commit_all(backend.parent, "boom")
    proc = _zerodrift("run", str(backend), "--admin-url", admin_url, "--out", str(tmp_path / "proof"),
                      "-g", "ZG-0", "-g", "ZG-1", "--format", "json")
    assert proc.returncode == 1
    import json

    data = json.loads(proc.stdout)
    gates = {g["id"]: g for g in data["gates"]}
    # a migration that raises is a finding about the target: FAIL (JUnit <failure>), not ERROR
    assert gates["ZG-1"]["status"] == "FAIL" and not gates["ZG-1"]["error"]
    for purpose in ("fresh", "fresh_b"):
        check = next(c for c in gates["ZG-1"]["checks"] if c["name"] == f"upgrade head on {purpose}")
        assert check["status"] == "FAIL"
        assert "0013_boom" in check["detail"] and 'relation "no_such_table" does not exist' in check["detail"]
    clock = next(c for c in gates["ZG-1"]["checks"] if c["name"].startswith("clock and time zone differ"))
    assert clock["status"] == "SKIPPED"  # not read: the job stopped at the failing revision
    junit = (latest_pack(tmp_path / "proof") / "junit.xml").read_text()
    zg1_case = junit[junit.index('name="ZG-1'):]
    zg1_case = zg1_case[:zg1_case.index("</testcase>")]
    assert "<failure" in zg1_case and "<error" not in zg1_case
    assert gates["ZG-0"]["status"] == "PASS"  # independent gates still report


def test_an_admin_role_without_createdb_or_createrole_is_an_environment_error(admin_url, tmp_path):
    """A run creates databases and a login role: an admin login that may do neither (or only the
    first) is told so before anything is created (exit 3), never a traceback."""
    backend = make_backend(tmp_path / "repo")
    role, password = f"zdtest_nopriv_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        url = with_parts(admin_url, user=role, password=password, dbname="postgres")
        proc = _zerodrift("run", str(backend), "--admin-url", url, "-g", "ZG-1")
        said = proc.stdout + proc.stderr
        assert proc.returncode == 3 and f"the admin role {role}" in said and "lacks CREATEDB and CREATEROLE" in said, said
        assert "Traceback" not in said and password not in said
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {role} CREATEDB")
        proc = _zerodrift("run", str(backend), "--admin-url", url, "-g", "ZG-1")
        said = proc.stdout + proc.stderr
        assert proc.returncode == 3 and "lacks CREATEROLE:" in said and f"ALTER ROLE {role} CREATEROLE" in said, said
        # doctor says the same with the run's own rule, and does not blame alembic.ini for it
        doc = _zerodrift("doctor", str(backend), "--admin-url", url)
        assert any(ln.startswith(f"FAIL  privileges: the admin role {role}") and "lacks CREATEROLE" in ln
                   for ln in doc.stdout.splitlines()), doc.stdout
        assert "WARN  alembic job: not run" in doc.stdout and "target.alembic_ini" not in doc.stdout, doc.stdout
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_usage_and_environment_errors(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo")
    proc = _zerodrift("run", str(backend), "-g", "ZG-42")
    assert proc.returncode == 2 and "unknown gate id ZG-42" in proc.stderr
    proc = _zerodrift("run", str(backend), "-g", "ZG-99")
    assert proc.returncode == 2 and "unknown gate id ZG-99; did you mean ZG-9?" in " ".join(proc.stderr.split())
    proc = _zerodrift("run", str(tmp_path))
    assert proc.returncode == 2 and "run `zerodrift init" in proc.stderr
    (tmp_path / "configured").mkdir()
    (tmp_path / "configured" / "zerodrift.toml").write_text("[target]\n")
    proc = _zerodrift("run", str(tmp_path / "configured"))
    assert proc.returncode == 2 and "no alembic.ini" in proc.stderr
    proc = _zerodrift("run", str(backend), "--python", "/nonexistent/python3")
    assert proc.returncode == 3 and "/nonexistent/python3" in proc.stderr
    proc = _zerodrift("run", str(backend), "--admin-url", "postgresql://nobody:pw@127.0.0.1:1/postgres")
    assert proc.returncode == 3 and "cannot connect" in proc.stderr and "pw@" not in proc.stderr
    proc = _zerodrift("run", str(backend), "--admin-url", "mysql://x")
    assert proc.returncode == 2 and "not a PostgreSQL URL" in proc.stderr
    # --keep on the embedded server would keep nothing: refused before anything starts
    proc = _zerodrift("run", str(backend), "--keep", "-g", "ZG-1", env={"ZERODRIFT_ADMIN_URL": ""})
    assert proc.returncode == 2 and "--keep keeps throwaway databases on an external server" in proc.stderr
    assert "--admin-url" in proc.stderr
    # a bad flag is named as the flag, not as the config file's key
    proc = _zerodrift("run", str(backend), "--pg-version", "0")
    assert proc.returncode == 2 and "--pg-version" in proc.stderr and "zerodrift.toml" not in proc.stderr
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


def test_gc_drops_only_marked_databases_of_dead_runs(private_admin_url, tmp_path):
    from zerodrift.server.provision import Provisioner

    admin_url = private_admin_url  # every run's start-up sweep drops dead runs' databases: no other run may be there

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


def _postmasters() -> dict[int, str]:
    """Running embedded postmasters: pid -> data dir (zombies count as gone)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and cmd and cmd[0].endswith(b"postgres") and b"-D" in cmd:
            data = cmd[cmd.index(b"-D") + 1].decode()
            if "zerodrift-embedded-" in data:
                found[int(entry.name)] = data
    return found


def _children(pid: int) -> set[int]:
    kids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.add(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass
    return kids


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                alive.add(pid)
        except OSError:
            pass
    return alive


def _slow_backend(tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    add_revision(backend, "0013_slow", "0012_comments", "op.execute('SELECT pg_sleep(60)')")
    commit_all(backend.parent, "slow migration")
    return backend


def _start_and_wait_for_migration(args):
    proc = subprocess.Popen([sys.executable, "-m", "zerodrift.cli", *args], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "ZG-1 Fresh migration determinism: running" in line:
            break
    time.sleep(1.5)  # inside the slow migration by now
    return proc


def test_sigkill_mid_migration_embedded_leaves_no_server(tmp_path):
    backend = _slow_backend(tmp_path)
    before = set(_postmasters())
    proc = _start_and_wait_for_migration(["run", str(backend), "--out", str(tmp_path / "proof"), "-g", "ZG-1"])
    ours = set(_postmasters()) - before
    assert ours, "the run's embedded server was not seen"
    proc.kill()
    proc.wait(10)
    deadline = time.time() + 10
    while time.time() < deadline and ours & set(_postmasters()):
        time.sleep(0.1)
    assert not ours & set(_postmasters()), "embedded server outlived a SIGKILLed zerodrift"
    # its folder is swept by the next start (or gc)
    proc = _zerodrift("gc")
    assert proc.returncode == 0
    assert not [d for d in _postmasters().values() if d.startswith(str(tmp_path))]


def test_sigkill_mid_migration_external_then_gc_drops_databases(private_admin_url, tmp_path):
    # a server of its own: the killed run leaves its roles (app_user with a password only it knew),
    # which a later run on a server that asks for passwords refuses to use (exit 3)
    admin_url = private_admin_url
    backend = _slow_backend(tmp_path)
    proc = _start_and_wait_for_migration(["run", str(backend), "--admin-url", admin_url,
                                          "--out", str(tmp_path / "proof"), "-g", "ZG-1"])
    time.sleep(0.5)
    left = [lo for lo in find_leftovers(admin_url) if lo.pid == proc.pid]
    children = _children(proc.pid)
    proc.kill()
    proc.wait(10)
    assert left, "the run had created its databases"
    assert children, "the alembic jobs were not seen"
    # the alembic jobs die with zerodrift (parent-death signal)
    deadline = time.time() + 10
    while time.time() < deadline and _alive(children):
        time.sleep(0.1)
    assert not _alive(children), "alembic jobs outlived a SIGKILLed zerodrift"
    swept = [lo for lo in find_leftovers(admin_url) if lo.pid == proc.pid]
    assert swept and all(lo.reason for lo in swept)
    assert _zerodrift("gc", "--admin-url", admin_url).returncode == 0
    assert [lo for lo in find_leftovers(admin_url) if lo.pid == proc.pid] == []


def test_probe_that_hangs_is_bounded(admin_url, tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    (backend / "app" / "slow_registry.py").write_text("import time\ntime.sleep(600)\nVIEWS = []\n")
    edit(backend / "zerodrift.toml", 'registry = "app.matview_registry:MATERIALIZED_VIEWS"', 'registry = "app.slow_registry:VIEWS"')
    # long enough for ZG-1's own alembic jobs on a loaded machine, far below the probe's 600 s sleep
    edit(backend / "zerodrift.toml", "[target]\n", "[target]\njob_timeout = 12\n")
    commit_all(backend.parent, "hang")
    from zerodrift.runner import RunOptions, run

    started = time.time()
    report = run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-3"]))
    zg3 = next(r for r in report.results if r.gate_id == "ZG-3")
    assert zg3.status.value == "ERROR" and "killed after 12 s" in zg3.error
    assert time.time() - started < 90


def test_interpreter_without_alembic_is_an_environment_error(tmp_path):
    backend = make_backend(tmp_path / "repo")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    proc = _zerodrift("run", str(backend), "--python", str(tmp_path / "bare" / "bin" / "python"))
    assert proc.returncode == 3 and "cannot import alembic" in proc.stderr


def test_shallow_clone_scope_check_says_how_to_fetch(tmp_path):
    backend = make_backend(tmp_path / "origin")
    (backend / "app" / "x.py").write_text("X = 1\n")
    commit_all(backend.parent, "second")
    (backend / "app" / "y.py").write_text("Y = 1\n")
    commit_all(backend.parent, "third")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{backend.parent}", str(clone)], check=True)
    toml = clone / "backend" / "zerodrift.toml"
    edit(toml, "[gates.ZG-0]\n", '[gates.ZG-0]\nbase_ref = "HEAD~2"\nallowed_paths = ["backend/**"]\n')
    subprocess.run(["git", "-C", str(clone), "commit", "-qam", "scope", "--author", "t <t@t.invalid>"], check=True,
                   env={**os.environ, "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t.invalid"})
    proc = _zerodrift("run", str(clone / "backend"), "-g", "ZG-0", "--format", "json")
    assert proc.returncode == 3, proc.stderr
    import json

    gate = json.loads(proc.stdout)["gates"][0]
    assert gate["status"] == "ERROR" and "git fetch --unshallow" in gate["error"] and "fetch-depth: 0" in gate["error"]


def test_wrong_password_is_an_environment_error():
    from zerodrift.server.embedded import EmbeddedServer

    with EmbeddedServer(tcp=True) as server:
        wrong = with_parts(server.admin_url, password="Not-The-Password-123")
        proc = _zerodrift("run", str(Path(__file__).parent.parent / "examples" / "attribution_backend"),
                          "--admin-url", wrong, "-g", "ZG-1")
    assert proc.returncode == 3, proc.stderr
    assert "password authentication failed" in proc.stderr and "Not-The-Password-123" not in proc.stderr


def test_roles_created_on_a_shared_server_are_dropped_unless_another_run_is_active(private_admin_url, tmp_path):
    from zerodrift.server.provision import PRESENCE_LOCK_KEY
    from zerodrift.runner import RunOptions, run

    admin_url = private_admin_url

    role = f"zdtest_role_{uuid.uuid4().hex[:8]}"
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "zerodrift.toml", 'ensure = ["app_user", "app_rw", "app_ro"]', f'ensure = ["app_user", "app_rw", "app_ro", "{role}"]')
    # no run logs in as roles.runtime: a kept app_user has no password the next run could hand out
    # (test_a_runtime_role_that_existed_before_the_run_and_needs_a_password_…)
    edit(backend / "zerodrift.toml", 'runtime = "app_user"', 'runtime = ""')
    commit_all(backend.parent, "extra role")

    def exists() -> bool:
        with psycopg.connect(admin_url) as conn:
            return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None

    with psycopg.connect(admin_url, autocommit=True) as other_run:  # another run is active
        other_run.execute("SELECT pg_advisory_lock_shared(%s)", (PRESENCE_LOCK_KEY,))
        report = run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-0"]))
        assert report.roles_created == [] and not report.server.kind  # no server, so no role work at all
    # ZG-0 needs no server: no role work at all; use a server gate
    with psycopg.connect(admin_url, autocommit=True) as other_run:
        other_run.execute("SELECT pg_advisory_lock_shared(%s)", (PRESENCE_LOCK_KEY,))
        report = run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-1"]))
        assert role in report.roles_created and "another zerodrift run" in report.roles_note
        assert exists()
    report = run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-1"]))
    assert role not in report.roles_created  # it existed: never ours to drop
    assert exists()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE {role}")
    report = run(RunOptions(target=backend, admin_url=admin_url, gates=["ZG-1"]))
    assert role in report.roles_created and role in report.roles_dropped, report.roles_note
    assert not exists()
