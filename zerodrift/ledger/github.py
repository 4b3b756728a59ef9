"""GitHub Actions output: error annotations and the job summary.

Workflow commands (GitHub docs, "Workflow commands for GitHub Actions"): one
``::error title=…::message`` line per failed gate, with ``%``, CR and LF escaped in
the message and additionally ``:`` and ``,`` in properties; the gate table is
appended to the file named by ``GITHUB_STEP_SUMMARY``.
"""

from __future__ import annotations

import os
from typing import Any, TextIO


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotations(data: dict[str, Any]) -> list[str]:
    """``::error`` lines for every FAIL or ERROR gate; a ``::warning`` line naming the
    skipped gates when the verdict is INCOMPLETE (``::error`` when a required gate is missing)."""
    lines = []
    verdict = data["verdict"]
    if verdict["overall"] == "INCOMPLETE":
        level = "error" if verdict["required_missing"] else "warning"
        lines.append(f"::{level} title={_escape_property('zerodrift INCOMPLETE')}::{_escape_data(verdict['headline'])}")
    for g in data["gates"]:
        if g["status"] in ("FAIL", "ERROR"):
            title = _escape_property(f"{g['id']} {g['status']}: {g['title']}")
            lines.append(f"::error title={title}::{_escape_data(g['summary'])}")
    return lines


def summary_markdown(data: dict[str, Any], ledger_path: str) -> str:
    """The gate table for ``$GITHUB_STEP_SUMMARY``."""
    from zerodrift.ledger.render import escape_cell

    rows = "\n".join(f"| {g['id']} {escape_cell(g['title'])} | {g['status']} | {escape_cell(g['summary'])} |"
                     for g in data["gates"])
    commit = data["provenance"]["commit"] or "no commit"
    verdict = data["verdict"]
    return (f"### zerodrift: {verdict['overall']} for `{commit[:12]}`\n\n{escape_cell(verdict['headline'])}\n\n"
            f"| Gate | Status | Evidence |\n| --- | --- | --- |\n{rows}\n\nLedger: `{ledger_path}`\n")


def emit(data: dict[str, Any], ledger_path: str, stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Write annotations to ``stream`` and append the summary; no-op unless ``GITHUB_ACTIONS=true``."""
    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTIONS") != "true":
        return False
    for line in annotations(data):
        stream.write(line + "\n")
    stream.flush()
    path = env.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(summary_markdown(data, ledger_path))
    return True
