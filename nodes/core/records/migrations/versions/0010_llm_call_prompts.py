"""An LLM call names the ComfyUI prompt it ran in (a Prompt Enhance node's), so a run's telemetry lists its calls.

Revision ID: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    with op.batch_alter_table("atelier_llm_calls") as batch:
        batch.add_column(sa.Column("comfy_prompt_id", sa.String(64), nullable=True))
    op.create_index("ix_atelier_llm_calls_comfy_prompt_id", "atelier_llm_calls", ["comfy_prompt_id"])


def downgrade() -> None:
    op.drop_index("ix_atelier_llm_calls_comfy_prompt_id", "atelier_llm_calls")
    with op.batch_alter_table("atelier_llm_calls") as batch:
        batch.drop_column("comfy_prompt_id")
