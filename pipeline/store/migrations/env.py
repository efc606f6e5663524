"""Alembic environment: always driven programmatically by :mod:`pipeline.store.migrate`.

The connection (already holding the migration lock) is passed in
``config.attributes["connection"]``; there is no ``alembic.ini`` and no URL here, so no
credential is ever read from or written to a file by the migration machinery.
"""

from __future__ import annotations

from alembic import context

from pipeline.store.models import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER columns in place; batch mode copies the table (Alembic docs).
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
