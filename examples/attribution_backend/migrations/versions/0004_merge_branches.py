"""Merge the channel and allocation branches.

Revision ID: 0004_merge_branches
Revises: 0003a_event_channel, 0003b_allocations
"""

revision = "0004_merge_branches"
down_revision = ("0003a_event_channel", "0003b_allocations")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
