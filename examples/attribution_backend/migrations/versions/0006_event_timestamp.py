"""Canonical event type, timestamp and conversion value, backfilled.

Revision ID: 0006_event_timestamp
Revises: 0005_idempotency_key
"""
from alembic import op

revision = "0006_event_timestamp"
down_revision = "0005_idempotency_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE attribution_events ADD COLUMN event_type text NOT NULL DEFAULT 'purchase'")
    op.execute("ALTER TABLE attribution_events ADD COLUMN event_timestamp timestamptz")
    op.execute("ALTER TABLE attribution_events ADD COLUMN conversion_value_cents integer")
    op.execute(
        "UPDATE attribution_events SET event_timestamp = occurred_at, conversion_value_cents = revenue_cents "
        "WHERE event_timestamp IS NULL"
    )
    op.execute("ALTER TABLE attribution_events ALTER COLUMN event_timestamp SET NOT NULL")
    op.execute("ALTER TABLE attribution_events ALTER COLUMN conversion_value_cents SET NOT NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE attribution_events DROP COLUMN conversion_value_cents")
    op.execute("ALTER TABLE attribution_events DROP COLUMN event_timestamp")
    op.execute("ALTER TABLE attribution_events DROP COLUMN event_type")
