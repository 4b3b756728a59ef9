"""One way to run the target's code: a child process in the target's interpreter.

Every piece of the target's code zerodrift runs — alembic jobs, the probes under
``zerodrift/probes``, ZG-6's held workers, ZG-5's ``celery beat``, the import checks of
``doctor`` and ``init`` — runs in a :class:`TargetProcess`:

* the environment it is given is already the allowlisted one
  (:func:`zerodrift.childenv.base_environment` plus what the caller sets; evidence shows
  variable names only, see docs/architecture.md, "Running the target's code");
* it dies with zerodrift (Linux ``PR_SET_PDEATHSIG``, :mod:`zerodrift.procs`);
* its stdout and stderr are read by one thread into :attr:`TargetProcess.output`, except
  the JSON answers of the line protocol below;
* every wait has a timeout, after which the process is killed.

The line protocol the probes speak: zerodrift writes one JSON request per line on the
child's stdin; the child writes one line ``ZERODRIFT-RESULT {json}`` per request, in order,
and exits when its stdin closes. A process that is not a probe (``celery beat``) simply
never answers; an ``on_line`` callback sees each line of its output as it comes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerodrift.errors import EnvironmentProblem
from zerodrift.procs import parent_death_preexec

PROBES_DIR = Path(__file__).parent / "probes"
#: prefix of an answer line of the line protocol (every probe writes it)
RESULT_PREFIX = "ZERODRIFT-RESULT "


@dataclass
class Reply:
    """What one request got: the JSON ``payload`` (None when the process died or timed out
    first), and when it did not answer, its ``output``, ``exit_status`` and whether zerodrift
    killed it after the timeout (``timed_out``)."""

    payload: dict[str, Any] | None
    output: str = ""
    exit_status: int | None = None  #: None while the process still runs (it answered)
    timed_out: bool = False


@dataclass
class Completed:
    """A one-shot process that ran to its end (:meth:`TargetProcess.run`): its exit status
    (None when killed after the timeout), its output (stdout and stderr, interleaved) and
    the seconds it ran."""

    exit_status: int | None
    output: str
    duration_s: float
    timed_out: bool = False

    def marked(self, prefix: str) -> str | None:
        """The last output line starting with ``prefix``, without it; None when there is none."""
        return next((ln[len(prefix):] for ln in reversed(self.output.splitlines()) if ln.startswith(prefix)), None)

    def tail(self, lines: int = 1) -> str:
        """The last ``lines`` non-blank output lines, or the exit status when it printed nothing."""
        shown = [ln for ln in self.output.strip().splitlines() if ln.strip()][-lines:]
        return "\n".join(shown) if shown else f"exit status {self.exit_status}"


class TargetProcess:
    """A child process running the target's code (see the module docstring).

    ``argv[0]`` is the target's interpreter; ``env`` the whole environment (built by the
    caller from the allowlist); ``cwd`` its working folder. ``on_line`` is called, from the
    reader thread, with every output line that is not an answer. The first ``request``,
    when given, is sent at once. Raises EnvironmentProblem when the interpreter cannot be
    started (missing, not executable).
    """

    def __init__(self, argv: Sequence[str], *, env: dict[str, str], cwd: Path | str,
                 request: dict[str, Any] | None = None, on_line: Callable[[str], None] | None = None) -> None:
        self.argv = [str(a) for a in argv]
        self.started = time.perf_counter()
        try:
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env,
                                          preexec_fn=parent_death_preexec())
        except OSError as exc:
            raise EnvironmentProblem(f"cannot start the target interpreter {self.argv[0]}: {exc}") from exc
        self.lines: list[str] = []
        #: called with each output line that is not an answer (may be set after the start)
        self.on_line = on_line
        self._answers: list[dict[str, Any]] = []
        self._sent = 0
        self._cond = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"output of {Path(self.argv[0]).name}")
        self._reader.start()
        if request is not None:
            self.send(request)

    @classmethod
    def probe(cls, python: str, probe: str, *, env: dict[str, str], cwd: Path | str,
              request: dict[str, Any] | None = None) -> "TargetProcess":
        """Start ``zerodrift/probes/<probe>`` in ``python``, optionally with its first request."""
        return cls([python, str(PROBES_DIR / probe)], env=env, cwd=cwd, request=request)

    @classmethod
    def run(cls, argv: Sequence[str], *, env: dict[str, str], cwd: Path | str, timeout: float) -> Completed:
        """Run ``argv`` to its end with no input; killed after ``timeout`` seconds. Raises
        EnvironmentProblem when it cannot be started."""
        proc = cls(argv, env=env, cwd=cwd)
        proc.close_stdin()
        ended = proc.wait_output_closed(timeout)
        status = proc.release(0 if not ended else 5)
        return Completed(None if not ended else status, proc.output, time.perf_counter() - proc.started,
                         timed_out=not ended)

    # -- reading ---------------------------------------------------------
    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._cond:
                if line.startswith(RESULT_PREFIX):
                    self._answers.append(json.loads(line[len(RESULT_PREFIX):]))
                else:
                    self.lines.append(line)
                self._cond.notify_all()
            if self.on_line is not None and not line.startswith(RESULT_PREFIX):
                self.on_line(line)
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    @property
    def output(self) -> str:
        """Everything the process printed so far that is not an answer."""
        with self._cond:
            return "".join(self.lines)

    def tail(self, chars: int = 300) -> str:
        """The last ``chars`` characters of :attr:`output`, or ``no output``."""
        return self.output.strip()[-chars:] or "no output"

    def wait_output_closed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the process to close its output (it exits, or
        is exiting); True when it did."""
        with self._cond:
            return self._cond.wait_for(lambda: self._ended, timeout)

    @property
    def output_closed(self) -> bool:
        """True once the process closed its output."""
        with self._cond:
            return self._ended

    # -- the line protocol -------------------------------------------------
    def send(self, request: dict[str, Any]) -> None:
        """Write one request; its answer comes from :meth:`answer`."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        self._sent += 1

    def answer(self, timeout: float) -> dict[str, Any] | None:
        """The answer to the last request, or None when none came within ``timeout`` seconds
        (or the process ended first)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._answers) >= self._sent or self._ended, timeout)
            return self._answers[self._sent - 1] if len(self._answers) >= self._sent else None

    def call(self, request: dict[str, Any] | None, timeout: float) -> Reply:
        """Send ``request`` (None: only wait for the answer to the last one) and wait up to
        ``timeout`` seconds. A process that did not answer is killed if it still runs, and
        reaped: the reply then has its output and exit status."""
        if request is not None:
            self.send(request)
        payload = self.answer(timeout)
        if payload is not None:
            return Reply(payload)
        # its output closed: it ended on its own (it may not be reaped yet); else the wait timed out
        timed_out = not self.output_closed
        if timed_out:
            self.kill()
        return Reply(None, self.output, self.release(), timed_out)

    # -- life --------------------------------------------------------------
    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once reaped, else None."""
        return self._proc.returncode

    def kill(self) -> None:
        """SIGKILL the process (no-op when it already ended)."""
        if self._proc.poll() is None:
            self._proc.kill()

    def close_stdin(self) -> None:
        """Close its stdin: a probe exits when it has no more requests."""
        try:
            if self._proc.stdin and not self._proc.stdin.closed:
                self._proc.stdin.close()
        except OSError:
            pass

    def release(self, timeout: float = 10.0) -> int:
        """Let the process exit (stdin closed); SIGKILL it after ``timeout`` seconds. Returns
        its exit status."""
        self.close_stdin()
        try:
            status = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            status = self._proc.wait()
        self._reader.join(5)
        return status

    def terminate(self, grace: float = 10.0) -> int:
        """Stop it as a service manager would: SIGTERM, then SIGKILL after ``grace`` seconds.
        Returns its exit status."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        return self.release(grace)


