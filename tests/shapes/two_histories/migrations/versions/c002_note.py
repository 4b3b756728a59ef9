"""c002_note."""
import sqlalchemy as sa
from alembic import op

revision = 'c002_note'
down_revision = 'c001_items'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("note", sa.Text))


def downgrade() -> None:
    pass
