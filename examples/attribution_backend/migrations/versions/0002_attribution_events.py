"""Attribution events, the ingestion table.

Revision ID: 0002_attribution_events
Revises: 0001_tenants
"""
from alembic import op

revision = "0002_attribution_events"
down_revision = "0001_tenants"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE attribution_events (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            occurred_at timestamptz NOT NULL,
            session_id uuid NOT NULL,
            revenue_cents integer NOT NULL DEFAULT 0 CHECK (revenue_cents >= 0),
            raw_payload jsonb NOT NULL DEFAULT '{}'::jsonb
        )
        """
    )
    op.execute("CREATE INDEX idx_attribution_events_tenant_occurred ON attribution_events (tenant_id, occurred_at)")


def downgrade() -> None:
    op.execute("DROP TABLE attribution_events")
