"""Ingestion tables are read-only for workers (app.execution_context = 'worker').

The trigger raises SQLSTATE ZW001, distinct from permission (42501) and
constraint errors, so a caller can tell the guard fired.

Revision ID: 0011_worker_write_block
Revises: 0010_matview_owner
"""
from alembic import op

revision = "0011_worker_write_block"
down_revision = "0010_matview_owner"
branch_labels = None
depends_on = None

TABLES = ("attribution_events", "attribution_allocations")


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION fn_block_worker_ingestion_mutation() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('app.execution_context', true) = 'worker' THEN
                RAISE EXCEPTION 'ingestion tables are read-only in worker context (table=%)', TG_TABLE_NAME
                    USING ERRCODE = 'ZW001';
            END IF;
            IF TG_OP = 'DELETE' THEN
                RETURN OLD;
            END IF;
            RETURN NEW;
        END;
        $$
        """
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER trg_block_worker_mutation_{table} BEFORE INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION fn_block_worker_ingestion_mutation()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER trg_block_worker_mutation_{table} ON {table}")
    op.execute("DROP FUNCTION fn_block_worker_ingestion_mutation()")
