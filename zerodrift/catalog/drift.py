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

:data:`CLASS_ORDER` ranks the classes by harm (most serious first); reports list counts
and rows in that order. :func:`group_drift` turns rows into what a reader needs: one row
per table for column-position drift (the two column orders side by side), one row per
rename, and a unified diff (Python ``difflib``) for every changed definition too long to
show whole in a table cell.

A **waiver** accepts rows matched by kind and object (shell-style patterns), optionally
attribute, with a reason and an expiry date; an expired waiver no longer accepts, and a
waiver that matches nothing is reported as stale.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
from dataclasses import dataclass, field
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from zerodrift.catalog.diff import DiffRow

MISSING, EXTRA, RENAMED = "missing object", "extra object", "name differs"
DEFAULT, PRIVILEGE, POSITION, DEFINITION = ("default changed", "owner/privilege differs",
                                            "column position differs", "definition changed")
#: Drift classes by harm to a running application, most serious first: a missing or extra
#: object breaks queries outright; a changed definition (function, trigger, view,
#: constraint, index) changes behaviour; a changed default changes the rows written; a
#: different name breaks code and later migrations that name the object; owners and
#: privileges decide who may do what; column order matters only to ``SELECT *`` and
#: positional ``INSERT`` / ``COPY``.
CLASS_ORDER = (MISSING, EXTRA, DEFINITION, DEFAULT, RENAMED, PRIVILEGE, POSITION)
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
    partner: DiffRow | None = None  #: for ``name differs``: the row of the same object under its other name

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


def _owner(row: DiffRow) -> str:
    """The relation a column (``schema.relation.column``) or a ``schema.relation/name``
    object belongs to; empty for other objects."""
    if row.kind == "columns":
        return ".".join(split_identity(row.object)[:-1])
    return row.object.rpartition("/")[0] if "/" in row.object else ""


def _relation_signature(snapshot, kind: str, identity: str) -> str:
    """A relation's attributes and its columns (name and attributes, in order) as one
    JSON text: equal for the same relation under two names."""
    columns = sorted((attrs.get("position") or 0, split_identity(ident)[-1], attrs)
                     for ident, attrs in snapshot.objects.get("columns", {}).items()
                     if ".".join(split_identity(ident)[:-1]) == identity)
    return json.dumps([snapshot.objects.get(kind, {}).get(identity), [[n, a] for _, n, a in columns]],
                      sort_keys=True, default=str)


def classify(rows: list[DiffRow], left, right) -> list[Drift]:
    """Give every row a drift class; ``left``/``right`` are the snapshots diffed.

    ``name differs`` pairs a missing and an extra constraint or index of the same table
    with the same definition, and a missing and an extra table, view, matview or
    sequence of the same schema with the same attributes and columns (the rows of its
    columns, constraints and indexes then are ``name differs`` too, without a partner)."""
    out: list[Drift] = []
    renamed: set[tuple[str, str]] = set()
    partners: dict[tuple[str, str], DiffRow] = {}
    for kind in ("constraints", "indexes"):
        missing = [r for r in rows if r.kind == kind and r.attribute == "(object)" and r.left == "present"]
        extra = [r for r in rows if r.kind == kind and r.attribute == "(object)" and r.right == "present"]
        for m in missing:
            for e in extra:
                if (e.kind, e.object) in renamed or _table_of(m.object) != _table_of(e.object):
                    continue
                if _definition(left, kind, m.object) == _definition(right, kind, e.object):
                    renamed.update({(kind, m.object), (kind, e.object)})
                    partners[(kind, m.object)], partners[(kind, e.object)] = e, m
                    break
    # a relation under another name with the same attributes and the same columns (a table
    # named after the clock, a rename in place); its columns, constraints and indexes go with it
    renamed_relations: set[str] = set()
    for kind in _RENAMABLE_RELATIONS:
        missing = [r for r in rows if r.kind == kind and r.attribute == "(object)" and r.left == "present"]
        extra = [r for r in rows if r.kind == kind and r.attribute == "(object)" and r.right == "present"]
        for m in missing:
            for e in extra:
                if (e.kind, e.object) in renamed or split_identity(m.object)[:-1] != split_identity(e.object)[:-1]:
                    continue
                if _relation_signature(left, kind, m.object) == _relation_signature(right, kind, e.object):
                    renamed.update({(kind, m.object), (kind, e.object)})
                    partners[(kind, m.object)], partners[(kind, e.object)] = e, m
                    renamed_relations.update({m.object, e.object})
                    break
    for r in rows:
        attr = r.attribute.split(".", 1)[0]
        if (r.kind, r.object) in renamed or (r.attribute == "(object)" and _owner(r) in renamed_relations):
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
        out.append(Drift(r, cls, partner=partners.get((r.kind, r.object)) if cls == RENAMED else None))
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


