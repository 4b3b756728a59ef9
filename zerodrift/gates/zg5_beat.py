"""ZG-5 beat is real."""

from __future__ import annotations

import contextlib
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from zerodrift.config import LoadedConfig
from zerodrift.context import GateContext
from zerodrift.gates.base import EvidenceStep, Gate, GateConfig, GateResult
from zerodrift.gates.common import load_failure
from zerodrift.hookspecs import hookimpl
from zerodrift.onboard.hooks import InitContext, TargetImport
from zerodrift.target_process import TargetProcess
from zerodrift.urls import mask

_SENDING = re.compile(r"Scheduler: Sending due task (?P<name>.+?) \((?P<task>[^()]+)\)\s*$")
# beat logs "Sending due task" *before* it publishes; a failed publish follows as this error
_FAILED = re.compile(r"Couldn't apply scheduled task (?P<name>.+?): (?P<error>.*)$")
# the last line of a Python traceback: the exception's class (dotted or not) and its message
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)\b(?::.*)?$")
# a frame in a kombu transport module: its client library is imported when the transport loads
_TRANSPORT_FRAME = re.compile(r"kombu[/\\]transport[/\\](?P<transport>\w+)\.py")
#: Celery's result backend alias that stores nothing (celery.backends.base.DisabledBackend)
_NO_RESULTS = "disabled://"
#: in the gate's temporary folder: beat's seeded schedule store and the pidfile beat writes
_STORE, _PIDFILE = "beat-schedule", "beat.pid"


def _published_to(entry: dict) -> str:
    """Where beat publishes an entry's message: the exchange (``''`` is the default
    exchange, which routes to the queue named by the routing key) and the routing key."""
    exchange = entry.get("exchange")
    if exchange is None:
        return "(not routed)"
    kind = f" ({entry['exchange_type']})" if entry.get("exchange_type") and exchange else ""
    return (f"exchange {exchange!r}{kind}" if exchange else "default exchange ''") + f", routing key {entry['routing_key']!r}"


