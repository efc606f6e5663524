"""``ctdna db``: store administration (schema migrations, issue #10 item 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

db_app = typer.Typer(name="db", help="Store administration: schema migrations.",
                     no_args_is_help=True)


@db_app.command("upgrade")
def upgrade_command(
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: "
                                           "CTDNA_DB_URL, else the user's SQLite file)")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML overrides")] = None,
) -> None:
    """Bring the store's schema to the current revision (once, under a lock)."""
    from pipeline.cli.main import edge

    edge(_upgrade)(db, config)


def _upgrade(db: str | None, config: Path | None) -> None:
    from pipeline.config import load_settings
    from pipeline.store.migrate import masked_url, upgrade
    from pipeline.store.repository import Store

    settings = load_settings(config)
    store = Store(db or settings.database_url, migrate=False)
    try:
        result = upgrade(store.engine)
    finally:
        store.dispose()
    note = " (0.1.0 store recognised and stamped at the baseline)" \
        if result.stamped_baseline else ""
    typer.echo(f"store {masked_url(store.engine.url)}: schema {result.before or 'empty'} -> "
               f"{result.after}{note}")
