"""SMTP password from a Prefect Secret block, never from YAML (issue #12 item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import SmtpSettings, load_settings
from pipeline.errors import ConfigError
from pipeline.notify.transport import SmtpTransport

pytestmark = pytest.mark.flow


def test_password_is_read_from_a_saved_secret_block() -> None:
    from prefect.blocks.system import Secret

    Secret(value="s3cret-from-block").save("ctdna-smtp-test", overwrite=True)
    smtp = SmtpSettings(host="127.0.0.1", port=2525, user="lab", tls="starttls",
                        password_block="ctdna-smtp-test")
    assert SmtpTransport(smtp).password == "s3cret-from-block"
    # an explicit password (CTDNA_SMTP_PASSWORD) wins over the block
    assert SmtpTransport(smtp.model_copy(update={"password": "env"})).password == "env"


def test_a_missing_block_is_a_config_error_naming_the_key() -> None:
    smtp = SmtpSettings(host="127.0.0.1", user="lab", password_block="no-such-block")
    with pytest.raises(ConfigError) as caught:
        SmtpTransport(smtp)
    assert caught.value.field == "notify.smtp.password_block"


def test_password_in_yaml_is_refused_with_the_alternatives(tmp_path: Path) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text("notify:\n  smtp:\n    host: relay\n    password: hunter2\n",
                   encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(lab, env={})
    assert caught.value.field == "notify.smtp.password"
    assert "CTDNA_SMTP_PASSWORD" in str(caught.value) and "password_block" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    lab.write_text("notify:\n  smtp:\n    host: relay\n    password_block: smtp-pw\n",
                   encoding="utf-8")
    settings = load_settings(lab, env={"CTDNA_SMTP_PASSWORD": "from-env"})
    assert settings.notify.smtp.password_block == "smtp-pw"
    assert settings.notify.smtp.password == "from-env"
