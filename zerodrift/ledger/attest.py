"""in-toto test-result attestation signed as a DSSE envelope.

Statement: in-toto Statement v1 (``https://in-toto.io/Statement/v1``) whose
subjects are the commit (digest ``gitCommit``) and the signed ``ledger.md``
(digest ``sha256``), with the test-result predicate
(``https://in-toto.io/attestation/test-result/v0.1``); its ``result`` is the run's
verdict (:mod:`zerodrift.verdict`): PASS → PASSED, INCOMPLETE → WARNED, FAIL →
FAILED, and the configuration annotations name the verdict and the skipped gates.
Envelope: DSSE v1; the signature is Ed25519 over PAE(payloadType, payload) =
``"DSSEv1" SP len(type) SP type SP len(body) SP body`` (DSSE protocol spec).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from zerodrift.ledger import sshsig
from zerodrift.verdict import ATTESTATION_RESULT

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://in-toto.io/attestation/test-result/v0.1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def statement(data: dict[str, Any], ledger_bytes: bytes) -> dict[str, Any]:
    """The in-toto Statement for a run (``data`` is the ledger dict)."""
    gates = data["gates"]
    verdict = data["verdict"]
    failed = [g["id"] for g in gates if g["status"] in ("FAIL", "ERROR")]
    skipped = [g["id"] for g in gates if g["status"] == "SKIPPED"]
    subjects = [{"name": "ledger.md", "digest": {"sha256": hashlib.sha256(ledger_bytes).hexdigest()}}]
    if data["provenance"]["commit"]:
        subjects.insert(0, {"name": "commit", "digest": {"gitCommit": data["provenance"]["commit"]}})
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "result": ATTESTATION_RESULT[verdict["overall"]],
            "configuration": [{"name": "zerodrift", "annotations": {
                "version": data["zerodrift_version"], "run_id": data["run_id"], "verdict": verdict["overall"],
                "verdict_headline": verdict["headline"], "skipped": ",".join(skipped),
                "not_run": ",".join(data.get("not_run", [])), "required_missing": ",".join(verdict["required_missing"])}}],
            "passedTests": [g["id"] for g in gates if g["status"] == "PASS"],
            "warnedTests": skipped,
            "failedTests": failed,
        },
    }


def envelope(stmt: dict[str, Any], key) -> dict[str, Any]:
    """A DSSE envelope of ``stmt`` signed with an Ed25519 private key."""
    payload = json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode()
    sig = key.sign(pae(PAYLOAD_TYPE, payload))
    keyid = sshsig.fingerprint(sshsig.public_key_blob(key.public_key()))
    return {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode()}]}


def verify_envelope(env: dict[str, Any], public_key_blob: bytes) -> dict[str, Any]:
    """Check a DSSE envelope against an SSH public key blob; returns the statement.

    Raises sshsig.SignatureError when no signature verifies or the payload is not a
    test-result statement.
    """
    if env.get("payloadType") != PAYLOAD_TYPE:
        raise sshsig.SignatureError(f"attestation payloadType is {env.get('payloadType')!r}, expected {PAYLOAD_TYPE}")
    payload = base64.b64decode(env["payload"])
    r = sshsig._Reader(public_key_blob)
    r.string()
    key = Ed25519PublicKey.from_public_bytes(r.string())
    for sig in env.get("signatures", []):
        try:
            key.verify(base64.b64decode(sig["sig"]), pae(PAYLOAD_TYPE, payload))
            break
        except (InvalidSignature, KeyError, ValueError):
            continue
    else:
        raise sshsig.SignatureError("attestation: no DSSE signature verifies with the ledger's key")
    stmt = json.loads(payload)
    if stmt.get("_type") != STATEMENT_TYPE or stmt.get("predicateType") != PREDICATE_TYPE:
        raise sshsig.SignatureError("attestation is not an in-toto test-result statement")
    return stmt
