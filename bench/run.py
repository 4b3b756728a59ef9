"""Benchmark: zerodrift's overhead over the work a careful person would do by hand.

One invocation measures, on the same machine and in the same run, so that every ratio
compares figures taken under the same conditions::

    python bench/run.py [--admin-url URL] [--repeat N] [--quick] [--gates ZG-0,ZG-1,…] [--json out.json] [--profile]

1. **Floor** (example backend, ``examples/attribution_backend``): the bare operations of
   the same proof done by hand, on the same server: ``python -m alembic upgrade head`` on
   a fresh database; the existing path (upgrade to ``0004_merge_branches``, apply
   ``seed.sql`` with psycopg, upgrade to head); one ``REFRESH MATERIALIZED VIEW
   CONCURRENTLY`` per matview; creating and dropping the two databases
   (``zdbench_<hex>``). Measured on the external server and on an embedded server the
   benchmark starts itself (zerodrift's embedded server runs on tmpfs with fsync off, so
   it is compared with a floor on the same kind of server).
2. **zerodrift run** of all gates on a copy of the example in a temporary git repository
   (clean tree for ZG-0): in-process through :func:`zerodrift.runner.run` (wall time,
   this process's CPU, per-gate and per-phase times), then the proof pack rendered
   unsigned and signed (Ed25519) with :func:`zerodrift.ledger.render.write_proof_pack`,
   and the ``zerodrift run`` CLI as a subprocess (interpreter start included). Both
   embedded (no URL) and external (``--admin-url``).
   The per-gate figures include ZG-9's downgrade walk (its cost grows with the number of
   revisions: three alembic operations and three catalog snapshots each; its snapshot time
   is shown beside it) — it has no floor counterpart, being proof a hand-run upgrade lacks.
3. **Scale**: synthetic backends from ``bench/generate.py`` (long linear history, wide
   schema) at several sizes: the floor of ZG-1/ZG-2's work (fresh upgrade + existing
   path), ``take_snapshot`` / ``diff_snapshots`` / canonical JSON / fingerprint times
   with object counts, and a whole ``zerodrift run`` of ZG-0, ZG-1, ZG-2, with the
   log-log slope of time against objects (1.0 = linear).

Machines are noisy: every figure is the median of ``--repeat`` repetitions with min and
max; the first run of each kind is a warm-up and is reported apart. Output: tables on
stdout, everything in JSON (default ``bench/results.json``, git-ignored).
``--profile`` (needs ``pip install pyinstrument``; not a zerodrift dependency) profiles
one whole in-process run of the example (every gate thread, plus the main thread) and,
with the scale part, one run of the largest size; the text profiles land beside the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

import generate  # noqa: E402  (bench/generate.py)
from zerodrift.urls import mask, with_parts  # noqa: E402

EXAMPLE = ROOT / "examples" / "attribution_backend"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
EXAMPLE_FROM_REVISION = "0004_merge_branches"
EXAMPLE_ROLES = {"app_user": True, "app_rw": False, "app_ro": False}  # name -> LOGIN
SCALE_GATES = ["ZG-0", "ZG-1", "ZG-2"]
#: Which floor step does the same work as a gate (shown beside the per-gate figures).
GATE_FLOOR = {
    "ZG-1": ["upgrade head (fresh)"],
    "ZG-2": ["upgrade to from_revision", "seed", "upgrade head (existing)"],
    "ZG-4": ["refresh concurrently"],
}


# --------------------------------------------------------------------------- small helpers


def stats(values: list[float | None]) -> dict[str, Any]:
    """Median, min, max and count of the values that are not None."""
    xs = [v for v in values if v is not None]
    if not xs:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@contextmanager
def env_without(*names: str) -> Iterator[None]:
    """Temporarily remove environment variables (ZERODRIFT_ADMIN_URL for embedded runs)."""
    saved = {n: os.environ.pop(n) for n in names if n in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def db_url(admin_url: str, name: str) -> str:
    return with_parts(admin_url, dbname=name)


def git_repo_with(backend_src: Path | None, root: Path, writer: Callable[[Path], Any] | None = None) -> Path:
    """A new git repository at ``root`` holding the backend in ``root/backend``, committed
    (the same layout as tests/backends.py: make_backend), so ZG-0 sees a clean tree."""
    root.mkdir(parents=True)
    backend = root / "backend"
    if backend_src is not None:
        shutil.copytree(backend_src, backend, ignore=shutil.ignore_patterns("__pycache__", "proofs"))
    if writer is not None:
        writer(backend)
    (root / ".gitignore").write_text("__pycache__/\nproofs/\n")
    git = ["git", "-C", str(root), "-c", "user.name=zerodrift bench", "-c", "user.email=bench@zerodrift.invalid"]
    subprocess.run(git + ["init", "-q", "-b", "main"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "benchmark backend"], check=True)
    return backend


class Roles:
    """Roles the floor needs, created when missing and dropped at the end only if we made them."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def ensure(self, roles: dict[str, bool]) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name, login in roles.items():
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                    continue
                conn.execute(sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(name), sql.SQL("LOGIN" if login else "NOLOGIN")))
                self.created.append(name)

    def drop_created(self) -> None:
        if not self.created:
            return
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in reversed(self.created):
                try:
                    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
                except psycopg.Error as exc:  # a zerodrift run may still hold grants somewhere
                    log(f"could not drop role {name}: {exc}")
        self.created.clear()


# --------------------------------------------------------------------------- floor


