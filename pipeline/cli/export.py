"""``ctdna export``: observations, assessments and alerts as TSV/CSV, JSON or FHIR (#14 item 4).

Thin edge: parses options and calls :func:`pipeline.export.export`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.main import ConfigOption, DbOption, _context, _parse_date, app, edge


@app.command("export")
@edge
def export_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the export into")],
    fmt: Annotated[str, typer.Option("--format", help="tsv, csv, json or fhir")] = "tsv",
    what: Annotated[str, typer.Option(
        "--what", help="observations, assessments, alerts (comma-separated) or all")] = "all",
    patient: Annotated[list[str] | None, typer.Option(
        "--patient", help="Only this patient (repeatable)")] = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Evaluation date of the assessments (YYYY-MM-DD; default today)")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Export observations, assessments and alerts (TSV/CSV, JSON with schema, FHIR)."""
    from pipeline.export import WHATS, export

    tables = WHATS if what.strip() == "all" else tuple(
        w.strip() for w in what.split(",") if w.strip())
    when = _parse_date(as_of, "--as-of")
    settings, store, kb = _context(db, config)
    try:
        written = export(store, settings, kb, out, fmt=fmt.lower(), what=tables,
                         patient_ids=list(patient) if patient else None, as_of=when)
    finally:
        store.dispose()
    for path in written:
        typer.echo(f"wrote {path}")
