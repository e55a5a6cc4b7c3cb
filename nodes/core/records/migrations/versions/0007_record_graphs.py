"""The graph a record queued (API format), kept so that the record can be replayed exactly.

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    with op.batch_alter_table("atelier_records") as batch:
        batch.add_column(sa.Column("graph", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("atelier_records") as batch:
        batch.drop_column("graph")
