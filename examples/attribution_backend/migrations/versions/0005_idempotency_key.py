"""Idempotency key on events: NOT NULL, backfilled from existing rows.

A database seeded before this revision holds events without a key; the backfill
derives one from the tenant and event ids before the NOT NULL constraint is set.

Revision ID: 0005_idempotency_key
Revises: 0004_merge_branches
"""
from alembic import op

revision = "0005_idempotency_key"
down_revision = "0004_merge_branches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE attribution_events ADD COLUMN idempotency_key text")
    op.execute("UPDATE attribution_events SET idempotency_key = tenant_id::text || ':id:' || id::text WHERE idempotency_key IS NULL")
    op.execute("ALTER TABLE attribution_events ALTER COLUMN idempotency_key SET NOT NULL")
    op.execute(
        "ALTER TABLE attribution_events ADD CONSTRAINT uq_attribution_events_tenant_idempotency "
        "UNIQUE (tenant_id, idempotency_key)"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE attribution_events DROP COLUMN idempotency_key")
