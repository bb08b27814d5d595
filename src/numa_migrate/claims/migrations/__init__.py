"""Alembic environment of the claims store (run through ``ClaimStore.migrate()``)."""