class Conversation:
    """Requests answered in turn by one probe process, started with the first request and
    started again after it died or was killed (a context manager: the process is released on
    exit, killed when the block raised).

    ``python``, ``probe``, ``env`` and ``cwd`` are those of :meth:`TargetProcess.probe`.
    """

    def __init__(self, python: str, probe: str, *, env: dict[str, str], cwd: Path | str) -> None:
        self.python, self.probe, self.env, self.cwd = python, probe, env, cwd
        self.process: TargetProcess | None = None

    def __enter__(self) -> "Conversation":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close(failed=exc[0] is not None)

    def call(self, request: dict[str, Any], timeout: float) -> Reply:
        """One request and its :class:`Reply` (see :meth:`TargetProcess.call`). Raises
        EnvironmentProblem when the interpreter cannot be started."""
        if self.process is None or not self.process.alive:
            self.process = TargetProcess.probe(self.python, self.probe, env=self.env, cwd=self.cwd, request=request)
            reply = self.process.call(None, timeout)
        else:
            reply = self.process.call(request, timeout)
        if reply.payload is None:
            self.process = None
        return reply

    def close(self, failed: bool = False) -> None:
        """Release the process (kill it first when ``failed``)."""
        if self.process is not None:
            if failed:
                self.process.kill()
            self.process.release()
            self.process = None


__all__ = ["TargetProcess", "Conversation", "Reply", "Completed", "PROBES_DIR", "RESULT_PREFIX"]
