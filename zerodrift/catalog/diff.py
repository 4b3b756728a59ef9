"""Diff of two catalog snapshots into readable rows (docs/architecture.md, "Catalog snapshot").

A row names one difference: the object kind, the object identity (see
:mod:`zerodrift.catalog.snapshot` for the scheme), the attribute and the two values.
Dict-valued attributes (e.g. a domain's ``constraints``) are compared key by key, so a row
points at ``constraints.positive.definition`` rather than at the whole mapping; lists are
compared whole (their order matters: enum labels, composite attributes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from zerodrift.catalog.snapshot import KINDS, CatalogSnapshot

#: Attribute name of a row that says an object exists on one side only.
OBJECT_ATTRIBUTE = "(object)"
PRESENT = "present"
ABSENT = "absent"
#: Shown as the value of an attribute that one side does not have at all.
MISSING = "(missing)"


@dataclass(frozen=True)
class DiffRow:
    """One difference between a left and a right snapshot.

    ``kind`` is one of :data:`~zerodrift.catalog.snapshot.KINDS`; ``object`` the object
    identity; ``attribute`` the attribute name (dotted for nested keys), or ``"(object)"``
    when the object exists on one side only, in which case ``left``/``right`` are
    ``"present"``/``"absent"``. Otherwise ``left``/``right`` are the JSON values, or
    ``"(missing)"`` when a side lacks the attribute entirely.
    """

    kind: str
    object: str
    attribute: str
    left: Any
    right: Any


def _kind_order(kinds: Iterable[str]) -> list[str]:
    known = [k for k in KINDS if k in kinds]
    return known + sorted(k for k in kinds if k not in KINDS)


def diff_snapshots(left: CatalogSnapshot, right: CatalogSnapshot) -> list[DiffRow]:
    """Every difference between ``left`` and ``right``; empty when they are equal.

    Rows are sorted by kind (in :data:`KINDS` order, unknown kinds after, alphabetically),
    then object identity, then attribute. An object on one side only yields a single
    ``"(object)"`` row, not one row per attribute. An empty diff holds exactly when the
    two fingerprints are equal (for snapshots that list the same kinds, as every
    :func:`~zerodrift.catalog.snapshot.take_snapshot` result does). Raises nothing for
    well-formed snapshots.
    """
    if set(left.objects) == set(right.objects) and left.fingerprint == right.fingerprint:
        return []  # equal canonical JSON: nothing can differ (the fingerprint is cached)
    rows: list[DiffRow] = []
    kinds = set(left.objects) | set(right.objects)
    for kind in _kind_order(kinds):
        lobjs = left.objects.get(kind, {})
        robjs = right.objects.get(kind, {})
        for ident in sorted(set(lobjs) | set(robjs)):
            if ident not in robjs:
                rows.append(DiffRow(kind, ident, OBJECT_ATTRIBUTE, PRESENT, ABSENT))
            elif ident not in lobjs:
                rows.append(DiffRow(kind, ident, OBJECT_ATTRIBUTE, ABSENT, PRESENT))
            else:
                attr_rows = list(_diff_mapping(kind, ident, "", lobjs[ident], robjs[ident]))
                rows.extend(sorted(attr_rows, key=lambda r: r.attribute))
    return rows


_MISSING_SENTINEL = object()


def _diff_mapping(kind: str, ident: str, prefix: str, left: dict, right: dict) -> Iterable[DiffRow]:
    for key in sorted(set(left) | set(right)):
        name = f"{prefix}{key}"
        lv = left.get(key, _MISSING_SENTINEL)
        rv = right.get(key, _MISSING_SENTINEL)
        if isinstance(lv, dict) and isinstance(rv, dict):
            yield from _diff_mapping(kind, ident, name + ".", lv, rv)
        elif lv is _MISSING_SENTINEL or rv is _MISSING_SENTINEL or not _same(lv, rv):
            yield DiffRow(
                kind,
                ident,
                name,
                MISSING if lv is _MISSING_SENTINEL else lv,
                MISSING if rv is _MISSING_SENTINEL else rv,
            )


def _same(a: Any, b: Any) -> bool:
    # Compare as canonical JSON, like the fingerprint does (in Python True == 1 and 1 == 1.0).
    return _json(a) == _json(b)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _cell(value: Any, width: int | None) -> str:
    if isinstance(value, str):
        text = value
    else:
        text = _json(value)
    text = " ".join(text.split())  # one line: collapse newlines and runs of spaces
    if width is not None and len(text) > width:
        text = text[: max(width - 1, 0)] + "…"
    return text


def format_rows(rows: Sequence[DiffRow], limit: int | None = None, value_width: int | None = 60) -> str:
    """A plain-text table of ``rows`` for logs, ending with a newline.

    Columns KIND, OBJECT, ATTRIBUTE, LEFT, RIGHT, padded with spaces. Values are shown on
    one line (whitespace collapsed; non-strings as compact JSON) and cut to ``value_width``
    characters with ``…`` (``None``: never cut). With ``limit``, only the first ``limit``
    rows are shown, followed by a line saying how many were left out. No rows gives
    ``"no differences\\n"``. Raises ``ValueError`` for a negative ``limit``.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if not rows:
        return "no differences\n"
    shown = list(rows if limit is None else rows[:limit])
    table = [("KIND", "OBJECT", "ATTRIBUTE", "LEFT", "RIGHT")]
    for r in shown:
        table.append((r.kind, r.object, r.attribute, _cell(r.left, value_width), _cell(r.right, value_width)))
    widths = [max(len(line[i]) for line in table) for i in range(5)]
    lines = []
    for line in table:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if line is table[0]:
            lines.append("  ".join("-" * w for w in widths))
    left_out = len(rows) - len(shown)
    if left_out:
        lines.append(f"… {left_out} more difference{'s' if left_out != 1 else ''} not shown ({len(rows)} in all)")
    return "\n".join(lines) + "\n"
