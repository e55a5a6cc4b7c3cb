"""Records and prompt families belong to a user.

Records already carry their user; pages per user walk ``(user, created_at, id)``. Prompt families are
keyed ``<user>/<family>`` from now on; the families made before (no owner recorded) become the
``default`` user's.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
KEY = sa.String(256)  # "<user>/<family>": a user id (128) and a family name (64)


def upgrade() -> None:
    op.create_index("ix_atelier_records_user_page", "atelier_records", ["user", "created_at", "id"])
    if op.get_bind().dialect.name != "sqlite":  # SQLite does not enforce lengths
        op.alter_column("atelier_prompt_families", "name", type_=KEY)
        op.alter_column("atelier_prompt_versions", "family", type_=KEY)
    op.execute("INSERT INTO atelier_prompt_families (name, description, created_at) "
               "SELECT 'default/' || name, description, created_at FROM atelier_prompt_families "
               "WHERE name NOT LIKE '%/%'")
    op.execute("UPDATE atelier_prompt_versions SET family = 'default/' || family WHERE family NOT LIKE '%/%'")
    op.execute("DELETE FROM atelier_prompt_families WHERE name NOT LIKE '%/%'")


def downgrade() -> None:
    op.drop_index("ix_atelier_records_user_page", "atelier_records")
