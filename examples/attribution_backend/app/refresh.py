"""Matview refresh path, serialized by a PostgreSQL advisory lock per view.

``refresh_view(name)`` returns ``"success"`` after ``REFRESH MATERIALIZED VIEW
CONCURRENTLY``, or ``"skipped_already_running"`` when another session holds the
view's lock. The lock is session-level and released in ``finally``.
"""

from sqlalchemy import text

from app.db import engine
from app.matview_registry import MATERIALIZED_VIEWS

LOCK_NAMESPACE = "matview_refresh:"


def refresh_view(name: str) -> str:
    if name not in MATERIALIZED_VIEWS:
        raise ValueError(f"unknown materialized view {name!r}")
    with engine().connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        acquired = conn.execute(
            text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"), {"key": LOCK_NAMESPACE + name}
        ).scalar()
        if not acquired:
            return "skipped_already_running"
        try:
            conn.execute(text(f'REFRESH MATERIALIZED VIEW CONCURRENTLY "{name}"'))
            return "success"
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), {"key": LOCK_NAMESPACE + name})
