"""Presentation helpers several built-in gates share (no gate logic lives here)."""

from __future__ import annotations

from zerodrift.catalog.drift import Drift

#: Drift rows shown inline in a check's detail; all of them are in the attached diff.
INLINE_ROWS = 15


def short(value, limit: int = 80) -> str:
    """One-line text of a catalog value, cut at ``limit`` characters (∅ for None)."""
    text = "∅" if value is None else " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def drift_detail(failing: list[Drift], left_label: str, right_label: str, waived: int = 0) -> str:
    """Check detail for drift rows: a first line that names the first row (it becomes the
    gate-table summary), then up to :data:`INLINE_ROWS` rows with their drift class."""
    first = failing[0]
    lines = [f"{len(failing)} drift row(s) ({left_label} → {right_label})" + (f", {waived} waived" if waived else "")
             + f"; first: {first.drift_class}: {first.row.kind} {first.row.object} {first.row.attribute}"]
    for d in failing[:INLINE_ROWS]:
        note = " (waiver expired)" if d.status == "EXPIRED" else ""
        lines.append(f"{d.drift_class}: {d.row.kind} {d.row.object} {d.row.attribute}: "
                     f"{short(d.row.left)} → {short(d.row.right)}{note}")
    if len(failing) > INLINE_ROWS:
        lines.append(f"… {len(failing) - INLINE_ROWS} more in the attached diff")
    return "\n".join(lines)


def revisions_text(revs) -> str:
    return ", ".join(revs) if revs else "(none)"
