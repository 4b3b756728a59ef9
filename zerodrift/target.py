"""Runs the target's own code in the target's interpreter, as subprocesses.

Alembic runs through its Python API in one process per *job* (a list of
operations, e.g. upgrade + current), because every interpreter start costs about
half a second; small probes that zerodrift ships (``zerodrift/probes/*.py``) run
the same way and answer in JSON. Each subprocess gets an allowlisted environment
(:func:`zerodrift.childenv.base_environment`: never zerodrift's secrets, CI tokens or
anything ``target.pass_env`` does not list), the URL variables the target reads pointed
at the right throwaway database and role with a password generated for this run (never
the admin's), plus ``PYTHONPATH`` entries from config. Evidence shows variable *names*
only and URLs with the password masked (docs/architecture.md, "Running the target's code").
Every such process is a :class:`zerodrift.target_process.TargetProcess`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zerodrift.childenv import base_environment
from zerodrift.clock import ClockShift
from zerodrift.config import LoadedConfig
from zerodrift.errors import EnvironmentProblem, UsageError
from zerodrift.gates.base import EvidenceStep
from zerodrift.server.prereq import missing_object_hint
from zerodrift.server.provision import Database
from zerodrift.target_process import Conversation, TargetProcess
from zerodrift.urls import mask, user_of


_RUNNING = re.compile(r"Running (?:upgrade|downgrade) .*?-> ([^,\s]+)")
_OP_COMMAND = {
    "heads": "alembic heads",
    "current": "alembic current",
    "history": "alembic history (base → heads, with each downgrade() read for a bare raise)",
    "clock": "read the job's clock and time zone (time.time(), datetime.now(), tm_gmtoff, TZ)",
}


@dataclass
class JobResult:
    """Outcome of one alembic job: a step per operation, in order."""

    steps: list[EvidenceStep] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    ok: bool = True
    error: str = ""  #: first failing operation's error, or a process-level failure
    failed_revision: str = ""  #: the revision alembic was applying when it failed, when known
    #: the job process itself did not finish (crash, timeout, no answer): not a failure *reported by* an operation
    process_failed: bool = False
    #: what the job's probe answered besides its steps (e.g. ``lock_impact`` from ``lock_probe.py``)
    extra: dict[str, Any] = field(default_factory=dict)


class TargetRunner:
    """Runs alembic jobs and probes for one target.

    Raises UsageError when alembic.ini is missing and EnvironmentProblem when the
    target interpreter does not exist.
    """

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        cfg = loaded.config.target
        self.alembic_ini = loaded.path(cfg.alembic_ini)
        if not self.alembic_ini.is_file():
            where = loaded.source or loaded.target_dir
            raise UsageError(
                f"no alembic.ini at {self.alembic_ini} (target.alembic_ini in {where}): "
                "point zerodrift at the backend's folder, or set target.alembic_ini"
            )
        self.cwd = self.alembic_ini.parent
        python = cfg.python
        if python and ("/" in python or python.startswith(".")) and not Path(python).is_absolute():
            python = str(loaded.path(python))  # a relative path is relative to the config root
        self.python = self._resolve_python(python)
        self.timeout = cfg.job_timeout
        #: role -> password this run generated for it (the runner fills it from the provisioner)
        self.credentials: dict[str, str] = {}
        #: the role a target process connects as when none is asked for (the run's migration role)
        self.default_role: str | None = None
        self._check_imports()

    def _check_imports(self) -> None:
        """Fail early (EnvironmentProblem, exit 3) when the target interpreter lacks alembic."""
        if self.python == sys.executable:
            import importlib.util

            missing = importlib.util.find_spec("alembic") is None
        else:
            done = TargetProcess.run(
                [self.python, "-c", "import importlib.util; print('alembic-found' if "
                 "importlib.util.find_spec('alembic') else 'alembic-missing')"],
                env=base_environment(self.loaded.config.target.pass_env), cwd=self.cwd, timeout=60)
            said = done.output.strip().splitlines()[-1:] if done.output.strip() else []
            if done.timed_out:
                raise EnvironmentProblem(f"the target interpreter {self.python} did not answer within 60 s "
                                         "(target.python / --python / ZERODRIFT_PYTHON)")
            if said not in (["alembic-found"], ["alembic-missing"]):
                raise EnvironmentProblem(f"target interpreter {self.python} does not behave like Python "
                                         "(target.python / --python / ZERODRIFT_PYTHON): give a python executable")
            missing = said == ["alembic-missing"]
        if missing:
            raise EnvironmentProblem(
                f"the target interpreter {self.python} cannot import alembic: install the backend's dependencies "
                "into it (e.g. pip install -r requirements.txt), or point target.python / --python at the one that has them")

    @staticmethod
    def _resolve_python(python: str, where: str = "target.python / --python / ZERODRIFT_PYTHON") -> str:
        if not python:
            return sys.executable
        found = shutil.which(python)
        if not found or not os.access(found, os.X_OK):
            raise EnvironmentProblem(
                f"target interpreter {python!r} not found or not executable ({where}): "
                "give the path of the Python that has the backend's dependencies installed"
            )
        return found

    def rebased(self, old_root: Path, new_root: Path) -> "TargetRunner":
        """A runner for the same target checked out elsewhere (e.g. a git worktree of an
        older release): alembic.ini, the working folder and PYTHONPATH entries under
        ``old_root`` are mapped to ``new_root``. Raises UsageError when that checkout
        has no alembic.ini at the same place."""
        import copy

        clone = copy.copy(self)
        rel = self.alembic_ini.relative_to(old_root)
        clone.alembic_ini = new_root / rel
        if not clone.alembic_ini.is_file():
            raise UsageError(f"{rel} does not exist in the checkout at {new_root}")
        clone.cwd = clone.alembic_ini.parent
        clone._path_map = (old_root, new_root)
        return clone

    def with_interpreter(self, python: str = "", env: dict[str, str] | None = None, *,
                         where: str = "") -> "TargetRunner":
        """A copy of this runner whose subprocesses run ``python`` (path or command name, a
        relative path taken from the config root; empty: this runner's) with ``env`` set over
        ``target.env`` (names shown in evidence, values never). Raises EnvironmentProblem when
        that interpreter does not exist or cannot import alembic; ``where`` names the setting in
        that message."""
        import copy

        clone = copy.copy(self)
        if python:
            if ("/" in python or python.startswith(".")) and not Path(python).is_absolute():
                python = str(self.loaded.path(python))
            clone.python = self._resolve_python(python, where) if where else self._resolve_python(python)
            clone._check_imports()
        clone._extra_env = {**self._extra_env, **(env or {})}
        return clone

    _path_map: tuple[Path, Path] | None = None
    _extra_env: dict[str, str] = {}  #: set over target.env (with_interpreter)

    def _map(self, path: Path) -> Path:
        if self._path_map is None:
            return path
        old, new = self._path_map
        try:
            return new / path.relative_to(old)
        except ValueError:
            return path

    # -- environment -----------------------------------------------------
    def environment(self, db: Database | None, *, role: str | None = None, runtime: bool = False,
                    password: str | None = "") -> tuple[dict[str, str], list[str]]:
        """The subprocess environment and the names zerodrift set in it.

        Built from an allowlist, never from zerodrift's whole environment
        (:func:`zerodrift.childenv.base_environment`: PATH, HOME, locale, … plus
        ``target.pass_env``), then ``PYTHONPATH``, ``target.env`` and, with ``db``, every
        variable of ``target.migration_url_env`` (or ``runtime_url_env`` when ``runtime``)
        holding the database's URL for ``role`` (default: :attr:`default_role`, the run's
        migration role). The URL's password is the one zerodrift generated for that role
        (:attr:`credentials`), ``password`` when given, else none — never the admin's.
        """
        cfg = self.loaded.config.target
        env = base_environment(cfg.pass_env)
        names: list[str] = []
        # configured entries first, then the backend's folder (alembic.ini's), importable as
        # when one runs python there (probes run as scripts, so it is not on sys.path)
        paths = [str(self._map(self.loaded.path(p))) for p in cfg.pythonpath]
        if str(self.cwd) not in paths:
            paths.append(str(self.cwd))
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
            names.append("PYTHONPATH")
        for key, value in {**cfg.env, **self._extra_env}.items():
            env[key] = value
            if key not in names:
                names.append(key)
        if db is not None:
            url = self.url_for(db, role=role, password=password, scheme=cfg.url_scheme)
            for var in (cfg.runtime_url_env if runtime else cfg.migration_url_env):
                env[var] = url
                names.append(var)
        env["PYTHONUNBUFFERED"] = "1"
        return env, names

    def url_for(self, db: Database, *, role: str | None = None, password: str | None = "",
                scheme: str | None = None) -> str:
        """URL of ``db`` for a target process: as ``role`` (default :attr:`default_role`;
        with neither, the admin's user name), with the role's generated password from
        :attr:`credentials` (or ``password`` when given). The admin's password is never in it."""
        user = role or self.default_role or user_of(db.admin_url)
        secret = password if password else self.credentials.get(user)
        # password=None drops whatever password the admin URL carried (with_parts keeps it
        # only for the admin's own user and password="")
        return db.url(user=user, password=secret or None, scheme=scheme)

    # -- alembic ---------------------------------------------------------
    def alembic_job(self, db: Database, ops: list[dict[str, Any]], *, role: str | None = None,
                    extra_env: dict[str, str] | None = None, clock: ClockShift | None = None) -> JobResult:
        """Run alembic operations (``{"op": "upgrade", "revision": "head"}``, ``heads``,
        ``current``, ``downgrade``, ``clock``) against ``db`` as ``role`` in one process.
        ``extra_env`` is added to the environment (and its names to the evidence);
        ``clock`` shifts the process's wall clock and time zone (see :mod:`zerodrift.clock`)."""
        with self.alembic_session(db, role=role, extra_env=extra_env, clock=clock) as session:
            return session.job(ops)

    def alembic_session(self, db: Database, *, role: str | None = None,
                        extra_env: dict[str, str] | None = None,
                        clock: ClockShift | None = None, probe: str = "alembic_job.py") -> "AlembicSession":
        """A context manager: one alembic process for several jobs on ``db`` (each job's
        steps are evidence), e.g. upgrade, then zerodrift seeds, then upgrade again.
        ``probe`` is the script under ``zerodrift/probes`` that runs the jobs: ``alembic_job.py``,
        or one that speaks its protocol and answers more (``lock_probe.py``)."""
        env, names = self.environment(db, role=role)
        added = dict(extra_env or {})
        if clock is not None:
            added.update(clock.environment(env))
        if added:
            env.update(added)
            # values are shown: they are zerodrift's own settings (zone, offset, library path), never secrets
            names = names + [f"{k}={v}" for k, v in added.items()]
        return AlembicSession(self, db, role or self.default_role or user_of(db.admin_url), env, names, probe)

    def _describe(self, ops: list[dict[str, Any]]) -> str:
        return " && ".join(_OP_COMMAND.get(o["op"], f"alembic {o['op']} {o.get('revision', '')}".strip()) for o in ops)

    # -- probes ----------------------------------------------------------
    def start_held_probe(self, probe: str, request: dict[str, Any], *, db: Database | None = None,
                         role: str | None = None, runtime: bool = True,
                         extra_env: dict[str, str] | None = None) -> tuple[TargetProcess, list[str]]:
        """Start ``probes/<probe>`` with a first request; it answers, then waits for more until released.
        ``extra_env`` is set last (over ``target.env``), its values shown in the names (zerodrift's
        own settings such as ``PYTHONHASHSEED``, never secrets). Returns (probe, env names).
        Raises EnvironmentProblem when the target interpreter cannot be started."""
        env, names = self.environment(db, role=role, runtime=runtime)
        if extra_env:
            env.update(extra_env)
            names = names + [f"{k}={v}" for k, v in extra_env.items()]
        return TargetProcess.probe(self.python, probe, env=env, cwd=self.cwd, request=request), names

    def probe(self, probe: str, request: dict[str, Any], *, db: Database | None = None, role: str | None = None,
              runtime: bool = True, title: str = "") -> tuple[EvidenceStep, dict[str, Any] | None]:
        """Run ``probes/<probe>`` once in the target interpreter; returns (evidence step, JSON answer or None).

        With ``db`` the runtime URL variables (``runtime=True``) or the migration ones
        point at it as ``role``. The answer is None when the probe did not finish
        (crash, timeout); the step's output then says why.
        """
        with self.probe_session(probe, db=db, role=role, runtime=runtime) as session:
            return session.ask(request, title=title)

    def probe_session(self, probe: str, *, db: Database | None = None, role: str | None = None,
                      runtime: bool = True) -> "ProbeSession":
        """A context manager: one ``probes/<probe>`` process answering several requests."""
        env, names = self.environment(db, role=role, runtime=runtime)
        return ProbeSession(self, probe, env, names, db, role)


class ProbeSession:
    """One probe process answering requests in turn (see :meth:`TargetRunner.probe_session`)."""

    def __init__(self, runner: "TargetRunner", probe: str, env: dict[str, str], names: list[str],
                 db: Database | None, role: str | None) -> None:
        self.runner, self.probe_name, self.env, self.names, self.db, self.role = runner, probe, env, names, db, role
        self.conversation = Conversation(runner.python, probe, env=env, cwd=runner.cwd)

    def __enter__(self) -> "ProbeSession":
        return self

    def __exit__(self, *exc) -> None:
        self.conversation.close(failed=exc[0] is not None)

    def ask(self, request: dict[str, Any], *, title: str = "",
            timeout: float | None = None) -> tuple[EvidenceStep, dict[str, Any] | None]:
        """Send one request; returns (evidence step, answer or None when the probe died or timed out).
        Raises EnvironmentProblem when the target interpreter cannot be started."""
        timeout = self.runner.timeout if timeout is None else timeout
        started = time.perf_counter()
        reply = self.conversation.call(request, timeout)
        payload = reply.payload
        shown = {k: (mask(v) if isinstance(v, str) and "://" in v else v) for k, v in request.items() if k != "cwd"}
        if payload is not None:
            output = (json.dumps({k: v for k, v in payload.items() if k != "traceback"}, indent=1, sort_keys=True)
                      + ("\n" + payload["traceback"] if payload.get("traceback") else ""))
        else:
            output = reply.output + (f"\nkilled after {timeout:.0f} s (target.job_timeout)" if reply.timed_out
                                     else f"\n(exit status {reply.exit_status})")
        step = EvidenceStep(
            title=title or f"probe {self.probe_name}",
            command=f"python {self.probe_name} {json.dumps(shown, sort_keys=True)}",
            role=self.role or ((self.runner.default_role or user_of(self.db.admin_url)) if self.db else ""),
            database=self.db.name if self.db else "", duration_s=time.perf_counter() - started,
            # a probe that answered still runs: it has no exit status yet
            exit_status=reply.exit_status, output=output, env=self.names)
        return step, payload


class AlembicSession:
    """One alembic process serving several jobs (see :meth:`TargetRunner.alembic_session`)."""

    def __init__(self, runner: "TargetRunner", db: Database, role: str, env: dict[str, str], names: list[str],
                 script: str = "alembic_job.py") -> None:
        self.runner, self.db, self.role, self.env, self.names = runner, db, role, env, names
        self.conversation = Conversation(runner.python, script, env=env, cwd=runner.cwd)

    def __enter__(self) -> "AlembicSession":
        return self

    def __exit__(self, *exc) -> None:
        self.conversation.close(failed=exc[0] is not None)

    def job(self, ops: list[dict[str, Any]], **options: Any) -> JobResult:
        """Run ``ops`` in the session's process; a failed or timed-out process is reported, not raised.
        ``options`` are added to the request (e.g. ``observe=True`` for ``lock_probe.py``); what the
        probe answers besides the steps is in :attr:`JobResult.extra`. Raises UsageError when the
        script directory has no revisions, EnvironmentProblem when the interpreter cannot start
        or cannot import alembic."""
        runner = self.runner
        tcfg = runner.loaded.config.target
        request = {"alembic_ini": str(runner.alembic_ini), "cwd": str(runner.cwd), "steps": ops,
                   "flask_app": tcfg.flask_app, "alembic_runner": tcfg.alembic_runner, **options}
        started = time.perf_counter()
        reply = self.conversation.call(request, runner.timeout)
        payload = reply.payload
        elapsed = time.perf_counter() - started
        result = JobResult()
        if payload is None:
            raw = reply.output
            if "No module named 'alembic'" in raw:
                raise EnvironmentProblem(
                    f"the target interpreter {runner.python} cannot import alembic: install the backend's "
                    "dependencies into it, or set target.python to the interpreter that has them")
            result.ok = False
            result.process_failed = True
            tail = raw.strip().splitlines()[-1] if raw.strip() else "no output"
            result.error = (f"alembic job killed after {runner.timeout:.0f} s (target.job_timeout)" if reply.timed_out
                            else f"alembic job did not finish: {tail}")
            result.steps.append(EvidenceStep(
                title="alembic job", command=runner._describe(ops), role=self.role, database=self.db.name,
                duration_s=elapsed, exit_status=reply.exit_status, output=raw, env=self.names))
            return result
        result.extra = {k: v for k, v in payload.items() if k not in ("steps", "alembic_version")}
        if payload.get("no_revisions"):  # a configuration error, not a finding about the target (exit 2)
            from zerodrift.scriptdir import no_revisions_error

            raise no_revisions_error(payload["no_revisions"], runner.loaded, runner.alembic_ini)
        for op, step in zip(ops, payload["steps"]):
            command = _OP_COMMAND.get(op["op"], f"alembic {op['op']} {op.get('revision', '')}".strip())
            output = step["output"]
            if step.get("error") and step["error"] not in output:
                output += ("\n" if output else "") + step["error"]
            # one operation of a process that serves several: it has no exit status of its own
            result.steps.append(EvidenceStep(
                title=command + (" — FAILED" if not step["ok"] and not step.get("skipped") else
                                 " — not run" if step.get("skipped") else ""),
                command=command, role=self.role, database=self.db.name,
                duration_s=step["duration_s"], output=output, env=self.names))
            result.values.append(step.get("value"))
            if not step["ok"] and result.ok:
                result.ok = False
                running = _RUNNING.findall(step["output"])
                result.failed_revision = running[-1] if running else ""
                where = f" in revision {result.failed_revision}" if result.failed_revision else ""
                result.error = f"{command} failed{where}: {step['error']}"
                hint = missing_object_hint(step["error"])
                if hint:
                    result.error += f"\n{hint}"
        return result



__all__ = ["TargetRunner", "JobResult", "AlembicSession", "ProbeSession"]
