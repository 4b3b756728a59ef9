"""ZG-6 serialization by advisory lock, across separately started processes."""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from pydantic import Field, model_validator

from zerodrift.config import LoadedConfig
from zerodrift.context import GateContext
from zerodrift.errors import EnvironmentProblem
from zerodrift.gates.base import EvidenceStep, Gate, GateConfig, GateResult
from zerodrift.hookspecs import hookimpl
from zerodrift.onboard.hooks import FAIL, FUNCTION_KINDS, InitContext, TargetImport
from zerodrift.target_process import TargetProcess

ADVISORY_SQL = """
SELECT pid, classid::bigint, objid::bigint, objsubid, mode, granted FROM pg_locks
 WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND pid <> ALL(%s) ORDER BY pid
"""
WAITING_SQL = """
SELECT pid FROM pg_locks WHERE locktype = 'relation' AND relation = %s::regclass AND NOT granted AND pid <> ALL(%s)
"""


class SerializationConfig(GateConfig):
    callable: str = Field("", description="module:callable of the app's refresh path (plain or async def).")
    args: list[Any] = Field(default_factory=list, description="Positional arguments of the call.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the call.")
    skipped: Any = Field("skipped", description="The return value that means 'skipped, another run holds the lock'.")
    success: Any = Field("success", description="The return value that means 'refreshed'.")
    result_path: str = Field("", description="How to read the outcome from a structured result: dot-separated attributes or keys (digits index a sequence), e.g. 'status' or 'status.value'; an enum member reads as its name. Empty: the returned value itself.")
    result_regex: str = Field("", description="Alternative to result_path: a regular expression searched in str() of the result; its first group (else the whole match) is the outcome.")
    lock_key: list[int] = Field(default_factory=list, description="Fallback: the advisory lock key ([bigint] or [int4, int4]) when it cannot be found.")
    freeze_relation: str = Field("", description="Relation the path refreshes, locked to hold the path mid-way while its lock is read; default: the first argument.")
    prompt_s: float = Field(5.0, gt=0, description="Seconds within which the path must return 'skipped' while the lock is held.")
    timeout: float = Field(60.0, gt=0, description="Seconds one process start, or one call not held to prompt_s, may take.")


    @model_validator(mode="after")
    def _one_reader(self):
        if self.result_path and self.result_regex:
            raise ValueError("give result_path or result_regex, not both")
        if self.result_regex:
            try:
                re.compile(self.result_regex)
            except re.error as exc:
                raise ValueError(f"result_regex {self.result_regex!r} is not a regular expression: {exc}") from exc
        if self.result_path and any(not part for part in self.result_path.split(".")):
            raise ValueError(f"result_path {self.result_path!r} has an empty step: write steps like status.value")
        return self

    def read(self) -> dict | None:
        """The call probe's ``read`` request (None: compare the returned value itself)."""
        if self.result_path:
            return {"path": self.result_path}
        if self.result_regex:
            return {"regex": self.result_regex}
        return None

    def shown(self, answer: dict) -> str:
        """The outcome as evidence: the raw result and, with a reader, what was read from it."""
        if self.read() is None:
            return repr(answer.get("value"))
        how = f"result_path {self.result_path}" if self.result_path else f"result_regex {self.result_regex!r}"
        return f"{answer.get('raw')} (read by {how}: {answer.get('value')!r})"


def key_from_lock(classid: int, objid: int, objsubid: int) -> list[int]:
    """Advisory lock key from pg_locks fields (PostgreSQL docs, "pg_locks": a bigint key
    has its high half in classid and low half in objid with objsubid 1; two int4 keys
    have objsubid 2)."""
    if objsubid == 2:
        return [_int4(classid), _int4(objid)]
    value = (classid << 32) | objid
    return [value - (1 << 64) if value >= (1 << 63) else value]


def _int4(v: int) -> int:
    return v - (1 << 32) if v >= (1 << 31) else v


