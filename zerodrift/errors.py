"""Error types that map to zerodrift's exit codes (DESIGN.md, "CLI conventions").

* :class:`UsageError` -> exit 2 (bad flags, bad or missing config).
* :class:`EnvironmentProblem` -> exit 3 (server unreachable, interpreter missing,
  shallow clone, binaries not found).

Every message names what was wrong and how to fix it.
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
