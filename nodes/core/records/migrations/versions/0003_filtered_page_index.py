"""Composite indexes for the filtered, newest-first pages of records.

A page filtered by status (or workspace, or operation type) walks one of these in order instead of
sorting every matching row: ``(filter, created_at, id)``.

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"
PAGES = ("status", "workspace", "operation_type")


def upgrade() -> None:
    for column in PAGES:
        op.create_index(f"ix_atelier_records_{column}_page", "atelier_records", [column, "created_at", "id"])


def downgrade() -> None:
    for column in PAGES:
        op.drop_index(f"ix_atelier_records_{column}_page", "atelier_records")
