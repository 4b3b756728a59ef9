"""An external PostgreSQL server given by an admin (superuser) URL."""

from __future__ import annotations

import psycopg

from zerodrift.errors import EnvironmentProblem
from zerodrift.urls import check_url, libpq, mask


class ExternalServer:
    """A server zerodrift did not start: it is never stopped, only used.

    ``admin_url`` must name a superuser (or a role with CREATEDB and CREATEROLE);
    it is connected to for administration only.
    """

    kind = "external"

    def __init__(self, admin_url: str) -> None:
        self.admin_url = libpq(check_url(admin_url, "admin URL"))
        self.version = ""

    def start(self) -> None:
        """Check the server answers; raises EnvironmentProblem (exit 3) when it does not."""
        try:
            with psycopg.connect(self.admin_url, connect_timeout=10) as conn:
                self.version = conn.execute("SHOW server_version").fetchone()[0].split()[0]
        except psycopg.OperationalError as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise EnvironmentProblem(
                f"cannot connect to the external server {mask(self.admin_url)}: {reason}. "
                "Check host, port, user and password, or omit --admin-url to use the embedded server."
            ) from exc

    def stop(self) -> None:
        """Nothing to stop: the server is not ours."""
