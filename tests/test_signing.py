"""Signed ledger: zerodrift verify, ssh-keygen -Y verify, DSSE attestation, JUnit.

A real run writes the ledger once (module fixture); each tampering is applied to a copy.
"""

from __future__ import annotations

import base64
import os
import json
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from typer.testing import CliRunner

from tests.backends import latest_pack, make_backend
from zerodrift.cli import app
from zerodrift.ledger import attest
from zerodrift.ledger.sign import MARKER, verify_ledger

runner = CliRunner()


def _keygen(path: Path, principal: str = "release@example.com") -> str:
    result = runner.invoke(app, ["keygen", str(path), "--principal", principal])
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def signed_pack(tmp_path_factory, admin_url):
    root = tmp_path_factory.mktemp("signed")
    backend = make_backend(root / "repo")
    line = _keygen(root / "keys" / "id")
    (root / "allowed_signers").write_text(line + "\n")
    result = runner.invoke(app, ["run", str(backend), "--admin-url", admin_url, "--out", str(root / "proof"),
                                 "--sign-key", str(root / "keys" / "id"), "-g", "ZG-0", "-g", "ZG-1"])
    assert result.exit_code == 0, result.output
    import git

    return {"dir": latest_pack(root / "proof"), "allowed": root / "allowed_signers", "root": root,
            "commit": git.Repo(root / "repo").head.commit.hexsha}


def _copy(pack, tmp_path) -> Path:
    target = tmp_path / "proof"
    shutil.copytree(pack["dir"], target)
    return target / "ledger.md"


def _problems(ledger, pack, **kw):
    res = verify_ledger(ledger, allowed_signers=pack["allowed"], **kw)
    return res.ok, " | ".join(res.problems)


def test_signed_ledger_verifies_and_names_the_commit(signed_pack):
    ledger = signed_pack["dir"] / "ledger.md"
    result = runner.invoke(app, ["verify", str(ledger), "--allowed-signers", str(signed_pack["allowed"]),
                                 "--commit", signed_pack["commit"], "--principal", "release@example.com"])
    assert result.exit_code == 0, result.output
    assert signed_pack["commit"] in result.output and "attestation.dsse.json verified" in result.output


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")
def test_plain_ssh_keygen_accepts_the_signature(signed_pack, tmp_path):
    data = (signed_pack["dir"] / "ledger.md").read_bytes()
    head, _, tail = data.partition(MARKER.encode() + b"\n")
    armored = tail[tail.index(b"-----BEGIN"):tail.index(b"-----END SSH SIGNATURE-----") + 27] + b"\n"
    (tmp_path / "sig").write_bytes(armored)
    proc = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signed_pack["allowed"]), "-I", "release@example.com",
                           "-n", "zerodrift-ledger", "-s", str(tmp_path / "sig")], input=head, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    # and the namespace matters: git's namespace is refused
    proc = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signed_pack["allowed"]), "-I", "release@example.com",
                           "-n", "git", "-s", str(tmp_path / "sig")], input=head, capture_output=True)
    assert proc.returncode != 0


def _flip_byte(data: bytes, offset: int) -> bytes:
    b = bytearray(data)
    b[offset] = ord("X") if b[offset] != ord("X") else ord("Y")
    return bytes(b)


