"""The longitudinal store (SQLAlchemy; SQLite by default, PostgreSQL supported)."""
