"""The acknowledgement-link secret from a Prefect Secret block (issue #14 item 2), as the
SMTP password (test_smtp_secret_block.py): CTDNA_ACK_SECRET wins, a missing block is a
ConfigError naming notify.ack.secret_block."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.alerts.signing import ack_link, ack_secret, verify_token
from pipeline.errors import ConfigError
from tests.notify.helpers import make_settings

pytestmark = pytest.mark.flow


def test_link_secret_is_read_from_a_saved_secret_block(tmp_path: Path) -> None:
    from prefect.blocks.system import Secret

    Secret(value="ack-secret-from-block-0123456789").save("ctdna-ack-test", overwrite=True)
    settings = make_settings(tmp_path, ack={"base_url": "https://lab.example/ack",
                                            "secret_block": "ctdna-ack-test"})
    assert ack_secret(settings, env={}) == b"ack-secret-from-block-0123456789"
    now = datetime.now(UTC)
    link = ack_link("A7F3-K92Q", "t@h.example", settings, now=now, env={}) or ""
    claims = verify_token(link.rsplit("/", 1)[1], b"ack-secret-from-block-0123456789",
                          now=now + timedelta(minutes=1))
    assert claims.alert_ref == "A7F3-K92Q"
    env = {"CTDNA_ACK_SECRET": "env-wins-over-the-block-000"}
    assert ack_secret(settings, env=env) == b"env-wins-over-the-block-000"


def test_a_missing_block_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ack={"secret_block": "no-such-ack-block"})
    with pytest.raises(ConfigError) as caught:
        ack_secret(settings, env={})
    assert caught.value.field == "notify.ack.secret_block"
