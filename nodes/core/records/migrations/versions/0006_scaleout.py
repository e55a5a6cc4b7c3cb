"""Scale-out: the workers (one per ComfyUI) and the jobs they run, beside the records; on PostgreSQL, the job
queue's own schema (Procrastinate's, when the ``scale`` extra is installed) in the same database.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "atelier_workers",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("comfy_url", sa.String(512), nullable=False),
        sa.Column("host", sa.String(256), nullable=False, server_default=""),
        sa.Column("queue_worker_id", sa.BigInteger, nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("last_heartbeat", sa.Float, nullable=False),
        sa.Column("current_job", sa.String(32), nullable=True),  # a record id
        sa.Column("jobs_done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "atelier_jobs",
        sa.Column("record_id", sa.String(32), sa.ForeignKey("atelier_records.id", ondelete="CASCADE"),
                  primary_key=True),  # one job per record
        sa.Column("queue_job_id", sa.BigInteger, nullable=True),  # the queue's own id, once queued
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("group_id", sa.String(64), nullable=True),
        sa.Column("position", sa.Integer, nullable=False, server_default="0"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("worker", sa.String(128), nullable=True),
        sa.Column("comfy_url", sa.String(512), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("progress", sa.Float, nullable=True),
        sa.Column("enqueued_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    for column in ("queue_job_id", "user", "group_id", "state"):
        op.create_index(f"ix_atelier_jobs_{column}", "atelier_jobs", [column])
    if op.get_bind().dialect.name == "postgresql":
        try:
            from procrastinate.schema import SchemaManager
        except ImportError:  # without the scale extra: the queue adapter applies it when first used
            return
        cursor = op.get_bind().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(SchemaManager.get_schema())  # no parameters: its '%' signs are text, not placeholders


def downgrade() -> None:
    op.drop_table("atelier_jobs")
    op.drop_table("atelier_workers")
