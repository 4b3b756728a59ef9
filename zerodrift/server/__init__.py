"""PostgreSQL servers (embedded or external) and the throwaway databases on them."""

from __future__ import annotations

from typing import Protocol


class Server(Protocol):
    """What the runner and gates use of a server: :class:`zerodrift.server.embedded.EmbeddedServer`
    (started and stopped by the run) or :class:`zerodrift.server.external.ExternalServer` (only used)."""

    #: ``"embedded"`` or ``"external"``
    kind: str

    @property
    def admin_url(self) -> str:
        """libpq URL of a superuser login (holds the password; mask it before showing it)."""

    @property
    def version(self) -> str:
        """``server_version``, e.g. ``"18.1"`` (known once started)."""

    def start(self) -> object:
        """Start (embedded) or check (external) the server; raises EnvironmentProblem when it cannot."""

    def stop(self) -> None:
        """Stop a server the run started; nothing for an external one."""
