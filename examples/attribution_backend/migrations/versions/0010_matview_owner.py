"""Move matview ownership to app_user so the runtime role can REFRESH them.

Revision ID: 0010_matview_owner
Revises: 0009_matviews
"""
from alembic import op

revision = "0010_matview_owner"
down_revision = "0009_matviews"
branch_labels = None
depends_on = None

MATVIEWS = ("mv_daily_revenue_summary", "mv_channel_performance", "mv_allocation_summary")


def upgrade() -> None:
    for name in MATVIEWS:
        op.execute(f"ALTER MATERIALIZED VIEW {name} OWNER TO app_user")
    op.execute("GRANT SELECT ON mv_daily_revenue_summary, mv_channel_performance, mv_allocation_summary TO app_ro, app_rw")


def downgrade() -> None:
    op.execute("REVOKE SELECT ON mv_daily_revenue_summary, mv_channel_performance, mv_allocation_summary FROM app_ro, app_rw")
    for name in MATVIEWS:
        op.execute(f"ALTER MATERIALIZED VIEW {name} OWNER TO CURRENT_USER")