class Floor:
    """The bare operations of the proof, as separate timed steps on one server."""

    def __init__(self, admin_url: str, backend: Path, from_revision: str, seed_sql: str, matviews: list[str]) -> None:
        self.admin_url = admin_url
        self.backend = backend
        self.from_revision = from_revision
        self.seed_sql = seed_sql
        self.matviews = matviews

    def alembic(self, dbname: str, revision: str) -> float:
        env = dict(os.environ, MIGRATION_DATABASE_URL=db_url(self.admin_url, dbname), PYTHONPATH=".")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "alembic", "upgrade", revision], cwd=self.backend, env=env,
                              capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"alembic upgrade {revision} failed on {dbname}:\n{proc.stderr[-3000:]}")
        return elapsed

    def once(self, inspect: Callable[[str, str], None] | None = None) -> dict[str, float]:
        """One repetition; ``inspect(fresh_url, existing_url)`` runs (untimed) before the drop."""
        t: dict[str, float] = {}
        names: list[str] = []
        try:
            t0 = time.perf_counter()
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                for _ in range(2):
                    name = f"zdbench_{secrets.token_hex(5)}"
                    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(name)))
                    names.append(name)
            t["create databases"] = time.perf_counter() - t0
            fresh, existing = names
            t["upgrade head (fresh)"] = self.alembic(fresh, "head")
            t["upgrade to from_revision"] = self.alembic(existing, self.from_revision)
            t0 = time.perf_counter()
            with psycopg.connect(db_url(self.admin_url, existing)) as conn:
                conn.execute(self.seed_sql)
            t["seed"] = time.perf_counter() - t0
            t["upgrade head (existing)"] = self.alembic(existing, "head")
            if self.matviews:
                t0 = time.perf_counter()
                with psycopg.connect(db_url(self.admin_url, fresh), autocommit=True) as conn:
                    for mv in self.matviews:
                        conn.execute(sql.SQL("REFRESH MATERIALIZED VIEW CONCURRENTLY {}").format(sql.Identifier(mv)))
                t["refresh concurrently"] = time.perf_counter() - t0
            if inspect is not None:
                inspect(db_url(self.admin_url, fresh), db_url(self.admin_url, existing))
        finally:
            t0 = time.perf_counter()
            if names:
                with psycopg.connect(self.admin_url, autocommit=True) as conn:
                    for name in names:
                        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            t["drop databases"] = time.perf_counter() - t0
        t["total"] = sum(v for k, v in t.items())
        return t


# --------------------------------------------------------------------------- zerodrift runs


def signing_key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def _describe_cmd(args: Any) -> str:
    """Short kind of a subprocess: ``python alembic_job.py``, ``python -m celery``, ``postgres``, ``git``."""
    if isinstance(args, (str, bytes)):
        return Path(str(args).split()[0]).name
    parts = [str(a) for a in args]
    name = Path(parts[0]).name
    if name.startswith("python") and len(parts) > 1:
        nxt = parts[1]
        if nxt in ("-m", "-c") and len(parts) > 2:
            return f"python {nxt} {parts[2] if nxt == '-m' else '...'}"
        return f"python {Path(nxt).name}"
    return name


@contextmanager
def subprocess_log(records: list[dict[str, Any]]) -> Iterator[None]:
    """Record every subprocess started meanwhile (kind, start, end) by swapping subprocess.Popen."""
    original = subprocess.Popen

    class LoggedPopen(original):  # type: ignore[misc, valid-type]
        def __init__(self, args, *a, **kw):
            started = time.perf_counter()
            super().__init__(args, *a, **kw)
            self._bench_rec = {"cmd": _describe_cmd(args), "start": started, "end": None}
            records.append(self._bench_rec)

        def wait(self, timeout=None):
            rc = super().wait(timeout)
            if self._bench_rec["end"] is None:
                self._bench_rec["end"] = time.perf_counter()
            return rc

    subprocess.Popen = LoggedPopen  # type: ignore[misc]
    try:
        yield
    finally:
        subprocess.Popen = original  # type: ignore[misc]


def zd_run(backend: Path, admin_url: str | None, out: Path, *, gates: list[str] | None = None,
           key=None, render: bool = True) -> dict[str, Any]:
    """One in-process ``zerodrift.runner.run``, then the proof pack unsigned and signed.

    Also records each gate's start and end (through the progress callback) and every
    subprocess the run starts (kind and lifetime), relative to the start of the run.
    """
    from zerodrift.runner import RunOptions, run

    options = RunOptions(target=backend, admin_url=admin_url, output=out / "{run_id}", gates=list(gates or []))
    rec: dict[str, Any] = {}
    marks: dict[str, list[float]] = {}
    procs: list[dict[str, Any]] = []

    def progress(message: str, result) -> None:
        now = time.perf_counter()
        if result is not None:
            marks.setdefault(result.gate_id, [None, None])[1] = now
        elif message.endswith(": running"):
            marks.setdefault(message.split()[0], [None, None])[0] = now

    with env_without(*(["ZERODRIFT_ADMIN_URL"] if admin_url is None else [])), subprocess_log(procs):
        ru0, c0, t0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        report = run(options, progress=progress)
        wall = time.perf_counter() - t0
        ru1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    end = t0 + wall
    rec["timeline"] = {g: [(a - t0) if a else None, (b - t0) if b else None] for g, (a, b) in marks.items()}
    rec["subprocesses"] = [{"cmd": p["cmd"], "start": p["start"] - t0, "duration": (p["end"] or end) - p["start"]}
                           for p in procs]
    rec["wall_s"] = wall
    rec["cpu_self_s"] = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    rec["cpu_children_s"] = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
    rec["exit_code"] = report.exit_code
    rec["server"] = asdict(report.server)
    rec["phases"] = dict(report.phases)
    rec["phases"]["setup (config, plugins, report)"] = max(0.0, wall - sum(report.phases.values()))
    rec["gates"] = {}
    for r in report.results:
        snap = sum(s.duration_s for s in r.evidence if s.title.startswith("catalog snapshot"))
        alembic = sum(s.duration_s for s in r.evidence if s.command.startswith("alembic"))
        rec["gates"][r.gate_id] = {"duration_s": r.duration_s, "status": r.status.value,
                                   "snapshot_steps_s": snap, "alembic_ops_s": alembic,
                                   "steps": [[st.title[:80], st.duration_s] for st in r.evidence],
                                   "error": (r.error or "")[:500] if hasattr(r, "error") else ""}
    if render:
        from zerodrift.ledger.render import write_proof_pack

        base = report.output_dir
        for label, k in (("render unsigned", None), ("render signed", key)):
            if label == "render signed" and k is None:
                continue
            report.output_dir = base.with_name(base.name + ("-signed" if k is not None else "-unsigned"))
            t0 = time.perf_counter()
            try:
                write_proof_pack(report, signing_key=k)
                rec[label + "_s"] = time.perf_counter() - t0
            except Exception as exc:  # rendering is someone else's code: report, don't stop
                rec[label + "_s"] = None
                rec[label + "_error"] = f"{type(exc).__name__}: {exc}"
        shutil.rmtree(base.parent, ignore_errors=True)
    return rec


