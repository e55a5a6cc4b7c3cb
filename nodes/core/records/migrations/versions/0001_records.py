"""Records and feedback (the first schema).

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "atelier_records",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("operation_type", sa.String(64), nullable=False, index=True),
        sa.Column("workspace", sa.String(128), nullable=False, index=True),
        sa.Column("user", sa.String(128), nullable=False, index=True),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("prompt_text", sa.Text, nullable=False, server_default=""),
        sa.Column("repro_hash", sa.String(64), nullable=False, index=True),
        sa.Column("comfy_prompt_id", sa.String(64), nullable=True, index=True),
        sa.Column("created_at", sa.Float, nullable=False, index=True),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("outputs", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_table(
        "atelier_feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("record_id", sa.String(32), sa.ForeignKey("atelier_records.id", ondelete="CASCADE"), index=True),
        sa.Column("rating", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("atelier_feedback")
    op.drop_table("atelier_records")
