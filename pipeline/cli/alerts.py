"""``ctdna ack``, ``ctdna alerts`` and ``ctdna ack-server`` (issue #14 item 2).

Thin edge over :mod:`pipeline.alerts` and :func:`pipeline.service.escalate_unacknowledged`:
argument parsing, output formatting (a rich table on a terminal, plain tab-separated lines
otherwise, JSON with ``--json``) and exit codes only.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.cli import main
from pipeline.cli.jsonout import print_json
from pipeline.cli.main import ConfigOption, DbOption, edge
from pipeline.errors import NotFoundError

#: ``ctdna alerts`` columns (plain and rich output), in order.
COLUMNS = ("ref", "state", "tier", "rule", "age", "team", "patient_id", "acknowledged")
#: ``ctdna alerts --json`` keys per alert (docs/cli.md), in order.
JSON_FIELDS = (
    "ref", "patient_id", "care_team", "kind", "rule_id", "tier", "state", "open",
    "ledger_state", "created_at", "age_hours", "sent_at", "delivered_at", "acknowledged_at",
    "acknowledged_by", "acknowledgement_note", "escalated_at", "escalation_note", "closed_at",
    "closed_by",
)


def _store(db: str | None, config: Path | None, *, must_exist: bool) -> tuple[Any, Any]:
    from pipeline.config import load_settings
    from pipeline.store.health import store_is_new
    from pipeline.store.repository import Store

    settings = load_settings(config)
    url, by_default = main._store_url(db, settings)
    if store_is_new(url):
        if must_exist:
            raise NotFoundError("no ctdna store there (nothing was ever notified); pass --db "
                                "or set CTDNA_DB_URL", field="--db")
        main.notice_new_store(url, by_default)
    return settings, Store(url)


def _age(hours: float | None) -> str:
    if hours is None:
        return "-"
    if hours < 48:
        return f"{hours:.0f} h"
    return f"{hours / 24:.0f} d"


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value is not None else ""


def _cells(row: dict[str, Any]) -> list[str]:
    ack = ""
    if row["acknowledged_at"] is not None:
        ack = f"{row['acknowledged_by']} {_when(row['acknowledged_at'])}"
    return [row["ref"], row["state"], row["tier"], row["rule_id"] or "status",
            _age(row["age_hours"]), row["care_team"] or "-", row["patient_id"], ack]


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {key: row[key] for key in JSON_FIELDS}
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
    return out


def _print_table(rows: list[dict[str, Any]]) -> None:
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(rows)} alert(s)")
        for name in COLUMNS:
            # The reference is what people quote: never truncated; free text folds instead.
            fixed = name in ("ref", "state", "tier", "rule", "age", "patient_id")
            table.add_column(name, no_wrap=fixed, min_width=9 if name == "ref" else None,
                             overflow="fold")
        for row in rows:
            style = "bold red" if row["open"] and row["tier"] == "FAILURE" else None
            table.add_row(*_cells(row), style=style)
        Console().print(table)
        return
    typer.echo("\t".join(COLUMNS))
    for row in rows:
        typer.echo("\t".join(_cells(row)))


@main.app.command()
@edge
def ack(
    alert_id: Annotated[str, typer.Argument(help="Alert reference, e.g. A7F3-K92Q (email "
                                            "subject, `ctdna alerts`)")],
    by: Annotated[str, typer.Option("--by", help="Who acknowledges (name or role)")],
    note: Annotated[str | None, typer.Option("--note", help="Optional note, e.g. 'repeat "
                                             "draw booked'")] = None,
    close: Annotated[bool, typer.Option("--close", help="Also close the alert: nothing "
                                        "further to follow up")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the alert's state as "
                                          "JSON")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Acknowledge a notified alert: seen, and being acted on (closed-loop alerting)."""
    from pipeline.alerts.ack import acknowledge, normalise_ref

    normalise_ref(alert_id)  # a malformed id fails before the store is opened
    _settings, store = _store(db, config, must_exist=True)
    try:
        result = acknowledge(store.engine, alert_id, by=by, note=note, close=close)
    finally:
        store.dispose()
    if as_json:
        print_json(_json_row(dict(result.state, open=False, age_hours=None)))
        return
    state = result.state
    typer.echo(f"alert {result.ref} {state['state']}: acknowledged by "
               f"{state['acknowledged_by']} at {_when(state['acknowledged_at'])} UTC")
    if result.already is not None:
        typer.echo(f"note: already acknowledged by {result.already['acknowledged_by']} at "
                   f"{_when(result.already['acknowledged_at'])} UTC; your acknowledgement "
                   "was recorded too", err=True)


@main.app.command("alerts")
@edge
def alerts_command(
    open_only: Annotated[bool, typer.Option("--open", help="Only alerts that need a human: "
                                            "WARNING/FAILURE not acknowledged or closed")
                         ] = False,
    patient: Annotated[str | None, typer.Option("--patient", help="Only this patient")] = None,
    escalate: Annotated[bool, typer.Option("--escalate", help="First escalate FAILURE alerts "
                                           "overdue for acknowledgement (notify.escalation); "
                                           "the messages are delivered by the next run")
                        ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """List notified alerts with state, tier, rule, age and care team, oldest first."""
    from pipeline.alerts.ack import list_alerts
    from pipeline.service import escalate_unacknowledged, require_patient

    settings, store = _store(db, config, must_exist=False)
    try:
        if patient is not None:
            require_patient(store, patient)
        if escalate:
            report = escalate_unacknowledged(store, settings)
            for line in report.describe():
                typer.echo(line, err=True)
        rows = list_alerts(store.engine, patient_id=patient, open_only=open_only)
    finally:
        store.dispose()
    if as_json:
        print_json([_json_row(r) for r in rows])
        return
    _print_table(rows)


@main.app.command("ack-server")
@edge
def ack_server(
    host: Annotated[str, typer.Option(help="Address to listen on (keep 127.0.0.1 behind the "
                                      "hospital's TLS reverse proxy)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8787,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Serve the signed acknowledgement links of the alert emails (GET confirms, POST records)."""
    from pipeline.alerts.server import AckServer

    settings, store = _store(db, config, must_exist=True)
    server = AckServer((host, port), store.engine, settings)
    typer.echo(f"ctdna ack-server listening on {server.url} (public URL: "
               f"{settings.notify.ack.base_url or 'notify.ack.base_url not set'})", err=True)
    # Stop cleanly on Ctrl-C and on SIGTERM (systemd, docker stop). Installed explicitly:
    # a process started in the background by a non-interactive shell inherits SIGINT as
    # *ignored*, and Python then never raises KeyboardInterrupt (seen in CI).
    import signal

    def _stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.dispose()
