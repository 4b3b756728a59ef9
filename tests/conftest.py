"""Shared fixtures: a real PostgreSQL server for every test.

``ZERODRIFT_TEST_ADMIN_URL`` names an external server (CI sets it to the machine's
PostgreSQL). Without it the tests start zerodrift's own embedded server and use its
admin URL as the "external" one, so both code paths always run.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

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


class Dropper:
    """Drops the tests' databases in the background, several at once.

    On PostgreSQL 15 every ``DROP DATABASE`` waits for a checkpoint of its own (it asks
    for an immediate one so the checkpointer forgets the database's files), 1-8 s on a
    busy machine. A test that drops its databases on the spot waits that long; here
    :meth:`drop` only queues the names, up to ``workers`` drops run at once on their own
    connections (concurrent drops share checkpoints), and :meth:`wait` — called before
    anything that needs the databases gone (dropping a role they depend on) and at the
    end of the session — waits for them and raises the first error.
    """

    def __init__(self, admin_url: str, workers: int = 8) -> None:
        self.admin_url = admin_url
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zdtest-drop")
        self._pending: list[Future] = []
        self._lock = threading.Lock()

    def _drop(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop(self, names: Iterable[str]) -> None:
        """Queue ``names`` (databases no session uses any more) for dropping; returns at once."""
        with self._lock:
            self._pending += [self._pool.submit(self._drop, name) for name in names]

    def wait(self) -> None:
        """Wait until every queued database is dropped; raises the first drop's error."""
        with self._lock:
            pending, self._pending = self._pending, []
        errors = [exc for exc in (f.exception() for f in pending) if exc is not None]
        if errors:
            raise errors[0]

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)


@pytest.fixture(scope="session")
def dropper(admin_url: str) -> Iterator[Dropper]:
    """This worker's :class:`Dropper` for ``admin_url``'s server; every drop is done by the session's end."""
    drops = Dropper(admin_url)
    try:
        yield drops
    finally:
        drops.close()


@pytest.fixture
def make_database(admin_url: str, dropper: Dropper) -> Iterator:
    """Factory: ``make_database(prefix) -> (name, url)``; every database is dropped after the test
    (in the background: see :class:`Dropper`)."""
    created: list[str] = []

    def make(prefix: str = "zdtest") -> tuple[str, str]:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        created.append(name)
        return name, database_url(admin_url, name)

    yield make
    dropper.drop(created)


def database_url(admin_url: str, dbname: str) -> str:
    """The admin URL with its database replaced by ``dbname``."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(admin_url)
    params["dbname"] = dbname
    return make_conninfo(**params)
