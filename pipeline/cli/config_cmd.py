"""``ctdna config show``: the effective configuration, secrets masked (issue #12 item 4).

The same resolution as every other command (shipped defaults, then ``--config`` /
``CTDNA_CONFIG``, then environment overrides), validated by the same schema, printed as
YAML. Secrets are never printed: any key named like a password, secret or token, and the
password inside any URL (``database_url``), are replaced by ``***``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.cli import main
from pipeline.cli.main import ConfigOption, edge

app = typer.Typer(name="config", help="Inspect the effective configuration.",
                  no_args_is_help=True)

MASK = "***"
_SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key|credential)")
# scheme://user:password@host -> the password part
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?=@)")
#: environment variables that override configuration keys (pipeline.config._env_overrides)
ENV_OVERRIDES = ("CTDNA_DB_URL", "CTDNA_SMTP_HOST", "CTDNA_SMTP_PORT", "CTDNA_SMTP_USER",
                 "CTDNA_SMTP_PASSWORD", "CTDNA_SMTP_TLS", "CTDNA_MAIL_FROM", "CTDNA_OUTBOX",
                 "CTDNA_REPORTS_DIR")


def mask_secrets(value: Any, key: str = "") -> Any:
    """Copy of ``value`` with secret keys and URL passwords replaced by ``***``."""
    if isinstance(value, dict):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(v, key) for v in value]
    if value is not None and _SECRET_KEY.search(key):
        return MASK
    if isinstance(value, str):
        return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, value)
    return value


def effective_config(config: Path | None) -> tuple[dict[str, Any], list[str]]:
    """The validated, merged configuration (masked) and where it came from."""
    from pipeline.config import configs_dir, load_settings

    settings = load_settings(config)
    sources = [f"defaults: {configs_dir() / 'defaults.yaml'}"]
    override = config or os.environ.get("CTDNA_CONFIG")
    if override:
        sources.append(f"override file: {Path(override).resolve()}")
    env = [name for name in ENV_OVERRIDES if os.environ.get(name)]
    if env:
        sources.append("environment: " + ", ".join(env))
    return mask_secrets(settings.model_dump(mode="json")), sources


@app.command()
@edge
def show(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of YAML")] = False,
) -> None:
    """Print the effective merged configuration (secrets masked)."""
    import json

    import yaml

    data, sources = effective_config(config)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo("# ctdna effective configuration (secrets masked)")
    for source in sources:
        typer.echo(f"# {source}")
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())


main.app.add_typer(app, name="config")