# ---------------------------------------------------------------- presentation at scale

#: A value longer than this (one line) is not shown in a table cell: a unified diff is.
CELL_WIDTH = 80
#: Kinds whose objects own columns and ``relation/name`` objects (constraints, indexes, …).
_RELATION_KINDS = ("tables", "views", "matviews")
#: Kinds whose objects are paired as renamed when only the name differs.
_RENAMABLE_RELATIONS = ("tables", "views", "matviews", "sequences")
_NAME_PART = re.compile(r'"(?:[^"]|"")*"|[^."]+')
#: Where a long one-line SQL text is split into diff lines: after commas, and before the
#: clause keywords the server's deparsers print (so the diff points at the changed clause).
_SQL_BREAK = re.compile(r"(?<=,)\s+|\s+(?=(?:FROM|WHERE|AND|OR|JOIN|LEFT JOIN|ON|WHEN|THEN|ELSE|END|"
                        r"FOR EACH|EXECUTE|REFERENCES|RETURNS|GROUP BY|ORDER BY|USING|WITH CHECK)\b)")


@dataclass
class DriftGroup:
    """One row of a drift report, standing for one or more :class:`Drift` rows.

    ``left``/``right`` are the cell texts (for a column-position group, the two column
    orders; for a rename, the two names); ``diff`` is a unified diff of the two values
    when they are too long for a cell (empty otherwise); ``status`` is DRIFT when any
    member still counts, EXPIRED when a member's waiver expired, else WAIVED.
    """

    drift_class: str
    kind: str
    object: str
    attribute: str
    left: str
    right: str
    members: list[Drift]
    diff: str = ""
    orders: tuple[list[str], list[str]] | None = None  #: the two whole column orders (position groups)

    @property
    def status(self) -> str:
        statuses = {d.status for d in self.members}
        return "DRIFT" if "DRIFT" in statuses else ("EXPIRED" if "EXPIRED" in statuses else "WAIVED")

    @property
    def counts(self) -> bool:
        return self.status != "WAIVED"

    @property
    def waiver(self) -> Waiver | None:
        return next((d.waiver for d in self.members if d.waiver is not None), None)


def split_identity(identity: str) -> list[str]:
    """The name parts of a dotted identity (``public."a.b".c`` → 3 parts), quotes kept."""
    return _NAME_PART.findall(identity)


def _one_line(value) -> str:
    if value is None:
        return "∅"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return " ".join(text.split())


def _diff_lines(value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str):
        return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    if "\n" in value.strip():
        return value.rstrip("\n").splitlines()
    return [part for part in _SQL_BREAK.split(value.strip()) if part]


def unified_diff(left, right, left_label: str, right_label: str) -> str:
    """A unified diff (``difflib.unified_diff``, 3 lines of context) of two values:
    multi-line text by line, one-line SQL split at commas and clause keywords, other
    JSON values pretty-printed. Ends with a newline; empty when they are equal."""
    lines = difflib.unified_diff(_diff_lines(left), _diff_lines(right), fromfile=left_label, tofile=right_label,
                                 lineterm="", n=3)
    text = "\n".join(lines)
    return text + "\n" if text else ""


def _order_text(names: list[str], same_head: int, same_tail: int) -> str:
    middle = names[same_head:len(names) - same_tail if same_tail else None]
    parts = []
    if same_head:
        parts.append(f"[{same_head} same]")
    parts.extend(middle)
    if same_tail:
        parts.append(f"[{same_tail} same]")
    return ", ".join(parts)


