"""Where proof packs live, so that no run ever replaces an earlier pack.

Layout (the default ``output.dir`` is ``proofs/{short_sha}``)::

    proofs/<short sha>/              the commit folder: every pack of this commit
        <run id>/                    one proof pack per run (ledger.md, ledger.json, …)
        <run id>/
        LATEST                       the folder name of the newest pack of any run
        LATEST-FULL                  the folder name of the newest pack of a full run
                                     (one that selected every installed gate)

``output.dir`` (or ``--out``) names the commit folder; the run's pack goes into a new
``<run id>`` folder below it. A template that already holds ``{run_id}`` names the
pack folder itself (``proofs/{short_sha}-{run_id}``); the pointers then go into that
folder's parent. A pack folder that already holds a ledger is never written into.

The pointers are small text files holding one folder name and a newline, not symbolic
links: links need a privilege on Windows, and CI artifact uploads do not keep them.
They are replaced atomically (write, then rename), so a reader never sees half a name.
``zerodrift verify <commit folder>`` follows ``LATEST-FULL`` (else ``LATEST``);
``zerodrift gc --packs DIR --keep-last N`` prunes old packs and never removes the
packs the pointers name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

POINTER_LATEST = "LATEST"
POINTER_FULL = "LATEST-FULL"
PACK_MARKERS = ("ledger.json", "ledger.md")


def pack_folder(formatted: Path, template: str, run_id: str) -> Path:
    """The run's pack folder: ``formatted`` itself when the template holds ``{run_id}``,
    else ``formatted/<run_id>``."""
    return formatted if "{run_id}" in template else formatted / run_id


def is_pack(folder: Path) -> bool:
    """True when ``folder`` holds a proof pack (a ledger.json or ledger.md)."""
    return any((folder / name).is_file() for name in PACK_MARKERS)


def write_pointer(pack: Path, *, full: bool) -> list[Path]:
    """Point ``LATEST`` (and ``LATEST-FULL`` when ``full``) in the pack's parent at it;
    returns the pointer files written. Each is replaced atomically."""
    written = []
    for name in ([POINTER_LATEST, POINTER_FULL] if full else [POINTER_LATEST]):
        target = pack.parent / name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=pack.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(pack.name + "\n")
        os.replace(tmp, target)
        written.append(target)
    return written


def read_pointer(folder: Path, name: str) -> Path | None:
    """The pack a pointer file in ``folder`` names, or None when there is no such
    pointer or it names no pack."""
    pointer = folder / name
    if not pointer.is_file():
        return None
    target = pointer.read_text(encoding="utf-8").strip()
    if not target or "/" in target or "\\" in target or target in (".", ".."):
        return None
    pack = folder / target
    return pack if is_pack(pack) else None


def resolve_ledger(path: Path) -> Path:
    """The ``ledger.md`` a user means: the file itself, a pack folder's ledger, or the
    pack ``LATEST-FULL`` (else ``LATEST``) names in a commit folder. Returns ``path``
    unchanged when nothing matches (the caller reports it missing)."""
    if path.is_dir():  # pointers first: a commit folder may also hold a pack of the older flat layout
        for name in (POINTER_FULL, POINTER_LATEST):
            pack = read_pointer(path, name)
            if pack is not None:
                return pack / "ledger.md"
        return path / "ledger.md"
    return path


@dataclass
class Pack:
    """One proof pack found on disk: its folder, when it started (from ledger.json,
    else the folder's modification time) and whether a pointer names it."""

    path: Path
    started: datetime
    pinned: bool = False


def find_packs(root: Path) -> dict[Path, list[Pack]]:
    """Packs in ``root`` and one level below, grouped by the folder holding them (a
    commit folder), each group newest first. ``root`` may be a commit folder or a folder
    of commit folders. A pack folder that holds packs itself (a pack written before
    packs got their own ``<run id>`` folder) counts as pinned: removing it would remove
    them too."""
    groups: dict[Path, list[Pack]] = {}
    candidates: list[Path] = []
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if child.is_dir() and not child.is_symlink():
                candidates.append(child)
                candidates.extend(c for c in sorted(child.iterdir()) if c.is_dir() and not c.is_symlink())
    for folder in candidates:
        if not is_pack(folder):
            continue
        pinned = {p.resolve() for p in (read_pointer(folder.parent, POINTER_LATEST),
                                        read_pointer(folder.parent, POINTER_FULL)) if p is not None}
        holds_packs = any(c.is_dir() and is_pack(c) for c in folder.iterdir())
        groups.setdefault(folder.parent, []).append(
            Pack(folder, _started(folder), folder.resolve() in pinned or holds_packs))
    for packs in groups.values():
        packs.sort(key=lambda p: p.started, reverse=True)
    return groups


def _started(folder: Path) -> datetime:
    try:
        return datetime.fromisoformat(json.loads((folder / "ledger.json").read_text(encoding="utf-8"))["started_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return datetime.fromtimestamp(folder.stat().st_mtime).astimezone()


def prune_packs(root: Path, keep_last: int, *, dry_run: bool = False) -> list[Path]:
    """Remove all but the ``keep_last`` newest packs of each commit folder below
    ``root``; packs a ``LATEST``/``LATEST-FULL`` pointer names are always kept.
    Returns the pack folders removed (or that would be, with ``dry_run``).
    Raises ValueError for a negative ``keep_last``."""
    if keep_last < 0:
        raise ValueError(f"--keep-last must be 0 or more, got {keep_last}")
    removed = []
    for packs in find_packs(root).values():
        for pack in packs[keep_last:]:
            if pack.pinned:
                continue
            removed.append(pack.path)
            if not dry_run:
                shutil.rmtree(pack.path)
    return removed
