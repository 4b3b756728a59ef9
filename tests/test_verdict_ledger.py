"""One verdict in every output, packs that never replace each other, and a ledger readable at any size.

The verdict rules and the drift presentation are tested on synthetic input (no database:
hundreds of drift rows built as Python snapshots); the INCOMPLETE run is a real, signed run
whose skipped gate costs nothing (ZG-5 with no Celery app configured).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from typer.testing import CliRunner

from tests.backends import commit_all, edit, latest_pack, make_backend
from zerodrift.catalog.diff import diff_snapshots
from zerodrift.catalog.drift import (CLASS_ORDER, POSITION, RENAMED, apply_waivers, classify, counts_text,
                                     format_drift, group_drift)
from zerodrift.catalog.snapshot import CatalogSnapshot
from zerodrift.cli import app
from zerodrift.gates.base import OUTPUT_TAIL_CHARS, EvidenceStep, GateResult
from zerodrift.gates.common import add_drift_table, drift_detail
from zerodrift.ledger.sign import verify_ledger
from zerodrift.verdict import GateOutcome, compute_verdict, resolve_required

runner = CliRunner()


# -- the verdict rules --------------------------------------------------------------------

def _v(*gates, not_run=(), required=()):
    return compute_verdict([GateOutcome(*g) for g in gates], not_run=list(not_run), required=list(required))


def test_verdict_rules_and_exit_codes():
    ok = ("ZG-0", "PASS")
    skipped = ("ZG-5", "SKIPPED", False, "celery_app is not configured")
    cases = [
        (_v(ok, ("ZG-1", "PASS")), "PASS", 0),
        (_v(ok, skipped), "INCOMPLETE", 0),
        (_v(ok, skipped, required=["ZG-5"]), "INCOMPLETE", 1),
        (_v(ok, skipped, required=["ZG-0"]), "INCOMPLETE", 0),  # the required gate passed
        (_v(ok, not_run=["ZG-3"], required=["ZG-3"]), "INCOMPLETE", 1),  # a required gate not selected
        (_v(ok, not_run=["ZG-3"]), "PASS", 0),  # a partial run of passing gates
        (_v(ok, skipped, ("ZG-1", "FAIL")), "FAIL", 1),
        (_v(ok, ("ZG-1", "ERROR", True)), "FAIL", 3),  # the environment: exit 3
        (_v(("ZG-1", "ERROR", True), ("ZG-2", "ERROR", False)), "FAIL", 1),
    ]
    for verdict, overall, code in cases:
        assert (verdict.overall, verdict.exit_code) == (overall, code), verdict
    incomplete = _v(ok, skipped, not_run=["ZG-3"], required=["ZG-5"])
    assert incomplete.headline.startswith("INCOMPLETE: ZG-5 skipped (celery_app is not configured)")
    assert "not run: ZG-3" in incomplete.headline and "required but not proven: ZG-5" in incomplete.headline
    assert resolve_required(["all"], ["ZG-0", "ZG-1"]) == ["ZG-0", "ZG-1"]
    assert resolve_required(["zg-1", "ZG-1"], ["ZG-0", "ZG-1"]) == ["ZG-1"]
    with pytest.raises(ValueError, match="ZG-9"):
        resolve_required(["ZG-9"], ["ZG-0"])


# -- a real INCOMPLETE run: every output says so ------------------------------------------

@pytest.fixture(scope="module")
def incomplete(tmp_path_factory, admin_url):
    root = tmp_path_factory.mktemp("incomplete")
    backend = make_backend(root / "repo", commit=False)
    edit(backend / "zerodrift.toml", 'celery_app = "app.celery_app:celery_app"', '# celery_app: not configured')
    commit_all(root / "repo", "no celery app: ZG-5 is skipped")
    key = root / "keys" / "id"
    line = runner.invoke(app, ["keygen", str(key), "--principal", "release@example.com"]).stdout.strip().splitlines()[-1]
    (root / "allowed").write_text(line + "\n")
    summary = root / "summary.md"
    out = root / "proof"
    args = ["run", str(backend), "--admin-url", admin_url, "--out", str(out), "-g", "ZG-0", "-g", "ZG-5",
            "--sign-key", str(key)]
    result = runner.invoke(app, [*args, "--format", "markdown"],
                           env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert (out / "LATEST").is_file(), result.output + repr(result.exception)
    return {"root": root, "backend": backend, "out": out, "pack": latest_pack(out), "result": result,
            "summary": summary, "args": args, "allowed": root / "allowed"}


def test_skipped_gate_is_incomplete_in_every_output(incomplete):
    result, pack = incomplete["result"], incomplete["pack"]
    assert result.exit_code == 0, result.output  # INCOMPLETE with nothing required exits 0
    ledger = (pack / "ledger.md").read_bytes()
    assert result.stdout_bytes == ledger  # --format markdown prints exactly the ledger written, signature included
    first = ledger.decode().splitlines()[:12]
    assert any(line.startswith("- Verdict: **INCOMPLETE** (exit 0) — ZG-5 skipped (celery_app is not configured")
               for line in first), first
    assert any(line.startswith("- **Skipped: ZG-5**") for line in first)
    data = json.loads((pack / "ledger.json").read_text())
    assert data["overall"] == data["verdict"]["overall"] == "INCOMPLETE" and data["exit_code"] == 0
    assert list(data["verdict"]["skipped"]) == ["ZG-5"]
    suite = ET.parse(pack / "junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["verdict"] == "INCOMPLETE" and suite.get("skipped") == "1"
    env = json.loads((pack / "attestation.dsse.json").read_text())
    predicate = json.loads(base64.b64decode(env["payload"]))["predicate"]
    assert predicate["result"] == "WARNED" and predicate["warnedTests"] == ["ZG-5"]
    assert predicate["configuration"][0]["annotations"]["verdict"] == "INCOMPLETE"
    assert incomplete["summary"].read_text().startswith("### zerodrift: INCOMPLETE for `")
    assert "::warning title=zerodrift INCOMPLETE::INCOMPLETE: ZG-5 skipped" in result.stderr
    # verify accepts the signature and says INCOMPLETE; --require-pass refuses it
    allowed = str(incomplete["allowed"])
    check = runner.invoke(app, ["verify", str(incomplete["out"]), "--allowed-signers", allowed])
    assert check.exit_code == 0 and "verdict INCOMPLETE" in check.stdout, check.output
    check = runner.invoke(app, ["verify", str(pack / "ledger.md"), "--allowed-signers", allowed, "--require-pass"])
    assert check.exit_code == 1 and "records the verdict INCOMPLETE" in check.stdout, check.output


def test_a_required_gate_that_was_skipped_exits_1(incomplete):
    # --require on the command line; the rerun of the same commit keeps the earlier pack
    result = runner.invoke(app, [*incomplete["args"], "--require", "ZG-5"])
    assert result.exit_code == 1, result.output
    assert "INCOMPLETE (exit 1)" in result.stderr and "required but not proven: ZG-5" in result.stderr
    assert latest_pack(incomplete["out"]) != incomplete["pack"] and (incomplete["pack"] / "ledger.md").is_file()
    # required_gates in the config (top level), and a required gate the run did not select
    backend = incomplete["backend"]
    config = backend / "zerodrift.toml"
    config.write_text('required_gates = ["ZG-5"]\n' + config.read_text())
    commit_all(backend.parent, "ZG-5 is required")
    result = runner.invoke(app, incomplete["args"] + ["--out", str(incomplete["root"] / "second")])
    assert result.exit_code == 1, result.output
    data = json.loads((latest_pack(incomplete["root"] / "second") / "ledger.json").read_text())
    assert data["verdict"]["required_missing"] == ["ZG-5"] and data["required_gates"] == ["ZG-5"]
    result = runner.invoke(app, ["run", str(backend), "--out", str(incomplete["root"] / "third"), "-g", "ZG-0",
                                 "--require", "nope"])
    assert result.exit_code == 2 and "required gate 'nope' is not installed" in result.stderr


MISSING = {
    "ledger.json": ("ledger.json", "ledger.json is missing"),
    "an evidence file": ("ZG-0/evidence.log", "evidence file(s) the signed ledger names are missing: ZG-0/evidence.log"),
    "the attestation": ("attestation.dsse.json", "attestation.dsse.json is missing"),
}


def test_verify_fails_for_each_missing_named_file_and_warns_of_unnamed_ones(incomplete, tmp_path):
    allowed = incomplete["allowed"]
    for case, (name, message) in MISSING.items():
        copy = tmp_path / case.replace(" ", "_")
        shutil.copytree(incomplete["pack"], copy)
        res = verify_ledger(copy / "ledger.md", allowed_signers=allowed)
        assert res.ok, res.problems  # positive control: the intact copy verifies
        (copy / name).unlink()
        res = verify_ledger(copy / "ledger.md", allowed_signers=allowed)
        assert not res.ok and any(message in p for p in res.problems), (case, res.problems)
    copy = tmp_path / "extra"
    shutil.copytree(incomplete["pack"], copy)
    (copy / "ZG-0" / "notes.txt").write_text("added after signing")
    res = verify_ledger(copy / "ledger.md", allowed_signers=allowed)
    assert res.ok and any(n.startswith("WARNING: 1 file(s) in the pack are not named") and "ZG-0/notes.txt" in n
                          for n in res.notes), res.notes
    # an attestation, validly signed, that claims another result than ledger.json is refused
    from zerodrift.ledger import attest
    from zerodrift.ledger.sign import load_signing_key

    copy = tmp_path / "claims_pass"
    shutil.copytree(incomplete["pack"], copy)
    env = json.loads((copy / "attestation.dsse.json").read_text())
    statement = json.loads(base64.b64decode(env["payload"]))
    statement["predicate"]["result"] = "PASSED"
    key = load_signing_key(str(incomplete["root"] / "keys" / "id"))
    (copy / "attestation.dsse.json").write_text(json.dumps(attest.envelope(statement, key)))
    check = runner.invoke(app, ["verify", str(copy), "--allowed-signers", str(allowed)])
    assert check.exit_code == 1 and "its test result PASSED disagrees with the verdict INCOMPLETE" in check.stdout
    # a ledger.json whose recorded verdict disagrees with its own gates is refused, even under a
    # valid signature over its digest: verify recomputes the verdict from the gate statuses
    import hashlib

    from zerodrift.ledger.sign import sign_ledger, split_signed

    copy = tmp_path / "inconsistent"
    shutil.copytree(incomplete["pack"], copy)
    old_json = (copy / "ledger.json").read_bytes()
    data = json.loads(old_json)
    data["gates"][-1]["status"] = "PASS"  # ZG-5 claims PASS, the recorded verdict stays INCOMPLETE
    new_json = json.dumps(data).encode()
    (copy / "ledger.json").write_bytes(new_json)
    signed, _ = split_signed((copy / "ledger.md").read_bytes())
    body = signed[:-1].replace(hashlib.sha256(old_json).hexdigest().encode(), hashlib.sha256(new_json).hexdigest().encode())
    (copy / "ledger.md").write_bytes(sign_ledger(body, key))
    res = verify_ledger(copy / "ledger.md", allowed_signers=allowed)
    assert not res.ok and "ledger.json records overall INCOMPLETE but its gates give PASS" in res.problems, res.problems


# -- drift at scale (synthetic snapshots, no database) ----------------------------------

def _columns(table: str, names: list[str], defaults: dict[str, str] | None = None) -> dict:
    return {f"public.{table}.{n}": {"position": i + 1, "type": "integer", "default": (defaults or {}).get(n)}
            for i, n in enumerate(names)}


FUNCTION = "CREATE OR REPLACE FUNCTION public.f{i}()\n RETURNS integer\n LANGUAGE sql\nAS $function$\n  SELECT {n}\n$function$\n"
VIEW = ("SELECT e.id, e.tenant_id, e.channel, e.model_version, e.allocated_cents, e.event_timestamp, e.conversion_value_cents "
        "FROM public.attribution_events e JOIN public.tenants t ON t.id = e.tenant_id WHERE e.channel <> 'internal'::text "
        "AND e.allocated_cents > {n}")


def synthetic_pair() -> tuple[CatalogSnapshot, CatalogSnapshot]:
    """A fresh (left) and an upgraded (right) snapshot differing by 315 rows across every class."""
    cols = [f"c{j}" for j in range(10)]
    left = {"tables": {}, "columns": {}, "constraints": {}, "indexes": {}, "functions": {}, "views": {}}
    right = json.loads(json.dumps(left))
    for i in range(40):
        left["tables"][f"public.t{i}"] = right["tables"][f"public.t{i}"] = {"owner": "app"}
        left["columns"].update(_columns(f"t{i}", cols))
        moved = cols[:1] + cols[-1:] + cols[1:-1] if i < 30 else cols  # 30 tables: c9 moved to second place
        right["columns"].update(_columns(f"t{i}", moved, {"c1": "0"} if 30 <= i < 36 else None))
    for i in (36, 37):
        right["tables"][f"public.t{i}"] = {"owner": "someone_else"}
    for i in (40, 41, 42):  # missing tables: each is one row with its columns and its index
        left["tables"][f"public.t{i}"] = {"owner": "app"}
        left["columns"].update(_columns(f"t{i}", cols[:2]))
        left["indexes"][f"public.t{i}/ix_t{i}"] = {"definition": f"CREATE INDEX ix_t{i} ON public.t{i} (c0)"}
    for j in (0, 1):
        right["indexes"][f"public.t0/ix_extra{j}"] = {"definition": f"CREATE INDEX ix_extra{j} ON public.t0 (c{j})"}
    for i in range(5):
        left["constraints"][f"public.t{i}/ck_old_{i}"] = {"definition": f"CHECK ((c{i} > 0))"}
        right["constraints"][f"public.t{i}/ck_new_{i}"] = {"definition": f"CHECK ((c{i} > 0))"}
    # a table renamed (same attributes and columns): one row with its columns and its index
    left["tables"]["public.arch_2026"] = right["tables"]["public.arch_2029"] = {"owner": "app"}
    left["columns"].update(_columns("arch_2026", cols[:2]))
    right["columns"].update(_columns("arch_2029", cols[:2]))
    left["indexes"]["public.arch_2026/ix_arch_2026"] = {"definition": "CREATE INDEX ix_arch_2026 ON public.arch_2026 (c0)"}
    right["indexes"]["public.arch_2029/ix_arch_2029"] = {"definition": "CREATE INDEX ix_arch_2029 ON public.arch_2029 (c0)"}
    for i in range(4):
        left["functions"][f"public.f{i}()"] = {"definition": FUNCTION.format(i=i, n=1)}
        right["functions"][f"public.f{i}()"] = {"definition": FUNCTION.format(i=i, n=2)}
    left["views"]["public.v0"] = {"definition": VIEW.format(n=0)}
    right["views"]["public.v0"] = {"definition": VIEW.format(n=100)}
    return CatalogSnapshot(objects=left), CatalogSnapshot(objects=right)


def test_synthetic_drift_of_hundreds_of_rows_is_grouped_counted_and_diffed():
    left, right = synthetic_pair()
    assert diff_snapshots(left, left) == [] and group_drift([], left, left) == []  # positive control
    rows = diff_snapshots(left, right)
    assert len(rows) == 315
    drifts = apply_waivers(classify(rows, left, right), []).rows
    groups = group_drift(drifts, left, right, "fresh", "existing")
    assert counts_text(groups) == ("3 missing object, 2 extra object, 5 definition changed, 6 default changed, "
                                   "6 name differs, 2 owner/privilege differs, 270 column position differs (30 tables)")
    ranks = [CLASS_ORDER.index(g.drift_class) for g in groups]
    assert ranks == sorted(ranks)  # most serious first
    positions = [g for g in groups if g.drift_class == POSITION]
    assert len(positions) == 30 and all(len(g.members) == 9 for g in positions)
    assert positions[0].left == "[1 same], c1, c2, c3, c4, c5, c6, c7, c8, c9"
    assert positions[0].right == "[1 same], c9, c1, c2, c3, c4, c5, c6, c7, c8"
    renames = [g for g in groups if g.drift_class == RENAMED]
    assert [(g.object, len(g.members)) for g in renames][0] == ("public.t0/ck_old_0 → ck_new_0", 2)
    assert not any("ck_" in g.object or "arch_" in g.object for g in groups if g.drift_class != RENAMED)
    table = next(g for g in renames if g.kind == "tables")
    assert table.object == "public.arch_2026 → public.arch_2029" and len(table.members) == 8
    missing = [g for g in groups if g.drift_class == "missing object"]
    assert [(g.object, g.right, len(g.members)) for g in missing][0] == (
        "public.t40", "absent (with its 2 columns, 1 indexes)", 4)
    view = next(g for g in groups if g.kind == "views")
    assert "-AND e.allocated_cents > 0" in view.diff and "+AND e.allocated_cents > 100" in view.diff
    assert view.left != view.right and "…" not in view.left  # never two texts cut to the same prefix
    function = next(g for g in groups if g.kind == "functions")
    assert function.diff.startswith("--- fresh: functions public.f0() definition\n+++ existing:")
    assert "\n-  SELECT 1\n+  SELECT 2\n" in function.diff
    text = format_drift(groups, "fresh", "existing").decode()
    assert text.startswith("# drift fresh → existing: 315 diff row(s); counting: 3 missing object")
    table_lines = [line for line in text.splitlines() if line.startswith(CLASS_ORDER)]
    assert len(table_lines) == 315  # every diff row, each with its class first
    assert "fresh: c0, c1, c2, c3, c4, c5, c6, c7, c8, c9" in text  # whole orders in the file
    detail = drift_detail([d for d in drifts if d.counts], "fresh", "existing", groups=groups)
    assert detail.startswith("315 drift row(s) (fresh → existing): 3 missing object, 2 extra object,")
    assert "\n" not in detail


def test_ledger_first_screen_holds_verdict_and_gate_table_at_any_size(tmp_path):
    from zerodrift.config import load_config
    from zerodrift.ledger.model import ledger_data
    from zerodrift.ledger.render import render_markdown
    from zerodrift.provenance import Provenance
    from zerodrift.runner import RunReport

    left, right = synthetic_pair()
    drifts = classify(diff_snapshots(left, right), left, right)
    groups = group_drift(drifts, left, right, "fresh", "fresh_b")
    zg0 = GateResult("ZG-0", "Provenance and scope")
    zg0.check("commit identified", True, "HEAD abc")
    zg0.add_step(EvidenceStep("git status", "git status --porcelain", output="x" * (OUTPUT_TAIL_CHARS + 1_048_576)))
    zg1 = GateResult("ZG-1", "Fresh migration determinism")
    zg1.check("fresh catalog snapshots equal", False, drift_detail(drifts, "fresh", "fresh_b", groups=groups))
    zg1.check("value shown", True, "<tenant> `id` None")
    add_drift_table(zg1, "fresh", "fresh_b", [("", groups)])
    zg1.add_table("Values", ["value"], [[None], [["a", "b"]], [True]])
    trace = "Traceback (most recent call last):\n  File \"env.py\", line 3\nRuntimeError: boom in 0013_x"
    zg2 = GateResult("ZG-2", "Existing-database upgrade path")
    zg2.add_step(EvidenceStep("alembic upgrade head", "alembic upgrade head", exit_status=1, output="INFO ...\n" + trace))
    zg2.fail_with_error("a migration raised on zd_x: RuntimeError: boom\n" + trace)
    zg5 = GateResult("ZG-5", "Beat")
    zg5.skip("celery_app is not configured")
    report = RunReport(run_id="r1", started_at=datetime.now(timezone.utc), loaded=load_config(tmp_path),
                       provenance=Provenance(commit="a" * 40, tree="b" * 40, branch="main",
                                             remotes={"origin": "https://x/<org>/repo|`a`"}),
                       results=[zg0, zg1, zg2, zg5], not_run=["ZG-3"])
    report.finished_at = report.started_at
    text = render_markdown(ledger_data(report)).decode()
    head = text.splitlines()[:60]
    assert head[2].startswith("- Verdict: **FAIL** (exit 1) — ZG-1 failed; ZG-2 ended in ERROR")
    for gid, status in (("ZG-0", "PASS"), ("ZG-1", "FAIL"), ("ZG-2", "ERROR"), ("ZG-5", "SKIPPED")):
        assert any(line.startswith(f"| {gid} ") and f"| {status} |" in line for line in head), (gid, head)
    zg1_row = next(line for line in head if line.startswith("| ZG-1 "))
    assert "315 drift row(s) (fresh → fresh_b): 3 missing object, 2 extra object, 5 definition changed" in zg1_row
    # the section starts with the counts, the table is most-serious-first, position rows and diffs collapse
    section = text[text.index("## ZG-1 (FAIL)"):text.index("## ZG-2 (ERROR)")]
    assert section.index("counting: 3 missing object") < section.index("| missing object |")
    assert section.index("| owner/privilege differs |") < section.index("<details><summary>Column position drift (30 tables")
    assert section.count("```diff") == 5 and section.count("| column position differs |") == 30
    # truncated output says how much was cut; an error printed in the evidence is not printed twice
    assert "[… 1,048,576 bytes omitted …]" in text
    assert text.count("RuntimeError: boom in 0013_x") == 1
    # escaping: code spans are literal (no &lt;, a pipe escaped), cells escape backticks and <, values not reprs
    assert "Remote origin: `https://x/<org>/repo\\|`a``" not in text
    assert "Remote origin: `` https://x/<org>/repo\\|`a` ``" in text
    assert "| &lt;tenant> \\`id\\` None |" in text
    assert "| ∅ |" in text and "| a, b |" in text and "| true |" in text and "['a'" not in text
    (tmp_path / "ledger.md").write_text(text)
    print(f"\nsynthetic 315-row drift ledger: {len(text.encode()):,} bytes, {len(text.splitlines())} lines")


def test_fingerprint_recompute_command_reproduces_the_fingerprint(tmp_path):
    from zerodrift.ledger.render import fingerprint_command

    FINGERPRINT_COMMAND = fingerprint_command("ZG-1/fresh.snapshot.json")

    left, _ = synthetic_pair()
    left.objects["schemas"] = {"public": {"comment": "ünïcode ✓"}}
    (tmp_path / "ZG-1").mkdir()
    (tmp_path / "ZG-1" / "fresh.snapshot.json").write_bytes(left.to_canonical_json())
    out = subprocess.run(FINGERPRINT_COMMAND, shell=True, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == left.fingerprint


def test_pack_layout_pointers_and_pruning(tmp_path):
    from zerodrift.ledger.layout import find_packs, prune_packs, resolve_ledger, write_pointer

    commit = tmp_path / "proofs" / "abc"

    def pack(name: str, started: str, full: bool) -> Path:
        folder = commit / name
        (folder / "ZG-0").mkdir(parents=True)
        (folder / "ledger.md").write_text("x\n")
        (folder / "ledger.json").write_text(json.dumps({"started_at": started}))
        write_pointer(folder, full=full)
        return folder

    full = pack("r1", "2026-01-01T10:00:00+00:00", True)
    subset = pack("r2", "2026-01-02T10:00:00+00:00", False)
    assert (commit / "LATEST").read_text() == "r2\n" and (commit / "LATEST-FULL").read_text() == "r1\n"
    assert resolve_ledger(commit) == full / "ledger.md"  # verify follows the newest full run
    assert resolve_ledger(subset) == subset / "ledger.md"
    # a pack written before packs had their own folder holds the new ones: never pruned whole
    (commit / "ledger.md").write_text("old layout\n")
    older = [pack(f"o{i}", f"2025-0{i + 1}-01T00:00:00+00:00", False) for i in range(3)]
    write_pointer(subset, full=False)
    assert [p.path.name for p in find_packs(tmp_path / "proofs")[commit]] == ["r2", "r1", "o2", "o1", "o0"]
    assert prune_packs(tmp_path / "proofs", 1, dry_run=True) == [p for p in reversed(older)]
    assert all(p.is_dir() for p in older)
    assert prune_packs(tmp_path / "proofs", 0) == [p for p in reversed(older)]  # r1, r2 are pointed at
    assert full.is_dir() and subset.is_dir() and (commit / "ledger.md").is_file()
    assert resolve_ledger(commit) == full / "ledger.md"  # the pointer wins over the old flat pack


def test_returned_values_are_written_as_postgresql_prints_them_not_as_python_reprs():
    import datetime
    import decimal
    import uuid

    from zerodrift.gates.common import sql_value

    values = [None, True, 0, "it's", datetime.datetime(2024, 1, 2, 3, 4), decimal.Decimal("1.50"), uuid.UUID(int=1)]
    assert [sql_value(v) for v in values] == ["NULL", "true", "0", "'it''s'", "'2024-01-02 03:04:00'", "1.50",
                                              "'00000000-0000-0000-0000-000000000001'"]
    assert not any("(" in sql_value(v) for v in values)  # no Decimal('1.50'), datetime.datetime(…)