def _last_exception(log_text: str) -> str:
    """The last exception line (``Class: message``) of a process's output, else its last line."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    found = [line for line in lines if _EXCEPTION_LINE.match(line)]
    return (found or lines or ["(no output)"])[-1]


def _missing_client_library(log_text: str, exception: str) -> str | None:
    """The kombu transport (e.g. ``redis``) whose client library a crashed process could not
    import, read from its traceback: an ImportError, or kombu's AttributeError on the ``None``
    it keeps in place of a missing library, raised in a frame of kombu/transport/<name>.py."""
    if not re.search(r"(ImportError|ModuleNotFoundError|'NoneType' object has no attribute)", exception):
        return None
    frames = _TRANSPORT_FRAME.findall(log_text)
    return frames[-1] if frames else None


def _message_rows(messages: list[dict]) -> list[list[str]]:
    return [[m["queue"], m.get("task") or "(none)", m.get("id") or "(none)", m.get("origin") or "(none)",
             m.get("why") or ""] for m in messages]


class BeatConfig(GateConfig):
    celery_app: str = Field("", description="module:attribute of the Celery app whose beat schedule is proven.")
    broker_url: str = Field("", description="Broker beat sends to; empty: kombu's SQLAlchemy transport on a throwaway database. "
                            "Only this run's messages are removed from it; use a vhost or database no worker reads.")
    sqla_driver: str = Field("postgresql+psycopg", description="SQLAlchemy dialect+driver for the default throwaway broker.")
    timeout: float = Field(30.0, gt=0, description="Seconds beat may take to send every entry.")


class BeatGate(Gate):
    """ZG-5: the beat schedule loads, every task is registered, and a real beat sends every entry.

    In the target's interpreter: imports the Celery app (``celery_app``) and its task
    modules, reads ``beat_schedule`` and asserts every entry's task name is
    registered (otherwise a worker answers "Received unregistered task") and that the
    app's own router (``app.amqp.router.route``, then Celery's ``send_task_message``
    rules) sends every entry to an exchange and routing key some queue of the app
    receives (else the broker drops the message: FAIL naming the entry and where it
    goes). The app's queues are declared on the broker first, as workers do. Then it
    seeds beat's own schedule store (``celery.beat.PersistentScheduler``) with every
    entry last run long ago — no app-specific switch — and starts a real
    ``celery beat`` against a real broker (default: kombu's SQLAlchemy transport on a
    throwaway database, which is also the app's ``DATABASE_URL``: beat schedules and
    publishes, it needs no migrated schema, so this gate runs from the start). Beat runs
    with Celery's disabled result backend, so the app's result backend (e.g. a
    database) is never set up. It stops beat as soon as the log shows every entry sent
    (never a fixed sleep), then reads exactly the routed queues with kombu until a
    message of this beat (Celery's ``origin`` header, ``gen<pid>@<hostname>`` of the beat
    process) for each entry's task is in each of its queues (at most 10 s). Only those
    messages are counted and removed; any other message is foreign: listed, left in the
    broker. Without ``celery_app`` the gate is SKIPPED. An app
    whose modules raise while they are imported is a FAIL naming the stage and the
    target's exception; a path that names no module or attribute is an ERROR. Beat that
    exits on its own is a FAIL naming its exit status and last exception, except a broker
    client library missing from the target's environment: an environment ERROR.
    """

    id = "ZG-5"
    title = "Beat is real"
    config_model = BeatConfig
    needs = ("server", "target")

    @classmethod
    def skip_reason(cls, cfg: BeatConfig, loaded: LoadedConfig) -> str:
        """SKIPPED without ``celery_app``."""
        if cfg is not None and cfg.celery_app:
            return ""
        return f"celery_app is not configured in [gates.{cls.id}] (e.g. celery_app = \"app.celery_app:celery_app\")"

    @classmethod
    def target_modules(cls, cfg: BeatConfig) -> dict[str, str]:
        return {"celery": f"{cls.id} runs celery beat"} if cfg is not None and cfg.celery_app else {}

    @classmethod
    def target_imports(cls, cfg: BeatConfig) -> list[TargetImport]:
        return [TargetImport("Celery app", "celery_app", cfg.celery_app)] if cfg is not None and cfg.celery_app else []

    @classmethod
    def propose_config(cls, init: InitContext) -> None:
        """The first Celery app candidate that imports as a Celery app; else a commented-out table."""
        facts = init.facts
        apps = init.verified("celery", facts.celery_apps, "celery_app")
        if facts.celery_apps and apps:
            app = apps[0]
            init.comment(f"Celery app found in {init.rel(app.file)} (imported in the target's interpreter).")
            if len(apps) > 1:
                init.todo("other Celery apps: " + ", ".join(c.path for c in apps[1:]) + "; keep the one that runs beat.")
            init.table()
            init.key("celery_app", app.path)
        elif not facts.celery_apps:
            init.comment(f"no Celery app found (a module-level `x = Celery(...)`): {cls.id} stays SKIPPED.")
            init.table(commented=True)
            init.commented_key("celery_app", "app.celery_app:celery_app")

    def run(self, ctx: GateContext, result: GateResult) -> None:
        cfg: BeatConfig = ctx.gate_config
        # beat only schedules and publishes: it needs no migrated database, so the gate starts
        # at once, with its own throwaway database as the broker and as the app's DATABASE_URL
        fresh = ctx.database("celery")
        target = ctx.target
        runtime = ctx.config.roles.runtime or None
        # one probe process loads the app, then drains the broker while beat runs
        # the default broker connects as the run's migration role (it creates kombu's tables),
        # with that role's generated password: never the admin's URL
        broker = cfg.broker_url or "sqla+" + target.url_for(fresh, scheme=cfg.sqla_driver)
        # beat's own process starts now with its whole command line, importing Celery and the app
        # while the store is seeded and the queues declared; it runs beat when told (probes/beat_probe.py)
        with tempfile.TemporaryDirectory(prefix="zerodrift-beat-") as tmp, \
                target.probe_session("celery_probe.py", db=fresh, role=runtime) as celery, \
                self._beat_process(target, fresh, runtime, self._beat_argv(cfg, broker, tmp)) as beat:
            schedule_file = str(Path(tmp) / _STORE)
            step, info = celery.ask({"app": cfg.celery_app, "mode": "inspect", "schedule_file": schedule_file},
                                    title=f"load {cfg.celery_app} and its beat schedule")
            result.add_step(step)
            if info is None or not info.get("ok"):
                load_failure(result, info, step.output, f"Celery app {cfg.celery_app}", "Celery app loads",
                             "check [gates.ZG-5] celery_app and target.pythonpath")
                return
            entries = info["entries"]
            if not result.check("beat schedule loaded", bool(entries),
                                f"{len(entries)} entries: {', '.join(sorted(entries))}" if entries
                                else f"{cfg.celery_app} has an empty beat_schedule"):
                return
            result.add_table("Beat schedule", ["Entry", "Task", "Schedule", "Published to", "Queues"],
                             [[n, e["task"], e["schedule"], _published_to(e), ", ".join(e["queues"]) or "(none)"]
                              for n, e in sorted(entries.items())])
            registered = set(info["registered"])
            unregistered = {n: e["task"] for n, e in entries.items() if e["task"] not in registered}
            result.check("every scheduled task is registered", not unregistered,
                         f"all {len(entries)} task names are registered in the app" if not unregistered else
                         "; ".join(f"entry {n}: task {t!r} is not registered (a worker would answer "
                                   "'Received unregistered task')" for n, t in sorted(unregistered.items())))
            unrouted = {n: e for n, e in entries.items() if not e["queues"]}
            queues = sorted({q for e in entries.values() for q in e["queues"]})
            result.check("every entry reaches a queue", not unrouted,
                         f"routed by the app's own router to {', '.join(queues)}" if not unrouted else
                         "; ".join(f"entry {n} (task {e['task']}): " + (
                             f"the app's router raised {e['route_error']}" if e.get("route_error") else
                             f"published to {_published_to(e)}, which no queue of the app is bound to (app queues: "
                             f"{', '.join(info['app_queues']) or 'none'}): the broker drops it and no worker runs it")
                             for n, e in sorted(unrouted.items())))

            if queues:  # the queues exist with their bindings before beat publishes, as a worker declares them
                step, declared = celery.ask({"app": cfg.celery_app, "mode": "declare", "broker": broker, "queues": queues},
                                            title="declare the app's queues on the broker")
                step.command = f"kombu declare {', '.join(queues)} on {mask(broker)}"
                result.add_step(step)
                if declared is not None and not declared.get("ok") and declared.get("kind") == "environment":
                    result.fail_with_error(f"{declared.get('stage')}: {declared.get('error')}", environment=True)
                    return
            expect = [[q, e["task"]] for e in entries.values() for q in e["queues"]]
            drain_request = {"app": cfg.celery_app, "mode": "drain", "broker": broker, "queues": queues,
                             "expect": expect, "timeout_s": 10.0}
            drained_box: list = []

            def drain_while_beat_runs(beat_pid: int) -> None:
                # beat logs "Sending due task" just before it publishes: read the broker while beat still runs;
                # only messages whose origin is this beat process count (and are consumed)
                drained_box.append(celery.ask(dict(drain_request, origin_pid=beat_pid),
                                              title="drain the broker with kombu"))

            sent, log_text, elapsed, exit_status, stopped = self._run_beat(beat, cfg, tmp, set(entries),
                                                                           drain_while_beat_runs, ctx.artifacts.cancelled)
            result.add_step(EvidenceStep(
                title="celery beat",
                command=f"celery -A {cfg.celery_app} -b {mask(broker)} --result-backend {_NO_RESULTS} beat "
                        "-S celery.beat:PersistentScheduler -s <seeded schedule> -l INFO (Celery's command line, run "
                        "in an interpreter that imported it and the app's module while the schedule was seeded)",
                role=runtime or "", database=fresh.name, duration_s=elapsed, exit_status=exit_status, output=log_text,
                env=target.environment(fresh, role=runtime, runtime=True)[1]))
            failed = {m.group("name"): m.group("error").strip() for m in map(_FAILED.search, log_text.splitlines()) if m}
            missing = sorted(set(entries) - set(sent))
            broken = sorted(set(entries) & set(failed))
            detail = f"all {len(entries)} entries sent in {elapsed:.2f} s"
            if missing and not stopped:  # beat ended on its own before sending every entry
                exception = _last_exception(log_text)
                transport = _missing_client_library(log_text, exception)
                crashed = f"celery beat exited {exit_status} after {elapsed:.2f} s: {exception}"
                if transport:
                    result.fail_with_error(f"{crashed} (kombu's {transport} transport cannot import its client "
                                           f"library: install it in the target's environment, e.g. "
                                           f"pip install 'kombu[{transport}]')", environment=True)
                    return
                detail = (f"{crashed} (beat's output is in the evidence: fix what it names, then run "
                          f"`celery -A {cfg.celery_app} beat` by hand to confirm it starts)")
            elif missing:
                detail = f"never sent within {cfg.timeout:.0f} s: {', '.join(missing)} (beat's log tail is in the evidence)"
            elif broken:
                detail = "beat could not publish: " + "; ".join(f"{n}: {failed[n]}" for n in broken)
            result.check("beat sent every entry", not missing and not broken, detail)

            if not drained_box:
                result.check("messages are in the broker", False, "beat never sent every entry, so the broker was not read")
                return
            step, drained = drained_box[0]
            step.command = f"kombu drain {mask(broker)} queues {', '.join(queues)}"
            result.add_step(step)
            if drained is None or not drained.get("ok"):
                result.check("messages are in the broker", False,
                             f"could not read the broker: {(drained or {}).get('error', 'probe failed')}")
                return
            foreign = drained.get("foreign") or []
            if foreign:
                result.add_table("Foreign messages left in the broker", ["Queue", "Task", "Id", "Origin", "Why foreign"],
                                 _message_rows(foreign),
                                 summary=f"{len(foreign)} messages not sent by this beat ({drained.get('origin')}): "
                                         "not counted, not consumed")
            seen = Counter((m["queue"], m["task"]) for m in drained["messages"])
            absent = []
            for name, e in sorted(entries.items()):
                for queue in e["queues"]:
                    if seen[(queue, e["task"])]:
                        seen[(queue, e["task"])] -= 1
                    else:
                        absent.append(f"{name} (task {e['task']}) in queue {queue}")
            routed = len(entries) - len(unrouted)
            result.headline = (f"{len(entries)} entries sent by a real celery beat in {elapsed:.1f} s; "
                               f"{len(drained['messages'])} messages in queues {', '.join(queues) or '(none)'}")
            left = (f"; {len(foreign)} foreign messages seen and left in place (not counted)" if foreign else "")
            result.check("messages are in the broker", not absent,
                         (f"{len(drained['messages'])} messages from this beat ({drained.get('origin')}): every routed "
                          f"entry's task ({routed} of {len(entries)}) in its queue, read in {step.duration_s:.2f} s"
                          if not absent else
                          f"no message from this beat ({drained.get('origin')}) for {'; '.join(absent)}") + left)

    @staticmethod
    def _beat_argv(cfg: BeatConfig, broker: str, folder: str) -> list[str]:
        """The arguments of ``celery`` that run beat on the store ``<folder>/beat-schedule``, writing
        its pid to ``<folder>/beat.pid``."""
        # the seeded store is a PersistentScheduler file: use that scheduler even if the app configures
        # another one (e.g. a database scheduler), or the seeding would be ignored
        # beat never needs the app's result backend (it only publishes); a database backend would be
        # set up (tables created) on the first send, so it is replaced by Celery's disabled backend
        return ["-A", cfg.celery_app, "-b", broker, "--result-backend", _NO_RESULTS, "beat",
                "-S", "celery.beat:PersistentScheduler", "-s", str(Path(folder) / _STORE), "-l", "INFO",
                "--pidfile", str(Path(folder) / _PIDFILE)]

    @staticmethod
    @contextlib.contextmanager
    def _beat_process(target, db, role, argv: list[str]) -> Iterator[TargetProcess]:
        """Start ``probes/beat_probe.py`` with beat's ``argv`` (as the runtime ``role`` on ``db``,
        like the app): it imports Celery and the app as ``celery <argv>`` would, then waits; killed
        on exit unless :meth:`_run_beat` already stopped it."""
        env, _ = target.environment(db, role=role, runtime=True)
        beat = TargetProcess.probe(target.python, "beat_probe.py", env=env, cwd=target.cwd, request={"argv": argv})
        try:
            yield beat
        finally:
            beat.kill()
            beat.release()

    @staticmethod
    def _run_beat(beat: TargetProcess, cfg: BeatConfig, folder: str, names: set[str], when_sent, cancelled):
        """Let the started ``beat`` process run beat until every entry in ``names`` was logged as
        sent (or the timeout), call ``when_sent(pid)`` while beat still runs, then stop it with
        SIGTERM. Returns the entries logged as sent, beat's output, the seconds it ran, its exit
        status and whether zerodrift stopped it (False: beat exited on its own)."""
        pidfile = Path(folder) / _PIDFILE  # where _beat_argv told beat to write its pid
        sent: dict[str, str] = {}
        done = threading.Event()

        def read(line: str) -> None:
            m = _SENDING.search(line)
            if m:
                sent[m.group("name")] = m.group("task")
                if names <= set(sent):
                    done.set()

        beat.answer(cfg.timeout)  # its start-up, done while the store was seeded (None: it died; its log says why)
        beat.on_line = read
        started = time.perf_counter()
        try:
            beat.send({"run": True})
        except OSError:  # it died while importing: its output says why, and the loop below sees it ended
            pass
        try:
            deadline = time.perf_counter() + cfg.timeout
            while (not done.wait(0.1) and not beat.output_closed and time.perf_counter() < deadline
                   and not cancelled.is_set()):
                pass
            elapsed = time.perf_counter() - started
            if names <= set(sent):
                # the pid beat writes itself: the interpreter may be a wrapper that starts beat as a child
                try:
                    beat_pid = int(pidfile.read_text().strip())
                except (OSError, ValueError):
                    beat_pid = beat.pid
                when_sent(beat_pid)
        finally:
            # beat that closed its output exited (or is exiting) on its own; else zerodrift stops it
            stopped = not beat.output_closed
            exit_status = beat.terminate(10) if stopped else beat.release(5)
        lines = [beat.output]
        # the exit status is the one observed; beat runs until zerodrift stops it, which the log says
        if stopped:
            lines.append(f"[zerodrift] beat stopped with SIGTERM after {elapsed:.1f} s "
                         f"({'every entry logged' if names <= set(sent) else 'not every entry logged'} 'Sending due task')\n")
        return sent, "".join(lines), elapsed, exit_status, stopped


@hookimpl
def zerodrift_gates():
    return [BeatGate]
