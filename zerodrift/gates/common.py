"""Presentation helpers several built-in gates share (no gate logic lives here)."""

from __future__ import annotations

from zerodrift.catalog.drift import CLASS_ORDER, POSITION, Drift, DriftGroup, counts_text
from zerodrift.context import GateContext
from zerodrift.errors import ArtifactUnavailable
from zerodrift.gates.base import GateResult

#: Drift rows shown inline in a check's detail; all of them are in the attached diff.
INLINE_ROWS = 15


def short(value, limit: int = 80) -> str:
    """One-line text of a catalog value, cut at ``limit`` characters (∅ for None)."""
    text = "∅" if value is None else " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def drift_detail(failing: list[Drift], left_label: str, right_label: str, waived: int = 0,
                 groups: list[DriftGroup] | None = None) -> str:
    """One line for a drift check (it becomes the gate-table summary): the counts per
    drift class, most serious first, and the most serious row. ``groups`` are the
    reader-sized rows (:func:`~zerodrift.catalog.drift.group_drift`); without them
    the raw rows are counted. The rows themselves are in the gate's drift table."""
    counting = [g for g in (groups or []) if g.counts]
    if counting:
        first = counting[0]
        where = f"{first.kind} {first.object}" + (f" {first.attribute}" if first.attribute else "")
        head = f"{counts_text(counting)}; first: {first.drift_class}: {where}"
    else:
        first_row = failing[0]
        head = f"first: {first_row.drift_class}: {first_row.row.kind} {first_row.row.object} {first_row.row.attribute}"
    expired = sum(1 for d in failing if d.status == "EXPIRED")
    return (f"{len(failing)} drift row(s) ({left_label} → {right_label})" + (f", {waived} waived" if waived else "")
            + (f", {expired} with an expired waiver" if expired else "") + f": {head} (table below)")


#: Column-position groups shown openly; more go into a collapsed table of their own.
OPEN_POSITION_ROWS = 10


def add_drift_table(result: GateResult, left_label: str, right_label: str,
                    paths: list[tuple[str, list[DriftGroup]]]) -> None:
    """The drift table ZG-1 and ZG-2 share: the counts per class above it, one row per
    group (most serious first), the unified diffs of changed definitions below it in
    collapsible sections, and column-position rows in a collapsed table of their own
    when there are more than :data:`OPEN_POSITION_ROWS`. ``paths`` pairs a label (an
    upgrade path, shown in a Path column; empty for a single comparison) with its groups."""
    multi = any(label for label, _ in paths)
    rows, positions, blocks = [], [], []
    every = [g for _, gs in paths for g in gs]
    for label, groups in paths:
        for g in groups:
            status = g.status + (f": {g.waiver.reason} (until {g.waiver.expires})" if g.waiver else "")
            left, right = g.left, g.right
            if g.diff:
                number = len(blocks) + 1
                left, right = f"see diff {number}", right.replace("see diff", f"diff {number}")
                blocks.append({"title": f"diff {number} — {g.drift_class}: {g.kind} {g.object} {g.attribute}"
                               + (f" [{label}]" if multi else ""), "text": g.diff, "lang": "diff"})
            row = ([label] if multi else []) + [g.drift_class, g.kind, g.object, g.attribute, left, right, status]
            (positions if g.drift_class == POSITION else rows).append(row)
    columns = (["Path"] if multi else []) + ["Drift class", "Kind", "Object", "Attribute", left_label.capitalize(),
                                              right_label.capitalize(), "Status"]
    raw = sum(len(g.members) for g in every)
    summary = (f"{raw} diff row(s) ({left_label} → {right_label}); counting: {counts_text(every)}. Classes, most "
               f"serious first: {', '.join(CLASS_ORDER)}")
    collapse = len(positions) > OPEN_POSITION_ROWS
    if not collapse:
        rows += positions
    result.add_table(f"Drift rows ({left_label} → {right_label})", columns, rows, summary=summary, blocks=blocks)
    if collapse:
        result.add_table(f"Column position drift ({len(positions)} tables; the two column orders, "
                         "[n same] = columns in the same place on both sides)", columns, positions, collapsed=True)