def zd_cli(backend: Path, admin_url: str | None, out: Path, gates: list[str] | None = None) -> dict[str, Any]:
    """``zerodrift run`` as a subprocess, the way a user or CI calls it."""
    script = Path(sys.executable).with_name("zerodrift")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "zerodrift.cli"]
    cmd += ["run", str(backend), "--out", str(out / "cli-{run_id}")]
    for g in gates or []:
        cmd += ["--gate", g]
    env = dict(os.environ, NO_COLOR="1")
    if admin_url is None:
        env.pop("ZERODRIFT_ADMIN_URL", None)
    else:
        cmd += ["--admin-url", admin_url]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    rec = {"wall_s": wall, "exit_code": proc.returncode}
    if proc.returncode != 0:
        rec["stderr_tail"] = proc.stderr[-1500:]
    return rec


# --------------------------------------------------------------------------- profiling


@contextmanager
def profiling(sessions: list, main_sessions: list) -> Iterator[None]:
    """Profile the main thread and every thread zerodrift's executors start (pyinstrument
    profiles one thread per Profiler): zerodrift's ``ThreadPoolExecutor`` names are patched
    with one that wraps each task in its own Profiler."""
    from concurrent.futures import ThreadPoolExecutor

    from pyinstrument import Profiler

    from zerodrift.plugins import installed_gates

    installed_gates()  # import the gate modules, so their ThreadPoolExecutor names exist
    lock = threading.Lock()

    class ProfilingExecutor(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            def wrapped(*a, **kw):
                prof = Profiler(interval=0.001, async_mode="disabled")
                prof.start()
                try:
                    return fn(*a, **kw)
                finally:
                    prof.stop()
                    with lock:
                        sessions.append(prof.last_session)
            return super().submit(wrapped, *args, **kwargs)

    patched = []
    for name, mod in list(sys.modules.items()):
        if name.startswith("zerodrift") and getattr(mod, "ThreadPoolExecutor", None) is ThreadPoolExecutor:
            setattr(mod, "ThreadPoolExecutor", ProfilingExecutor)
            patched.append(mod)
    main = Profiler(interval=0.001, async_mode="disabled")
    main.start()
    try:
        yield
    finally:
        main.stop()
        main_sessions.append(main.last_session)
        for mod in patched:
            setattr(mod, "ThreadPoolExecutor", ThreadPoolExecutor)


WAIT_THREADS = "waiting for other threads"
WAIT_SUBPROCESS = "waiting for a subprocess"
WAIT_POSTGRES = "waiting for PostgreSQL"
SLEEP = "sleeping"
PYTHON = "Python CPU (or a `with lock:` wait)"


def _classify(stack: list) -> str:
    """What the self time at the top of ``stack`` (frames, outermost first) is spent on."""
    leaf = stack[-1]
    paths = [(fr.file_path or "") for fr in stack]
    name = leaf.function or ""
    if name in ("lock.acquire", "Lock.acquire", "RLock.acquire") or paths[-1].endswith(("threading.py", "concurrent/futures/_base.py")):
        return WAIT_THREADS
    if name in ("sleep", "time.sleep"):
        return SLEEP
    if any(p.endswith("subprocess.py") for p in paths[-6:]) and name in (
            "waitpid", "poll.poll", "select", "epoll.poll", "read", "_communicate", "_try_wait", "_wait", "wait"):
        return WAIT_SUBPROCESS
    if any("/psycopg/" in p for p in paths[-4:]) and name in ("wait", "wait_c", "wait_select", "wait_epoll", "poll",
                                                               "select", "epoll.poll", "poll.poll", "select.select"):
        return WAIT_POSTGRES
    return PYTHON


def _nearest_own(stack: list) -> str:
    for fr in reversed(stack):
        path = fr.file_path or ""
        if "/zerodrift/" in path:
            return f"{fr.function} ({fr.file_path_short}:{fr.line_no})"
    return "-"


def hot_spots(sessions: list, top: int = 30) -> dict[str, Any]:
    """Self time per (category, function, nearest zerodrift caller) over all sessions.

    pyinstrument puts a frame's own time into synthetic ``[self]`` children; only those
    are counted, under the frame that owns them. Time spent waiting for other threads
    (a pool waiting for its tasks, one gate waiting for another's artifact) is counted
    in ``categories`` but left out of the ranking, since the thread it waits for is
    profiled too.
    """
    agg: dict[tuple[str, str, str, str], float] = {}
    cats: dict[str, float] = {}

    def walk(frame, stack: list) -> None:
        if frame.is_synthetic:
            if frame.function == "[self]" and stack:
                cat = _classify(stack)
                owner = stack[-1]
                where = f"{owner.file_path_short}:{owner.line_no}"
                key = (cat, owner.function or "?", where, _nearest_own(stack))
                agg[key] = agg.get(key, 0.0) + frame.time
                cats[cat] = cats.get(cat, 0.0) + frame.time
            return
        stack.append(frame)
        for child in frame.children:
            walk(child, stack)
        stack.pop()

    for s in sessions:
        root = s.root_frame()
        if root is not None:
            walk(root, [])
    ranked = sorted(((k, v) for k, v in agg.items() if k[0] != WAIT_THREADS), key=lambda kv: -kv[1])[:top]
    total = sum(v for c, v in cats.items() if c != WAIT_THREADS)
    return {"categories": dict(sorted(cats.items(), key=lambda kv: -kv[1])),
            "ranked": [{"category": c, "function": fn, "where": w, "zerodrift_caller": z, "self_s": t,
                        "share": t / total if total else None} for (c, fn, w, z), t in ranked]}


def inclusive(sessions: list, prefix: str = "zerodrift", top: int = 30) -> list[dict[str, Any]]:
    """Inclusive time per function of ``prefix``'s files (counted once per stack)."""
    agg: dict[tuple[str, str], float] = {}

    def walk(frame, on_stack: frozenset) -> None:
        path = (frame.file_path or "")
        key = (frame.function or "?", frame.file_path_short or path)
        mine = f"/{prefix}/" in path and "/bench/" not in path
        if mine and key not in on_stack:
            agg[key] = agg.get(key, 0.0) + frame.time
            on_stack = on_stack | {key}
        for child in frame.children:
            walk(child, on_stack)

    for s in sessions:
        root = s.root_frame()
        if root is not None:
            walk(root, frozenset())
    rows = sorted(agg.items(), key=lambda kv: -kv[1])[:top]
    return [{"function": f, "where": p, "inclusive_s": t} for (f, p), t in rows]


def write_profile(path: Path, sessions: list, main_sessions: list, title: str) -> dict[str, Any]:
    from pyinstrument.renderers import ConsoleRenderer
    from pyinstrument.session import Session

    workers = sessions[0] if sessions else None
    for s in sessions[1:]:
        workers = Session.combine(workers, s)
    tree = ConsoleRenderer(unicode=False, color=False, time="seconds", processor_options={"filter_threshold": 0.005})
    flat = ConsoleRenderer(unicode=False, color=False, flat=True, time="seconds")
    parts = [f"# {title}\n", "## main thread (tree)\n"]
    for s in main_sessions:
        parts.append(tree.render(s))
    if workers is not None:
        parts += ["## gate threads, combined (tree; thread-seconds)\n", tree.render(workers),
                  "## gate threads, combined (flat, self time)\n", flat.render(workers)]
    path.write_text("\n".join(parts))
    everything = list(sessions) + list(main_sessions)
    return {"file": str(path), "hot_spots": hot_spots(everything),
            "zerodrift_inclusive": inclusive(everything),
            "gate_threads_s": sum(s.duration for s in sessions), "main_thread_s": sum(s.duration for s in main_sessions)}


# --------------------------------------------------------------------------- the parts


def calibrate(repeat: int) -> dict[str, Any]:
    """What one interpreter start costs here: the unit of zerodrift's per-process overhead."""
    cmds = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python + import alembic, sqlalchemy, psycopg": [sys.executable, "-c", "import alembic.command, sqlalchemy, psycopg"],
        "python + import the example's Celery app": [sys.executable, "-c", "import app.celery_app, app.tasks"],
        "zerodrift --version (CLI start)": [str(Path(sys.executable).with_name("zerodrift")), "--version"],
    }
    out = {}
    for label, cmd in cmds.items():
        if not Path(cmd[0]).is_file():
            continue
        times = []
        for _ in range(max(3, repeat)):
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, cwd=EXAMPLE, env=dict(os.environ, PYTHONPATH="."))
            times.append(time.perf_counter() - t0)
        out[label] = stats(times)
    return out