def _column_order(snapshot, table: str) -> list[str]:
    cols = []
    for ident, attrs in snapshot.objects.get("columns", {}).items():
        parts = split_identity(ident)
        if ".".join(parts[:-1]) == table:
            cols.append((attrs.get("position") or 0, parts[-1]))
    return [name for _, name in sorted(cols)]


def _cell_or_diff(d: Drift, left_label: str, right_label: str) -> tuple[str, str, str]:
    left, right = _one_line(d.row.left), _one_line(d.row.right)
    if len(left) <= CELL_WIDTH and len(right) <= CELL_WIDTH:
        return left, right, ""
    where = f"{d.row.kind} {d.row.object} {d.row.attribute}"
    diff = unified_diff(d.row.left, d.row.right, f"{left_label}: {where}", f"{right_label}: {where}")
    added = sum(1 for line in diff.splitlines()[2:] if line.startswith("+"))
    removed = sum(1 for line in diff.splitlines()[2:] if line.startswith("-"))
    return "(see diff)", f"(see diff: +{added} −{removed} lines)", diff


def group_drift(drifts: list[Drift], left, right, left_label: str = "left", right_label: str = "right") -> list[DriftGroup]:
    """Reader-sized rows for ``drifts`` (classified and waiver-marked rows of a diff of the
    snapshots ``left`` and ``right``), in :data:`CLASS_ORDER`, then kind and object.

    A table, view or matview on one side only is one group together with its columns,
    constraints, indexes, triggers, rules and policies. Column-position rows of one table
    become one group whose cells are the two column
    orders (runs of columns in the same place on both sides shown as ``[n same]``); the
    two rows of a rename become one group (``old → new``); a value too long for a cell
    gets a unified diff. Raises nothing.
    """
    groups: list[DriftGroup] = []
    by_table: dict[str, list[Drift]] = {}
    seen_renames: set[tuple[str, str]] = set()
    # a table (or view) missing on one side: its columns, constraints, indexes, … join its row
    whole = {(d.row.object, d.drift_class): DriftGroup(d.drift_class, d.row.kind, d.row.object, d.row.attribute,
                                                       str(d.row.left), str(d.row.right), [d])
             for d in drifts if d.drift_class in (MISSING, EXTRA) and d.row.kind in _RELATION_KINDS}
    groups.extend(whole.values())
    for d in drifts:
        r = d.row
        if (r.object, d.drift_class) in whole and r.kind in _RELATION_KINDS:
            continue
        if d.drift_class in (MISSING, EXTRA):
            owner = (".".join(split_identity(r.object)[:-1]) if r.kind == "columns"
                     else r.object.rpartition("/")[0] if "/" in r.object else "")
            if (owner, d.drift_class) in whole:
                whole[(owner, d.drift_class)].members.append(d)
                continue
        if d.drift_class == POSITION and r.kind == "columns":
            by_table.setdefault(".".join(split_identity(r.object)[:-1]), []).append(d)
        elif d.drift_class == RENAMED and d.partner is None and r.attribute == "(object)" and _owner(r):
            continue  # a column, constraint or index of a renamed relation: in that relation's row
        elif d.drift_class == RENAMED and d.partner is not None:
            if (r.kind, r.object) in seen_renames:
                continue
            old, new = (r, d.partner) if r.left == "present" else (d.partner, r)
            seen_renames.update({(r.kind, old.object), (r.kind, new.object)})
            members = [m for m in drifts if m.row in (old, new)]
            if r.kind in _RENAMABLE_RELATIONS:
                members += [m for m in drifts if m.drift_class == RENAMED and m.partner is None
                            and _owner(m.row) in (old.object, new.object)]
            table, _, old_name = old.object.rpartition("/")
            new_name = new.object.rpartition("/")[2]
            groups.append(DriftGroup(RENAMED, r.kind, f"{table}/{old_name} → {new_name}" if table else
                                     f"{old.object} → {new.object}", "(name)", old_name, new_name, members))
        else:
            cell_left, cell_right, diff = _cell_or_diff(d, left_label, right_label)
            groups.append(DriftGroup(d.drift_class, r.kind, r.object, r.attribute, cell_left, cell_right, [d], diff))
    for table, members in by_table.items():
        lorder, rorder = _column_order(left, table), _column_order(right, table)
        head = 0
        while head < min(len(lorder), len(rorder)) and lorder[head] == rorder[head]:
            head += 1
        tail = 0
        while (tail < min(len(lorder), len(rorder)) - head and lorder[-1 - tail] == rorder[-1 - tail]):
            tail += 1
        groups.append(DriftGroup(POSITION, "columns", table, f"order ({len(members)} columns moved)",
                                 _order_text(lorder, head, tail), _order_text(rorder, head, tail), members,
                                 orders=(lorder, rorder)))
    for g in whole.values():
        if len(g.members) > 1:
            parts: dict[str, int] = {}
            for m in g.members[1:]:
                parts[m.row.kind] = parts.get(m.row.kind, 0) + 1
            side = "right" if g.drift_class == MISSING else "left"
            setattr(g, side, f"{getattr(g, side)} (with its {', '.join(f'{n} {k}' for k, n in parts.items())})")
    rank = {c: i for i, c in enumerate(CLASS_ORDER)}
    groups.sort(key=lambda g: (rank.get(g.drift_class, len(rank)), g.kind, g.object, g.attribute))
    return groups


