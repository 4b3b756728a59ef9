"""ZG-6 serialization by advisory lock."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from pydantic import Field

from zerodrift.gates.base import EvidenceStep, Gate, GateConfig, GateResult
from zerodrift.hookspecs import hookimpl

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
    lock_key: list[int] = Field(default_factory=list, description="Fallback: the advisory lock key ([bigint] or [int4, int4]) when it cannot be found.")
    freeze_relation: str = Field("", description="Relation the path refreshes, locked to hold the path mid-way while its lock is read; default: the first argument.")
    prompt_s: float = Field(5.0, gt=0, description="Seconds within which the path must return 'skipped' while the lock is held.")
    timeout: float = Field(60.0, gt=0, description="Seconds one call may take otherwise.")


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


class SerializationGate(Gate):
    """ZG-6: the refresh path is serialized by an advisory lock, skips when it is held, and leaks nothing.

    Runs the app's own refresh callable (plain or ``async def``) in the target's
    interpreter as the runtime role. First it finds the advisory lock the path
    takes, without being told the key: a monitor session holds the refreshed
    relation in ACCESS EXCLUSIVE mode so the path stops right after taking its lock,
    and ``pg_locks`` shows which one it holds (``lock_key`` in config is the
    fallback). Then, with that lock held by another session, the path must return
    its "skipped" value promptly, neither blocking nor sending a REFRESH; once the
    lock is released it must return "success"; and after each call the path's
    still-open sessions must hold no advisory lock (a leaked session lock is the
    classic fault of unlocking on another pooled connection). Without ``callable``
    the gate is SKIPPED.
    """

    id = "ZG-6"
    title = "Serialization by advisory lock"
    config_model = SerializationConfig
    requires = ("db.fresh",)
    needs = ("server", "target")

    def run(self, ctx, result: GateResult) -> None:
        cfg: SerializationConfig = ctx.gate_config
        if not cfg.callable:
            result.skip("callable is not configured in [gates.ZG-6] (e.g. callable = \"app.refresh:refresh_view\")")
            return
        db = ctx.require(result, "db.fresh", "no fresh database at head")
        if db is None:
            return
        self.ctx, self.cfg, self.db, self.result = ctx, cfg, db, result
        self.role = ctx.config.roles.runtime or None
        self.t0 = time.perf_counter()
        self.timeline: list[str] = []
        self.session = None
        try:
            with ctx.artifacts.exclusive(db.name):
                self._prove()
            if self.session is not None:
                self.session.release()
                self._log(f"call probe exited ({self.session.proc.returncode})")
                self.session = None
        finally:
            self._end_session("end")
            result.add_step(EvidenceStep(title="sequence", command=f"{cfg.callable}(*{cfg.args!r})", role=self.role or "",
                                         database=db.name, duration_s=time.perf_counter() - self.t0,
                                         output="\n".join(self.timeline)))

    def _prove(self) -> None:
        result = self.result
        key, how = self._find_lock()
        if key is None:
            result.check("refresh path takes an advisory lock", False, how)
            return
        if how.startswith("given in config"):
            # the fallback key was not seen being taken: that fact is not proven, only used
            result.skip_check("refresh path takes an advisory lock", f"not observed; using key {key} {how}")
            result.headline = f"with the configured lock {key} held: skipped; success after; no leak"
        else:
            result.check("refresh path takes an advisory lock", True, f"key {key}: {how}")
            result.headline = f"advisory lock {key} found in pg_locks; skipped while held, success after, no leak"
        result.facts["lock_key"] = key
        self._skip_while_held(key)
        self._success_after_release()

    # -- helpers ---------------------------------------------------------
    def _log(self, text: str) -> None:
        self.timeline.append(f"[+{time.perf_counter() - self.t0:7.3f}s] {text}")

    def _start(self, label: str):
        """Ask the call-probe session for one call (starting the process if none is alive)."""
        request = {"path": self.cfg.callable, "args": self.cfg.args, "kwargs": self.cfg.kwargs}
        if self.session is not None and self.session.alive:
            self.session.send(request)
        else:
            self.session, _ = self.ctx.target.start_held_probe("call_probe.py", request, db=self.db, role=self.role,
                                                               runtime=True)
            self._log(f"call probe started (pid {self.session.proc.pid}); it keeps its sessions open between calls")
        self._log(f"{label}: {self.cfg.callable}({', '.join(map(repr, self.cfg.args))}) called")
        return self.session

    def _finish(self, probe, label: str, answer) -> None:
        if answer is not None:
            for s in answer.get("statements", []):
                self._log(f"{label}:   sent at +{s['at_s']:.3f}s: {s['sql'][:160]} {s['params'][:80]}")
            if answer.get("traceback"):
                self._log(f"{label}: {answer['traceback'].strip()}")
        else:  # no answer: the process is stuck in the call; end it
            self._end_session(label)

    def _end_session(self, label: str) -> None:
        if self.session is None:
            return
        if answer_missing := self.session.alive:
            self.session.proc.kill()
        status = self.session.release()
        if self.session.output.strip():
            self._log(f"{label}: probe output: {self.session.output.strip()[-600:]}")
        self._log(f"call probe {'killed' if answer_missing else 'exited'} ({status})")
        self.session = None

    def _leaks(self, label: str, exclude: list[int]) -> bool:
        with psycopg.connect(self.db.url(), autocommit=True) as conn:
            rows = conn.execute(ADVISORY_SQL, (exclude + [conn.info.backend_pid],)).fetchall()
        held = [f"pid {r[0]} key {key_from_lock(r[1], r[2], r[3])} ({r[4]}{'' if r[5] else ', waiting'})" for r in rows]
        self._log(f"{label}: advisory locks held by the path's open sessions: {', '.join(held) or 'none'}")
        self.result.check(f"no advisory lock leaked after {label}", not held,
                          "the path's sessions hold no advisory lock after it returned" if not held else
                          f"still held after the call returned: {', '.join(held)} — the unlock ran on another "
                          "connection, after an aborted transaction, or not at all")
        if held:  # the next step needs the lock free: end the process that holds it
            self._end_session(f"{label} (it leaked a lock)")
        return bool(held)

    def _find_lock(self) -> tuple[list[int] | None, str]:
        cfg = self.cfg
        relation = cfg.freeze_relation or (cfg.args[0] if cfg.args and isinstance(cfg.args[0], str) else "")
        with psycopg.connect(self.db.url()) as monitor:
            regclass = monitor.execute("SELECT to_regclass(%s)::text", (relation,)).fetchone()[0] if relation else None
            monitor.rollback()
            if regclass is None:
                if cfg.lock_key:
                    return cfg.lock_key, "given in config (lock_key); no relation to hold the path at"
                return None, (f"cannot find the lock: {relation!r} is not a relation to hold the path at; "
                              "set freeze_relation or lock_key in [gates.ZG-6]")
            relkind = monitor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", (regclass,)).fetchone()[0]
            # LOCK TABLE refuses matviews; a plain REFRESH holds ACCESS EXCLUSIVE until COMMIT
            freeze = (f"REFRESH MATERIALIZED VIEW {regclass}" if relkind == "m"
                      else f"LOCK TABLE {regclass} IN ACCESS EXCLUSIVE MODE")
            monitor.execute(freeze)
            mon_pid = monitor.info.backend_pid
            self._log(f"monitor (pid {mon_pid}): BEGIN; {freeze}  -- holds ACCESS EXCLUSIVE on {regclass}")
            probe = self._start("discovery call")
            found: list[int] | None = None
            how = ""
            deadline = time.perf_counter() + cfg.timeout
            with psycopg.connect(self.db.url(), autocommit=True) as watcher:
                exclude = [mon_pid, watcher.info.backend_pid]
                while time.perf_counter() < deadline and not self.ctx.artifacts.cancelled.is_set():
                    locks = watcher.execute(ADVISORY_SQL, (exclude,)).fetchall()
                    granted = [r for r in locks if r[5]]
                    if granted:
                        r = granted[0]
                        found = key_from_lock(r[1], r[2], r[3])
                        how = (f"seen in pg_locks (classid {r[1]}, objid {r[2]}, objsubid {r[3]}, {r[4]}) held by the "
                               f"path's session pid {r[0]} while a monitor session held {regclass} in ACCESS EXCLUSIVE mode")
                        self._log(f"watcher: pg_locks shows advisory lock key {found} held by pid {r[0]}")
                        break
                    waiting = watcher.execute(WAITING_SQL, (regclass, exclude)).fetchall()
                    if waiting:
                        time.sleep(0.2)  # give a lock taken just before the wait a chance to show
                        if not watcher.execute(ADVISORY_SQL, (exclude,)).fetchall():
                            how = (f"the path reached {regclass} (pid {waiting[0][0]} waits for it) holding no "
                                   "advisory lock: concurrent refreshes are not serialized")
                            self._log(f"watcher: pid {waiting[0][0]} waits on {regclass} without an advisory lock")
                            break
                        continue
                    early = probe.answer(0.02)
                    if early is not None:
                        how = (f"the path raised before taking any advisory lock: {early.get('error')}"
                               if not early.get("ok") else
                               f"the path returned {early.get('value')!r} without touching {regclass} and without "
                               "an advisory lock")
                        break
                    if not probe.alive:
                        how = f"the call probe died: {probe.output.strip()[-300:]}"
                        break
            monitor.rollback()  # leaves the view exactly as it was (a WITH NO DATA view stays unpopulated)
            self._log(f"monitor: ROLLBACK (released {regclass}, nothing changed)")
            answer = probe.answer(cfg.timeout)
            self._log((f"discovery call returned {answer.get('value')!r} in {answer['duration_s']:.3f} s"
                       if answer.get("ok") else f"discovery call raised {answer.get('error')}") if answer
                      else "discovery call did not return")
            if found is not None and answer is not None:
                self._leaks("the discovery call", exclude=[])
            self._finish(probe, "discovery call", answer)
        if found is None and cfg.lock_key:
            return cfg.lock_key, f"given in config (lock_key); not observed: {how or 'timed out'}"
        return found, how or f"no advisory lock seen within {cfg.timeout:.0f} s"

    def _skip_while_held(self, key: list[int]) -> None:
        cfg = self.cfg
        with psycopg.connect(self.db.url(), autocommit=True) as holder:
            holder.execute("SET lock_timeout = '30s'")  # never wait forever on a lock someone leaked
            holder.execute(lock_sql(key, "pg_advisory_lock"))
            self._log(f"holder (pid {holder.info.backend_pid}): {lock_sql(key, 'pg_advisory_lock')} -> acquired")
            probe = self._start("call while held")
            answer = probe.answer(cfg.prompt_s)
            if answer is None:
                self._log(f"call while held: no answer within {cfg.prompt_s:.1f} s")
                self.result.check("skips while the lock is held", False,
                                  f"did not return within {cfg.prompt_s:.1f} s while another session held the lock: "
                                  "it waits on the lock (pg_advisory_lock?) instead of skipping (pg_try_advisory_lock)")
                self._finish(probe, "call while held", None)
            else:
                value = answer.get("value")
                self._log(f"call while held returned {value!r} in {answer['duration_s']:.3f} s")
                refreshes = [s["sql"] for s in answer.get("statements", []) if "REFRESH" in s["sql"].upper()]
                ok = answer.get("ok") and value == cfg.skipped and not refreshes
                detail = (f"returned {value!r} in {answer['duration_s']:.3f} s without sending a REFRESH" if ok else
                          f"returned {value!r} (expected {cfg.skipped!r})" if answer.get("ok") and value != cfg.skipped
                          else f"sent {refreshes[0][:80]!r} while the lock was held" if refreshes
                          else f"raised {answer.get('error')}")
                if ok and not answer.get("statements_observed"):
                    detail += " (statements not observable: no SQLAlchemy in the target)"
                self.result.check("skips while the lock is held", bool(ok), detail)
                self._leaks("the call while held", exclude=[holder.info.backend_pid])
                self._finish(probe, "call while held", answer)
            holder.execute(lock_sql(key, "pg_advisory_unlock"))
            self._log(f"holder: {lock_sql(key, 'pg_advisory_unlock')} -> released")

    def _success_after_release(self) -> None:
        cfg = self.cfg
        probe = self._start("call after release")
        answer = probe.answer(cfg.timeout)
        if answer is None:
            self.result.check("succeeds once the lock is free", False, f"did not return within {cfg.timeout:.0f} s")
            self._finish(probe, "call after release", None)
            return
        value = answer.get("value")
        self._log(f"call after release returned {value!r} in {answer['duration_s']:.3f} s")
        ok = answer.get("ok") and value == cfg.success
        self.result.check("succeeds once the lock is free", bool(ok),
                          f"returned {value!r} in {answer['duration_s']:.3f} s" if answer.get("ok")
                          else f"raised {answer.get('error')}")
        self._leaks("the call after release", exclude=[])
        self._finish(probe, "call after release", answer)


@hookimpl
def zerodrift_gates():
    return [SerializationGate]
