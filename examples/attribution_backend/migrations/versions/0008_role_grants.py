"""Grants to the application roles (app_user, app_rw, app_ro must exist first).

Revision ID: 0008_role_grants
Revises: 0007_tenant_rls
"""
from alembic import op

revision = "0008_role_grants"
down_revision = "0007_tenant_rls"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("GRANT USAGE ON SCHEMA public TO app_user, app_rw, app_ro")
    op.execute("GRANT SELECT ON tenants, attribution_events, attribution_allocations TO app_ro")
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, attribution_events, attribution_allocations TO app_rw")
    op.execute("GRANT SELECT, INSERT, UPDATE ON tenants, attribution_events, attribution_allocations TO app_user")
    op.execute("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO app_user, app_rw")


def downgrade() -> None:
    op.execute("REVOKE ALL ON tenants, attribution_events, attribution_allocations FROM app_user, app_rw, app_ro")
    op.execute("REVOKE USAGE ON ALL SEQUENCES IN SCHEMA public FROM app_user, app_rw")
    op.execute("REVOKE USAGE ON SCHEMA public FROM app_user, app_rw, app_ro")
