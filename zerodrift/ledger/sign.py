"""Signing and verifying ``ledger.md``.

Layout of a signed ledger: the ledger's bytes, then the marker line
:data:`MARKER`, then the armored SSHSIG in a fenced block, then end of file. The
signature covers exactly the bytes before the marker line, in the namespace
:data:`NAMESPACE`, so a ledger signature can never pass as a git commit signature
(git uses the namespace ``git``). The renderer neutralises any marker-looking line
in database-derived text, so exactly one marker line may exist.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from zerodrift.errors import UsageError
from zerodrift.ledger import sshsig

NAMESPACE = "zerodrift-ledger"
MARKER = "<!-- zerodrift-signature: sshsig namespace=zerodrift-ledger; signed bytes end above this line -->"
MARKER_PREFIX = "<!-- zerodrift-signature"
UNSIGNED_NOTE = "UNSIGNED: no signing key was given (--sign-key, ZERODRIFT_SIGNING_KEY or signing.key)."
_COMMIT_RE = re.compile(r"^- Commit under test: `([0-9a-f]{40})`$", re.M)
_JSON_RE = re.compile(r"^- ledger\.json SHA-256: `([0-9a-f]{64})`$", re.M)
_FILE_RE = re.compile(r"^- `(.+?)` sha256 `([0-9a-f]{64})`$", re.M)
_ATTESTATION_RE = re.compile(r"^- Attestation: `attestation\.dsse\.json`", re.M)
#: Files of a pack that the signed ledger names in its own lines, not in the digest list.
_SELF_NAMED = {"ledger.md", "ledger.json", "attestation.dsse.json"}


def load_signing_key(path_or_key: str | None, passphrase: str | None = None):
    """The Ed25519 key from a path, or from the key text itself (CI secrets); None when not given.

    Raises UsageError when the file is missing or the key cannot be loaded.
    """
    if not path_or_key:
        return None
    text = path_or_key.strip()
    if "PRIVATE KEY-----" in text:
        data = (text + "\n").encode()
    else:
        path = Path(os.path.expanduser(text))
        if not path.is_file():
            raise UsageError(f"signing key {path} does not exist (create one with `zerodrift keygen {path}`)")
        data = path.read_bytes()
    try:
        return sshsig.load_private_key(data, passphrase.encode() if passphrase else None)
    except sshsig.SignatureError as exc:
        raise UsageError(f"{exc} (a passphrase goes in ZERODRIFT_SIGNING_KEY_PASSPHRASE)") from exc


def sign_ledger(body: bytes, key) -> bytes:
    """``body`` + marker + fenced armored signature over ``body``."""
    if not body.endswith(b"\n"):
        raise ValueError("ledger body must end with a newline")
    signed = body + b"\n"  # every byte before the marker line, the blank separator line included
    armored = sshsig.sign(signed, key, NAMESPACE)
    return signed + MARKER.encode() + b"\n\n```ssh-signature\n" + armored.encode() + b"```\n"


@dataclass
class Verification:
    """Outcome of :func:`verify_ledger`: ``ok`` and the reasons (``problems``) when not."""

    ok: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    commit: str = ""
    signer: str = ""
    fingerprint: str = ""
    overall: str = ""  #: PASS, INCOMPLETE or FAIL as the signed ledger.json records it
    headline: str = ""  #: the verdict's one-line reason, from ledger.json
    partial: bool = False  #: the run did not select every installed gate (ledger.json ``not_run``)
    attestation_expected: bool = False  #: the signed ledger names an attestation.dsse.json


def split_signed(data: bytes) -> tuple[bytes, str]:
    """(signed bytes, armored signature); raises sshsig.SignatureError when the layout is wrong."""
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    markers = [i for i, line in enumerate(lines) if line.startswith(MARKER_PREFIX)]
    if not markers:
        raise sshsig.SignatureError("no signature: the ledger has no signature marker (it was written UNSIGNED)")
    if len(markers) > 1:
        raise sshsig.SignatureError(f"{len(markers)} signature markers: a ledger has exactly one (a second "
                                    "signature block or a forged marker was added)")
    index = markers[0]
    if lines[index].rstrip() != MARKER:
        raise sshsig.SignatureError("the signature marker line was altered")
    signed = ("\n".join(lines[:index]) + "\n").encode("utf-8")  # every byte before the marker line
    tail = "\n".join(line.rstrip() for line in lines[index + 1:])
    if not tail.endswith("\n"):
        tail += "\n"
    m = re.fullmatch(r"\n```ssh-signature\n(-----BEGIN SSH SIGNATURE-----\n[A-Za-z0-9+/=\n]+-----END SSH SIGNATURE-----)\n```\n",
                     tail)
    if not m:
        raise sshsig.SignatureError("unexpected text after the signature marker: only the fenced signature may follow")
    return signed, m.group(1)


def verify_ledger(path: Path, *, allowed_signers: Path, principal: str | None = None,
                  commit: str | None = None, check_json: bool = True) -> Verification:
    """Verify a signed ledger file against an allowed_signers file.

    Checks, each with its own message: layout (one marker, only the signature after
    it), the usual accidents (CRLF, missing final newline, trailing spaces — each
    detected by re-trying the signature on repaired bytes), namespace, signature,
    key allowed for the principal and namespace, the commit the ledger names, and
    (``check_json``) every file the ledger names: see :func:`_check_pack_files`.
    """
    out = Verification()
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        out.problems.append("the final newline is missing (an editor or tool stripped it); add it back")
    try:
        signed, armored = split_signed(data)
        parsed = sshsig.parse(armored)
    except sshsig.SignatureError as exc:
        out.problems.append(str(exc))
        return out
    out.fingerprint = parsed.fingerprint
    try:
        sshsig.verify(signed, parsed, NAMESPACE)
    except sshsig.SignatureError as exc:
        diagnosis = _diagnose(data, signed, parsed)
        if diagnosis not in out.problems:
            out.problems.append(diagnosis or str(exc))
        return out
    signers = sshsig.read_allowed_signers(allowed_signers)
    match = [s for s in signers if s.key_blob == parsed.public_key]
    if not match:
        out.problems.append(f"unknown key: {parsed.fingerprint} is not in {allowed_signers}")
        return out
    if principal:
        match = [s for s in match if any(_principal_matches(p, principal) for p in s.principals)]
        if not match:
            out.problems.append(f"key {parsed.fingerprint} is not allowed for principal {principal!r} in {allowed_signers}")
            return out
    match = [s for s in match if s.namespaces is None or NAMESPACE in s.namespaces]
    if not match:
        out.problems.append(f"key {parsed.fingerprint} is not allowed for namespace {NAMESPACE!r} in {allowed_signers}")
        return out
    out.signer = ",".join(match[0].principals)
    text = signed.decode("utf-8")
    found = _COMMIT_RE.search(text)
    out.commit = found.group(1) if found else ""
    if commit:
        if len(commit) < 7 or not re.fullmatch(r"[0-9a-fA-F]+", commit):
            out.problems.append(f"--commit {commit!r} is not a commit SHA (give at least 7 hex digits, or use --head)")
        elif not out.commit:
            out.problems.append("the ledger names no commit")
        elif not out.commit.startswith(commit.lower()) and commit.lower() != out.commit:
            out.problems.append(f"wrong commit: the ledger is for {out.commit}, expected {commit}")
    out.attestation_expected = bool(_ATTESTATION_RE.search(text))
    if check_json:
        _check_pack_files(path, text, out)
    out.ok = not out.problems
    return out


def _check_pack_files(path: Path, text: str, out: Verification) -> None:
    """Check every file the signed ledger names, read the verdict from ledger.json.

    A named file that is missing is a problem (ledger.json, an evidence file, the
    attestation of a signed run): a pack without its evidence proves nothing. Files in
    the pack that the ledger does not name are listed as a warning. The verdict is read
    from ledger.json once its digest matches, never from the Markdown, and recomputed
    from its gate statuses (:func:`zerodrift.verdict.verdict_from_ledger`): a record
    whose verdict disagrees with its own gates is a problem.
    """
    import hashlib
    import json

    from zerodrift.verdict import verdict_from_ledger

    folder = path.parent
    digest = _JSON_RE.search(text)
    sibling = folder / "ledger.json"
    if not digest:
        out.problems.append("the signed ledger names no ledger.json digest: its verdict cannot be read")
    elif not sibling.is_file():
        out.problems.append(f"ledger.json is missing from {folder}: the signed ledger names it "
                            f"(SHA-256 {digest.group(1)}); copy the whole proof pack")
    else:
        raw = sibling.read_bytes()
        actual = hashlib.sha256(raw).hexdigest()
        if actual != digest.group(1):
            out.problems.append(f"ledger.json was changed: its SHA-256 is {actual}, the signed ledger says {digest.group(1)}")
        else:
            out.notes.append("ledger.json matches the digest in the signed ledger")
            try:
                data = json.loads(raw)
                out.overall = str(data["verdict"]["overall"])
                out.headline = str(data["verdict"].get("headline", ""))
                out.partial = bool(data.get("not_run"))
                recomputed = verdict_from_ledger(data).overall
            except (ValueError, KeyError, TypeError) as exc:  # signed, so written so: an older zerodrift
                out.overall = ""
                out.notes.append(f"WARNING: ledger.json holds no verdict ({type(exc).__name__}: {exc}); it was "
                                 "written by an older zerodrift: --require-pass refuses it, rerun the gates")
            else:
                if recomputed != out.overall:
                    out.problems.append(f"ledger.json records overall {out.overall} but its gates give {recomputed}")
    files = _FILE_RE.findall(text)
    changed, missing = [], []
    for name, expected in files:
        f = folder / name
        if not f.is_file():
            missing.append(name)
        elif hashlib.sha256(f.read_bytes()).hexdigest() != expected:
            changed.append(name)
    if changed:
        out.problems.append(f"evidence files were changed after signing: {', '.join(changed)}")
    if missing:
        out.problems.append(f"{len(missing)} evidence file(s) the signed ledger names are missing: "
                            f"{', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}; copy the whole proof pack")
    if files and not changed and not missing:
        out.notes.append(f"{len(files)} evidence files match their signed digests")
    if out.attestation_expected and not (folder / "attestation.dsse.json").is_file():
        out.problems.append("attestation.dsse.json is missing: the signed ledger records a signed run with an attestation")
    named = {name for name, _ in files} | _SELF_NAMED
    unnamed = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                     if p.is_file() and p.relative_to(folder).as_posix() not in named)
    if unnamed:
        out.notes.append(f"WARNING: {len(unnamed)} file(s) in the pack are not named by the signed ledger "
                         f"(not covered by the signature): {', '.join(unnamed[:10])}{' …' if len(unnamed) > 10 else ''}")


def _principal_matches(pattern: str, principal: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(principal, pattern)


def _diagnose(data: bytes, signed: bytes, parsed) -> str:
    """Name the usual accident when a repaired copy of the signed bytes verifies."""
    def verifies(candidate: bytes) -> bool:
        try:
            sshsig.verify(candidate, parsed, NAMESPACE)
            return True
        except sshsig.SignatureError:
            return False

    if b"\r\n" in data and verifies(signed.replace(b"\r\n", b"\n")):
        return "CRLF line endings: the ledger was converted to CRLF after signing (git autocrlf or an editor); convert it back to LF"
    stripped = b"\n".join(line.rstrip(b" \t") for line in signed.split(b"\n"))
    if stripped != signed and verifies(stripped):
        return "trailing spaces were added to lines after signing (an editor or a pre-commit hook); remove them"
    if not data.endswith(b"\n"):
        return "the final newline is missing (an editor or tool stripped it); add it back"
    if signed.endswith(b"\n") is False and verifies(signed + b"\n"):
        return "the newline before the signature marker was removed; add it back"
    if b"\r\n" in data:
        return "CRLF line endings and other changes: the signed bytes differ"
    return ""


def git_head(path: Path, ref: str = "HEAD") -> str:
    """``git rev-parse <ref>^{commit}`` in the repository holding ``path``; raises UsageError
    outside git or for an unknown ref."""
    try:
        return subprocess.run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=path, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (subprocess.CalledProcessError, OSError) as exc:
        raise UsageError(f"cannot resolve {ref!r} to a commit in the git repository at {path}") from exc
