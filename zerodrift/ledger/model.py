"""The ledger's facts as one plain, JSON-ready dict.

``ledger.json`` is this dict; ``ledger.md`` is rendered from the same dict, so the
two can never disagree; the overall verdict comes from :mod:`zerodrift.verdict` only.
Secrets never enter it: URLs are masked before they get
here and evidence holds environment variable names only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from zerodrift.runner import RunReport

SCHEMA_VERSION = 1


def ledger_data(report: RunReport) -> dict[str, Any]:
    """Build the ledger dict from a finished run."""
    prov = report.provenance
    verdict = report.verdict
    results = []
    for r in report.results:
        results.append({
            "id": r.gate_id,
            "title": r.title,
            "status": r.status.value,
            "summary": r.summary,
            "duration_s": round(r.duration_s, 3),
            "error": r.error,
            "environment_error": r.environment_error,
            "skip_reason": r.skip_reason,
            "description": report.gate_info.get(r.gate_id, {}).get("doc", ""),
            "checks": [{"name": c.name, "status": c.status.value, "detail": c.detail} for c in r.checks],
            "evidence": [
                {k: (round(v, 3) if isinstance(v, float) else v) for k, v in dataclasses.asdict(s).items()}
                for s in r.evidence
            ],
            "attachments": sorted(f"{r.gate_id}/{name}" for name in r.attachments),
            "facts": r.facts,
            "tables": r.tables,
        })
    downgrades: dict[str, Any] = {}
    for r in report.results:  # what a downgrade gate (ZG-9) ran, for the ledger's "not proven" line
        if isinstance(r.facts.get("downgrades"), dict):
            downgrades = {**r.facts["downgrades"], "gate": r.gate_id, "status": r.status.value}
    kinds: list[str] = []
    for r in report.results:
        if r.facts.get("kinds_compared"):
            kinds = r.facts["kinds_compared"]
            break
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": report.run_id,
        "zerodrift_version": report.zerodrift_version,
        "started_at": report.started_at.astimezone().isoformat(timespec="seconds"),
        "finished_at": report.finished_at.astimezone().isoformat(timespec="seconds") if report.finished_at else None,
        "duration_s": round(report.duration_s, 3),
        "exit_code": verdict.exit_code,
        "overall": verdict.overall,
        "verdict": verdict.to_dict(),
        "required_gates": report.required,
        "provenance": {
            "repository": str(prov.repo_root) if prov.repo_root else None,
            "commit": prov.commit,
            "tree": prov.tree,
            "branch": prov.branch,
            "detached": prov.detached,
            "subject": prov.subject,
            "remotes": prov.remotes,
            "dirty": prov.dirty,
            "dirty_paths": prov.dirty_paths,
            "shallow": prov.shallow,
        },
        "ci": report.ci,
        "target": {
            "folder": str(report.loaded.target_dir),
            "config": str(report.loaded.source) if report.loaded.source else None,
            "head": report.head,
        },
        "server": dataclasses.asdict(report.server),
        "schema_fingerprint": report.schema_fingerprint,
        "schema_snapshot": report.header_fact("schema_snapshot", ""),
        "kinds_compared": kinds,
        "downgrades": downgrades,
        "gates": results,
        "included_as_dependency": report.included_as_dependency,
        "not_run": report.not_run,
        "phases_s": {k: round(v, 3) for k, v in report.phases.items()},
        "databases": {"dropped": report.dropped_databases, "kept": report.kept_databases},
        "roles_created": report.roles_created,
        "roles_adopted": report.roles_adopted,
        "roles_dropped": report.roles_dropped,
        "roles_note": report.roles_note,
        "migration_role": report.migration_role,
        "prerequisites": report.prerequisites,
    }
