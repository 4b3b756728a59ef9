"""Lock impact: what each revision locked and rewrote, judged against a policy.

Input is what ``zerodrift/probes/lock_probe.py`` observed while an upgrade ran (per
revision, per statement: relation locks held after it, locks first seen during it,
tables rewritten, indexes created, tables scanned and written within the
transaction) and the set of **hot tables** (by OID, so a rename keeps them hot).

Lock modes and what they block come from the PostgreSQL documentation, 13.3
"Explicit Locking", Table 13.2 "Conflicting Lock Modes": SHARE and every stronger
mode conflict with ROW EXCLUSIVE, the mode INSERT/UPDATE/DELETE take, so they block
writes; ACCESS EXCLUSIVE also conflicts with ACCESS SHARE, so it blocks reads.

The policy: a statement **does work proportional to a table's rows** when it
rewrites a hot table (its ``relfilenode`` changed), builds an index on one, writes
rows of one or scans one (a constraint validated, a backfill read). Each hot table
held in a write-blocking mode while such a statement runs — by that statement or
earlier in the same transaction — is a **finding**, named after what the statement
did: ``rewrite``, ``index_build`` (without ``CONCURRENTLY``), ``write_under_lock``,
``scan_under_lock``. A write-blocking lock on a hot table taken by a statement that
did no such work is catalog-only: reported (``catalog_only``), never failed.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: pg_locks modes, weakest first (Table 13.2).
MODES = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
         "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
#: Modes that conflict with ROW EXCLUSIVE: writers wait for them.
WRITE_BLOCKING = frozenset(MODES[4:])
READ_BLOCKING = frozenset({"AccessExclusiveLock"})
#: Relation kinds judged: tables, partitioned tables, materialized views.
TABLE_KINDS = ("r", "p", "m")

KINDS = {
    "rewrite": "table rewritten",
    "index_build": "index built without CONCURRENTLY",
    "write_under_lock": "rows written while the table is locked",
    "scan_under_lock": "rows scanned while the table is locked (constraint validated, table read)",
    "catalog_only": "catalog-only change under a write-blocking lock (reported)",
}
#: What a statement did to another table, for a finding on the table it kept locked meanwhile.
CAUSES = {"rewrite": "while {} was rewritten", "index_build": "while an index was built on {}",
          "write_under_lock": "while rows of {} were written", "scan_under_lock": "while rows of {} were scanned"}
FAILING_KINDS = ("rewrite", "index_build", "write_under_lock", "scan_under_lock")
#: The safe form of each failing kind (PostgreSQL docs: ALTER TABLE "Notes", CREATE INDEX
#: "Building Indexes Concurrently"), or a waiver when the risk was reviewed.
FIXES = {
    "rewrite": "add the column without a volatile default (or with a constant one) and backfill in batches in "
               "later revisions; change a type by a new column",
    "index_build": "CREATE INDEX CONCURRENTLY in an autocommit block (`with op.get_context().autocommit_block():`)",
    "write_under_lock": "backfill in its own revision after the DDL has committed, in batches",
    "scan_under_lock": "add the constraint NOT VALID, then VALIDATE CONSTRAINT in a later revision",
}


def mode_name(mode: str) -> str:
    """``AccessExclusiveLock`` → ``ACCESS EXCLUSIVE`` (the SQL name of the mode)."""
    words, word = [], ""
    for ch in mode.removesuffix("Lock"):
        if ch.isupper() and word:
            words.append(word)
            word = ""
        word += ch
    words.append(word)
    return " ".join(w.upper() for w in words)


def strongest(modes) -> str:
    """The strongest of pg_locks mode names (by Table 13.2's order); '' for none."""
    known = [m for m in modes if m in MODES]
    return max(known, key=MODES.index) if known else ""


class LockWaiver(BaseModel):
    """Config entry accepting a reviewed finding until an expiry date (``[[gates.ZG-11.waivers]]``)."""

    model_config = ConfigDict(extra="forbid")

    revision: str = Field(description="Revision id (a shell pattern, e.g. 0005_*).")
    table: str = Field("*", description="Table, schema-qualified (a pattern, e.g. public.attribution_events).")
    finding: str = Field("*", description="Finding kind: rewrite, index_build, write_under_lock, scan_under_lock (a pattern).")
    reason: str = Field(min_length=1, description="Why the finding is accepted (shown in the ledger).")
    expires: date = Field(description="Last day the waiver applies (YYYY-MM-DD).")

    def matches(self, finding: "Finding") -> bool:
        return (fnmatch.fnmatchcase(finding.revision, self.revision) and fnmatch.fnmatchcase(finding.table, self.table)
                and fnmatch.fnmatchcase(finding.kind, self.finding))

    @property
    def label(self) -> str:
        return f"{self.revision} {self.table} {self.finding}"


@dataclass
class Finding:
    """One hot table blocked while one statement did row-proportional work (or a catalog-only report)."""

    revision: str
    statement: str
    table: str
    mode: str  #: the strongest mode held on ``table`` during the statement (pg_locks name)
    kind: str
    rewritten: bool
    duration_s: float
    cause: str = ""  #: what the statement did, when it did it to another table
    status: str = "FAIL"  #: FAIL, WAIVED, EXPIRED (the waiver has expired: still failing), REPORTED
    waiver: LockWaiver | None = None

    @property
    def failing(self) -> bool:
        return self.status in ("FAIL", "EXPIRED")

    def describe(self) -> str:
        """One line: revision, kind, table, mode, rewrite, duration, statement."""
        cause = f" ({self.cause})" if self.cause else ""
        return (f"{self.revision}: {KINDS[self.kind]}{cause}: {self.table} held in {mode_name(self.mode)}, "
                f"rewrite {'yes' if self.rewritten else 'no'}, {self.duration_s * 1000:.1f} ms — {self.statement}")


@dataclass
class RevisionImpact:
    """What one revision locked: per table its strongest mode and whether it was rewritten."""

    revision: str
    statements: int
    duration_s: float
    autocommit: int  #: statements that ran outside a transaction block
    shared_transaction: bool  #: its transaction also ran another revision's statements
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)  #: name -> {"mode", "rewritten", "hot"}
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    version_lock_seen: bool = False  #: the version table's lock was observed (the observer's positive control)

    @property
    def transaction(self) -> str:
        if self.statements and self.autocommit == self.statements:
            return "none (autocommit)"
        text = "shared with other revisions" if self.shared_transaction else "own"
        return text + (f"; {self.autocommit} statement(s) in autocommit" if self.autocommit else "")


