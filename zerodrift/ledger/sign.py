"""Signing and verifying ``ledger.md``.

Layout of a signed ledger: the ledger's bytes, then the marker line
:data:`MARKER`, then the armored SSHSIG in a fenced block, then end of file. The
signature covers exactly the bytes before the marker line, in the namespace
:data:`NAMESPACE`, so a ledger signature can never pass as a git commit signature
(git uses the namespace ``git``). The renderer neutralises any marker-looking line
in database-derived text, so exactly one marker line may exist.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from zerodrift.errors import PackRefused, UsageError  # noqa: F401  (PackRefused: raised here, importable from here)
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


_KEY_HINT = "create one with `zerodrift keygen PATH` or `ssh-keygen -t ed25519`"


def _key_bytes(path_or_key: str) -> tuple[bytes, str]:
    """(key bytes, how to name the key in messages) from a path or the key text itself."""
    text = path_or_key.strip()
    if "PRIVATE KEY-----" in text:
        return (text + "\n").encode(), "the signing key given as text (ZERODRIFT_SIGNING_KEY)"
    path = Path(os.path.expanduser(text))
    if not path.is_file():
        raise UsageError(f"signing key {path} does not exist ({_KEY_HINT})")
    try:
        return path.read_bytes(), f"signing key {path}"
    except OSError as exc:
        raise UsageError(f"signing key {path} cannot be read: {exc.strerror}") from exc


def inspect_signing_key(path_or_key: str | None, passphrase: str | None = None) -> None:
    """Check, without decrypting anything, what can be known of a key before a run: it
    exists, is an OpenSSH or PEM private key, is Ed25519 (the public half of an OpenSSH key
    is stored in clear, PROTOCOL.key), and has a passphrase when it is encrypted. Raises
    UsageError with a one-line message; returns None when nothing is wrong (or no key)."""
    if not path_or_key:
        return
    data, what = _key_bytes(path_or_key)
    if b"OPENSSH PRIVATE KEY" in data:
        try:
            body = b"".join(line.strip() for line in data.splitlines() if line.strip() and not line.startswith(b"-----"))
            blob = base64.b64decode(body)
            magic = b"openssh-key-v1\0"
            if not blob.startswith(magic):
                raise ValueError("bad magic")
            r = sshsig._Reader(blob[len(magic):])
            cipher = r.string()
            r.string()  # kdf name
            r.string()  # kdf options
            r.uint32()  # number of keys
            key_type = sshsig._Reader(r.string()).string().decode()
        except (ValueError, sshsig.SignatureError, UnicodeDecodeError):
            raise UsageError(f"{what} is not a readable OpenSSH private key ({_KEY_HINT})") from None
        if key_type != sshsig.KEY_TYPE:
            raise UsageError(f"{what} is a {key_type} key; zerodrift signs with Ed25519 keys ({_KEY_HINT})")
        if cipher != b"none" and not passphrase:
            raise UsageError(f"{what} is encrypted and no passphrase was given: put it in ZERODRIFT_SIGNING_KEY_PASSPHRASE")
    elif b"PRIVATE KEY-----" in data:
        if b"ENCRYPTED" in data.split(b"\n", 1)[0] + data[:200] and not passphrase:
            raise UsageError(f"{what} is encrypted and no passphrase was given: put it in ZERODRIFT_SIGNING_KEY_PASSPHRASE")
    else:
        raise UsageError(f"{what} is not a private key (expected an OpenSSH or PEM Ed25519 private key; {_KEY_HINT})")


def load_signing_key(path_or_key: str | None, passphrase: str | None = None):
    """The Ed25519 key from a path, or from the key text itself (CI secrets); None when not given.

    An encrypted key (``ssh-keygen -N``) is decrypted with ``passphrase`` (bcrypt KDF,
    OpenSSH PROTOCOL.key; the ``bcrypt`` package is a dependency for it). Raises
    UsageError with a one-line message for every failure: missing or unreadable file,
    not a key, not Ed25519, missing or wrong passphrase.
    """
    if not path_or_key:
        return None
    inspect_signing_key(path_or_key, passphrase)
    data, what = _key_bytes(path_or_key)
    try:
        return sshsig.load_private_key(data, passphrase.encode() if passphrase else None)
    except sshsig.SignatureError as exc:
        detail = str(exc).removeprefix("cannot load the signing key: ").splitlines()[0] if str(exc) else "unreadable"
        if passphrase and ("checksum" in detail.lower() or "decrypt" in detail.lower() or "bad" in detail.lower()):
            raise UsageError(f"{what} cannot be decrypted: wrong passphrase in ZERODRIFT_SIGNING_KEY_PASSPHRASE") from None
        if "password" in detail.lower() and not passphrase:
            raise UsageError(f"{what} is encrypted and no passphrase was given: put it in ZERODRIFT_SIGNING_KEY_PASSPHRASE") from None
        raise UsageError(f"{what} cannot be loaded: {detail}") from None


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
    except subprocess.CalledProcessError as exc:
        if "not a git repository" in (exc.stderr or ""):
            raise UsageError(f"{path} is not in a git checkout: run verify inside the backend's checkout, "
                             "or give the commit with --commit SHA") from exc
        raise UsageError(f"cannot resolve {ref!r} to a commit in the git repository at {path}") from exc
    except OSError as exc:
        raise UsageError(f"cannot run git to resolve {ref!r}: {exc}; give the commit with --commit SHA") from exc


def sign_pack(out: Path, key) -> dict[str, Path]:
    """Sign the UNSIGNED proof pack in ``out`` with ``key`` (an Ed25519 private key) and
    write its DSSE attestation; returns the written paths (``markdown``, ``attestation``).

    Before anything is signed, every digest the unsigned ``ledger.md`` records is checked:
    ``ledger.json``'s and each listed file's (junit.xml, evidence logs, snapshots); no file
    may be missing or added, and ``ledger.md`` itself must be exactly what ``ledger.json``
    renders to (the digests live in ``ledger.md``, so an edit of it would otherwise go
    unseen). The signed ledger is then rendered from ``ledger.json`` with the signer named,
    the same bytes ``zerodrift run --sign-key`` writes. Raises PackRefused naming the file
    that does not match, and nothing is written then.
    """
    from zerodrift.ledger import attest
    from zerodrift.ledger.render import render_json, render_markdown

    ledger = out / "ledger.md"
    if not ledger.is_file():
        raise PackRefused(f"{ledger} does not exist: give the folder of a proof pack written by `zerodrift run`")
    unsigned = ledger.read_bytes()
    if any(line.startswith(MARKER_PREFIX.encode()) for line in unsigned.split(b"\n")):
        raise PackRefused(f"{ledger} is already signed (check it with `zerodrift verify`); it is not signed twice")
    if (out / "attestation.dsse.json").exists():
        raise PackRefused(f"{out / 'attestation.dsse.json'} exists beside an unsigned ledger: it was added after the run")
    text = unsigned.decode("utf-8", errors="replace")
    recorded = _JSON_RE.search(text)
    if not recorded:
        raise PackRefused(f"{ledger} records no ledger.json digest: it was not written by `zerodrift run`, or was edited")
    json_path = out / "ledger.json"
    if not json_path.is_file():
        raise PackRefused(f"{json_path} is missing")
    json_bytes = json_path.read_bytes()
    actual = hashlib.sha256(json_bytes).hexdigest()
    if actual != recorded.group(1):
        raise PackRefused(f"{json_path} was changed after the run: its SHA-256 is {actual}, ledger.md records {recorded.group(1)}")
    files = dict(_FILE_RE.findall(text))
    root = out.resolve()
    for name, expected in sorted(files.items()):
        path = (out / name).resolve()
        if root not in path.parents:
            raise PackRefused(f"{ledger} lists {name!r}, which is outside the pack")
        if not path.is_file():
            raise PackRefused(f"{out / name} is missing (ledger.md records its SHA-256)")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected:
            raise PackRefused(f"{out / name} was changed after the run: its SHA-256 is {digest}, ledger.md records {expected}")
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    extra = sorted(on_disk - set(files) - {"ledger.md", "ledger.json"})
    if extra:
        raise PackRefused(f"{out / extra[0]} is not listed in ledger.md: it was added after the run"
                          + (f" ({len(extra) - 1} more)" if len(extra) > 1 else ""))
    try:
        data = json.loads(json_bytes)
    except ValueError as exc:
        raise PackRefused(f"{json_path} is not valid JSON: {exc}") from None
    signing = {"json_sha256": actual, "signer": "", "unsigned_note": UNSIGNED_NOTE, "files": files}
    if render_markdown(data, signing) != unsigned:
        from zerodrift import __version__

        written_by = data.get("zerodrift_version", "unknown")
        why = (f" (or it was written by zerodrift {written_by} and this is {__version__}: sign with the same version)"
               if written_by != __version__ else "")
        raise PackRefused(f"{ledger} was changed after the run: it is not what ledger.json renders to{why}")
    signing["signer"] = sshsig.fingerprint(sshsig.public_key_blob(key.public_key()))
    signed = sign_ledger(render_markdown(data, signing), key)
    envelope = render_json(attest.envelope(attest.statement(data, signed), key))
    _replace(ledger, signed)
    _replace(out / "attestation.dsse.json", envelope)
    return {"markdown": ledger, "attestation": out / "attestation.dsse.json"}


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (no half-written file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