def example_part(args, results: dict[str, Any], tmp: Path, key) -> None:
    from zerodrift.server.embedded import EmbeddedServer

    log("example backend: copying into a temporary git repository")
    backend = git_repo_with(EXAMPLE, tmp / "example")
    registry = [line.strip().strip('",') for line in (EXAMPLE / "app" / "matview_registry.py").read_text().splitlines()
                if line.strip().startswith('"mv_')]
    seed = (EXAMPLE / "seed.sql").read_text()
    servers: dict[str, str | None] = {"external": args.admin_url, "embedded": None}
    part: dict[str, Any] = {"backend": str(EXAMPLE.relative_to(ROOT)), "matviews": registry, "repeat": args.repeat,
                            "gates": args.gates or "all"}
    results["example"] = part
    log("calibration: interpreter starts")
    part["calibration"] = calibrate(args.repeat)

    floor_server = EmbeddedServer()
    floor_server.start()
    roles = {"external": Roles(args.admin_url), "embedded": Roles(floor_server.admin_url)}
    floor_urls = {"external": args.admin_url, "embedded": floor_server.admin_url}
    try:
        for mode in servers:
            roles[mode].ensure(EXAMPLE_ROLES)
        floors = {m: Floor(floor_urls[m], backend, EXAMPLE_FROM_REVISION, seed, registry) for m in servers}
        samples: dict[str, dict[str, list]] = {m: {"floor": [], "run": [], "cli": []} for m in servers}
        warm: dict[str, Any] = {}
        for mode, url in servers.items():
            log(f"warm-up ({mode}): floor, in-process run, CLI run")
            warm[mode] = {"floor_s": floors[mode].once()["total"],
                          "run": zd_run(backend, url, tmp / "out", key=key, gates=args.gates),
                          "cli": zd_cli(backend, url, tmp / "out-cli", gates=args.gates)}
        part["warm_up"] = warm
        for i in range(args.repeat):
            for mode, url in servers.items():  # interleaved, so drift hits both alike
                log(f"repetition {i + 1}/{args.repeat} ({mode}): floor, run, CLI")
                samples[mode]["floor"].append(floors[mode].once())
                samples[mode]["run"].append(zd_run(backend, url, tmp / "out", key=key, gates=args.gates))
                samples[mode]["cli"].append(zd_cli(backend, url, tmp / "out-cli", gates=args.gates))
        part["samples"] = samples
        part["summary"] = {m: summarize_example(samples[m]) for m in servers}
        part["server_versions"] = {m: (samples[m]["run"][0]["server"] if samples[m]["run"] else {}) for m in servers}
        if args.profile:
            log("profiling one in-process run (embedded) with pyinstrument")
            sessions: list = []
            main_sessions: list = []
            with profiling(sessions, main_sessions):
                rec = zd_run(backend, None, tmp / "out-prof", key=key)
            part["profile"] = write_profile(args.json.parent / "profile-example.txt", sessions, main_sessions,
                                            "zerodrift run of the example backend, embedded server, all gates + signed proof pack")
            part["profile"]["run_wall_s_under_profiler"] = rec["wall_s"]
    finally:
        for mode in servers:
            roles[mode].drop_created()
        floor_server.stop()


