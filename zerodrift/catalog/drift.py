"""Drift classes for diff rows, and waivers that accept known drift.

A diff between the fresh database (left) and an upgraded one (right) is read by
people; each row gets one class:

* ``missing object`` / ``extra object`` — only the fresh / only the upgraded database has it;
* ``name differs`` — a constraint or index missing under one name and present under
  another on the same table with the same definition (the classic in-place edit of an
  old revision file, or PostgreSQL's generated names after a squash);
* ``default changed`` — a column default;
* ``owner/privilege differs`` — owners, ACLs, default privileges, policy roles;
* ``column position differs`` — logical column order;
* ``definition changed`` — everything else.

A **waiver** accepts rows matched by kind and object (shell-style patterns), optionally
attribute, with a reason and an expiry date; an expired waiver no longer accepts, and a
waiver that matches nothing is reported as stale.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from zerodrift.catalog.diff import DiffRow

MISSING, EXTRA, RENAMED = "missing object", "extra object", "name differs"
DEFAULT, PRIVILEGE, POSITION, DEFINITION = ("default changed", "owner/privilege differs",
                                            "column position differs", "definition changed")
_PRIVILEGE_ATTRS = {"owner", "acl", "roles", "privileges"}
_INDEX_NAME = re.compile(r"^(CREATE (?:UNIQUE )?INDEX) \S+ (ON .*)$", re.S)


class Waiver(BaseModel):
    """Config entry accepting a known drift row (``[[gates.ZG-2.waivers]]``)."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="Object kind, e.g. columns, constraints (a pattern).")
    object: str = Field(description="Object identity, e.g. public.tenants.created_at (a pattern).")
    attribute: str = Field("", description="Attribute, e.g. default; empty: any.")
    reason: str = Field(min_length=1, description="Why this drift is accepted (shown in the ledger).")
    expires: date = Field(description="Last day the waiver applies (YYYY-MM-DD).")

    def matches(self, row: DiffRow) -> bool:
        return (fnmatch.fnmatchcase(row.kind, self.kind) and fnmatch.fnmatchcase(row.object, self.object)
                and (not self.attribute or fnmatch.fnmatchcase(row.attribute, self.attribute)))

    @property
    def label(self) -> str:
        return f"{self.kind} {self.object}" + (f" {self.attribute}" if self.attribute else "")


@dataclass
class Drift:
    """One diff row with its class and waiver verdict."""

    row: DiffRow
    drift_class: str
    status: str = "DRIFT"  #: DRIFT, WAIVED, or EXPIRED (a waiver matched but has expired)
    waiver: Waiver | None = None

    @property
    def counts(self) -> bool:
        return self.status != "WAIVED"


@dataclass
class DriftReport:
    rows: list[Drift] = field(default_factory=list)
    stale_waivers: list[Waiver] = field(default_factory=list)

    @property
    def failing(self) -> list[Drift]:
        return [d for d in self.rows if d.counts]


def _table_of(identity: str) -> str:
    return identity.rsplit("/", 1)[0]


def _definition(snapshot, kind: str, identity: str) -> str | None:
    obj = snapshot.objects.get(kind, {}).get(identity)
    if not obj:
        return None
    text = str(obj.get("definition"))
    if kind == "indexes":
        m = _INDEX_NAME.match(text)
        text = f"{m.group(1)} {m.group(2)}" if m else text
    return text


def classify(rows: list[DiffRow], left, right) -> list[Drift]:
    """Give every row a drift class; ``left``/``right`` are the snapshots diffed."""
    out: list[Drift] = []
    renamed: set[tuple[str, str]] = set()
    for kind in ("constraints", "indexes"):
        missing = [r for r in rows if r.kind == kind and r.attribute == "(object)" and r.left == "present"]
        extra = [r for r in rows if r.kind == kind and r.attribute == "(object)" and r.right == "present"]
        for m in missing:
            for e in extra:
                if (e.kind, e.object) in renamed or _table_of(m.object) != _table_of(e.object):
                    continue
                if _definition(left, kind, m.object) == _definition(right, kind, e.object):
                    renamed.update({(kind, m.object), (kind, e.object)})
                    break
    for r in rows:
        attr = r.attribute.split(".", 1)[0]
        if (r.kind, r.object) in renamed:
            cls = RENAMED
        elif r.attribute == "(object)":
            cls = MISSING if r.left == "present" else EXTRA
        elif attr == "default":
            cls = DEFAULT
        elif attr in _PRIVILEGE_ATTRS or r.kind == "default_privileges":
            cls = PRIVILEGE
        elif attr == "position":
            cls = POSITION
        else:
            cls = DEFINITION
        out.append(Drift(r, cls))
    return out


def apply_waivers(drift: list[Drift], waivers: list[Waiver], today: date | None = None) -> DriftReport:
    """Mark rows WAIVED (or EXPIRED) by the first matching waiver; list stale waivers."""
    today = today or date.today()
    used: set[int] = set()
    for d in drift:
        for i, w in enumerate(waivers):
            if w.matches(d.row):
                used.add(i)
                d.waiver = w
                d.status = "WAIVED" if today <= w.expires else "EXPIRED"
                break
    return DriftReport(rows=drift, stale_waivers=[w for i, w in enumerate(waivers) if i not in used])
