"""How this service runs its migrations: alembic's command in an AnyIO worker thread, whose
env.py hands the async work back to the event loop (anyio.from_thread.run)."""
import anyio
import anyio.to_thread


def run_alembic(command, config):
    """zerodrift's target.alembic_runner: run ``command(config)`` as the service does."""
    return anyio.run(anyio.to_thread.run_sync, command, config)