def summarize_example(s: dict[str, list]) -> dict[str, Any]:
    floor_steps = list(dict.fromkeys(k for f in s["floor"] for k in f))
    out: dict[str, Any] = {"floor": {k: stats([f.get(k) for f in s["floor"]]) for k in floor_steps}}
    runs = s["run"]
    out["run_wall"] = stats([r["wall_s"] for r in runs])
    out["run_cpu_self"] = stats([r["cpu_self_s"] for r in runs])
    out["run_cpu_children"] = stats([r["cpu_children_s"] for r in runs])
    out["cli_wall"] = stats([c["wall_s"] for c in s["cli"]])
    out["exit_codes"] = {"run": sorted({r["exit_code"] for r in runs}), "cli": sorted({c["exit_code"] for c in s["cli"]})}
    phases = sorted({p for r in runs for p in r["phases"]}, key=lambda p: list(runs[0]["phases"]).index(p)
                    if p in runs[0]["phases"] else 99)
    out["phases"] = {p: stats([r["phases"].get(p) for r in runs]) for p in phases}
    gates = list(runs[0]["gates"]) if runs else []
    out["gates"] = {g: {"duration": stats([r["gates"][g]["duration_s"] for r in runs if g in r["gates"]]),
                        "snapshot_steps": stats([r["gates"][g]["snapshot_steps_s"] for r in runs if g in r["gates"]]),
                        "status": sorted({r["gates"][g]["status"] for r in runs if g in r["gates"]})} for g in gates}
    for label in ("render unsigned", "render signed"):
        out[label] = stats([r.get(label + "_s") for r in runs])
        errors = sorted({r[label + "_error"] for r in runs if r.get(label + "_error")})
        if errors:
            out[label + " errors"] = errors
    fl = out["floor"]["total"]["median"]
    out["ratio_run_over_floor"] = ratio(out["run_wall"]["median"], fl)
    out["ratio_cli_over_floor"] = ratio(out["cli_wall"]["median"], fl)
    out["paired_ratio_run_over_floor"] = stats([r["wall_s"] / f["total"] for r, f in zip(runs, s["floor"])])
    out["paired_ratio_cli_over_floor"] = stats([c["wall_s"] / f["total"] for c, f in zip(s["cli"], s["floor"])])
    gates_sum = stats([sum(g["duration_s"] for g in r["gates"].values()) for r in runs])
    out["sum_of_gate_durations"] = gates_sum
    out["subprocesses"] = summarize_subprocesses(runs)
    out["steps"] = summarize_steps(runs)
    out["timeline"] = median_timeline(runs)
    return out


