"""Document the ingestion tables.

Revision ID: 0012_comments
Revises: 0011_worker_write_block
"""
from alembic import op

revision = "0012_comments"
down_revision = "0011_worker_write_block"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("COMMENT ON TABLE attribution_events IS 'Raw attribution events; written by ingestion only'")
    op.execute("COMMENT ON COLUMN attribution_events.idempotency_key IS 'tenant-scoped dedup key'")
    op.execute("COMMENT ON TABLE attribution_allocations IS 'Revenue allocated per channel and model version'")


def downgrade() -> None:
    op.execute("COMMENT ON TABLE attribution_events IS NULL")
    op.execute("COMMENT ON COLUMN attribution_events.idempotency_key IS NULL")
    op.execute("COMMENT ON TABLE attribution_allocations IS NULL")
