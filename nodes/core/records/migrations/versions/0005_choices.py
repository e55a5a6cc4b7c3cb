"""Choices: the variation a user kept from a batch (learning reads them beside the ratings).

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "atelier_choices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("record_id", sa.String(32), sa.ForeignKey("atelier_records.id", ondelete="CASCADE"), nullable=False),
        sa.Column("batch", sa.String(64), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_atelier_choices_record_id", "atelier_choices", ["record_id"])
    op.create_index("ix_atelier_choices_batch", "atelier_choices", ["batch"])
    op.create_index("ix_atelier_choices_user", "atelier_choices", ["user"])


def downgrade() -> None:
    op.drop_table("atelier_choices")