def class_counts(groups: list[DriftGroup]) -> dict[str, int]:
    """Counting groups per class (a rename counts once, a missing table once with its
    columns and indexes; column-position drift counts columns), in :data:`CLASS_ORDER`,
    only the classes present. Waived groups are left out."""
    counts: dict[str, int] = {}
    for c in CLASS_ORDER:
        n = sum(len(g.members) if c == POSITION else 1 for g in groups if g.drift_class == c and g.counts)
        if n:
            counts[c] = n
    return counts


def counts_text(groups: list[DriftGroup]) -> str:
    """``"2 missing object, 1 definition changed, 903 column position differs (67 tables)"``,
    most serious class first; ``"no drift"`` when nothing counts."""
    counts = class_counts(groups)
    parts = []
    for cls, n in counts.items():
        text = f"{n} {cls}"
        if cls == POSITION:
            tables = sum(1 for g in groups if g.drift_class == POSITION and g.counts)
            text += f" ({tables} table{'s' if tables != 1 else ''})"
        parts.append(text)
    return ", ".join(parts) or "no drift"


def format_drift(groups: list[DriftGroup], left_label: str, right_label: str) -> bytes:
    """The drift file of a proof pack: a header with the counts per class, then one line
    per diff row with its drift class and waiver status (values whole, on one line),
    then the unified diffs of the changed definitions. UTF-8 bytes, final newline."""
    rows = [(d, g) for g in groups for d in g.members]
    table = [("CLASS", "STATUS", "KIND", "OBJECT", "ATTRIBUTE", left_label.upper(), right_label.upper())]
    for d, g in rows:
        table.append((d.drift_class, d.status, d.row.kind, d.row.object, d.row.attribute,
                      _one_line(d.row.left), _one_line(d.row.right)))
    widths = [min(max(len(line[i]) for line in table), 60) for i in range(len(table[0]))]
    lines = [f"# drift {left_label} → {right_label}: {len(rows)} diff row(s); counting: {counts_text(groups)}",
             f"# classes, most serious first: {', '.join(CLASS_ORDER)}", ""]
    for line in table:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
    diffs = [g for g in groups if g.diff]
    if diffs:
        lines.append("")
        for g in diffs:
            lines.append(f"## {g.drift_class}: {g.kind} {g.object} {g.attribute}")
            lines.append(g.diff.rstrip("\n"))
            lines.append("")
    positions = [g for g in groups if g.drift_class == POSITION]
    if positions:
        lines.append("")
        for g in positions:
            lines.append(f"## column order of {g.object}")
            lorder, rorder = g.orders or ([], [])
            lines.append(f"{left_label}: {', '.join(lorder)}")
            lines.append(f"{right_label}: {', '.join(rorder)}")
    return ("\n".join(lines).rstrip("\n") + "\n").encode("utf-8")

