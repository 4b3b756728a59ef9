"""Branch B: revenue allocations per channel.

Revision ID: 0003b_allocations
Revises: 0002_attribution_events
"""
from alembic import op

revision = "0003b_allocations"
down_revision = "0002_attribution_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE attribution_allocations (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            event_id uuid NOT NULL REFERENCES attribution_events(id) ON DELETE CASCADE,
            channel text NOT NULL,
            allocated_cents integer NOT NULL,
            model_version text NOT NULL DEFAULT 'v1',
            CONSTRAINT ck_allocations_nonnegative CHECK (allocated_cents >= 0)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE attribution_allocations")
