"""The safety log: every clamped or rejected content rating, refused prompt-variable value and request refused
for isolation reasons (who, when, what was asked, what was applied, why).

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "atelier_violations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("asked", sa.Text, nullable=False),
        sa.Column("applied", sa.Text, nullable=False),
        sa.Column("why", sa.Text, nullable=False),
    )
    for column in ("user", "created_at", "kind"):
        op.create_index(f"ix_atelier_violations_{column}", "atelier_violations", [column])


def downgrade() -> None:
    op.drop_table("atelier_violations")
