"""Branch A: marketing channel on events.

Revision ID: 0003a_event_channel
Revises: 0002_attribution_events
"""
from alembic import op

revision = "0003a_event_channel"
down_revision = "0002_attribution_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TYPE channel_kind AS ENUM ('direct', 'organic', 'paid', 'email', 'referral')")
    op.execute("ALTER TABLE attribution_events ADD COLUMN channel channel_kind NOT NULL DEFAULT 'direct'")


def downgrade() -> None:
    op.execute("ALTER TABLE attribution_events DROP COLUMN channel")
    op.execute("DROP TYPE channel_kind")
