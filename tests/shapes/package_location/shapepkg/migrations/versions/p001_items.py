"""p001_items."""
import sqlalchemy as sa
from alembic import op

revision = 'p001_items'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("items", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text, nullable=False))


def downgrade() -> None:
    pass
