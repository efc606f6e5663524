"""``ctdna doctor``: is this installation ready to run? (issue #12 item 4).

Checks, in order: the configuration loads; the store is reachable and has the current
schema (nothing is created: an absent store is a FAIL, not a new empty one); Prefect's API
answers when ``PREFECT_API_URL`` is set (otherwise ctdna runs on a temporary local server,
"ephemeral mode"); the SMTP relay accepts a connection and EHLO when a host is configured
(otherwise emails are written as ``.eml`` files); every vendor profile loads; the knowledge
base loads and its version. One line per check; exit status
:data:`~pipeline.errors.EXIT_CHECKS_FAILED` when any check FAILs.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from pipeline.cli.main import ConfigOption, DbOption, app, edge
from pipeline.errors import EXIT_CHECKS_FAILED, CtdnaError

OK, FAIL, INFO = "OK", "FAIL", "INFO"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table."""

    name: str
    status: str  # OK | FAIL | INFO (INFO: a mode, not a problem)
    detail: str


def check_config(config: Path | None) -> tuple[list[Check], Any]:
    from pipeline.config import load_settings

    try:
        settings = load_settings(config)
    except CtdnaError as exc:
        return [Check("config", FAIL, str(exc))], None
    return [Check("config", OK, f"version {settings.version_label()}")], settings


def check_store_health(db: str | None, settings: Any) -> list[Check]:
    from sqlalchemy.engine import make_url

    from pipeline.store.health import check_store
    from pipeline.store.repository import default_database_url

    url = db or (settings.database_url if settings is not None else None) or \
        default_database_url()
    where = make_url(url).render_as_string(hide_password=True)
    health = check_store(url)
    if not health.reachable:
        return [Check("store", FAIL, f"{where}: {health.error}")]
    if set(health.missing_tables) >= {"samples", "observations", "patients"}:
        return [Check("store", FAIL, f"{where}: reachable but holds no ctdna store (no "
                      "samples/observations tables); wrong --db, or a new database that no "
                      "ctdna command has opened yet")]
    if not health.migrated:
        missing = list(health.missing_tables) + list(health.missing_columns)
        return [Check("store", FAIL, f"{where}: schema incomplete, missing "
                      f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''} "
                      "(run any ctdna command with --db to migrate)")]
    revision = f", revision {health.revision}" if health.revision else ""
    return [Check("store", OK, f"{where}: reachable, schema current ({len(health.tables)} "
                  f"tables{revision})")]


def check_prefect(env: dict[str, str]) -> list[Check]:
    import httpx

    api = env.get("PREFECT_API_URL")
    if not api:
        return [Check("prefect", INFO, "ephemeral mode: PREFECT_API_URL is not set, so "
                      "`ctdna run` starts a temporary local Prefect server")]
    url = api.rstrip("/") + "/health"
    try:
        response = httpx.get(url, timeout=5)
    except httpx.HTTPError as exc:
        return [Check("prefect", FAIL, f"{api} unreachable ({type(exc).__name__}: {exc})")]
    if response.status_code != 200:
        return [Check("prefect", FAIL, f"{url} answered HTTP {response.status_code}")]
    return [Check("prefect", OK, f"{api} healthy")]


def check_smtp(settings: Any) -> list[Check]:
    if settings is None:
        return [Check("smtp", FAIL, "not checked: the configuration does not load")]
    from pipeline.errors import ConfigError
    from pipeline.notify.secrets import resolve_smtp, smtp_configured

    smtp = settings.notify.smtp
    if not smtp_configured(smtp):
        outbox = Path(settings.notify.outbox).resolve()
        return [Check("smtp", INFO, f".eml outbox mode: no SMTP host configured, alert emails "
                      f"are written to {outbox}")]
    try:  # host and port may come from an EmailServerCredentials block (#12 item 3)
        smtp = resolve_smtp(smtp)
    except ConfigError as exc:
        return [Check("smtp", FAIL, exc.one_line())]
    host = smtp.host or ""  # smtp_configured() above: a host is set (YAML, env or block)
    port = smtp.port or {"ssl": 465, "starttls": 587, "none": 25}[smtp.tls]
    timeout = min(float(smtp.timeout_seconds), 10.0)
    try:
        client: smtplib.SMTP
        if smtp.tls == "ssl":
            client = smtplib.SMTP_SSL(host, port, timeout=timeout,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            code, _banner = client.ehlo()
            starttls = client.has_extn("starttls")
    except (OSError, smtplib.SMTPException) as exc:
        return [Check("smtp", FAIL, f"{smtp.host}:{port} unreachable ({type(exc).__name__}: "
                      f"{exc})")]
    if code != 250:
        return [Check("smtp", FAIL, f"{smtp.host}:{port} refused EHLO (reply {code})")]
    if smtp.tls == "starttls" and not starttls:
        return [Check("smtp", FAIL, f"{smtp.host}:{port} does not offer STARTTLS but "
                      "notify.smtp.tls is starttls")]
    return [Check("smtp", OK, f"{smtp.host}:{port} answered EHLO (tls {smtp.tls})")]


def check_profiles() -> list[Check]:
    from pipeline.io.table import known_profiles, load_profile

    checks = []
    names = known_profiles()
    for name in names:
        try:
            load_profile(name)
        except CtdnaError as exc:
            checks.append(Check(f"profile {name}", FAIL, str(exc)))
    if not checks:
        checks.append(Check("profiles", OK, f"{len(names)} valid: {', '.join(names)}"))
    return checks


def check_knowledge_base(settings: Any) -> list[Check]:
    """The knowledge base the commands use: shipped, plus the lab's override when configured."""
    from pipeline.knowledge import knowledge_base_for, load_knowledge_base

    try:
        kb = knowledge_base_for(settings) if settings is not None else load_knowledge_base()
    except CtdnaError as exc:
        return [Check("knowledge base", FAIL, str(exc))]
    return [Check("knowledge base", OK, f"version {kb.version}")]


def run_checks(db: str | None, config: Path | None,
               env: dict[str, str] | None = None) -> list[Check]:
    """Every check, in display order; a crashing check is a FAIL line, not a traceback."""
    env = dict(os.environ) if env is None else env
    checks, settings = check_config(config)
    steps: list[Callable[[], list[Check]]] = [
        lambda: check_store_health(db, settings),
        lambda: check_prefect(env),
        lambda: check_smtp(settings),
        check_profiles,
        lambda: check_knowledge_base(settings),
    ]
    for step in steps:
        try:
            checks += step()
        except Exception as exc:  # the doctor reports every problem, it does not crash
            checks.append(Check(getattr(step, "__name__", "check"), FAIL,
                                f"{type(exc).__name__}: {exc}"))
    return checks


@app.command(name="doctor")
@edge
def doctor(
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Check the store, Prefect, SMTP, profiles and knowledge base; exit 4 on any FAIL."""
    checks = run_checks(db, config)
    width = max(len(c.name) for c in checks)
    for c in checks:
        typer.echo(f"{c.status:<4}  {c.name:<{width}}  {c.detail}")
    failed = sum(c.status == FAIL for c in checks)
    if failed:
        typer.echo(f"ctdna doctor: {failed} check(s) failed", err=True)
        raise typer.Exit(EXIT_CHECKS_FAILED)
