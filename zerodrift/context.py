"""What the runner hands each gate: config, databases, the target, shared artifacts.

Gates never import each other; what two gates share (a migrated database, a catalog
snapshot) goes through :class:`ArtifactStore`, which the runner owns; when a gate
starts follows from the inputs it declares (docs/architecture.md, "Scheduling";
:mod:`zerodrift.scheduling`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql as pgsql
from pydantic import BaseModel

from zerodrift.config import Config, LoadedConfig
from zerodrift.errors import ArtifactUnavailable
from zerodrift.gates.base import EvidenceStep, GateResult
from zerodrift.provenance import Provenance
from zerodrift.server import Server
from zerodrift.server.provision import Database, Provisioner
from zerodrift.urls import user_of

if TYPE_CHECKING:
    from zerodrift.catalog.snapshot import CatalogSnapshot
    from zerodrift.target import TargetRunner

__all__ = ["ARTIFACT_WAIT_S", "ArtifactStore", "ArtifactUnavailable", "GateContext", "SqlOutcome", "psql_table"]

#: Seconds a gate waits for an artifact another gate is still producing.
ARTIFACT_WAIT_S = 3600.0


class ArtifactStore:
    """Thread-safe store of shared artifacts; ``require`` blocks until published.

    ``producers`` maps an artifact name to the id of the selected gate that provides it;
    once that gate has finished (``gate_finished``) a missing artifact raises
    ArtifactUnavailable naming the gate, instead of blocking. An artifact is *ready*
    (:meth:`ready`) when it exists or is known unavailable: the scheduler starts a gate
    when all the inputs it needs to start are ready (docs/architecture.md, "Scheduling").
    """

    def __init__(self, producers: dict[str, str]) -> None:
        self._values: dict[str, Any] = {}
        self._finished: dict[str, str] = {}
        self._producers = producers
        self._cond = threading.Condition()
        self._locks: dict[str, threading.Lock] = {}
        self._changes = 0  #: publications and gate ends so far (see wait_for_change)
        #: set by the runner on Ctrl-C/SIGTERM: long waits in gates stop early
        self.cancelled = threading.Event()

    def publish(self, key: str, value: Any) -> None:
        """Publish artifact ``key`` (``value`` may be None: "produced, nothing there")."""
        with self._cond:
            self._values[key] = value
            self._changes += 1
            self._cond.notify_all()

    def gate_finished(self, gate_id: str, status: str) -> None:
        """Record that ``gate_id`` ended with ``status``: what it did not publish is now unavailable."""
        with self._cond:
            self._finished[gate_id] = status
            self._changes += 1
            self._cond.notify_all()

    def require(self, key: str, timeout: float = ARTIFACT_WAIT_S) -> Any:
        """The value of ``key``, waiting up to ``timeout`` seconds while its producer runs.
        Raises ArtifactUnavailable when no selected gate provides it, its producer ended
        without it, or the wait timed out."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if key in self._values:
                    return self._values[key]
                producer = self._producers.get(key)
                if producer is None:
                    raise ArtifactUnavailable(f"no selected gate provides {key!r}")
                if producer in self._finished:
                    raise ArtifactUnavailable(f"{producer} ended {self._finished[producer]} without producing {key!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ArtifactUnavailable(f"timed out waiting for {key!r} from {producer}")
                self._cond.wait(remaining)

    def ready(self, key: str) -> bool:
        """True when ``require(key)`` would not block (published, or its producer ended or is absent)."""
        with self._cond:
            producer = self._producers.get(key)
            return key in self._values or producer is None or producer in self._finished

    def changes(self) -> int:
        """How many publications and gate ends happened so far (for :meth:`wait_for_change`)."""
        with self._cond:
            return self._changes

    def wait_for_change(self, seen: int, timeout: float) -> int:
        """Block until something was published or a gate ended after ``seen`` (a value of
        :meth:`changes`), or ``timeout`` seconds pass; returns the current :meth:`changes`."""
        with self._cond:
            self._cond.wait_for(lambda: self._changes != seen, timeout)
            return self._changes

    def exclusive(self, name: str) -> threading.Lock:
        """A lock per shared resource (e.g. a database name): gates that take locks or
        refresh in a shared database hold it, so they cannot disturb each other's proof
        (the one rule besides declared inputs on how gates run side by side:
        docs/architecture.md, "Scheduling")."""
        with self._cond:
            return self._locks.setdefault(name, threading.Lock())

    def produced_by(self, key: str) -> str | None:
        """Id of the selected gate that provides ``key``, or None."""
        return self._producers.get(key)

    def get(self, key: str, default: Any = None) -> Any:
        with self._cond:
            return self._values.get(key, default)


@dataclass
class SqlOutcome:
    """Rows of one statement, or the error PostgreSQL gave (``sqlstate``, message, hint)."""

    columns: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    status: str = ""
    error: str = ""
    sqlstate: str = ""
    hint: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows and self.rows[0] else None


def psql_table(columns: list[str], rows: list[tuple], limit: int = 50) -> str:
    """psql-like aligned text of a result set."""
    if not columns:
        return ""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows[:limit]]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    more = f", {len(rows) - limit} not shown" if len(rows) > limit else ""
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''}{more})")
    return "\n".join(lines)


