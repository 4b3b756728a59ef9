"""Every error zerodrift raises on purpose, and the exit code each one means.

One hierarchy (docs/architecture.md, "Errors and exit codes"):

* :class:`ZerodriftError` — base; ``exit_code`` is the process exit status the CLI uses
  when the error reaches it (1 unless a subclass says otherwise).

  * :class:`UsageError` → exit 2: bad flags, bad or missing config, an unknown gate id,
    a gate selection no installed gate can satisfy (a missing provider, a cycle).
  * :class:`EnvironmentProblem` → exit 3: the machine cannot run the job (server
    unreachable, interpreter missing, shallow clone, binaries not found). Raised inside a
    gate it makes that gate an environment ERROR (the run's exit 3), not a crash.
  * :class:`ArtifactUnavailable` → exit 1, but it never reaches the CLI: an input a gate
    reads (``ctx.require``/``ctx.artifacts.require``) whose producer ended without it, or
    that no selected gate provides. The reading gate turns it into an ERROR or a SKIPPED
    check (docs/architecture.md, "Scheduling").
  * :class:`SignatureError` → exit 1: a signature, ledger layout or attestation that
    cannot be parsed or does not verify (what ``zerodrift verify`` reports as INVALID).
  * :class:`PackRefused` → exit 1: ``zerodrift sign`` will not sign a pack (a file
    changed, is missing or was added after the run, or it is already signed).

* :class:`RunInterrupted` (a :class:`KeyboardInterrupt`, not a ZerodriftError): Ctrl-C or
  SIGTERM while gates ran; the CLI exits 128 + the signal number (130, 143).

Every message names what was wrong and how to fix it. The old homes of the moved classes
(``zerodrift.context.ArtifactUnavailable``, ``zerodrift.ledger.sshsig.SignatureError``,
``zerodrift.ledger.sign.PackRefused``, ``zerodrift.runner.RunInterrupted``) still import.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3


class ZerodriftError(Exception):
    """Base class; ``exit_code`` is the process exit status the CLI uses."""

    exit_code = EXIT_GATE_FAILED


class UsageError(ZerodriftError):
    """Bad command-line usage or configuration (exit 2)."""

    exit_code = EXIT_USAGE


class EnvironmentProblem(ZerodriftError):
    """The machine cannot run the job: server, interpreter, git history (exit 3)."""

    exit_code = EXIT_ENVIRONMENT


class ArtifactUnavailable(ZerodriftError):
    """An input a gate reads is not there: its producer ended without publishing it, no
    selected gate provides it, or the wait timed out. Raised by
    :meth:`zerodrift.context.ArtifactStore.require`; the gate that reads the input records
    an ERROR (``ctx.require``) or a SKIPPED check, so it never ends a run (exit 1 if it did)."""

    exit_code = EXIT_GATE_FAILED


class SignatureError(ZerodriftError):
    """A signature, the ledger's signature layout or an attestation could not be parsed or
    does not verify; the message says why (exit 1: the ledger is INVALID)."""

    exit_code = EXIT_GATE_FAILED


class PackRefused(ZerodriftError):
    """An unsigned proof pack that :func:`zerodrift.ledger.sign.sign_pack` will not sign: a
    file changed, is missing or was added after the run, or the pack is already signed (exit 1)."""

    exit_code = EXIT_GATE_FAILED


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while gates ran (raised after cleanup). ``interrupted`` names
    the gates that were running (they are neither FAIL nor ERROR: they did not finish),
    ``finished`` maps the gates that had finished to their status, ``not_started``
    lists the rest. ``args`` are the original interruption's (``"signal 15"`` for SIGTERM)."""

    def __init__(self, *args: object, interrupted: list[str], finished: dict[str, str], not_started: list[str]) -> None:
        super().__init__(*args)
        self.interrupted = interrupted
        self.finished = finished
        self.not_started = not_started