class Observation:
    """The probe's ``lock_impact`` answer with names resolved."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.names: dict[str, list] = raw.get("names") or {}
        schema, table = (raw.get("version_table") or [None, "alembic_version"])
        self.version_oids = {oid for oid, (s, n, kind, _) in self.names.items()
                             if n == table and kind in TABLE_KINDS and (schema is None or s == schema)}

    def name(self, oid: str) -> str | None:
        """``schema.table`` of a table-like relation, or None (an index, a catalog, an unknown OID)."""
        row = self.names.get(str(oid))
        return f"{row[0]}.{row[1]}" if row and row[2] in TABLE_KINDS else None


def evaluate(raw: dict[str, Any], hot: set[str], waivers: list[LockWaiver] | None = None,
             fail_on: tuple[str, ...] = FAILING_KINDS, today: date | None = None) -> list[RevisionImpact]:
    """Judge the observed revisions. ``hot`` holds table OIDs (as text); ``fail_on`` the finding
    kinds that FAIL (the others are REPORTED); the first matching waiver marks a finding WAIVED,
    or EXPIRED after its expiry date (``today``, default the local date)."""
    obs = Observation(raw)
    today = today or date.today()
    hot = set(hot) - obs.version_oids
    tx_revisions: dict[str, set[str]] = {}
    for rev in raw.get("revisions", []):
        for st in rev["statements"]:
            if st.get("tx"):
                tx_revisions.setdefault(st["tx"], set()).add(rev["revision"])
    impacts = []
    for rev in raw.get("revisions", []):
        name = rev["revision"]
        statements = rev["statements"]
        impact = RevisionImpact(
            revision=name, statements=len(statements), duration_s=sum(s["duration_s"] for s in statements),
            autocommit=sum(1 for s in statements if s["in_transaction"] is False),
            shared_transaction=any(len(tx_revisions.get(s.get("tx") or "", ())) > 1 for s in statements))
        for st in statements:
            if st.get("error"):
                impact.errors.append(f"{st['error']} — {st['sql']}")
            _judge_statement(obs, impact, st, hot, fail_on)
        for finding in impact.findings:
            if finding.kind == "catalog_only":
                finding.status = "REPORTED"
                continue
            for waiver in waivers or []:
                if waiver.matches(finding):
                    finding.waiver = waiver
                    finding.status = "WAIVED" if today <= waiver.expires else "EXPIRED"
                    break
        impacts.append(impact)
    return impacts


def _judge_statement(obs: Observation, impact: RevisionImpact, st: dict, hot: set[str], fail_on) -> None:
    held: dict[str, set[str]] = {}
    for oid, mode in st["held"] + st["new"]:
        held.setdefault(str(oid), set()).add(mode)
    new_modes: dict[str, set[str]] = {}
    for oid, mode in st["new"]:
        new_modes.setdefault(str(oid), set()).add(mode)
    if any(oid in obs.version_oids for oid in held):
        impact.version_lock_seen = True
    rewritten = {str(o) for o in st["rewritten"]}
    touched = rewritten | {str(o) for o in st["written"] + st["read"]} | {str(t) for _i, t in st["indexes"]}
    for oid in set(new_modes) | touched:
        table = obs.name(oid)
        if table is None or oid in obs.version_oids:
            continue
        entry = impact.tables.setdefault(table, {"mode": "", "rewritten": False, "hot": oid in hot})
        entry["mode"] = strongest(held.get(oid, set()) | ({entry["mode"]} if entry["mode"] else set()))
        entry["rewritten"] = entry["rewritten"] or oid in rewritten
    # what the statement did to the rows of hot tables, strongest cause first
    index_tables = {str(t) for _index, t in st["indexes"]}
    causes = [("rewrite", rewritten & hot), ("index_build", {t for t in index_tables & hot
                                                             if strongest(held.get(t, ())) in WRITE_BLOCKING}),
              ("write_under_lock", {str(o) for o in st["written"]} & hot),
              ("scan_under_lock", {str(o) for o in st["read"]} & hot)]
    heavy = [(kind, oids) for kind, oids in causes if oids]
    for oid, modes in held.items():
        mode = strongest(modes)
        table = obs.name(oid)
        if oid not in hot or table is None or mode not in WRITE_BLOCKING:
            continue
        if heavy:
            kind, oids = next(((k, o) for k, o in heavy if oid in o), heavy[0])
            cause = "" if oid in oids else CAUSES[kind].format(", ".join(sorted(obs.name(o) or o for o in oids)))
            finding = Finding(impact.revision, st["sql"], table, mode, kind, oid in rewritten, st["duration_s"], cause)
            finding.status = "FAIL" if kind in fail_on else "REPORTED"
            impact.findings.append(finding)
        elif new_modes.get(oid, set()) & WRITE_BLOCKING:
            impact.findings.append(Finding(impact.revision, st["sql"], table, mode, "catalog_only", False,
                                           st["duration_s"], status="REPORTED"))
