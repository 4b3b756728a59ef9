"""Alembic environment for the attribution example backend.

The migration URL comes from MIGRATION_DATABASE_URL (preferred) or DATABASE_URL.
"""

import os
import sys
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from app.models import Base

config = context.config
#: what `alembic check` / autogenerate compare with the database (zerodrift's ZG-8 too)
target_metadata = Base.metadata
if config.config_file_name is not None:
    fileConfig(config.config_file_name)


def _database_url() -> str:
    url = os.environ.get("MIGRATION_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "attribution_backend: set MIGRATION_DATABASE_URL (preferred) or DATABASE_URL "
            "to the database to migrate, e.g. postgresql://postgres@localhost:5432/attribution"
        )
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def run_migrations_offline() -> None:
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        # each revision commits on its own: its locks end with it, not with the whole upgrade
        context.configure(connection=connection, target_metadata=target_metadata, compare_server_default=True,
                          transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
