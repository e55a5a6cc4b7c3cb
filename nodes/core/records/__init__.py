"""Generation records: every run persisted with canonical parameters and a reproducibility hash, prompt
families and versions with variables, status, cancel and feedback. SQLAlchemy 2 with alembic migrations
(SQLite in ComfyUI's user directory by default; any SQLAlchemy URL, e.g. PostgreSQL, by configuration).

Plain Python; no ComfyUI import.
"""