@dataclass(kw_only=True)
class GateContext:
    """Everything a gate may use; the runner creates one per gate (docs/architecture.md,
    "Writing a gate").

    ``gate_config`` is the gate's ``[gates.<id>]`` table validated by its ``config_model``
    (None for a gate without one); ``server`` and ``provisioner`` are None unless some
    selected gate declared ``needs = ("server", …)``; the target is reached through
    :attr:`target`; ``artifacts`` holds what gates share; ``output_dir`` is the proof pack
    folder (written after the gates ran).
    """

    run_id: str
    loaded: LoadedConfig
    gate_config: BaseModel | None
    provenance: Provenance
    server: Server | None
    provisioner: Provisioner | None
    target_runner: TargetRunner | None
    artifacts: ArtifactStore
    output_dir: Path
    #: ``loaded.config``: the run's whole configuration
    config: Config = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.loaded.config

    @property
    def target(self) -> TargetRunner:
        """The :class:`zerodrift.target.TargetRunner`; only gates that declare ``needs = ("target", …)`` get one.
        Raises RuntimeError otherwise."""
        if self.target_runner is None:
            raise RuntimeError("this gate did not declare that it needs the target (needs = ('target',))")
        return self.target_runner

    @property
    def migration_role(self) -> str | None:
        """The configured ``roles.migration``, or None: the run's own migration role
        (``zd_<run id>_migrator``, :attr:`zerodrift.target.TargetRunner.default_role`) is used."""
        return self.config.roles.migration or None

    def require(self, result: GateResult, key: str, why: str = "") -> Any:
        """The artifact ``key`` from another gate, or None after marking ``result`` ERROR
        with the reason it is missing (``why`` says what the gate needed it for)."""
        try:
            return self.artifacts.require(key)
        except ArtifactUnavailable as exc:
            result.fail_with_error(f"{why or 'missing input'}: {exc}")
            return None

    def server_version_num(self) -> int:
        """The server's ``server_version_num`` (e.g. 180004)."""
        assert self.provisioner is not None, "gate declared no need for a server"
        with psycopg.connect(self.provisioner.admin_url, connect_timeout=10) as conn:
            return int(conn.execute("SHOW server_version_num").fetchone()[0])

    def database(self, purpose: str) -> Database:
        """Create a throwaway database ``zd_<run id>_<purpose>``; the runner drops it at the end."""
        assert self.provisioner is not None, "gate declared no need for a server"
        return self.provisioner.create_database(purpose)

    def run_sql(self, result: GateResult, db: Database, statement: str, *, role: str | None = None,
                settings: dict[str, str] | None = None, title: str = "", params: tuple | None = None,
                rollback: bool = False) -> SqlOutcome:
        """Run one statement on ``db`` as ``role`` (via SET ROLE from the admin login) and record it.

        ``settings`` are applied with ``set_config(name, value, true)`` (transaction
        scope) first; ``rollback`` rolls the transaction back instead of committing.
        Never raises for SQL errors: the outcome carries SQLSTATE, message and hint.
        """
        outcome = SqlOutcome()
        started = time.perf_counter()
        shown_role = role or user_of(db.admin_url)
        prefix = ""
        try:
            with psycopg.connect(db.url(), connect_timeout=10) as conn:
                try:
                    with conn.cursor() as cur:
                        if role:
                            cur.execute(pgsql.SQL("SET ROLE {}").format(pgsql.Identifier(role)))
                            prefix += f"SET ROLE {role};\n"
                        for name, value in (settings or {}).items():
                            cur.execute("SELECT set_config(%s, %s, true)", (name, value))
                            prefix += f"SET LOCAL {name} = '{value}';\n"
                        cur.execute(statement, params)
                        outcome.status = cur.statusmessage or ""
                        if cur.description:
                            outcome.columns = [d.name for d in cur.description]
                            outcome.rows = cur.fetchall()
                finally:
                    if rollback or conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                        conn.rollback()
                    else:
                        conn.commit()
        except psycopg.Error as exc:
            diag = getattr(exc, "diag", None)
            outcome.error = (diag.message_primary if diag and diag.message_primary else str(exc)).strip()
            outcome.sqlstate = (diag.sqlstate if diag else "") or ""
            outcome.hint = (diag.message_hint if diag else "") or ""
        text = psql_table(outcome.columns, outcome.rows) if outcome.columns else outcome.status
        if outcome.error:
            text = f"ERROR:  {outcome.error}" + (f"\nSQLSTATE: {outcome.sqlstate}" if outcome.sqlstate else "")
            text += f"\nHINT:  {outcome.hint}" if outcome.hint else ""
        if rollback:
            text += "\nROLLBACK"
        shown = statement.strip()
        if params:
            shown += f"\n-- parameters: {params!r}"
        result.add_step(EvidenceStep(
            title=title or statement.strip().splitlines()[0][:80], command=prefix + shown,
            role=shown_role, database=db.name, duration_s=time.perf_counter() - started,
            output=text))  # a statement, not a process: no exit status (an error is in the output)
        return outcome

    def snapshot(self, result: GateResult, db: Database, label: str,
                 conn: psycopg.Connection | None = None) -> CatalogSnapshot:
        """Take the catalog snapshot of ``db`` and record the step; returns a CatalogSnapshot.

        ``conn``: an open, idle connection to ``db`` to read it through (left as found, see
        :func:`zerodrift.catalog.snapshot.take_snapshot`) — a gate that snapshots one database
        many times keeps one session, whose catalog caches stay warm; without it a session
        is opened for the snapshot and closed after it."""
        from zerodrift.catalog.snapshot import take_snapshot

        started = time.perf_counter()
        if conn is not None:
            snap = take_snapshot(conn)
        else:
            with psycopg.connect(db.url(), connect_timeout=10) as own:
                snap = take_snapshot(own)
        counts = ", ".join(f"{k} {v}" for k, v in snap.counts().items() if v)
        result.add_step(EvidenceStep(
            title=f"catalog snapshot ({label})", command=f"zerodrift catalog snapshot of {db.name}",
            role=user_of(db.admin_url), database=db.name, duration_s=time.perf_counter() - started,
            output=f"schema fingerprint sha256:{snap.fingerprint}\nobjects: {counts}"))
        return snap
