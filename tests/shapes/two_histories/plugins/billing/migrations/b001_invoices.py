"""b001_invoices."""
import sqlalchemy as sa
from alembic import op

revision = 'b001_invoices'
down_revision = None
branch_labels = ('billing',)
depends_on = None


def upgrade() -> None:
    op.create_table("invoices", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text, nullable=False))


def downgrade() -> None:
    pass
