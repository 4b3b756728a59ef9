"""Benchmark: what ZG-11's observation costs over a bare upgrade of the same path.

::

    python bench/lock_impact.py [--admin-url URL] [--repeat N] [--json out.json]

For the example backend and a synthetic one (``bench/generate.py``, 40 revisions, 200
tables, seeded at the halfway revision) it measures, on the same server:

1. **bare**: a new database, ``upgrade <from_revision>``, the seed, ``upgrade heads``,
   run by ``zerodrift/probes/alembic_job.py`` in one interpreter — the job ZG-2 runs;
   the figure is the in-process time of the last upgrade (interpreter start excluded);
2. **observed**: the same with ``zerodrift/probes/lock_probe.py`` (``observe``), the
   DDL observer created first — what ZG-11 runs; same figure, plus the number of
   statements observed, so the cost per statement is shown;
3. **gate**: a whole ``zerodrift run --gates ZG-11`` in-process (server roles,
   databases, both jobs, hot-table queries, evaluation): the gate's own duration and
   the run's wall time.

Every figure is the median of ``--repeat`` runs (min and max beside it) after one
warm-up. Output: a table on stdout and JSON (default ``bench/lock_impact.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for entry in (str(ROOT), str(HERE)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

import generate  # noqa: E402  (bench/generate.py)
from run import DEFAULT_ADMIN_URL, EXAMPLE, EXAMPLE_ROLES, Roles, db_url, git_repo_with, log, stats  # noqa: E402
from zerodrift.gates.zg11_lock_impact import DDL_OBSERVER_SQL  # noqa: E402
from zerodrift.target_process import PROBES_DIR, RESULT_PREFIX  # noqa: E402

SYNTHETIC = {"revisions": 40, "tables": 200, "matviews": 5}


class Job:
    """One probe process (alembic_job.py or lock_probe.py) answering requests, as zerodrift runs it."""

    def __init__(self, probe: str, backend: Path, url: str) -> None:
        env = dict(os.environ, MIGRATION_DATABASE_URL=url, DATABASE_URL=url, PYTHONPATH=str(backend))
        self.backend = backend
        self.proc = subprocess.Popen([sys.executable, str(PROBES_DIR / probe)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=backend, env=env)

    def ask(self, steps: list[dict], **options: Any) -> dict:
        request = {"alembic_ini": str(self.backend / "alembic.ini"), "cwd": str(self.backend), "steps": steps, **options}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(RESULT_PREFIX):
                answer = json.loads(line[len(RESULT_PREFIX):])
                failed = [s for s in answer["steps"] if not s["ok"]]
                if failed:
                    raise RuntimeError(f"{steps}: {failed[0]['error']}")
                return answer
        raise RuntimeError("the job ended without an answer")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(60)


def walk(admin_url: str, backend: Path, from_revision: str, seed: str, observe: bool) -> dict[str, float]:
    """One existing-path upgrade on a new database; returns the last upgrade's time and statement count."""
    name = f"zdbench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = db_url(admin_url, name)
        job = Job("lock_probe.py" if observe else "alembic_job.py", backend, url)
        try:
            job.ask([{"op": "upgrade", "revision": from_revision}])
            with psycopg.connect(url, autocommit=True) as conn:
                if seed.strip():
                    conn.execute(seed)
                if observe:
                    conn.execute(DDL_OBSERVER_SQL)
            answer = job.ask([{"op": "upgrade", "revision": "heads"}], observe=observe)
        finally:
            job.close()
        statements = sum(len(r["statements"]) for r in answer.get("lock_impact", {}).get("revisions", []))
        return {"upgrade_s": answer["steps"][0]["duration_s"], "statements": statements}
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def gate_run(admin_url: str, repo_backend: Path) -> dict[str, float]:
    from zerodrift.runner import RunOptions, run

    started = time.perf_counter()
    report = run(RunOptions(target=repo_backend, admin_url=admin_url, gates=["ZG-11"]))
    wall = time.perf_counter() - started
    result = next(r for r in report.results if r.gate_id == "ZG-11")
    return {"gate_s": result.duration_s, "wall_s": wall, "status": result.status.value}


def measure(label: str, admin_url: str, backend: Path, repo_backend: Path, repeat: int) -> dict[str, Any]:
    cfg = tomllib.loads((backend / "zerodrift.toml").read_text())["gates"]["ZG-2"]
    seed = (backend / cfg["seed_sql_file"]).read_text() if cfg.get("seed_sql_file") else cfg.get("seed_sql", "")
    runs: dict[str, list] = {"bare": [], "observed": [], "statements": [], "gate": [], "wall": []}
    for i in range(repeat + 1):  # the first round is a warm-up
        bare = walk(admin_url, backend, cfg["from_revision"], seed, observe=False)
        observed = walk(admin_url, backend, cfg["from_revision"], seed, observe=True)
        gate = gate_run(admin_url, repo_backend)
        log(f"{label} round {i}: bare {bare['upgrade_s']:.3f} s, observed {observed['upgrade_s']:.3f} s "
            f"({observed['statements']} statements), gate {gate['gate_s']:.3f} s ({gate['status']})")
        if i:
            runs["bare"].append(bare["upgrade_s"])
            runs["observed"].append(observed["upgrade_s"])
            runs["statements"].append(observed["statements"])
            runs["gate"].append(gate["gate_s"])
            runs["wall"].append(gate["wall_s"])
    summary = {k: stats(v) for k, v in runs.items()}
    bare_m, obs_m, n = summary["bare"]["median"], summary["observed"]["median"], summary["statements"]["median"]
    summary["overhead_s"] = obs_m - bare_m
    summary["overhead_per_statement_ms"] = (obs_m - bare_m) * 1000 / n if n else None
    summary["gate_over_bare"] = summary["gate"]["median"] / bare_m if bare_m else None
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default=os.environ.get("ZERODRIFT_TEST_ADMIN_URL", DEFAULT_ADMIN_URL))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=HERE / "lock_impact.json")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"admin_url_host": args.admin_url.split("@")[-1].split("/")[0], "repeat": args.repeat}
    with tempfile.TemporaryDirectory(prefix="zdbench-locks-") as tmp:
        tmp_path = Path(tmp)
        roles = Roles(args.admin_url)
        try:
            roles.ensure(EXAMPLE_ROLES | {"zdbench_ro": False, "zdbench_rw": False})
            example_repo = git_repo_with(EXAMPLE, tmp_path / "example")
            results["example"] = measure("example", args.admin_url, EXAMPLE, example_repo, args.repeat)
            synthetic_repo = git_repo_with(None, tmp_path / "synthetic",
                                           lambda b: generate.generate(b, **SYNTHETIC))
            results["synthetic"] = measure(f"synthetic {SYNTHETIC}", args.admin_url, synthetic_repo, synthetic_repo,
                                           args.repeat)
        finally:
            roles.drop_created()
    args.json.write_text(json.dumps(results, indent=1))
    print(f"{'backend':<11} {'statements':>10} {'bare upgrade':>13} {'observed':>10} {'per stmt':>9} "
          f"{'ZG-11 gate':>11} {'run wall':>9}")
    for label in ("example", "synthetic"):
        s = results[label]
        print(f"{label:<11} {s['statements']['median']:>10.0f} {s['bare']['median']:>12.3f}s {s['observed']['median']:>9.3f}s "
              f"{s['overhead_per_statement_ms']:>7.2f}ms {s['gate']['median']:>10.3f}s {s['wall']['median']:>8.3f}s")
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
