"""Three reporting materialized views, each with a unique index for CONCURRENTLY.

Revision ID: 0009_matviews
Revises: 0008_role_grants
"""
from alembic import op

revision = "0009_matviews"
down_revision = "0008_role_grants"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE MATERIALIZED VIEW mv_daily_revenue_summary AS
        SELECT tenant_id, date_trunc('day', event_timestamp) AS day,
               count(*) AS events, sum(conversion_value_cents) AS revenue_cents
        FROM attribution_events GROUP BY tenant_id, date_trunc('day', event_timestamp)
        """
    )
    op.execute("CREATE UNIQUE INDEX idx_mv_daily_revenue_summary_unique ON mv_daily_revenue_summary (tenant_id, day)")
    op.execute(
        """
        CREATE MATERIALIZED VIEW mv_channel_performance AS
        SELECT tenant_id, channel, count(*) AS events, sum(conversion_value_cents) AS revenue_cents
        FROM attribution_events GROUP BY tenant_id, channel
        """
    )
    op.execute("CREATE UNIQUE INDEX idx_mv_channel_performance_unique ON mv_channel_performance (tenant_id, channel)")
    op.execute(
        """
        CREATE MATERIALIZED VIEW mv_allocation_summary AS
        SELECT tenant_id, channel, model_version, sum(allocated_cents) AS allocated_cents
        FROM attribution_allocations GROUP BY tenant_id, channel, model_version
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX idx_mv_allocation_summary_key ON mv_allocation_summary (tenant_id, channel, model_version)"
    )


def downgrade() -> None:
    op.execute("DROP MATERIALIZED VIEW mv_allocation_summary")
    op.execute("DROP MATERIALIZED VIEW mv_channel_performance")
    op.execute("DROP MATERIALIZED VIEW mv_daily_revenue_summary")
