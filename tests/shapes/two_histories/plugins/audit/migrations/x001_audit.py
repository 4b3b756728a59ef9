"""x001_audit."""
import sqlalchemy as sa
from alembic import op

revision = 'x001_audit'
down_revision = None
branch_labels = ('audit',)
depends_on = None


def upgrade() -> None:
    op.create_table("audit_log", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text, nullable=False))


def downgrade() -> None:
    pass
