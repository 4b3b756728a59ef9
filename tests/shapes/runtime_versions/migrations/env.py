"""env.py of the runtime versions folder shape: connects with MIGRATION_DATABASE_URL."""
import os

from alembic import context
from sqlalchemy import create_engine, pool

# the revisions of this service live outside script_location, in a folder chosen at run time
# (SERVICE_HISTORY, default "main"); alembic reads them lazily, after env.py ran
HISTORY = os.environ.get("SERVICE_HISTORY", "main")
context.script.__dict__.pop("_version_locations", None)
context.script.version_locations = [os.path.join(os.path.dirname(__file__), "..", "histories", HISTORY)]


def run_migrations_online() -> None:
    url = os.environ["MIGRATION_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
