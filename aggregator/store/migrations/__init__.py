"""Alembic migrations of the store; run them with `Store.migrate()`, which configures alembic
in code (no alembic.ini) and hands env.py its connection."""