def median_timeline(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per gate, the median start and end (seconds from the start of the run)."""
    out = {}
    for g in (runs[0]["timeline"] if runs else {}):
        starts = [r["timeline"][g][0] for r in runs if g in r["timeline"] and r["timeline"][g][0] is not None]
        ends = [r["timeline"][g][1] for r in runs if g in r["timeline"] and r["timeline"][g][1] is not None]
        out[g] = {"start": statistics.median(starts or [0.0]), "end": statistics.median(ends or [0.0])}
    return out


def summarize_steps(runs: list[dict[str, Any]]) -> dict[str, list[list]]:
    """Per gate, the median duration of each evidence step (by title, in first-run order)."""
    out: dict[str, list[list]] = {}
    for g in (runs[0]["gates"] if runs else {}):
        titles = list(dict.fromkeys(t for r in runs for t, _ in r["gates"].get(g, {}).get("steps", [])))
        out[g] = [[t, statistics.median([d for r in runs for tt, d in r["gates"].get(g, {}).get("steps", []) if tt == t])]
                  for t in titles]
    return out


def summarize_subprocesses(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per kind of subprocess: median count and median summed lifetime per run."""
    kinds = sorted({p["cmd"] for r in runs for p in r.get("subprocesses", [])})
    out = {"total_count": stats([len(r.get("subprocesses", [])) for r in runs])}
    out["kinds"] = {k: {"count": stats([sum(1 for p in r["subprocesses"] if p["cmd"] == k) for r in runs]),
                        "seconds": stats([sum(p["duration"] for p in r["subprocesses"] if p["cmd"] == k) for r in runs])}
                    for k in kinds}
    return out


def scale_part(args, results: dict[str, Any], tmp: Path) -> None:
    from zerodrift.catalog.diff import diff_snapshots
    from zerodrift.catalog.snapshot import take_snapshot

    full = dict(generate.FULL) if not args.quick else {"revisions": 40, "tables": 200, "matviews": 8}
    if args.full_tables:
        full["tables"] = args.full_tables
    if args.full_revisions:
        full["revisions"] = args.full_revisions
    admin = args.admin_url
    part: dict[str, Any] = {"full": full, "sizes": [], "repeat": args.scale_repeat, "server": "external", "gates": SCALE_GATES}
    results["scale"] = part
    roles = Roles(admin)
    try:
        roles.ensure({r: False for r in generate.ROLES})
        for frac in args.sizes:
            size = {k: max(1, round(v * frac)) for k, v in full.items()}
            size["revisions"] = max(2, size["revisions"])
            info = {}
            backend = git_repo_with(None, tmp / f"scale-{frac}", lambda b: info.update(asdict(generate.generate(b, **size))))
            log(f"scale {frac:g}: {size['revisions']} revisions, {size['tables']} tables, {size['matviews']} matviews")
            floor = Floor(admin, backend, info["from_revision"], (backend / "seed.sql").read_text(), [])
            rec: dict[str, Any] = {"fraction": frac, "generated": {k: v for k, v in info.items() if k != "path"},
                                   "floor": [], "snapshot": [], "run": []}
            part["sizes"].append(rec)

            def inspect(fresh_url: str, existing_url: str) -> None:
                snaps, times = [], []
                for url in (fresh_url, existing_url):
                    with psycopg.connect(url) as conn:
                        t0 = time.perf_counter()
                        snaps.append(take_snapshot(conn))
                        times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                rows = diff_snapshots(snaps[0], snaps[1])
                t_diff = time.perf_counter() - t0
                t0 = time.perf_counter()
                blob = snaps[0].to_canonical_json()
                t_json = time.perf_counter() - t0
                t0 = time.perf_counter()
                _ = snaps[0].fingerprint
                t_fp = time.perf_counter() - t0
                counts = snaps[0].counts()
                rec["snapshot"].append({"take_snapshot_s": times, "diff_s": t_diff, "diff_rows": len(rows),
                                        "canonical_json_s": t_json, "fingerprint_s": t_fp, "json_bytes": len(blob),
                                        "objects": sum(counts.values()), "counts": {k: v for k, v in counts.items() if v}})

            for i in range(args.scale_repeat):
                log(f"scale {frac:g} repetition {i + 1}/{args.scale_repeat}: floor + snapshot/diff, run ZG-0..ZG-2")
                rec["floor"].append(floor.once(inspect))
                rec["run"].append(zd_run(backend, admin, tmp / "out-scale", gates=SCALE_GATES, key=None))
            rec["summary"] = summarize_scale(rec)
        if args.profile and part["sizes"]:
            last = part["sizes"][-1]
            backend = tmp / f"scale-{last['fraction']}" / "backend"
            log("profiling one run of the largest size")
            sessions: list = []
            main_sessions: list = []
            with profiling(sessions, main_sessions):
                prec = zd_run(backend, admin, tmp / "out-prof-scale", gates=SCALE_GATES, key=None)
            title = f"zerodrift run ZG-0..ZG-2 of the synthetic backend, size {last['fraction']:g}, external server"
            part["profile"] = write_profile(args.json.parent / "profile-scale.txt", sessions, main_sessions, title)
            part["profile"]["run_wall_s_under_profiler"] = prec["wall_s"]
    finally:
        roles.drop_created()
    sizes = [s for s in part["sizes"] if s.get("summary")]
    if len(sizes) >= 2:
        a, b = sizes[0]["summary"], sizes[-1]["summary"]
        part["slopes"] = {k: slope(a["objects"], b["objects"], a[k]["median"], b[k]["median"])
                          for k in ("take_snapshot", "diff", "canonical_json", "floor_total", "run_wall", "run_cpu_self")}


def slope(n1: float, n2: float, t1: float | None, t2: float | None) -> float | None:
    """log-log slope of time against size: 1.0 is linear, 2.0 quadratic."""
    if not t1 or not t2 or n1 == n2:
        return None
    return math.log(t2 / t1) / math.log(n2 / n1)


def summarize_scale(rec: dict[str, Any]) -> dict[str, Any]:
    snaps, runs, floors = rec["snapshot"], rec["run"], rec["floor"]
    out: dict[str, Any] = {
        "objects": snaps[0]["objects"] if snaps else 0,
        "counts": snaps[0]["counts"] if snaps else {},
        "json_bytes": snaps[0]["json_bytes"] if snaps else 0,
        "take_snapshot": stats([t for s in snaps for t in s["take_snapshot_s"]]),
        "diff": stats([s["diff_s"] for s in snaps]),
        "diff_rows": sorted({s["diff_rows"] for s in snaps}),
        "canonical_json": stats([s["canonical_json_s"] for s in snaps]),
        "fingerprint": stats([s["fingerprint_s"] for s in snaps]),
        "floor": {k: stats([f.get(k) for f in floors]) for k in (floors[0] if floors else {})},
        "floor_total": stats([f["total"] for f in floors]),
        "run_wall": stats([r["wall_s"] for r in runs]),
        "run_cpu_self": stats([r["cpu_self_s"] for r in runs]),
        "render_unsigned": stats([r.get("render unsigned_s") for r in runs]),
        "exit_codes": sorted({r["exit_code"] for r in runs}),
        "gates": {g: {"duration": stats([r["gates"][g]["duration_s"] for r in runs]),
                      "snapshot_steps": stats([r["gates"][g]["snapshot_steps_s"] for r in runs]),
                      "status": sorted({r["gates"][g]["status"] for r in runs})}
                  for g in (runs[0]["gates"] if runs else {})},
        "phases": {p: stats([r["phases"].get(p) for r in runs]) for p in (runs[0]["phases"] if runs else {})},
        "subprocesses": summarize_subprocesses(runs),
        "steps": summarize_steps(runs),
        "timeline": median_timeline(runs),
    }
    out["ratio_run_over_floor"] = ratio(out["run_wall"]["median"], out["floor_total"]["median"])
    return out


# --------------------------------------------------------------------------- report


def f(x: float | None, unit: str = "s", digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}{unit}" if unit else f"{x:.{digits}f}"


def row(label: str, s: dict[str, Any] | None, extra: str = "", width: int = 40) -> str:
    if not s:
        return f"  {label:<{width}} -"
    return f"  {label:<{width}} {f(s['median']):>9} {f(s['min']):>9} {f(s['max']):>9}  {extra}"


def print_timeline(timeline: dict[str, dict[str, float]], wall: float | None, width: int = 50) -> None:
    """Median start and end of each gate within the run, as a bar."""
    if not timeline or not wall:
        return
    print(f"  gate timeline (median start → end; the run is {wall:.2f}s, one column = {wall / width:.2f}s):")
    for g, t in timeline.items():
        a, b = int(round(t["start"] / wall * width)), int(round(t["end"] / wall * width))
        print(f"    {g:<6} {t['start']:6.2f} → {t['end']:6.2f}  |{' ' * a}{'#' * max(1, b - a)}{' ' * max(0, width - max(b, a + 1))}|")


def print_steps(steps: dict[str, list[list]], limit: int = 6) -> None:
    """The longest evidence steps of each gate (median seconds)."""
    if not steps:
        return
    print(f"  longest evidence steps per gate (median; up to {limit}):")
    for g, items in steps.items():
        top = sorted(items, key=lambda it: -it[1])[:limit]
        if top:
            print(f"    {g}: " + "; ".join(f"{t} {d:.2f}s" for t, d in top))


def print_subprocesses(sub: dict[str, Any]) -> None:
    if not sub or not sub.get("kinds"):
        return
    print(f"  subprocesses per run: {f(sub['total_count']['median'], '', 0)} (median); by kind: count, summed lifetime")
    for k, v in sorted(sub["kinds"].items(), key=lambda kv: -(kv[1]["seconds"]["median"] or 0)):
        print(f"    {k:<38} {f(v['count']['median'], '', 0):>4}  {f(v['seconds']['median']):>9}")


def print_report(results: dict[str, Any]) -> None:
    p = print
    meta = results["meta"]
    p(f"\nzerodrift benchmark — {meta['started']}  host {meta['host']} ({meta['cpus']} CPUs), Python {meta['python']}")
    dirty = " (zerodrift/ had uncommitted changes)" if meta["dirty"] else ""
    p(f"zerodrift {meta['zerodrift_version']} at {meta['commit']}{dirty}; external server {meta['admin_url']}")
    head = f"  {'':<40} {'median':>9} {'min':>9} {'max':>9}"
    ex = results.get("example")
    if ex and ex.get("summary"):
        gates = ex.get("gates", "all")
        p(f"\n== Example backend ({ex['backend']}), {ex['repeat']} repetitions (+1 warm-up each), gates: "
          f"{gates if isinstance(gates, str) else ', '.join(gates)} ==")
        for mode, s in ex["summary"].items():
            ver = ex.get("server_versions", {}).get(mode, {}).get("version", "")
            p(f"\n-- {mode} server {ver} --")
            p(head)
            for step, st in s["floor"].items():
                if step != "total":
                    p(row(f"floor: {step}", st))
            p(row("FLOOR total", s["floor"]["total"]))
            p(row("zerodrift run (in-process, all gates)", s["run_wall"],
                  f"ratio {f(s['ratio_run_over_floor'], 'x', 2)} (paired {f(s['paired_ratio_run_over_floor']['median'], 'x', 2)})"))
            p(row("zerodrift run (CLI subprocess)", s["cli_wall"],
                  f"ratio {f(s['ratio_cli_over_floor'], 'x', 2)} (paired {f(s['paired_ratio_cli_over_floor']['median'], 'x', 2)})"))
            p(row("  CPU of this process during run", s["run_cpu_self"]))
            p(row("  CPU of reaped children during run", s["run_cpu_children"]))
            p(f"  exit codes: run {s['exit_codes']['run']}, CLI {s['exit_codes']['cli']}")
            p("  per phase:")
            for ph, st in s["phases"].items():
                p(row(f"  {ph}", st))
            p("  per gate (gates run 3 at a time; the sum exceeds the 'gates' phase):")
            floor_med = {k: v["median"] for k, v in s["floor"].items()}
            for g, gs in s["gates"].items():
                counterpart = GATE_FLOOR.get(g)
                extra = "/".join(gs["status"])
                if counterpart and all(floor_med.get(c) is not None for c in counterpart):
                    base = sum(floor_med[c] for c in counterpart)
                    extra += f"  vs floor {' + '.join(counterpart)} {f(base)}: {f(ratio(gs['duration']['median'], base), 'x', 2)}"
                elif g not in GATE_FLOOR:
                    extra += "  (no floor counterpart: extra proof)"
                if gs["snapshot_steps"]["median"]:
                    extra += f"; snapshots {f(gs['snapshot_steps']['median'])}"
                p(row(f"  {g}", gs["duration"], extra))
            p(row("  sum of gate durations", s["sum_of_gate_durations"]))
            print_timeline(s["timeline"], s["run_wall"]["median"])
            print_subprocesses(s["subprocesses"])
            print_steps(s["steps"])
            p(row("render proof pack, unsigned", s["render unsigned"]))
            p(row("render proof pack, signed (Ed25519)", s["render signed"]))
            for label in ("render unsigned errors", "render signed errors"):
                for e in s.get(label, []):
                    p(f"  !! {label}: {e[:200]}")
        if ex.get("calibration"):
            p("\n-- one process start, for scale --")
            p(head)
            for label, st in ex["calibration"].items():
                p(row(label, st))
        w = ex.get("warm_up", {})
        if w:
            p("\n  warm-up (first) runs, not in the medians: " + "; ".join(
                f"{m}: floor {f(v['floor_s'])}, run {f(v['run']['wall_s'])}, CLI {f(v['cli']['wall_s'])}" for m, v in w.items()))
    sc = results.get("scale")
    if sc and sc.get("sizes"):
        p(f"\n== Scale: synthetic backends (bench/generate.py), full = {sc['full']}, {sc['repeat']} repetitions, "
          f"external server, gates {', '.join(sc['gates'])} ==")
        p(f"  {'size':<6} {'revs':>5} {'tables':>7} {'objects':>8} {'snap MB':>8} {'snapshot':>9} {'diff':>8} "
          f"{'json':>7} {'fp':>7} {'floor':>8} {'run':>8} {'run/floor':>9} {'run CPU':>8}")
        for s in sc["sizes"]:
            su = s.get("summary")
            if not su:
                continue
            g = s["generated"]
            p(f"  {s['fraction']:<6g} {g['revisions']:>5} {g['tables']:>7} {su['objects']:>8} {su['json_bytes'] / 1e6:>8.1f} "
              f"{f(su['take_snapshot']['median']):>9} {f(su['diff']['median']):>8} {f(su['canonical_json']['median']):>7} "
              f"{f(su['fingerprint']['median']):>7} {f(su['floor_total']['median']):>8} {f(su['run_wall']['median']):>8} "
              f"{f(su['ratio_run_over_floor'], 'x', 2):>9} {f(su['run_cpu_self']['median']):>8}")
        for s in sc["sizes"]:
            su = s.get("summary")
            if not su:
                continue
            p(f"\n  size {s['fraction']:g} ({su['objects']} objects: " + ", ".join(f"{k} {v}" for k, v in su["counts"].items()) + ")")
            p(head)
            for step, st in su["floor"].items():
                p(row(f"floor: {step}", st))
            p(row("take_snapshot (fresh and existing)", su["take_snapshot"]))
            p(row("diff_snapshots (equal snapshots)", su["diff"], f"rows {su['diff_rows']}"))
            p(row("to_canonical_json", su["canonical_json"]))
            p(row("fingerprint", su["fingerprint"]))
            p(row("zerodrift run ZG-0..ZG-2", su["run_wall"], f"ratio {f(su['ratio_run_over_floor'], 'x', 2)}; exit {su['exit_codes']}"))
            for g, gs in su["gates"].items():
                p(row(f"  {g}", gs["duration"], f"{'/'.join(gs['status'])}; snapshot steps {f(gs['snapshot_steps']['median'])}"))
            for ph, st in su["phases"].items():
                p(row(f"  phase: {ph}", st))
            p(row("  render proof pack, unsigned", su["render_unsigned"]))
            print_timeline(su["timeline"], su["run_wall"]["median"])
            print_subprocesses(su["subprocesses"])
            print_steps(su["steps"])
        if sc.get("slopes"):
            p("\n  log-log slope of time vs objects, smallest → largest size (1.0 = linear): "
              + ", ".join(f"{k} {f(v, '', 2)}" for k, v in sc["slopes"].items()))
    for key in ("example", "scale"):
        prof = (results.get(key) or {}).get("profile")
        if prof:
            p(f"\n== Profile ({key}): {prof['file']} ==")
            p(f"  thread-seconds: gate threads {f(prof['gate_threads_s'])}, main thread {f(prof['main_thread_s'])}")
            p("  where the time goes (thread-seconds, all threads): " + ", ".join(
                f"{c} {v:.2f}s" for c, v in prof["hot_spots"]["categories"].items()))
            p("  self time, waits for other threads left out (share of the rest):")
            for h in prof["hot_spots"]["ranked"][:20]:
                p(f"    {h['self_s']:7.3f}s {100 * (h['share'] or 0):5.1f}%  {h['function']} {h['where']}  "
                  f"<- {h['zerodrift_caller']}  [{h['category']}]")
            p("  inclusive time of zerodrift functions:")
            for h in prof["zerodrift_inclusive"][:15]:
                p(f"    {h['inclusive_s']:8.3f}s  {h['function']}  {h['where']}")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-url", default=os.environ.get("ZERODRIFT_ADMIN_URL") or DEFAULT_ADMIN_URL,
                        help=f"external server (env ZERODRIFT_ADMIN_URL; default {DEFAULT_ADMIN_URL})")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions of the example part (default 5; --quick 2)")
    parser.add_argument("--scale-repeat", type=int, default=None, help="repetitions per scale size (default 3; --quick 1)")
    parser.add_argument("--sizes", default=None, help="scale sizes as fractions of full (default 0.25,0.5,1)")
    parser.add_argument("--full-tables", type=int, default=None, help="tables of the full size (default 2000; --quick 200)")
    parser.add_argument("--full-revisions", type=int, default=None, help="revisions of the full size (default 300; --quick 40)")
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer repetitions, smaller synthetic backends")
    parser.add_argument("--gates", type=lambda v: [g.strip() for g in v.split(",") if g.strip()], default=None,
                        help="the example's runs select only these gates, comma-separated (e.g. ZG-0,ZG-1,ZG-2,ZG-3,ZG-4: "
                             "the gates with a floor counterpart); default every installed gate")
    parser.add_argument("--skip-example", action="store_true", help="only the scale part")
    parser.add_argument("--skip-scale", action="store_true", help="only the example part")
    parser.add_argument("--profile", action="store_true", help="profile one run with pyinstrument (pip install pyinstrument)")
    parser.add_argument("--json", type=Path, default=HERE / "results.json", help="where the JSON goes (default bench/results.json)")
    parser.add_argument("--show", type=Path, metavar="JSON", help="only print the tables of an earlier run's JSON")
    args = parser.parse_args(argv)
    if args.show:
        print_report(json.loads(args.show.read_text()))
        return 0
    args.repeat = args.repeat if args.repeat is not None else (2 if args.quick else 5)
    args.scale_repeat = args.scale_repeat if args.scale_repeat is not None else (1 if args.quick else 3)
    args.sizes = [float(x) for x in (args.sizes or "0.25,0.5,1").split(",")]
    args.json = args.json.resolve()
    if args.profile:
        try:
            import pyinstrument  # noqa: F401
        except ImportError:
            parser.error("--profile needs pyinstrument: pip install pyinstrument")

    from zerodrift import __version__

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "zerodrift"],
                                capture_output=True, text=True).stdout.strip())
    results: dict[str, Any] = {"meta": {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "zerodrift_version": __version__, "commit": commit, "dirty": dirty,
        "admin_url": mask(args.admin_url), "argv": sys.argv[1:] if argv is None else argv}}
    key = signing_key()
    tmp = Path(tempfile.mkdtemp(prefix="zdbench-"))
    t0 = time.perf_counter()
    try:
        if not args.skip_example:
            example_part(args, results, tmp, key)
        if not args.skip_scale:
            scale_part(args, results, tmp)
    finally:
        results["meta"]["duration_s"] = time.perf_counter() - t0
        shutil.rmtree(tmp, ignore_errors=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print_report(results)
    print(f"\nJSON: {args.json}  (benchmark took {results['meta']['duration_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
