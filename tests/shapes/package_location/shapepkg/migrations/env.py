"""env.py of the package script_location shape: connects with MIGRATION_DATABASE_URL."""
import os

from alembic import context
from sqlalchemy import create_engine, pool


def run_migrations_online() -> None:
    url = os.environ["MIGRATION_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
