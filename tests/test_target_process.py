"""The one way zerodrift runs the target's code (zerodrift/target_process.py): real child
processes, no database. Each test makes the child misbehave the way a target's code can
(hang, crash mid-request, ignore its input, outlive zerodrift) and asserts what zerodrift
sees and that nothing is left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from zerodrift.childenv import base_environment
from zerodrift.errors import EnvironmentProblem
from zerodrift.procs import pid_alive
from zerodrift.target_process import RESULT_PREFIX, TargetProcess

#: a child speaking the line protocol: answers {"echo": ...}; "crash" exits 3 after printing a
#: traceback-like line; "hang" never answers; prints a noise line before each answer
SPEAKER = textwrap.dedent(f"""
    import json, os, sys, time
    for line in sys.stdin:
        request = json.loads(line)
        print("noise before answer", flush=True)
        if request.get("crash"):
            print("RuntimeError: the target crashed", flush=True)
            sys.exit(3)
        if request.get("hang"):
            time.sleep(600)
        if request.get("env"):
            request["env"] = sorted(os.environ)
        print({RESULT_PREFIX!r} + json.dumps(dict(request, pid=os.getpid())), flush=True)
    print("stdin closed, exiting", flush=True)
""")


def speaker(**kwargs) -> TargetProcess:
    return TargetProcess([sys.executable, "-c", SPEAKER], env=base_environment(), cwd=os.getcwd(), **kwargs)


def test_requests_are_answered_in_turn_and_output_is_kept_apart():
    proc = speaker(request={"echo": 1})
    try:
        first = proc.call(None, 30)
        second = proc.call({"echo": 2}, 30)
        assert first.payload["echo"] == 1 and second.payload["echo"] == 2
        assert first.payload["pid"] == second.payload["pid"] == proc.pid  # one interpreter serves both
        assert first.exit_status is None  # it answered: it still runs, it has no exit status
        assert proc.output.count("noise before answer") == 2 and RESULT_PREFIX not in proc.output
    finally:
        status = proc.release()
    assert status == 0 and "stdin closed, exiting" in proc.output and not pid_alive(proc.pid)


def test_a_child_that_crashes_mid_request_is_reported_with_its_output_and_exit_status():
    proc = speaker(request={"echo": 1})
    assert proc.call(None, 30).payload is not None
    reply = proc.call({"crash": True}, 30)
    assert reply.payload is None and not reply.timed_out
    assert reply.exit_status == 3 and "RuntimeError: the target crashed" in reply.output


def test_a_child_that_never_answers_is_killed_after_the_timeout():
    proc = speaker(request={"hang": True})
    started = time.perf_counter()
    reply = proc.call(None, 1.0)
    assert reply.payload is None and reply.timed_out
    assert reply.exit_status == -signal.SIGKILL
    assert time.perf_counter() - started < 10
    assert not pid_alive(proc.pid)


def test_the_child_sees_only_the_environment_it_is_given(monkeypatch):
    monkeypatch.setenv("ZERODRIFT_SIGNING_KEY_PASSPHRASE", "secret-of-zerodrift")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    proc = speaker(request={"env": True})
    try:
        names = proc.call(None, 30).payload["env"]
    finally:
        proc.release()
    assert "PATH" in names
    assert "ZERODRIFT_SIGNING_KEY_PASSPHRASE" not in names and "GITHUB_TOKEN" not in names


def test_a_missing_interpreter_is_an_environment_problem_naming_it(tmp_path):
    missing = tmp_path / "no-such-python"
    with pytest.raises(EnvironmentProblem, match="no-such-python"):
        TargetProcess([str(missing), "-c", "pass"], env=base_environment(), cwd=tmp_path)


def test_run_returns_the_marked_line_and_kills_what_outlives_its_timeout(tmp_path):
    done = TargetProcess.run([sys.executable, "-c", "print('x'); print('MARK {\"a\": 1}')"],
                             env=base_environment(), cwd=tmp_path, timeout=30)
    assert done.exit_status == 0 and done.marked("MARK ") == '{"a": 1}' and not done.timed_out
    hung = TargetProcess.run([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(600)"],
                             env=base_environment(), cwd=tmp_path, timeout=1.0)
    assert hung.timed_out and hung.exit_status is None and hung.marked("MARK ") is None
    assert hung.tail() == "started"


def test_a_service_sees_each_line_and_stops_on_sigterm(tmp_path):
    service = textwrap.dedent("""
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *a: (print("got SIGTERM", flush=True), sys.exit(0)))
        for i in range(3):
            print(f"tick {i}", flush=True)
        time.sleep(600)
    """)
    seen: list[str] = []
    proc = TargetProcess([sys.executable, "-c", service], env=base_environment(), cwd=tmp_path,
                         on_line=seen.append)
    deadline = time.perf_counter() + 30
    while len(seen) < 3 and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert seen == ["tick 0\n", "tick 1\n", "tick 2\n"] and not proc.output_closed
    assert proc.terminate(10) == 0
    assert "got SIGTERM" in proc.output and not pid_alive(proc.pid)


def test_a_child_dies_with_zerodrift(tmp_path):
    """zerodrift SIGKILLed mid-run leaves no target process behind (PR_SET_PDEATHSIG)."""
    parent = textwrap.dedent(f"""
        import sys
        from zerodrift.childenv import base_environment
        from zerodrift.target_process import TargetProcess
        child = TargetProcess([sys.executable, "-c", "import time; time.sleep(600)"],
                              env=base_environment(), cwd={str(tmp_path)!r})
        print(child.pid, flush=True)
        import time; time.sleep(600)
    """)
    outer = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    child_pid = int(outer.stdout.readline())
    assert pid_alive(child_pid)
    outer.kill()
    outer.wait(10)
    deadline = time.perf_counter() + 10
    while pid_alive(child_pid) and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child_pid)
