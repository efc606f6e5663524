"""SMTP settings from Prefect blocks (issue #12 item 3; docs/deployment.md).

Two kinds of block are read, by name from the lab config:

* ``notify.smtp.password_block``: a Prefect ``Secret`` block holding the password only;
* ``notify.smtp.credentials_block``: a prefect-email ``EmailServerCredentials`` block
  holding server, port, connection type, user name and password.

Settings given explicitly in the config or the ``CTDNA_SMTP_*`` environment win over a
block's values (an operator can point a test host at another relay without editing the
block). Prefect is imported only when a block is named, so the library stays usable
without it. Delivery itself stays in :mod:`pipeline.notify.transport` (smtplib).
"""

from __future__ import annotations

from typing import Any, cast

from pipeline.config import SmtpSettings
from pipeline.errors import ConfigError

#: prefect-email's ``SMTPType`` (its value is the default port) -> ``notify.smtp.tls``
_TLS_OF_SMTP_TYPE = {"SSL": "ssl", "STARTTLS": "starttls", "INSECURE": "none"}


def secret_from_block(name: str) -> str:
    """The value of the Prefect ``Secret`` block ``name`` (from the configured Prefect API).

    Raises
    ------
    ConfigError
        The block does not exist or cannot be read, naming ``notify.smtp.password_block``.
    """
    from prefect.blocks.system import Secret

    try:
        # Secret.load is sync-compatible: called from sync code it returns the block itself.
        return str(cast(Any, Secret.load(name)).get())
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot read Prefect Secret block {name!r}: {exc}",
                          field="notify.smtp.password_block") from exc


def credentials_from_block(name: str) -> dict[str, Any]:
    """SMTP settings (``host``, ``port``, ``tls``, ``user``, ``password``) of an
    ``EmailServerCredentials`` block.

    Raises
    ------
    ConfigError
        The block does not exist, is of another type, or asks for no certificate
        verification (ctdna always verifies TLS certificates and host names; a silent
        downgrade is refused), naming ``notify.smtp.credentials_block``.
    """
    from prefect_email import EmailServerCredentials

    field = "notify.smtp.credentials_block"
    try:
        block = cast(Any, EmailServerCredentials.load(name))
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot read Prefect EmailServerCredentials block {name!r}: {exc}",
                          field=field) from exc
    if block.verify is False:
        raise ConfigError(f"EmailServerCredentials block {name!r} has verify=False; ctdna "
                          "always verifies the relay's TLS certificate", field=field)
    smtp_type = block.smtp_type
    type_name = getattr(smtp_type, "name", str(smtp_type)).upper()
    if type_name not in _TLS_OF_SMTP_TYPE:
        raise ConfigError(f"EmailServerCredentials block {name!r}: unknown smtp_type "
                          f"{type_name!r} (SSL, STARTTLS or INSECURE)", field=field)
    server = block.smtp_server
    password = block.password.get_secret_value() if block.password is not None else None
    return {
        "host": str(getattr(server, "value", server)),
        "port": int(block.smtp_port or getattr(smtp_type, "value", 0)) or None,
        "tls": _TLS_OF_SMTP_TYPE[type_name],
        "user": block.username or None,
        "password": password or None,
    }


def resolve_smtp(smtp: SmtpSettings) -> SmtpSettings:
    """``smtp`` with the values of its blocks filled in (explicit settings win).

    Order per field: the config / ``CTDNA_SMTP_*`` value when set explicitly, else the
    ``EmailServerCredentials`` block; the password, when still unset, from the ``Secret``
    block. Without blocks, ``smtp`` is returned unchanged (no Prefect call).
    """
    update: dict[str, Any] = {}
    if smtp.credentials_block:
        explicit = {name for name in smtp.model_fields_set
                    if getattr(smtp, name) is not None}
        update = {key: value for key, value in credentials_from_block(
            smtp.credentials_block).items() if key not in explicit and value is not None}
    if smtp.password is None and "password" not in update and smtp.password_block:
        update["password"] = secret_from_block(smtp.password_block)
    return smtp.model_copy(update=update) if update else smtp


def smtp_configured(smtp: SmtpSettings) -> bool:
    """Whether alerts go to an SMTP relay (a host, or a credentials block naming one)."""
    return bool(smtp.host or smtp.credentials_block)
