"""OpenSSH signatures (SSHSIG) over Ed25519, in pure Python with ``cryptography``.

Format: OpenSSH ``PROTOCOL.sshsig`` — the one ``git`` uses for SSH commit signing
and ``ssh-keygen -Y sign/verify`` reads. The signed data is
``"SSHSIG" || string(namespace) || string(reserved="") || string(hash_alg) || string(H(message))``;
the armored signature blob carries the public key, namespace, hash algorithm and
the signature. Only Ed25519 keys are supported (RFC 8709 encodings).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from zerodrift.errors import SignatureError  # noqa: F401  (raised here; kept importable as sshsig.SignatureError)

MAGIC = b"SSHSIG"
SIG_VERSION = 1
KEY_TYPE = "ssh-ed25519"
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
_HASHES = {"sha512": hashlib.sha512, "sha256": hashlib.sha256}


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise SignatureError("signature blob is truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint32(self) -> int:
        return struct.unpack(">I", self.raw(4))[0]

    def string(self) -> bytes:
        return self.raw(self.uint32())


def public_key_blob(key: Ed25519PublicKey) -> bytes:
    """SSH wire encoding of an Ed25519 public key (RFC 8709 section 4)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _string(KEY_TYPE.encode()) + _string(raw)


def public_key_line(key: Ed25519PublicKey) -> str:
    """``ssh-ed25519 AAAA…`` as in authorized_keys / allowed_signers."""
    return f"{KEY_TYPE} {base64.b64encode(public_key_blob(key)).decode()}"


def fingerprint(key_blob: bytes) -> str:
    """OpenSSH SHA256 fingerprint, e.g. ``SHA256:abc…`` (no padding)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")


def load_private_key(data: bytes, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Load an OpenSSH (or PEM) Ed25519 private key. Raises SignatureError naming the problem."""
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, password=passphrase)
        else:
            key = serialization.load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SignatureError(f"cannot load the signing key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"the signing key is {type(key).__name__}; zerodrift signs with Ed25519 keys "
                             "(create one with `zerodrift keygen PATH` or `ssh-keygen -t ed25519`)")
    return key


def _signed_data(message: bytes, namespace: str, hash_alg: str) -> bytes:
    digest = _HASHES[hash_alg](message).digest()
    return MAGIC + _string(namespace.encode()) + _string(b"") + _string(hash_alg.encode()) + _string(digest)


def sign(message: bytes, key: Ed25519PrivateKey, namespace: str) -> str:
    """Armored SSHSIG signature of ``message`` (bytes) in ``namespace``, hash sha512."""
    if not namespace:
        raise ValueError("an SSHSIG namespace must not be empty")
    sig = key.sign(_signed_data(message, namespace, "sha512"))
    blob = (MAGIC + struct.pack(">I", SIG_VERSION) + _string(public_key_blob(key.public_key()))
            + _string(namespace.encode()) + _string(b"") + _string(b"sha512")
            + _string(_string(KEY_TYPE.encode()) + _string(sig)))
    b64 = base64.b64encode(blob).decode()
    return "\n".join([BEGIN, *(b64[i:i + 70] for i in range(0, len(b64), 70)), END]) + "\n"


@dataclass(frozen=True)
class ParsedSignature:
    """The fields of an SSHSIG blob."""

    public_key: bytes  #: SSH wire blob
    namespace: str
    hash_alg: str
    signature: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    @property
    def key_line(self) -> str:
        return f"{KEY_TYPE} {base64.b64encode(self.public_key).decode()}"


def parse(armored: str) -> ParsedSignature:
    """Parse an armored SSHSIG; raises SignatureError for anything malformed."""
    lines = [line.strip() for line in armored.strip().splitlines()]
    if not lines or lines[0] != BEGIN or lines[-1] != END:
        raise SignatureError("signature block is not an armored SSH signature")
    try:
        blob = base64.b64decode("".join(lines[1:-1]), validate=True)
    except ValueError as exc:
        raise SignatureError("signature block is not valid base64") from exc
    r = _Reader(blob)
    if r.raw(6) != MAGIC:
        raise SignatureError("not an SSHSIG blob (bad magic)")
    if r.uint32() != SIG_VERSION:
        raise SignatureError("unsupported SSHSIG version")
    public_key = r.string()
    namespace = r.string().decode()
    r.string()  # reserved
    hash_alg = r.string().decode()
    sig_blob = _Reader(r.string())
    sig_type = sig_blob.string().decode()
    if sig_type != KEY_TYPE or _Reader(public_key).string().decode() != KEY_TYPE:
        raise SignatureError(f"unsupported signature type {sig_type!r}: only {KEY_TYPE}")
    return ParsedSignature(public_key, namespace, hash_alg, sig_blob.string())


def verify(message: bytes, parsed: ParsedSignature, namespace: str) -> None:
    """Check ``parsed`` over ``message`` in ``namespace``; raises SignatureError saying why not."""
    if parsed.namespace != namespace:
        raise SignatureError(f"wrong namespace: signature is for {parsed.namespace!r}, expected {namespace!r}")
    if parsed.hash_alg not in _HASHES:
        raise SignatureError(f"unsupported hash algorithm {parsed.hash_alg!r}")
    raw = _Reader(parsed.public_key)
    raw.string()
    key = Ed25519PublicKey.from_public_bytes(raw.string())
    try:
        key.verify(parsed.signature, _signed_data(message, namespace, parsed.hash_alg))
    except InvalidSignature as exc:
        raise SignatureError("signature does not match the signed bytes (the ledger was changed after signing)") from exc


@dataclass(frozen=True)
class AllowedSigner:
    principals: tuple[str, ...]
    key_blob: bytes
    namespaces: tuple[str, ...] | None  #: None: any namespace


def read_allowed_signers(path: Path) -> list[AllowedSigner]:
    """Parse an OpenSSH ``allowed_signers`` file (ssh-keygen(1), "ALLOWED SIGNERS").

    Supports the principals field, the ``namespaces="…"`` option and ``ssh-ed25519``
    keys; other options (``cert-authority``, ``valid-after``…) make that line ignored.
    """
    signers: list[AllowedSigner] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = _split_fields(line)
        if len(fields) < 3:
            continue
        principals = tuple(p for p in fields[0].split(",") if p)
        rest = fields[1:]
        namespaces: tuple[str, ...] | None = None
        if rest[0] != KEY_TYPE:
            options = rest[0]
            rest = rest[1:]
            skip = False
            for opt in _split_options(options):
                name, _, value = opt.partition("=")
                if name.lower() == "namespaces":
                    namespaces = tuple(v for v in value.strip('"').split(",") if v)
                else:
                    skip = True
            if skip:
                continue
        if len(rest) < 2 or rest[0] != KEY_TYPE:
            continue
        try:
            blob = base64.b64decode(rest[1], validate=True)
        except ValueError:
            continue
        signers.append(AllowedSigner(principals, blob, namespaces))
    return signers


def _split_fields(line: str) -> list[str]:
    fields, cur, quoted = [], "", False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        if ch.isspace() and not quoted:
            if cur:
                fields.append(cur)
                cur = ""
            continue
        cur += ch
    if cur:
        fields.append(cur)
    return fields


def _split_options(options: str) -> list[str]:
    out, cur, quoted = [], "", False
    for ch in options:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    if cur:
        out.append(cur)
    return out