def sql_value(value) -> str:
    """A value a query returned, written as PostgreSQL prints a literal, not as a Python
    repr: NULL, true/false, numbers as is, text and everything else (dates, UUIDs,
    decimals) quoted with ``'`` (inner quotes doubled, SQL Syntax: "String Constants")."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if type(value).__name__ == "Decimal":
        return str(value)
    text = str(value)  # dates and times print as PostgreSQL does (ISO 8601, space before the time)
    return "'" + text.replace("'", "''") + "'"


def revisions_text(revs) -> str:
    return ", ".join(revs) if revs else "(none)"


def load_failure(result: GateResult, answer: dict | None, step_output: str, what: str, check: str, fix: str) -> None:
    """Record that a probe could not load ``what`` (e.g. ``registry app.x:VIEWS``) from the target.

    ``answer`` is the probe's JSON (``stage``, ``kind``, ``error``; see
    ``zerodrift/probes/import_object.py``) or None when the probe did not answer. When
    the target's own code raised (``kind`` ``target``) it is a finding: the check
    ``check`` FAILs with the stage and the target's exception. A path that names no
    module or attribute (``config``), a dependency missing from the target interpreter
    (``environment``) or a probe that did not answer is an ERROR ending with ``fix``.
    Where the exception passed through the target's own files (``frames``), those frames
    are named — innermost last — instead of the fixed ``fix`` hint: they say where to look."""
    answer = answer or {}
    lines = step_output.strip().splitlines()
    error = answer.get("error") or (lines[-1] if lines else "the probe did not answer")
    stage = f" at {answer['stage']}" if answer.get("stage") else ""
    frames = answer.get("frames") or []
    where = ("; raised in the target's code: " + " → ".join(frames[-4:])) if frames else ""
    if answer.get("kind") == "target":
        result.check(check, False, f"{what} raised{stage}: {error}{where} (traceback in the evidence)")
        return
    if answer.get("kind") == "environment":
        result.fail_with_error(f"{what} could not be loaded{stage}: {error}{where} — install the target's "
                               "dependencies into its interpreter, or set target.python to the interpreter that has them",
                               environment=True)
        return
    result.fail_with_error(f"{what} could not be loaded{stage}: {error}" + (where or f" — {fix}"))


def fresh_and_existing(ctx: GateContext, result: GateResult, fresh, doing: str) -> list[tuple[str, object]]:
    """``[("fresh", db), ("existing", db), …]``: ZG-1's database (``fresh``) and every database
    ZG-2 brought to head (see :func:`upgraded_databases`)."""
    return [("fresh", fresh)] + upgraded_databases(ctx, result, doing)


def upgraded_databases(ctx: GateContext, result: GateResult, doing: str, *, name_paths: bool = False) -> list[tuple[str, object]]:
    """Every database ZG-2 brought to head (artifact ``dbs.existing``) as ``(label, db)``;
    waits for ZG-2. The label is ``existing``, or ``existing (<path>)`` when there are several
    paths or ``name_paths`` is set. A SKIPPED check says why a database is not ``doing``
    (e.g. "refreshed"): ZG-2 not selected, no upgrade path, or a path that did not reach head."""
    if not ctx.artifacts.produced_by("dbs.existing"):
        result.skip_check("existing database", f"ZG-2 is not selected: only the fresh database is {doing}")
        return []
    try:
        published = ctx.artifacts.require("dbs.existing") or []
    except ArtifactUnavailable as exc:
        result.skip_check("existing database", f"no existing database: {exc}")
        return []
    if not published:
        result.skip_check("existing database", f"ZG-2 has no upgrade path: only the fresh database is {doing}")
    databases = []
    for path_label, db in published:
        label = f"existing ({path_label})" if name_paths or len(published) > 1 else "existing"
        if db is None:
            result.skip_check(f"{label} database", f"not {doing}: ZG-2 did not bring it to head")
        else:
            databases.append((label, db))
    return databases
    try:
        published = ctx.artifacts.require("dbs.existing") or []
    except ArtifactUnavailable as exc:
        result.skip_check("existing database", f"no existing database: {exc}")
        return databases
    if not published:
        result.skip_check("existing database", f"ZG-2 has no upgrade path: only the fresh database is {doing}")
    for path_label, db in published:
        label = "existing" if len(published) == 1 else f"existing ({path_label})"
        if db is None:
            result.skip_check(f"{label} database", f"not {doing}: ZG-2 did not bring it to head")
        else:
            databases.append((label, db))
    return databases
