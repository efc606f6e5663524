"""``ctdna``: the command-line edge.

Only argument parsing, output formatting and exit codes live here; every command calls a
library function. Library code raises typed errors (``pipeline.errors``); this module
turns them into one line on stderr and the error's exit status (2 for bad input), never a
traceback. Heavy imports (Prefect, matplotlib) happen inside the commands that need them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from pipeline.cli.jsonout import print_json
from pipeline.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_UNDELIVERED,
    CtdnaError,
    InputError,
)

app: typer.Typer = typer.Typer(
    name="ctdna",
    help="ctDNA surveillance for ALK-positive NSCLC: ingest serial liquid biopsies, "
    "recognise resistance, raise CML-style early-switch alerts.",
    no_args_is_help=True,
    # typer's --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain help: Rich's help formatter costs ~0.15 s of imports on every `--help` (#11).
    rich_markup_mode=None,
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
            # The exception text may carry identifiers (a patient or sample ID in a key, a
            # database row): only its type is shown (issue #10 item 7).
            _fail(f"internal error ({type(exc).__name__}); set CTDNA_DEBUG=1 for the "
                  "traceback and report it", EXIT_FAILURE)
        return None

    return wrapper  # type: ignore[return-value]


def version_line() -> str:
    """``ctdna <version> (knowledge base <version>)``."""
    from pipeline import __version__
    from pipeline.knowledge import load_knowledge_base

    return f"ctdna {__version__} (knowledge base {load_knowledge_base().version})"


def _version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the ctdna and knowledge-base versions "
                                          "and exit")] = False,
) -> None:
    """ctDNA surveillance for ALK-positive NSCLC."""


def _store_url(db: str | None, settings: Any) -> tuple[str, bool]:
    """The store URL a command uses and whether it was chosen by default (no --db/env/config)."""
    from pipeline.store.repository import default_database_url

    chosen = db or settings.database_url
    return (chosen, False) if chosen else (default_database_url(), True)


def notice_new_store(url: str, by_default: bool) -> None:
    """Never create a store silently (#12 item 4): say where, and how to choose another."""
    from sqlalchemy.engine import make_url

    from pipeline.store.health import sqlite_path

    where = make_url(url).render_as_string(hide_password=True)
    path = sqlite_path(url)
    if path is not None:
        where = str(path.resolve())
    hint = "; pass --db or set CTDNA_DB_URL to use an existing store" if by_default else ""
    typer.echo(f"ctdna: notice: created a new empty store at {where}{hint}", err=True)


def _context(db: str | None, config: Path | None) -> tuple[Any, Any, Any]:
    from pipeline.config import load_settings
    from pipeline.knowledge import knowledge_base_for
    from pipeline.store.health import store_is_new
    from pipeline.store.repository import Store

    settings = load_settings(config)
    url, by_default = _store_url(db, settings)
    new = store_is_new(url)
    store = Store(url)
    if new:
        notice_new_store(url, by_default)
    return settings, store, knowledge_base_for(settings)  # + lab KB override (#13)


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{value!r} is not a date (YYYY-MM-DD)", field=option) from None




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
    from pipeline.cli.progress import display
    from pipeline.ingest import IngestReport, ingest_manifest, ingest_therapies

    if manifest is None and therapies is None:
        raise InputError("give --manifest and/or --therapies", field="--manifest")
    settings, store, kb = _context(db, config)
    report = IngestReport()
    if therapies is not None:
        report.merge(ingest_therapies(therapies, store))
    if manifest is not None:
        with display() as progress:
            report.merge(ingest_manifest(manifest, store, settings, kb, amend=amend,
                                         progress=progress))
    if as_json:
        print_json(report.to_json())
    else:
        typer.echo(f"ingested {len(report.ingested)}, amended {len(report.amended)}, "
                   f"unchanged {len(report.unchanged)}, rejected {len(report.rejected)}"
                   + (f", therapy rows {report.therapies}" if therapies else ""))
        for rejection in report.rejected:
            typer.echo(f"rejected: {rejection.error}", err=True)
        for warning in report.warnings:
            typer.echo(f"warning: {warning.one_line()}", err=True)
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
    from pipeline.config import load_settings
    from pipeline.service import observations_records
    from pipeline.store.repository import Store

    # No knowledge base and no pandas on this path: one patient in under a second (#11).
    store = Store(db or load_settings(config).database_url)
    records = observations_records(store, patient)
    if as_json:
        print_json(records)
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
    from pipeline.cli.progress import display
    from pipeline.service import evaluate_patients, require_patient

    as_of_date = _parse_date(as_of, "--as-of")  # usage errors before opening the store
    settings, store, kb = _context(db, config)
    if patient is not None:
        require_patient(store, patient)
    with display() as progress:
        results = evaluate_patients(store, settings, kb, [patient] if patient else None,
                                    as_of_date, progress=progress)
    if as_json:
        print_json([r.payload for r in results])
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
    out: Annotated[Path, typer.Option(help="HTML file to write (with --all: the folder)")],
    patient: Annotated[str | None, typer.Option(help="Clinician report of this patient")] = None,
    cohort: Annotated[bool, typer.Option(help="The lab's overview of every patient")] = False,
    all_patients: Annotated[bool, typer.Option(
        "--all", help="Every patient's report and the cohort page into the folder --out; "
        "only reports whose content changed are rewritten")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Write the clinician report (--patient), the cohort overview (--cohort), or both for
    every patient into a folder (--all)."""
    from pipeline.service import (
        require_patient,
        write_all_reports,
        write_cohort_report,
        write_patient_report,
    )

    if sum((patient is not None, cohort, all_patients)) != 1:
        raise InputError("give exactly one of --patient ID, --cohort or --all",
                         field="--patient")
    from pipeline.cli.progress import display

    settings, store, kb = _context(db, config)
    if patient is not None:
        require_patient(store, patient)
    with display():  # the evaluation behind the report reports its progress
        if all_patients:
            outcome = write_all_reports(store, settings, kb, out)
            page = "written" if outcome.cohort_written else "unchanged"
            typer.echo(f"reports: {len(outcome.written)} written, {len(outcome.unchanged)} "
                       f"unchanged; cohort page {page}; in {out}")
            return
        if patient is not None:
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
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON "
                                          "(progress and notices stay on stderr)")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """One run of the surveillance flow (the same flow the schedule runs)."""
    from flows.surveillance import run_surveillance_locally
    from pipeline.cli.progress import display
    from pipeline.config import load_settings
    from pipeline.store.health import store_is_new

    url, by_default = _store_url(db, load_settings(config))
    new = store_is_new(url)  # a dry run still opens the store (inbox bookkeeping)
    with display():  # ingest, evaluate, reports and delivery inside the flow's tasks
        summary = run_surveillance_locally(
            inbox=inbox, outbox=outbox, reports=reports, force=force, dry_run=dry_run,
            db_url=url, config_file=config,
        )
    if new:
        notice_new_store(url, by_default)
    if as_json:
        print_json(summary.model_dump(mode="json"))
    else:
        typer.echo(summary.describe())
    # Exit codes that tell the truth (issue #10 item 3; docs/deployment.md): 2 when an input
    # was rejected (as `ctdna ingest`), else 3 when a notification was deferred or
    # dead-lettered; 0 only when everything went through.
    if summary.rejected:
        raise typer.Exit(EXIT_BAD_INPUT)
    if summary.emails_deferred or summary.emails_dead_lettered:
        raise typer.Exit(EXIT_UNDELIVERED)


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

# Command modules: one module per command or group, listed here and only here. Each one
# registers itself on ``app`` when imported, so importing it first (tests) also works.
from pipeline.cli import alerts, config_cmd, doctor, export  # noqa: E402,F401


def _register_subcommands() -> None:
    from pipeline.cli.db import db_app

    app.add_typer(db_app, name="db")


_register_subcommands()


def main() -> None:  # pragma: no cover - console entry
    app()
