"""env.py of an async service: the async engine's work runs on the service's event loop, reached
from the AnyIO worker thread the service runs alembic in (asyncsvc.migrate.run_alembic)."""
import os

import anyio.from_thread
from alembic import context
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine


def do_run_migrations(connection) -> None:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    url = os.environ["MIGRATION_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


anyio.from_thread.run(run_async_migrations)
