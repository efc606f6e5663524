"""``ctdna``: the command-line edge.

Only argument parsing, output formatting and exit codes live here; every command calls a
library function. Library code raises typed errors (``pipeline.errors``); this module
turns them into one line on stderr and the error's exit status (2 for bad input), never a
traceback. Heavy imports (Prefect, matplotlib) happen inside the commands that need them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import date
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from pipeline.errors import EXIT_BAD_INPUT, EXIT_FAILURE, CtdnaError, InputError

app = typer.Typer(
    name="ctdna",
    help="ctDNA surveillance for ALK-positive NSCLC: ingest serial liquid biopsies, "
    "recognise resistance, raise CML-style early-switch alerts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="SQLAlchemy URL (default: CTDNA_DB_URL, else an SQLite file in "
                 "the user's data folder)"),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="YAML overrides of the shipped configs (default: CTDNA_CONFIG)"),
]


def _fail(message: str, code: int) -> None:
    typer.echo(f"ctdna: error: {message}", err=True)
    raise typer.Exit(code)


def edge(func: F) -> F:
    """Map typed errors to one stderr line and an exit status (decided here, at the top)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except InputError as exc:
            _fail(exc.one_line(), EXIT_BAD_INPUT)
        except CtdnaError as exc:
            _fail(str(exc).replace("\n", " "), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:
            if os.environ.get("CTDNA_DEBUG"):
                raise
            _fail(f"internal error ({type(exc).__name__}: {exc}); set CTDNA_DEBUG=1 for a "
                  "traceback and report it", EXIT_FAILURE)
        return None

    return wrapper  # type: ignore[return-value]


def _context(db: str | None, config: Path | None) -> tuple[Any, Any, Any]:
    from pipeline.config import load_settings
    from pipeline.knowledge import knowledge_base_for
    from pipeline.store.repository import Store

    settings = load_settings(config)
    store = Store(db or settings.database_url)
    return settings, store, knowledge_base_for(settings)  # + lab KB override (#13)


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{value!r} is not a date (YYYY-MM-DD)", field=option) from None


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command()
@edge
def ingest(
    manifest: Annotated[Path | None, typer.Option(help="Sample manifest CSV")] = None,
    therapies: Annotated[Path | None, typer.Option(help="Therapy history CSV")] = None,
    amend: Annotated[bool, typer.Option(help="Store changed content under an existing "
                                        "sample_id as a new version (history kept)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the contract JSON")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Ingest a batch of samples and/or a therapy history (per sample atomic)."""
    from pipeline.ingest import IngestReport, ingest_manifest, ingest_therapies

    if manifest is None and therapies is None:
        raise InputError("give --manifest and/or --therapies", field="--manifest")
    settings, store, kb = _context(db, config)
    report = IngestReport()
    if therapies is not None:
        report.merge(ingest_therapies(therapies, store))
    if manifest is not None:
        report.merge(ingest_manifest(manifest, store, settings, kb, amend=amend))
    if as_json:
        _print_json(report.to_json())
    else:
        typer.echo(f"ingested {len(report.ingested)}, amended {len(report.amended)}, "
                   f"unchanged {len(report.unchanged)}, rejected {len(report.rejected)}"
                   + (f", therapy rows {report.therapies}" if therapies else ""))
        for rejection in report.rejected:
            typer.echo(f"rejected: {rejection.error}", err=True)
    if report.rejected:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
@edge
def observations(
    patient: Annotated[str, typer.Option(help="Pseudonymous patient ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the contract JSON")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Every stored observation of a patient."""
    from pipeline.service import observations_records

    _settings, store, _kb = _context(db, config)
    records = observations_records(store, patient)
    if as_json:
        _print_json(records)
        return
    for r in records:
        vaf = "n/a" if r["vaf"] is None else f"{100 * r['vaf']:.3f}%"
        typer.echo(f"{r['collection_date']}  {r['sample_id']}  {r['gene'] or '-'}  "
                   f"{r['alteration'] or '-'}  VAF {vaf}  {r['category']}  "
                   f"{'detected' if r['detected'] else 'not detected'}")


@app.command()
@edge
def evaluate(
    patient: Annotated[str | None, typer.Option(help="Only this patient")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Evaluate with only the draws "
                                              "collected by this date (YYYY-MM-DD)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the contract JSON")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Apply the rules and print each patient's assessment (stored for audit)."""
    from pipeline.service import evaluate_patients, require_patient

    settings, store, kb = _context(db, config)
    as_of_date = _parse_date(as_of, "--as-of")
    if patient is not None:
        require_patient(store, patient)
    results = evaluate_patients(store, settings, kb, [patient] if patient else None, as_of_date)
    if as_json:
        _print_json([r.assessment.contract_json() for r in results])
        return
    for r in results:
        a = r.assessment
        typer.echo(f"{a.patient_id}: {a.status}"
                   + (f" ({a.therapy.drug}, line {a.therapy.line})" if a.therapy else ""))
        for alert in a.alerts:
            typer.echo(f"  [{alert.tier}] {alert.rule_id} {alert.title}")


@app.command()
@edge
def report(
    out: Annotated[Path, typer.Option(help="HTML file to write")],
    patient: Annotated[str | None, typer.Option(help="Clinician report of this patient")] = None,
    cohort: Annotated[bool, typer.Option(help="The lab's overview of every patient")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Write the clinician report (--patient) or the cohort overview (--cohort)."""
    from pipeline.service import require_patient, write_cohort_report, write_patient_report

    if (patient is None) == (not cohort):
        raise InputError("give exactly one of --patient ID or --cohort", field="--patient")
    settings, store, kb = _context(db, config)
    if patient is not None:
        require_patient(store, patient)
        path = write_patient_report(store, settings, kb, patient, out)
    else:
        path = write_cohort_report(store, settings, kb, out)
    typer.echo(f"report written to {path}")


@app.command()
@edge
def run(
    inbox: Annotated[Path, typer.Option(help="Folder the lab delivers manifests into")],
    outbox: Annotated[Path | None, typer.Option(help="Folder for .eml alert emails when no "
                                                "SMTP host is configured")] = None,
    reports: Annotated[Path | None, typer.Option(help="Folder for the HTML reports")] = None,
    force: Annotated[bool, typer.Option(help="Re-evaluate and re-report every patient of the "
                                        "inbox even when nothing changed")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only: store nothing, "
                                          "send nothing")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """One run of the surveillance flow (the same flow the schedule runs)."""
    from flows.surveillance import run_surveillance_locally

    summary = run_surveillance_locally(
        inbox=inbox, outbox=outbox, reports=reports, force=force, dry_run=dry_run,
        db_url=db, config_file=config,
    )
    typer.echo(summary.describe())


@app.command()
@edge
def serve(
    inbox: Annotated[Path, typer.Option(help="Inbox folder watched by the scheduled runs")],
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Serve the scheduled and the manual-run deployments (Prefect)."""
    from flows.serve import serve_deployments

    serve_deployments(inbox=inbox, db_url=db, config_file=config)


@app.command()
@edge
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its store, reports and "
                                          "emails")] = Path("demo-output"),
) -> None:
    """Run the whole pipeline on bundled demo data with embedded defaults."""
    from pipeline.demo import run_demo

    for line in run_demo(workdir):
        typer.echo(line)


from pipeline.cli.kb import app as kb_app  # noqa: E402  (the kb module imports this one)

app.add_typer(kb_app, name="kb")


def main() -> None:  # pragma: no cover - console entry
    app()
