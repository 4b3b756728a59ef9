"""Small helpers several built-in gates use (no gate logic lives here)."""

from __future__ import annotations

from zerodrift.catalog.diff import DiffRow, diff_snapshots

#: Diff rows shown inline in a check's detail; the full diff is attached.
DIFF_ROWS_INLINE = 20


def diff_detail(left_label: str, right_label: str, left, right) -> tuple[bool, str, list[DiffRow]]:
    """Compare two catalog snapshots: (equal, detail text, rows)."""
    rows = diff_snapshots(left, right)
    if not rows:
        return True, f"{left_label} and {right_label} share schema fingerprint sha256:{left.fingerprint[:16]}…", rows
    first = rows[0]
    lines = [f"{len(rows)} difference{'s' if len(rows) != 1 else ''} ({left_label} → {right_label}), first: "
             f"{first.kind} {first.object} {first.attribute}: {_short(first.left, 60)} → {_short(first.right, 60)}"]
    for row in rows[1:DIFF_ROWS_INLINE]:
        lines.append(f"{row.kind} {row.object} {row.attribute}: {_short(row.left)} → {_short(row.right)}")
    if len(rows) > DIFF_ROWS_INLINE:
        lines.append(f"… {len(rows) - DIFF_ROWS_INLINE} more in the attached diff")
    return False, "\n".join(lines), rows


def _short(value, limit: int = 120) -> str:
    text = "∅" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def revisions_text(revs) -> str:
    return ", ".join(revs) if revs else "(none)"
