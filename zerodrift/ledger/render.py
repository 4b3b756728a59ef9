"""Render and write the proof pack: ledger.md, ledger.json, junit.xml, attachments.

Files are written as bytes with ``\\n`` line endings, no trailing spaces and one
final newline, because a signature covers exact bytes (docs/architecture.md, "Proof pack and signing").
Database-derived text is escaped before it enters Markdown: table cells escape
``|``, backticks, newlines and ``<!--``; evidence goes into fenced blocks whose
fence is longer than any backtick run inside (CommonMark 0.31, "Fenced code blocks").
"""

from __future__ import annotations

import shlex

import json
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import jinja2

from zerodrift.errors import UsageError
from zerodrift.ledger.model import ledger_data
from zerodrift.runner import RunReport

_BACKTICKS = re.compile(r"`+")
_EDGE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def shown(value: Any) -> str:
    """A value as a reader expects it, not as a Python repr: None → ``∅``, booleans
    ``true``/``false`` (as PostgreSQL prints them), lists comma-separated, mappings as
    JSON, everything else ``str()``."""
    if value is None:
        return "∅"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(shown(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)


def escape_cell(value: Any) -> str:
    """Text safe inside one Markdown table cell (and inline text).

    Backslashes, ``|``, backticks, ``*``, a ``_`` at a word's edge and the ``(`` of ``](``
    are backslash-escaped (CommonMark 0.31, "Backslash escapes"; GFM tables, pipes in
    cells), so no emphasis, code span or inline link starts; ``<`` becomes
    ``&lt;`` so no HTML tag or comment starts; lines are joined with spaces. Values
    go through :func:`shown` first (None, SQL NULL, is ``∅``)."""
    text = shown(value)
    text = re.sub(r"([\\|`*])", r"\\\1", text).replace("](", "]\\(")  # no inline link can start
    text = _EDGE_UNDERSCORE.sub(r"\\_", text)  # snake_case stays readable: intraword _ is never emphasis
    text = text.replace("<", "&lt;")
    text = " ".join(part.strip() for part in text.splitlines() if part.strip()) if "\n" in text or "\r" in text else text
    return text.strip()


def code_span(value: Any) -> str:
    """A code span holding ``value`` verbatim, safe in a table cell: the backtick fence
    outgrows any backtick run inside, ``|`` is escaped (GFM tables: the escape applies
    inside code spans too), newlines become spaces. Nothing else is escaped: a code span
    shows ``<`` and ``&`` literally (CommonMark 0.31, "Code spans")."""
    text = " ".join(shown(value).split()) if value is not None else ""
    text = text.replace("|", "\\|")
    longest = max((len(m.group(0)) for m in _BACKTICKS.finditer(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def escape_html(value: Any) -> str:
    """Text for an HTML element such as ``<summary>``: ``&``, ``<``, ``>`` as entities."""
    return " ".join(shown(value).split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_prose(value: Any) -> str:
    """A docstring as Markdown paragraphs, with HTML comments neutralised."""
    text = "" if value is None else str(value)
    paragraphs = [" ".join(line.strip() for line in block.splitlines()) for block in re.split(r"\n\s*\n", text.strip())]
    return "\n\n".join(p.replace("<!--", "&lt;!--") for p in paragraphs if p)


def fenced(value: Any, indent: str = "", lang: str = "") -> str:
    """A fenced code block holding ``value`` verbatim; the fence outgrows any backtick run."""
    text = ("" if value is None else str(value)).replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    longest = max((len(m.group(0)) for m in _BACKTICKS.finditer(text)), default=0)
    fence = "`" * max(3, longest + 1)
    lines = [fence + lang, *text.split("\n"), fence]
    return "\n".join(indent + line if line else line for line in lines)


def fingerprint_command(snapshot: str) -> str:
    """A shell command, run in the pack folder, that recomputes the schema fingerprint from the
    attached catalog snapshot at ``snapshot`` (its path in the pack, as the gate that computed the
    fingerprint published it: header fact ``schema_snapshot``): the SHA-256 of the canonical JSON
    of its ``objects`` (see :mod:`zerodrift.catalog.snapshot`)."""
    return ("python3 -c 'import hashlib,json,sys; o=json.load(open(sys.argv[1],encoding=\"utf-8\"))[\"objects\"]; "
            "print(hashlib.sha256((json.dumps(o,sort_keys=True,separators=(\",\",\":\"),ensure_ascii=False)+\"\\n\")"
            ".encode()).hexdigest())' " + shlex.quote(snapshot))


def _normalised_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("[… ")]


def _shown_elsewhere(text: str, haystacks: list[str]) -> bool:
    """True when every line of ``text`` (but the first) appears, in order, in one of
    ``haystacks`` (an evidence step's output): then the ledger prints it once, there."""
    lines = _normalised_lines(text)[1:]
    if not lines:
        return False
    for hay in haystacks:
        hay_lines = _normalised_lines(hay)
        joined = "\n".join(hay_lines)
        if "\n".join(lines) in joined or (len(lines) > 3 and "\n".join(lines[-3:]) in joined):
            return True
    return False


def _for_markdown(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of the ledger dict with what only the Markdown needs: each gate's error
    split into its first line and a body (the body left out when an evidence step
    already shows it: no log is printed twice), and each check's detail for a cell
    (the first line only when the rest is in the evidence or the error)."""
    import copy

    data = copy.deepcopy(data)
    for g in data["gates"]:
        outputs = [s.get("output", "") for s in g.get("evidence", [])]
        error = g.get("error", "") or ""
        head, _, body = error.strip().partition("\n")
        g["error_head"] = head
        g["error_body"] = "" if not body.strip() or _shown_elsewhere(error, outputs) else body
        for c in g.get("checks", []):
            detail = c.get("detail", "") or ""
            first = detail.strip().split("\n", 1)[0]
            if "\n" in detail.strip() and _shown_elsewhere(detail, outputs + [error]):
                c["detail_cell"] = f"{first} (full text in the evidence below)"
            else:
                c["detail_cell"] = detail
    return data


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
    env.filters["code"] = code_span
    env.filters["html"] = escape_html
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
    text = _environment().get_template("ledger.md.j2").render(d=_for_markdown(data), signing=signing,
                                                               fingerprint_command=fingerprint_command(data.get("schema_snapshot") or ""))
    text = text.replace(MARKER_PREFIX, "&lt;!-- zerodrift-signature")
    return normalise(text)


def render_json(data: dict[str, Any]) -> bytes:
    """ledger.json bytes: indented, sorted keys, final newline."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def render_junit(data: dict[str, Any]) -> bytes:
    """junit.xml bytes: one test case per gate (JUnit XML as read by CI test-report views).

    The suite's properties carry the overall verdict; a skipped gate is a ``<skipped>``
    case, so test-report views show an INCOMPLETE run as not all green."""
    gates = data["gates"]
    suite = ET.Element("testsuite", {
        "name": "zerodrift", "tests": str(len(gates)),
        "failures": str(sum(g["status"] == "FAIL" for g in gates)),
        "errors": str(sum(g["status"] == "ERROR" for g in gates)),
        "skipped": str(sum(g["status"] == "SKIPPED" for g in gates)),
        "time": f"{data['duration_s']:.3f}",
    })
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", {"name": "commit", "value": data["provenance"]["commit"] or ""})
    ET.SubElement(props, "property", {"name": "verdict", "value": data["verdict"]["overall"]})
    ET.SubElement(props, "property", {"name": "verdict_headline", "value": data["verdict"]["headline"]})
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


def write_proof_pack(report: RunReport, signing_key=None, *, data: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write the proof pack into ``report.output_dir``; returns the written paths by role.

    ``data`` is the ledger model (:func:`zerodrift.ledger.model.ledger_data` of ``report``),
    built once by the caller that also renders it elsewhere (the CLI's CI summary);
    built here when None. ledger.json and junit.xml render from it, ledger.md from what
    ledger.json holds (the same model read back, as ``zerodrift sign`` re-renders it).

    The folder must not hold a pack yet (UsageError otherwise: no pack is ever replaced);
    afterwards the ``LATEST`` pointer beside it (and ``LATEST-FULL`` for a run of every
    installed gate) names it (:mod:`zerodrift.ledger.layout`).

    Layout: ledger.md (SSHSIG-signed with ``signing_key``, an Ed25519 private key,
    or marked UNSIGNED when None), ledger.json (its SHA-256 is written inside the
    signed ledger), junit.xml, attestation.dsse.json (signed runs only), and one
    folder per gate with its attachments and an ``evidence.log``. The pack is written
    UNSIGNED first; with a key, :func:`zerodrift.ledger.sign.sign_pack` then signs it.
    """
    import hashlib

    from zerodrift.ledger.layout import is_pack, write_pointer
    from zerodrift.ledger.sign import UNSIGNED_NOTE, sign_pack

    out = report.output_dir
    assert out is not None
    if is_pack(out):  # a template without {run_id} reached an existing pack: never write over it
        raise UsageError(f"{out} already holds a proof pack; zerodrift never replaces one. Put {{run_id}} in "
                         "output.dir/--out, or leave it out so each run gets its own <run id> folder")
    out.mkdir(parents=True, exist_ok=True)
    data = ledger_data(report) if data is None else data
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
    # rendered from exactly what ledger.json holds, so `zerodrift sign` can check and re-render it
    (out / "ledger.md").write_bytes(render_markdown(json.loads(json_bytes), signing))
    written["markdown"] = out / "ledger.md"
    if signing_key is not None:  # one signing path: the one `zerodrift sign` takes for an unsigned pack
        written.update(sign_pack(out, signing_key))
    write_pointer(out, full=not report.not_run)
    return written
