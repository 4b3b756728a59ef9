"""Render and write the proof pack: ledger.md, ledger.json, junit.xml, attachments.

Files are written as bytes with ``\\n`` line endings, no trailing spaces and one
final newline, because a signature covers exact bytes (DESIGN.md, "Signing").
Database-derived text is escaped before it enters Markdown: table cells escape
``|``, backticks, newlines and ``<!--``; evidence goes into fenced blocks whose
fence is longer than any backtick run inside (CommonMark 0.31, "Fenced code blocks").
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import jinja2

from zerodrift.ledger.model import ledger_data
from zerodrift.runner import RunReport

_BACKTICKS = re.compile(r"`+")


def escape_cell(value: Any) -> str:
    """Text safe inside one Markdown table cell (and inline text)."""
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    text = text.replace("<!--", "&lt;!--").replace("<", "&lt;")
    text = " ".join(part.strip() for part in text.splitlines() if part.strip()) if "\n" in text or "\r" in text else text
    return text.strip()


def escape_prose(value: Any) -> str:
    """A docstring as Markdown paragraphs, with HTML comments neutralised."""
    text = "" if value is None else str(value)
    paragraphs = [" ".join(line.strip() for line in block.splitlines()) for block in re.split(r"\n\s*\n", text.strip())]
    return "\n\n".join(p.replace("<!--", "&lt;!--") for p in paragraphs if p)


def fenced(value: Any, indent: str = "") -> str:
    """A fenced code block holding ``value`` verbatim; the fence outgrows any backtick run."""
    text = ("" if value is None else str(value)).replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    longest = max((len(m.group(0)) for m in _BACKTICKS.finditer(text)), default=0)
    fence = "`" * max(3, longest + 1)
    lines = [fence, *text.split("\n"), fence]
    return "\n".join(indent + line if line else line for line in lines)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("zerodrift", "templates"),
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["cell"] = escape_cell
    env.filters["prose"] = escape_prose
    env.filters["fenced"] = fenced
    return env


def normalise(text: str) -> bytes:
    """LF line endings, no trailing spaces, no runs of 3+ blank lines, exactly one final newline."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    out: list[str] = []
    blank = 0
    for line in lines:
        blank = blank + 1 if not line else 0
        if blank <= 1:
            out.append(line)
    return ("\n".join(out).strip("\n") + "\n").encode("utf-8")


def render_markdown(data: dict[str, Any], signing: dict[str, Any] | None = None) -> bytes:
    """ledger.md bytes (the part a signature covers) from the ledger dict.

    ``signing`` carries ``json_sha256`` and ``signer`` (a key fingerprint, or empty
    for an UNSIGNED ledger). Any line that could pass for the signature marker is
    neutralised, so a signed ledger holds exactly one marker.
    """
    from zerodrift.ledger.sign import MARKER_PREFIX, UNSIGNED_NOTE

    signing = {"json_sha256": "", "signer": "", "unsigned_note": UNSIGNED_NOTE, "files": {}, **(signing or {})}
    text = _environment().get_template("ledger.md.j2").render(d=data, signing=signing)
    text = text.replace(MARKER_PREFIX, "&lt;!-- zerodrift-signature")
    return normalise(text)