def lock_sql(key: list[int], fn: str) -> str:
    return f"SELECT {fn}({', '.join(str(k) + ('::bigint' if len(key) == 1 else '::int') for k in key)})"


#: The processes of the proof, each started with its own ``PYTHONHASHSEED`` so that
#: ``hash()`` of a str differs between them (Python docs, "PYTHONHASHSEED"), as it does
#: between separately started workers: label -> (seed, part it plays).
PROCESSES: dict[str, tuple[int, str]] = {
    "A": (1, "discovery: runs the path, held mid-way, to find the lock it takes"),
    "B": (2, "holder: runs the path, held mid-way with the lock it takes"),
    "C": (3, "calls the path while B holds its lock"),
    "D": (4, "calls the path while B holds its lock, then again once it is free (the positive control)"),
}
#: Started for the positive control only when neither D nor C is left to make that call
#: (both were killed, stuck in their call while the lock was held).
SPARE: tuple[str, int, str] = ("E", 5, "positive control: calls the path with no lock held")
#: Who makes the positive control's call, first that is still running: D, C (a worker that
#: skipped while another held the lock must refresh once the lock is free; its interpreter
#: and its pooled sessions are already there).
CONTROL_ORDER = ("D", "C")


class _CallableMissing(Exception):
    """The configured callable does not exist (module not found, attribute missing)."""


class _ReadFailed(Exception):
    """result_path / result_regex does not apply to what the path returned."""


@dataclass
class _Process:
    """One probe process of the proof and what it did."""

    label: str
    seed: int
    part: str
    probe: TargetProcess
    hash_probe: Any = None
    outcome: str = "not called"
    ended: bool = False

    @property
    def name(self) -> str:
        return f"process {self.label} (pid {self.probe.pid}, PYTHONHASHSEED={self.seed})"


