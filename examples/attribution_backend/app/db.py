"""Database engine for the runtime role, from DATABASE_URL."""

import os

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

_engine: Engine | None = None


def engine() -> Engine:
    """The process-wide engine; DATABASE_URL must name the runtime role's database."""
    global _engine
    if _engine is None:
        url = os.environ.get("DATABASE_URL")
        if not url:
            raise RuntimeError("set DATABASE_URL to the runtime role's database URL")
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        _engine = create_engine(url, pool_pre_ping=True)
    return _engine