def render_json(data: dict[str, Any]) -> bytes:
    """ledger.json bytes: indented, sorted keys, final newline."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def render_junit(data: dict[str, Any]) -> bytes:
    """junit.xml bytes: one test case per gate (JUnit XML as read by CI test-report views)."""
    gates = data["gates"]
    suite = ET.Element("testsuite", {
        "name": "zerodrift", "tests": str(len(gates)),
        "failures": str(sum(g["status"] == "FAIL" for g in gates)),
        "errors": str(sum(g["status"] == "ERROR" for g in gates)),
        "skipped": str(sum(g["status"] == "SKIPPED" for g in gates)),
        "time": f"{data['duration_s']:.3f}",
    })
    ET.SubElement(ET.SubElement(suite, "properties"), "property",
                  {"name": "commit", "value": data["provenance"]["commit"] or ""})
    for g in gates:
        case = ET.SubElement(suite, "testcase", {"classname": "zerodrift.gates", "name": f"{g['id']} {g['title']}",
                                                 "time": f"{g['duration_s']:.3f}"})
        details = "\n".join(f"[{c['status']}] {c['name']}: {c['detail']}" for c in g["checks"])
        tail = "\n\n".join(f"$ {s['command']}\n{s['output']}" for s in g["evidence"][-3:])
        if g["status"] == "FAIL":
            ET.SubElement(case, "failure", {"message": g["summary"]}).text = details + "\n\n" + tail
        elif g["status"] == "ERROR":
            ET.SubElement(case, "error", {"message": g["summary"]}).text = g["error"] + "\n\n" + tail
        elif g["status"] == "SKIPPED":
            ET.SubElement(case, "skipped", {"message": g["summary"]})
        else:
            ET.SubElement(case, "system-out").text = details
    ET.indent(suite)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True) + b"\n"


PACK_FILES = ("ledger.md", "ledger.json", "junit.xml", "attestation.dsse.json")


def _clear_previous_pack(out: Path) -> None:
    """Remove what an earlier run wrote into ``out`` (its pack files and ZG-*/ folders),
    so a re-run never leaves a stale attestation or evidence beside a new ledger.
    Nothing else in the folder is touched."""
    import shutil

    if not (out / "ledger.md").exists() and not (out / "ledger.json").exists():
        return
    for name in PACK_FILES:
        (out / name).unlink(missing_ok=True)
    for child in out.iterdir():
        if child.is_dir() and (child / "evidence.log").exists():
            shutil.rmtree(child)


def write_proof_pack(report: RunReport, signing_key=None) -> dict[str, Path]:
    """Write the proof pack into ``report.output_dir``; returns the written paths by role.

    Layout: ledger.md (SSHSIG-signed with ``signing_key``, an Ed25519 private key,
    or marked UNSIGNED when None), ledger.json (its SHA-256 is written inside the
    signed ledger), junit.xml, attestation.dsse.json (signed runs only), and one
    folder per gate with its attachments and an ``evidence.log``.
    """
    import hashlib

    from zerodrift.ledger import attest, sshsig
    from zerodrift.ledger.sign import UNSIGNED_NOTE, sign_ledger

    out = report.output_dir
    assert out is not None
    out.mkdir(parents=True, exist_ok=True)
    _clear_previous_pack(out)
    data = ledger_data(report)
    written: dict[str, Path] = {}
    for result in report.results:
        gate_dir = out / result.gate_id
        gate_dir.mkdir(exist_ok=True)
        for name, content in result.attachments.items():
            (gate_dir / name).write_bytes(content)
        log_lines = []
        for s in result.evidence:
            log_lines.append(f"## {s.title}  [role={s.role} db={s.database} {s.duration_s:.3f}s {s.status_text}]")
            log_lines.append(f"$ {s.command}")
            log_lines.append(s.output)
        (gate_dir / "evidence.log").write_bytes(normalise("\n".join(log_lines)))
    json_bytes = render_json(data)
    (out / "ledger.json").write_bytes(json_bytes)
    written["json"] = out / "ledger.json"
    (out / "junit.xml").write_bytes(render_junit(data))
    written["junit"] = out / "junit.xml"
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name not in ("ledger.md", "ledger.json",
                                                                                    "attestation.dsse.json")):
        files[path.relative_to(out).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    signing = {"json_sha256": hashlib.sha256(json_bytes).hexdigest(), "signer": "", "unsigned_note": UNSIGNED_NOTE,
               "files": files}
    if signing_key is not None:
        signing["signer"] = sshsig.fingerprint(sshsig.public_key_blob(signing_key.public_key()))
    body = render_markdown(data, signing)
    ledger = sign_ledger(body, signing_key) if signing_key is not None else body
    (out / "ledger.md").write_bytes(ledger)
    written["markdown"] = out / "ledger.md"
    if signing_key is not None:
        env = attest.envelope(attest.statement(data, ledger), signing_key)
        (out / "attestation.dsse.json").write_bytes(render_json(env))
        written["attestation"] = out / "attestation.dsse.json"
    return written
