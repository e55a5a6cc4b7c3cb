"""Prompt families and versions; records gain scores and their prompt's version and source.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "atelier_prompt_families",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "atelier_prompt_versions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("family", sa.String(128), sa.ForeignKey("atelier_prompt_families.name", ondelete="CASCADE"),
                  index=True, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("template", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("family", "version", name="uq_prompt_family_version"),
    )
    with op.batch_alter_table("atelier_records") as batch:
        batch.add_column(sa.Column("scores", sa.JSON, nullable=True))
        batch.add_column(sa.Column("prompt_version_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("prompt_source", sa.String(16), nullable=False, server_default="inline"))


def downgrade() -> None:
    with op.batch_alter_table("atelier_records") as batch:
        batch.drop_column("prompt_source")
        batch.drop_column("prompt_version_id")
        batch.drop_column("scores")
    op.drop_table("atelier_prompt_versions")
    op.drop_table("atelier_prompt_families")
