"""b002_note."""
import sqlalchemy as sa
from alembic import op

revision = 'b002_note'
down_revision = 'b001_invoices'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("invoices", sa.Column("note", sa.Text))


def downgrade() -> None:
    pass
