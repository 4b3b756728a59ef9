"""Shared fixtures: a real PostgreSQL server for every test.

``ZERODRIFT_TEST_ADMIN_URL`` names an external server (CI sets it to the machine's
PostgreSQL). Without it the tests start zerodrift's own embedded server and use its
admin URL as the "external" one, so both code paths always run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest


def _embedded_admin_url() -> Iterator[str]:
    """Start an embedded server, yield its admin URL, stop it."""
    from zerodrift.server.embedded import EmbeddedServer

    server = EmbeddedServer()
    server.start()
    try:
        yield server.admin_url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """An admin (superuser) libpq URL of a running PostgreSQL server."""
    url = os.environ.get("ZERODRIFT_TEST_ADMIN_URL")
    if url:
        yield url
        return
    yield from _embedded_admin_url()


@pytest.fixture
def private_admin_url() -> Iterator[str]:
    """The admin URL of a server no other test uses: for server-wide facts (another
    zerodrift run is active; a run's start-up sweep of dead runs' databases), which the
    suite's parallel workers would change on the shared server."""
    yield from _embedded_admin_url()


@pytest.fixture
def make_database(admin_url: str) -> Iterator:
    """Factory: ``make_database(prefix) -> (name, url)``; every database is dropped after the test."""
    created: list[str] = []

    def make(prefix: str = "zdtest") -> tuple[str, str]:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        created.append(name)
        return name, database_url(admin_url, name)

    yield make
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url(admin_url: str, dbname: str) -> str:
    """The admin URL with its database replaced by ``dbname``."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(admin_url)
    params["dbname"] = dbname
    return make_conninfo(**params)
