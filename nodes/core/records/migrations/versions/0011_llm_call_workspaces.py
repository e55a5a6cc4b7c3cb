"""An LLM call names the workspace it was made for (the enhancement route's ``workspace``), so the totals per
workspace count LLM calls; a Prompt Enhance node's calls take the workspace of their run's records.

Revision ID: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    with op.batch_alter_table("atelier_llm_calls") as batch:
        batch.add_column(sa.Column("workspace", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("atelier_llm_calls") as batch:
        batch.drop_column("workspace")
