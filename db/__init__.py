"""Tables, engine and sessions, Alembic migrations."""