TAMPERING = {
    "one byte changed near the top": (lambda d: _flip_byte(d, 10), "changed after signing"),
    "one byte changed in a gate table": (lambda d: d.replace(b"| PASS |", b"| PASX |", 1), "changed after signing"),
    "CRLF line endings": (lambda d: d.replace(b"\n", b"\r\n"), "CRLF"),
    "final newline stripped": (lambda d: d[:-1], "final newline"),
    "trailing spaces": (lambda d: d.replace(b"\n", b"  \n", 5), "trailing spaces"),
    "second signature block": (lambda d: d + b"\n" + MARKER.encode() + b"\n", "signature markers"),
    "forged marker inside the body": (lambda d: d.replace(b"## Gate ledger\n", b"## Gate ledger\n" + MARKER.encode() + b"\n", 1),
                                      "signature markers"),
    "signature removed": (lambda d: d[:d.index(MARKER.encode())], "no signature"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_fails_with_its_own_message(signed_pack, tmp_path, case):
    change, expected = TAMPERING[case]
    ledger = _copy(signed_pack, tmp_path)
    ledger.write_bytes(change(ledger.read_bytes()))
    ok, problems = _problems(ledger, signed_pack)
    assert not ok
    assert expected in problems, problems
    result = runner.invoke(app, ["verify", str(ledger), "--allowed-signers", str(signed_pack["allowed"])])
    assert result.exit_code == 1 and "INVALID" in result.output


def test_another_key_is_unknown(signed_pack, tmp_path):
    other = _keygen(tmp_path / "other")
    (tmp_path / "allowed").write_text(other + "\n")
    res = verify_ledger(signed_pack["dir"] / "ledger.md", allowed_signers=tmp_path / "allowed")
    assert not res.ok and "unknown key" in res.problems[0]


def test_key_allowed_only_for_another_namespace_is_refused(signed_pack, tmp_path):
    line = signed_pack["allowed"].read_text().replace('namespaces="zerodrift-ledger"', 'namespaces="git"')
    (tmp_path / "allowed").write_text(line)
    res = verify_ledger(signed_pack["dir"] / "ledger.md", allowed_signers=tmp_path / "allowed")
    assert not res.ok and "namespace" in res.problems[0]


def test_signature_made_in_another_namespace_is_refused(signed_pack, tmp_path):
    from zerodrift.ledger import sshsig
    from zerodrift.ledger.sign import load_signing_key, split_signed

    ledger = _copy(signed_pack, tmp_path)
    signed, _ = split_signed(ledger.read_bytes())
    key = load_signing_key(str(signed_pack["root"] / "keys" / "id"))
    forged = signed + MARKER.encode() + b"\n\n```ssh-signature\n" + sshsig.sign(signed, key, "git").encode() + b"```\n"
    ledger.write_bytes(forged)
    ok, problems = _problems(ledger, signed_pack)
    assert not ok and "wrong namespace" in problems


def test_wrong_commit_and_wrong_principal(signed_pack):
    ledger = signed_pack["dir"] / "ledger.md"
    ok, problems = _problems(ledger, signed_pack, commit="0" * 40)
    assert not ok and "wrong commit" in problems
    ok, problems = _problems(ledger, signed_pack, principal="someone@else")
    assert not ok and "principal" in problems


def test_changed_ledger_json_is_detected(signed_pack, tmp_path):
    ledger = _copy(signed_pack, tmp_path)
    path = ledger.with_name("ledger.json")
    path.write_bytes(path.read_bytes().replace(b'"PASS"', b'"FAIL"', 1))
    ok, problems = _problems(ledger, signed_pack)
    assert not ok and "ledger.json was changed" in problems


def test_attestation_is_a_signed_in_toto_test_result(signed_pack):
    from zerodrift.ledger import sshsig
    from zerodrift.ledger.sign import split_signed

    ledger = signed_pack["dir"] / "ledger.md"
    env = json.loads((signed_pack["dir"] / "attestation.dsse.json").read_text())
    key_blob = sshsig.parse(split_signed(ledger.read_bytes())[1]).public_key
    stmt = attest.verify_envelope(env, key_blob)
    assert stmt["predicateType"] == "https://in-toto.io/attestation/test-result/v0.1"
    subjects = {s["name"]: s["digest"] for s in stmt["subject"]}
    assert subjects["commit"]["gitCommit"] == signed_pack["commit"]
    assert stmt["predicate"]["result"] == "PASSED"
    assert stmt["predicate"]["passedTests"] == ["ZG-0", "ZG-1"]
    # a changed payload no longer verifies
    bad = dict(env, payload=base64.b64encode(base64.b64decode(env["payload"]).replace(b"PASSED", b"FAILED")).decode())
    with pytest.raises(sshsig.SignatureError):
        attest.verify_envelope(bad, key_blob)


def test_junit_has_one_case_per_gate(signed_pack):
    suite = ET.parse(signed_pack["dir"] / "junit.xml").getroot()
    assert suite.tag == "testsuite" and suite.get("tests") == "2" and suite.get("failures") == "0"
    names = [c.get("name") for c in suite.iter("testcase")]
    assert names == ["ZG-0 Provenance and scope", "ZG-1 Fresh migration determinism"]


def test_unsigned_run_says_so(admin_url, tmp_path, monkeypatch):
    monkeypatch.delenv("ZERODRIFT_SIGNING_KEY", raising=False)
    backend = make_backend(tmp_path / "repo")
    result = runner.invoke(app, ["run", str(backend), "--out", str(tmp_path / "proof"), "-g", "ZG-0"])
    assert result.exit_code == 0, result.output
    assert "UNSIGNED" in result.output
    ledger = latest_pack(tmp_path / "proof") / "ledger.md"
    assert b"UNSIGNED" in ledger.read_bytes()
    (tmp_path / "allowed").write_text("")
    res = verify_ledger(ledger, allowed_signers=tmp_path / "allowed")
    assert not res.ok and "no signature" in res.problems[0]


def test_key_from_environment_text(admin_url, tmp_path, monkeypatch):
    _keygen(tmp_path / "k")
    monkeypatch.setenv("ZERODRIFT_SIGNING_KEY", (tmp_path / "k").read_text())
    backend = make_backend(tmp_path / "repo")
    result = runner.invoke(app, ["run", str(backend), "--out", str(tmp_path / "proof"), "-g", "ZG-0"])
    assert result.exit_code == 0, result.output
    assert MARKER.encode() in (latest_pack(tmp_path / "proof") / "ledger.md").read_bytes()


def test_database_text_cannot_forge_the_marker():
    from zerodrift.ledger.render import render_markdown

    data = json.loads(json.dumps(_minimal_data()))
    data["gates"][0]["evidence"][0]["output"] = MARKER + "\n```\n| x |"
    body = render_markdown(data)
    assert MARKER.encode() not in body


def _minimal_data():
    return {
        "provenance": {"commit": "a" * 40, "tree": "b" * 40, "branch": "main", "detached": False, "subject": "s",
                       "dirty": False, "dirty_paths": [], "shallow": False, "remotes": {}},
        "overall": "PASS", "exit_code": 0, "required_gates": [],
        "verdict": {"overall": "PASS", "reason": "all 1 selected gates passed", "headline": "PASS: all 1 selected gates passed",
                    "skipped": {}, "required_missing": [], "attestation_result": "PASSED"}, "ci": {}, "target": {"folder": "/x", "config": None, "head": []},
        "schema_fingerprint": "", "server": {"kind": "", "version": ""}, "run_id": "r", "started_at": "t",
        "duration_s": 1.0, "zerodrift_version": "0", "kinds_compared": [],
        "gates": [{"id": "ZG-9", "title": "T", "status": "PASS", "summary": "s", "description": "", "error": "",
                   "skip_reason": "", "checks": [], "tables": [], "attachments": [], "duration_s": 0.1,
                   "evidence": [{"title": "t", "command": "c", "role": "", "database": "", "duration_s": 0.0,
                                 "exit_status": 0, "output": "", "env": []}]}],
        "not_run": [], "included_as_dependency": [], "databases": {"dropped": [], "kept": []}, "roles_created": [], "roles_dropped": [], "roles_note": "",
    }


def test_verify_head_outside_a_checkout_says_so_and_how_to_fix_it(signed_pack, tmp_path):
    ledger = _copy(signed_pack, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "zerodrift.cli", "verify", str(ledger), "--allowed-signers",
                           str(signed_pack["allowed"]), "--head"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)})
    assert proc.returncode == 2, proc.stderr
    assert "is not in a git checkout" in proc.stderr and "--commit SHA" in proc.stderr, proc.stderr
