"""Child processes that die with zerodrift.

Linux prctl(2) ``PR_SET_PDEATHSIG``: the kernel sends SIGKILL to the child when the
thread that started it exits — so a SIGKILLed zerodrift leaves no alembic job, probe,
beat or embedded server behind. Start children from a thread that outlives them
(the gate thread that waits for them does).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Callable

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def pid_alive(pid: int) -> bool:
    """True when ``pid`` is a live process (a zombie counts as dead)."""
    try:
        raw = open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace").read()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return raw.rpartition(")")[2].split()[0] not in ("Z", "X")


def parent_death_preexec(parent_pid: int | None = None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks the kernel to SIGKILL the child when its parent dies.

    It runs after ``subprocess`` has switched the uid (a uid change would clear the
    setting). If the parent already died before the call, the child kills itself.
    None when prctl is unavailable (not Linux).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    sigkill = int(signal.SIGKILL)
    parent = os.getpid() if parent_pid is None else parent_pid

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sigkill, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), sigkill)

    return preexec
