"""Alembic environment for Atelier's records (run programmatically by ``store.migrate``)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, version_table="atelier_alembic_version")
with context.begin_transaction():
    context.run_migrations()
