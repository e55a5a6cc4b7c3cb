"""Telemetry of prompt enhancement: every call to an LLM endpoint (who, which endpoint, ok or the error, latency,
tokens where the backend reports them).

Revision ID: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "atelier_llm_calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("endpoint", sa.String(512), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=True),
        sa.Column("completion_tokens", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    for column in ("user", "created_at", "endpoint"):
        op.create_index(f"ix_atelier_llm_calls_{column}", "atelier_llm_calls", [column])


def downgrade() -> None:
    op.drop_table("atelier_llm_calls")
