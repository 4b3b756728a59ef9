"""Tenants table.

Revision ID: 0001_tenants
Revises:
"""
from alembic import op

revision = "0001_tenants"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE tenants (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            name text NOT NULL,
            api_key_hash text NOT NULL,
            notification_email text,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE tenants")
