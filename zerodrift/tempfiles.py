"""Temporary folders zerodrift's gates make, and sweeping those a killed run left.

ZG-5 keeps beat's schedule store in ``zerodrift-beat-*``, ZG-2 checks out older refs
in ``zerodrift-ref-*`` (git worktrees); both are removed when the gate ends, but a
SIGKILLed run cannot. ``gc`` removes the ones older than an hour.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

PREFIXES = ("zerodrift-beat-", "zerodrift-ref-")
#: Seconds after which a gate's temporary folder can only be a leftover.
STALE_AFTER_S = 3600.0


def stale_gate_folders(base: Path | None = None, *, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Gate temporary folders in ``base`` (default: the system temp dir) older than ``older_than_s`` seconds."""
    base = Path(base or tempfile.gettempdir())
    now = time.time()
    found = []
    for path in base.iterdir() if base.is_dir() else []:
        try:
            if path.is_dir() and path.name.startswith(PREFIXES) and now - path.stat().st_mtime > older_than_s:
                found.append(path)
        except OSError:
            continue
    return sorted(found)


def remove(paths: list[Path]) -> None:
    """Remove the folders (errors ignored: another process may be removing them too)."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
