"""a002_note."""
import sqlalchemy as sa
from alembic import op

revision = 'a002_note'
down_revision = 'a001_items'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("note", sa.Text))


def downgrade() -> None:
    pass