class SerializationGate(Gate):
    """ZG-6: separate worker processes exclude each other through one advisory lock, skip while
    it is held, and leak nothing.

    Runs the app's own refresh callable (plain or ``async def``) in the target's interpreter
    as the runtime role, in four processes started with different ``PYTHONHASHSEED`` (1-4),
    one per part, as separately started workers are — so a key derived from ``hash()``, the
    process id or a random value differs between them:

    - **A** finds the lock the path takes, without being told the key: a monitor session
      holds the refreshed relation in ACCESS EXCLUSIVE mode, so the path stops right after
      taking its lock, and ``pg_locks`` (seen from another session) shows the key.
    - **B** runs the path the same way and stops holding its own lock; B's key must equal
      A's (else FAIL "lock key differs between processes", naming both keys).
    - **C** and **D**, while B holds that lock, must each return the "skipped" value within
      ``prompt_s``, taking no advisory lock of their own and sending no REFRESH.
    - Once B let go, with no lock held, **D** (C when D was not called) calls the path again and
      must return "success" (the positive control); only when both were killed (stuck while
      the lock was held) does a fifth process **E** (``PYTHONHASHSEED=5``) make that call.

    After each call the calling process's still-open sessions must hold no advisory lock
    (a leaked session lock is the classic fault of unlocking on another pooled connection).
    PASS therefore proves: the key is the same in two independently started interpreters,
    a holder in one process makes calls in two others skip promptly, the path succeeds when
    nothing holds the lock, and no call leaves a lock behind. With ``lock_key`` as fallback
    (no relation to hold the path at, or no lock seen) a zerodrift session holds that key,
    and the key's sameness across processes is SKIPPED, not claimed.

    The outcome compared with ``skipped`` / ``success`` is the returned value itself, or
    what ``result_path`` (attributes or keys, e.g. ``status`` of a ``RefreshResult``
    dataclass; an enum member reads as its name) or ``result_regex`` (over ``str()``)
    reads from it in the target's interpreter; the evidence shows the raw result beside
    what was read. A reader that does not apply to the result is an ERROR naming the step.
    A path that raises is a FAIL naming the exception; a ``callable`` that does not exist
    (its module is not found, an attribute is missing) is an ERROR. Without ``callable``
    the gate is SKIPPED. Every process is ended when the gate ends (and dies with zerodrift).
    """

    id = "ZG-6"
    title = "Serialization by advisory lock"
    config_model = SerializationConfig
    inputs = ("db.fresh",)
    needs = ("server", "target")

    @classmethod
    def skip_reason(cls, cfg: SerializationConfig, loaded: LoadedConfig) -> str:
        """SKIPPED without ``callable``."""
        if cfg is not None and cfg.callable:
            return ""
        return f"callable is not configured in [gates.{cls.id}] (e.g. callable = \"app.refresh:refresh_view\")"

    @classmethod
    def target_imports(cls, cfg: SerializationConfig) -> list[TargetImport]:
        """The refresh callable: a function (or a functools.partial)."""
        if cfg is None or not cfg.callable:
            return []

        def judge(kind: str, value):
            if kind not in FUNCTION_KINDS + ("partial",):
                return FAIL, f"{cfg.callable} is a {kind}, not a function"
            return None

        return [TargetImport("refresh callable", "callable", cfg.callable, judge)]

    @classmethod
    def propose_config(cls, init: InitContext) -> None:
        from zerodrift.gates.zg6_onboard import propose

        propose(cls.id, init)

    def run(self, ctx: GateContext, result: GateResult) -> None:
        cfg: SerializationConfig = ctx.gate_config
        db = ctx.require(result, "db.fresh", "no fresh database at head")
        if db is None:
            return
        self.ctx, self.cfg, self.db, self.result = ctx, cfg, db, result
        self.role = ctx.config.roles.runtime or None
        self.t0 = time.perf_counter()
        self.timeline: list[str] = []
        self.procs: dict[str, _Process] = {}
        self.env_names: list[str] = []
        try:
            with ctx.artifacts.exclusive(db.name):
                if self._start_processes():
                    self._prove()
        except _CallableMissing as exc:
            result.fail_with_error(f"the refresh callable {cfg.callable} does not exist: {exc} — check callable "
                                   "(module:attribute) in [gates.ZG-6] and target.pythonpath")
        except _ReadFailed as exc:
            result.fail_with_error(f"the outcome of {cfg.callable} could not be read: {exc} — check result_path / "
                                   "result_regex in [gates.ZG-6]")
        finally:
            for proc in self.procs.values():
                self._end(proc, wait=True)
            if self.procs:
                result.add_table("processes", ["process", "PYTHONHASHSEED", "pid", "hash('zerodrift')", "part", "outcome"],
                                 [[p.label, p.seed, p.probe.pid, p.hash_probe, p.part, p.outcome]
                                  for p in self.procs.values()])
            started = {p.label: p.seed for p in self.procs.values()} or {k: v[0] for k, v in PROCESSES.items()}
            seeds = ", ".join(f"{label}={seed}" for label, seed in started.items())
            result.add_step(EvidenceStep(title="sequence", command=f"{cfg.callable}(*{cfg.args!r})", role=self.role or "",
                                         database=db.name, duration_s=time.perf_counter() - self.t0,
                                         output="\n".join(self.timeline),
                                         env=self.env_names + [f"PYTHONHASHSEED (per process: {seeds})"]))

    # -- the proof -------------------------------------------------------
    def _start_processes(self) -> bool:
        """Start every process at once (each imports the path's module and looks the callable
        up, as a worker does when it starts); False when the module raised on import."""
        for label, (seed, part) in PROCESSES.items():
            self._start(label, seed, part)
        return all(self._started(proc) for proc in list(self.procs.values()))

    def _start(self, label: str, seed: int, part: str) -> _Process:
        """Start the probe process ``label`` with ``PYTHONHASHSEED=seed``; it imports the path's
        module and looks the callable up (answered through :meth:`_started`)."""
        probe, self.env_names = self.ctx.target.start_held_probe(
            "call_probe.py", {"path": self.cfg.callable, "resolve_only": True}, db=self.db, role=self.role,
            runtime=True, extra_env={"PYTHONHASHSEED": str(seed)})
        self.procs[label] = _Process(label, seed, part, probe)
        return self.procs[label]

    def _started(self, proc: _Process) -> bool:
        """Wait for ``proc``'s start-up answer; False when the module raised on import (a FAIL
        is recorded). Raises EnvironmentProblem when it did not start, _CallableMissing."""
        answer = proc.probe.answer(self.cfg.timeout)
        if answer is None:
            self._end(proc)
            raise EnvironmentProblem(f"{proc.name} did not start within {self.cfg.timeout:.0f} s: "
                                     f"{proc.probe.tail()}")
        if answer.get("missing"):
            raise _CallableMissing(answer.get("error", ""))
        proc.hash_probe = answer.get("hash_probe")
        self._log(f"{proc.name} started; {'resolved ' + self.cfg.callable if answer.get('ok') else answer.get('error')}")
        if not answer.get("ok"):
            self.result.check("the refresh path's module imports", False,
                              f"importing {self.cfg.callable} raised {answer.get('error')}")
            return False
        return True

    def _control_process(self) -> _Process | None:
        """The process for the positive control (:data:`CONTROL_ORDER`); the others not needed
        any more are told to exit. Starts the spare E when none is left (None when its import
        raised, a FAIL recorded by :meth:`_started`)."""
        usable = [self.procs[label] for label in CONTROL_ORDER
                  if not self.procs[label].ended and self.procs[label].probe.alive]
        for proc in usable[1:]:
            self._end(proc)
        if usable:
            return usable[0]
        label, seed, part = SPARE
        proc = self._start(label, seed, part)
        return proc if self._started(proc) else None

    def _prove(self) -> None:
        cfg, result = self.cfg, self.result
        regclass, problem = self._relation()
        key: list[int] | None = None
        how = problem
        if regclass is not None:
            with self._frozen(regclass) as monitor_pid:
                key, _, how = self._run_frozen(self.procs["A"], "discovery call", regclass, [monitor_pid])
            if key is not None:
                result.check("refresh path takes an advisory lock", True, f"key {key}: {how}")
            self._finish_frozen(self.procs["A"], "discovery call", leak_check=key is not None)
        if key is None:
            if not cfg.lock_key:
                result.check("refresh path takes an advisory lock", False, how)
                return
            # the fallback key was not seen being taken: that fact is not proven, only used
            result.skip_check("refresh path takes an advisory lock",
                              f"not observed ({how}); using key {cfg.lock_key} given in config (lock_key)")
            result.skip_check("lock key is the same in every process", "not observed: no lock was seen being taken")
            result.headline = (f"with the configured lock {cfg.lock_key} held: skipped in 2 other processes; "
                               "success after; no leak")
            result.facts["lock_key"] = cfg.lock_key
            self._hold_by_session(cfg.lock_key)
        else:
            result.facts["lock_key"] = key
            result.headline = (f"advisory lock {key} found in pg_locks, the same in 2 processes with different "
                               "PYTHONHASHSEED; skipped in 2 other processes while held, success after, no leak")
            self._hold_by_process_b(key, regclass)
        control = self._control_process()
        if control is not None:
            self._success_after_release(control)

    def _hold_by_process_b(self, key_a: list[int], regclass: str) -> None:
        """B runs the path, held mid-way with its lock; C and D call while it holds it."""
        a, b = self.procs["A"], self.procs["B"]
        keys: dict[str, list[int]] = {"A": key_a}
        with self._frozen(regclass) as monitor_pid:
            key_b, _, how = self._run_frozen(b, "holder call", regclass, [monitor_pid])
            if key_b is None:
                self.result.check("lock key is the same in every process", False,
                                  f"{a.name} took advisory lock {key_a}, {b.name} took none: {how}")
            else:
                keys["B"] = key_b
                holders = self._holding_pids(regclass, [monitor_pid])
                self._calls_while_held(key_b, b.name, [monitor_pid] + holders, regclass, keys)
                self._same_key(keys)
        self._finish_frozen(b, "holder call", leak_check=key_b is not None)

    def _hold_by_session(self, key: list[int]) -> None:
        """Fallback: a zerodrift session holds the configured key; C and D call while it does."""
        self.procs["B"].outcome = "not used: a zerodrift session holds the configured lock_key"
        with psycopg.connect(self.db.url(), autocommit=True) as holder:
            holder.execute("SET lock_timeout = '30s'")  # never wait forever on a lock someone leaked
            holder.execute(lock_sql(key, "pg_advisory_lock"))
            name = f"a zerodrift session (backend pid {holder.info.backend_pid})"
            self._log(f"holder {name}: {lock_sql(key, 'pg_advisory_lock')} -> acquired")
            self._calls_while_held(key, name, [holder.info.backend_pid], None, {})
            holder.execute(lock_sql(key, "pg_advisory_unlock"))
            self._log(f"holder: {lock_sql(key, 'pg_advisory_unlock')} -> released")

    def _calls_while_held(self, key: list[int], holder: str, exclude: list[int], regclass: str | None,
                          keys: dict[str, list[int]]) -> None:
        """C, then D, call the path while ``holder`` holds ``key``: each must skip promptly,
        taking no advisory lock of its own (one seen is added to ``keys``)."""
        cfg = self.cfg
        details: list[str] = []
        ok_all = True
        for label in ("C", "D"):
            proc = self.procs[label]
            if not ok_all:
                proc.outcome = "not called: the call in process C already failed"
                continue
            self._call(proc, f"call while held ({label})")
            kind, data = self._watch(proc, regclass, exclude, cfg.prompt_s)
            ok = False
            if kind == "answer":
                if data.get("missing"):
                    raise _CallableMissing(data.get("error", ""))
                value = self._value(data)
                refreshes = [s["sql"] for s in data.get("statements", []) if "REFRESH" in s["sql"].upper()]
                ok = bool(data.get("ok") and value == cfg.skipped and not refreshes)
                detail = (f"returned {cfg.shown(data)} in {data['duration_s']:.3f} s without sending a REFRESH" if ok else
                          f"returned {cfg.shown(data)} (expected {cfg.skipped!r})" if data.get("ok") and value != cfg.skipped
                          else f"sent {refreshes[0][:80]!r} while the lock was held" if refreshes
                          else f"raised {data.get('error')}")
                if ok and not data.get("statements_observed"):
                    detail += " (statements not observable: no SQLAlchemy in the target)"
                self._log_answer(proc, f"call while held ({label})", data)
            elif kind == "lock":
                own = key_from_lock(data[1], data[2], data[3])
                keys[label] = own
                detail = (f"took its own advisory lock {own} (backend pid {data[0]}) while {holder} held {key}, "
                          "instead of skipping")
            elif kind == "bare":
                detail = f"reached {regclass} (backend pid {data}) without an advisory lock while {holder} held {key}"
            elif kind == "died":
                detail = f"died: {proc.probe.tail()}"
            else:
                detail = (f"did not return within {cfg.prompt_s:.1f} s while {holder} held the lock: it waits on "
                          "the lock (pg_advisory_lock?) instead of skipping (pg_try_advisory_lock)")
            if kind != "answer":
                self._log(f"call while held ({label}): {detail}")
            proc.outcome = detail
            details.append(f"{proc.name} {detail}")
            ok_all = ok_all and ok
            if kind == "answer":  # the process stays: it may make the positive control's call
                self._leaks(proc, f"the call while held in process {label}", exclude, end=False)
            else:
                self._end_stuck(proc, exclude, regclass)
        self.result.check("skips while the lock is held", ok_all, "; ".join(details))

    def _same_key(self, keys: dict[str, list[int]]) -> None:
        where = ", ".join(f"{key} in {self.procs[label].name}" for label, key in keys.items())
        if len({tuple(k) for k in keys.values()}) > 1:
            self.result.check("lock key is the same in every process", False,
                              f"lock key differs between processes: {where} — derived from hash()/pid/random? "
                              "Separately started workers never exclude each other; derive the key from a value "
                              "that is the same everywhere (e.g. hashtextextended(name, 0) in SQL)")
            return
        hashes = {self.procs[label].hash_probe for label in keys}
        self.result.check("lock key is the same in every process", True,
                          f"{where}" + ("; hash('zerodrift') differed between them, so a key derived from hash() "
                                        "would have differed too" if len(hashes) > 1 else
                                        "; hash() was the same in these processes, so a key derived from it would not have shown"))

    def _success_after_release(self, proc: _Process) -> None:
        cfg = self.cfg
        self._call(proc, "call after release")
        answer = proc.probe.answer(cfg.timeout)
        if answer is None:
            proc.outcome = f"did not return within {cfg.timeout:.0f} s"
            self.result.check("succeeds once the lock is free", False, f"{proc.name} {proc.outcome}")
            self._end(proc)
            return
        if answer.get("missing"):
            raise _CallableMissing(answer.get("error", ""))
        self._log_answer(proc, "call after release", answer)
        value = self._value(answer)
        ok = answer.get("ok") and value == cfg.success
        control = (f"returned {cfg.shown(answer)} in {answer['duration_s']:.3f} s" if answer.get("ok")
                   else f"raised {answer.get('error')}")
        proc.outcome = (control if proc.outcome.startswith("not called") else
                        f"{proc.outcome}; once the lock was free, {control}")
        self.result.check("succeeds once the lock is free", bool(ok), f"{proc.name} {control}")
        self._leaks(proc, "the call after release", [])

    # -- helpers ---------------------------------------------------------
    def _log(self, text: str) -> None:
        self.timeline.append(f"[+{time.perf_counter() - self.t0:7.3f}s] {text}")

    def _relation(self) -> tuple[str | None, str]:
        """The relation to hold the path at (regclass text), or None and why not."""
        cfg = self.cfg
        relation = cfg.freeze_relation or (cfg.args[0] if cfg.args and isinstance(cfg.args[0], str) else "")
        if not relation:
            return None, "no relation to hold the path at; set freeze_relation or lock_key in [gates.ZG-6]"
        with psycopg.connect(self.db.url(), autocommit=True) as conn:
            regclass = conn.execute("SELECT to_regclass(%s)::text", (relation,)).fetchone()[0]
        if regclass is None:
            return None, (f"cannot find the lock: {relation!r} is not a relation to hold the path at; "
                          "set freeze_relation or lock_key in [gates.ZG-6]")
        return regclass, ""

    @contextmanager
    def _frozen(self, regclass: str):
        """A monitor session holds ``regclass`` in ACCESS EXCLUSIVE mode until the block ends,
        then rolls back (leaving the relation exactly as it was); yields its backend pid."""
        with psycopg.connect(self.db.url()) as monitor:
            relkind = monitor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", (regclass,)).fetchone()[0]
            # LOCK TABLE refuses matviews; a plain REFRESH holds ACCESS EXCLUSIVE until COMMIT
            freeze = (f"REFRESH MATERIALIZED VIEW {regclass}" if relkind == "m"
                      else f"LOCK TABLE {regclass} IN ACCESS EXCLUSIVE MODE")
            monitor.execute(freeze)
            self._log(f"monitor (pid {monitor.info.backend_pid}): BEGIN; {freeze}  -- holds ACCESS EXCLUSIVE on {regclass}")
            try:
                yield monitor.info.backend_pid
            finally:
                monitor.rollback()  # a WITH NO DATA view stays unpopulated
                self._log(f"monitor: ROLLBACK (released {regclass}, nothing changed)")

    @staticmethod
    def _value(answer: dict[str, Any]) -> Any:
        """The outcome read from a call's answer; raises _ReadFailed when the reader did not apply."""
        if answer.get("ok") and answer.get("read_error"):
            raise _ReadFailed(answer["read_error"])
        return answer.get("value")

    def _call(self, proc: _Process, label: str) -> None:
        proc.probe.send({"path": self.cfg.callable, "args": self.cfg.args, "kwargs": self.cfg.kwargs,
                         "read": self.cfg.read()})
        self._log(f"{label}: {proc.name} calls {self.cfg.callable}({', '.join(map(repr, self.cfg.args))})")

    def _watch(self, proc: _Process, regclass: str | None, exclude: list[int], timeout: float) -> tuple[str, Any]:
        """Wait up to ``timeout`` seconds for ``proc``'s call while another session watches pg_locks.

        Returns ("lock", pg_locks row) once a session not in ``exclude`` holds an advisory
        lock; ("bare", backend pid) when one waits on ``regclass`` holding none; ("answer",
        answer); ("died", None) or ("timeout", None)."""
        deadline = time.perf_counter() + timeout
        with psycopg.connect(self.db.url(), autocommit=True) as watcher:
            exclude = exclude + [watcher.info.backend_pid]
            while time.perf_counter() < deadline and not self.ctx.artifacts.cancelled.is_set():
                granted = [r for r in watcher.execute(ADVISORY_SQL, (exclude,)).fetchall() if r[5]]
                if granted:
                    return "lock", granted[0]
                waiting = watcher.execute(WAITING_SQL, (regclass, exclude)).fetchall() if regclass else []
                if waiting:
                    time.sleep(0.2)  # give a lock taken just before the wait a chance to show
                    if not watcher.execute(ADVISORY_SQL, (exclude,)).fetchall():
                        return "bare", waiting[0][0]
                    continue
                answer = proc.probe.answer(0.02)
                if answer is not None:
                    return "answer", answer
                if not proc.probe.alive:
                    return "died", None
        return "timeout", None

    def _run_frozen(self, proc: _Process, label: str, regclass: str,
                    exclude: list[int]) -> tuple[list[int] | None, int | None, str]:
        """``proc`` calls the path while ``regclass`` is frozen; returns (key, backend pid, how)
        of the advisory lock it was seen holding, or (None, None, why none was seen)."""
        self._call(proc, label)
        kind, data = self._watch(proc, regclass, exclude, self.cfg.timeout)
        if kind == "lock":
            key = key_from_lock(data[1], data[2], data[3])
            self._log(f"watcher: pg_locks shows advisory lock key {key} held by backend pid {data[0]} ({proc.name})")
            proc.outcome = f"held advisory lock {key} (backend pid {data[0]}) while stopped at {regclass}"
            return key, data[0], (f"seen in pg_locks (classid {data[1]}, objid {data[2]}, objsubid {data[3]}, {data[4]}) "
                                  f"held by backend pid {data[0]} of {proc.name} while a monitor session held "
                                  f"{regclass} in ACCESS EXCLUSIVE mode")
        if kind == "answer" and data.get("missing"):
            raise _CallableMissing(data.get("error", ""))
        how = (f"the path reached {regclass} (backend pid {data} waits for it) holding no advisory lock: concurrent "
               "refreshes are not serialized" if kind == "bare" else
               (f"the path raised before taking any advisory lock: {data.get('error')}" if not data.get("ok") else
                f"the path returned {self.cfg.shown(data)} without touching {regclass} and without an advisory lock")
               if kind == "answer" else
               f"{proc.name} died: {proc.probe.tail()}" if kind == "died" else
               f"no advisory lock seen within {self.cfg.timeout:.0f} s")
        self._log(f"watcher: {how}")
        proc.outcome = how
        return None, None, how

    def _finish_frozen(self, proc: _Process, label: str, *, leak_check: bool) -> None:
        """After the monitor let go: ``proc``'s answer, its leak check, and its end."""
        answer = proc.probe.answer(self.cfg.timeout)
        if answer is None:
            self._log(f"{label}: did not return")
            self._end(proc)
            return
        self._log_answer(proc, label, answer)
        if leak_check:
            self._leaks(proc, f"the {label}", [])
        else:
            self._end(proc)

    def _log_answer(self, proc: _Process, label: str, answer: dict[str, Any]) -> None:
        self._log(f"{label}: {proc.name} " + (f"returned {self.cfg.shown(answer)} in {answer['duration_s']:.3f} s"
                                              if answer.get("ok") else f"raised {answer.get('error')}"))
        for s in answer.get("statements", []):
            self._log(f"  sent at +{s['at_s']:.3f}s: {s['sql'][:120]} {s['params'][:60]}")
        if answer.get("traceback"):
            self._log(f"{label}: {answer['traceback'].strip()}")

    def _holding_pids(self, regclass: str, exclude: list[int]) -> list[int]:
        """Backend pids that hold an advisory lock or wait on ``regclass`` now (the holder's)."""
        with psycopg.connect(self.db.url(), autocommit=True) as conn:
            rows = conn.execute(ADVISORY_SQL, (exclude + [conn.info.backend_pid],)).fetchall()
            rows += conn.execute(WAITING_SQL, (regclass, exclude + [conn.info.backend_pid])).fetchall()
        return sorted({r[0] for r in rows})

    def _leaks(self, proc: _Process, label: str, exclude: list[int], *, end: bool = True) -> None:
        """Check that ``proc``'s open sessions hold no advisory lock now; then end ``proc``
        (unless ``end`` is false)."""
        with psycopg.connect(self.db.url(), autocommit=True) as conn:
            rows = conn.execute(ADVISORY_SQL, (exclude + [conn.info.backend_pid],)).fetchall()
        held = [f"pid {r[0]} key {key_from_lock(r[1], r[2], r[3])} ({r[4]}{'' if r[5] else ', waiting'})" for r in rows]
        self._log(f"{label}: advisory locks held by {proc.name}'s open sessions: {', '.join(held) or 'none'}")
        self.result.check(f"no advisory lock leaked after {label}", not held,
                          f"{proc.name}'s sessions hold no advisory lock after the path returned" if not held else
                          f"still held after the call returned: {', '.join(held)} — the unlock ran on another "
                          "connection, after an aborted transaction, or not at all")
        if end:
            self._end(proc)  # its sessions close with it, leaked locks too

    def _end(self, proc: _Process, *, wait: bool = False) -> None:
        """Let ``proc`` exit: close its input (its sessions close as it exits), or kill it when a
        call is still running. With ``wait``, wait for its exit (kill after 10 s) and log the status."""
        if not proc.ended:
            busy = proc.probe.alive and proc.probe.answer(0) is None
            if busy:
                proc.probe.kill()
                if proc.probe.output.strip():
                    self._log(f"{proc.name} output: {proc.probe.tail(600)}")
            self._log(f"{proc.name} {'killed' if busy else 'told to exit'}")
            proc.ended = True
            proc.probe.close_stdin()
        if wait and proc.probe.returncode is None:
            self._log(f"{proc.name} exited ({proc.probe.release()})")

    def _end_stuck(self, proc: _Process, exclude: list[int], regclass: str | None) -> None:
        """Kill ``proc`` stuck in a call, and end its backends that hold or wait for an advisory
        lock or wait on ``regclass``: a backend waiting on a lock does not notice its client died
        (PostgreSQL docs, ``client_connection_check_interval``) and would take the lock later."""
        self._end(proc, wait=True)
        deadline = time.perf_counter() + 10
        with psycopg.connect(self.db.url(), autocommit=True) as conn:
            mine = exclude + [conn.info.backend_pid]
            while time.perf_counter() < deadline:
                pids = {r[0] for r in conn.execute(ADVISORY_SQL, (mine,)).fetchall()}
                if regclass:
                    pids |= {r[0] for r in conn.execute(WAITING_SQL, (regclass, mine)).fetchall()}
                if not pids:
                    return
                conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (sorted(pids),))
                self._log(f"terminated backend(s) {sorted(pids)} left by {proc.name}")
                time.sleep(0.05)


@hookimpl
def zerodrift_gates():
    return [SerializationGate]
