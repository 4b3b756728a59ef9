"""Row-level security keyed on the app.current_tenant_id GUC.

Revision ID: 0007_tenant_rls
Revises: 0006_event_timestamp
"""
from alembic import op

revision = "0007_tenant_rls"
down_revision = "0006_event_timestamp"
branch_labels = None
depends_on = None

TABLES = ("attribution_events", "attribution_allocations")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation_policy ON {table} "
            "USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid) "
            "WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP POLICY tenant_isolation_policy ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
