"""SMTP password from a Prefect Secret block (issue #12 item 3; docs/deployment.md).

Prefect is imported only when a block is named, so the library stays usable without it.
"""

from __future__ import annotations

from typing import Any, cast

from pipeline.errors import ConfigError


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
