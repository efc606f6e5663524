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


# --- EmailServerCredentials block (prefect-email) against a real STARTTLS + AUTH server ---

def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made with the openssl CLI (no test double for TLS)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "relay.pem", tmp_path / "relay.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def auth_relay(tmp_path: Path):  # type: ignore[no-untyped-def]
    """aiosmtpd on 127.0.0.1 with STARTTLS required and LOGIN/PLAIN checked against a
    password; yields (port, accepted messages, logins seen, client TLS context)."""
    import socket
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[tuple[str, bool]] = []
    accepted: list[bytes] = []

    def authenticate(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"ctdna-lab"
              and auth_data.password == b"pw-from-email-block")
        logins.append((auth_data.login.decode(), ok))
        return AuthResult(success=ok)

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            accepted.append(envelope.content)
            return "250 OK"

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port,
                            tls_context=server_tls, require_starttls=True,
                            authenticator=authenticate, auth_require_tls=True)
    controller.start()
    client_tls = ssl.create_default_context(cafile=str(cert))
    try:
        yield port, accepted, logins, client_tls
    finally:
        controller.stop()


def test_smtp_settings_from_a_saved_email_server_credentials_block(auth_relay, tmp_path: Path
                                                                  ) -> None:  # type: ignore[no-untyped-def]
    from email.message import EmailMessage

    from prefect_email import EmailServerCredentials

    from pipeline.notify.secrets import resolve_smtp
    from pipeline.notify.transport import transport_from_settings

    port, accepted, logins, client_tls = auth_relay
    EmailServerCredentials(username="ctdna-lab", password="pw-from-email-block",
                           smtp_server="127.0.0.1", smtp_type="STARTTLS",
                           smtp_port=port).save("ctdna-relay-test", overwrite=True)
    lab = tmp_path / "lab.yaml"  # the YAML names the block only: no host, no password
    lab.write_text("notify:\n  smtp:\n    credentials_block: ctdna-relay-test\n"
                   "    timeout_seconds: 5\n",
                   encoding="utf-8")
    settings = load_settings(lab, env={})
    assert settings.notify.smtp.host is None and settings.notify.smtp.password is None

    transport = transport_from_settings(settings)
    assert isinstance(transport, SmtpTransport)
    assert (transport.host, transport.port, transport.smtp.tls, transport.smtp.user) == (
        "127.0.0.1", port, "starttls", "ctdna-lab")
    transport.ssl_context = client_tls  # trust the test relay's self-signed certificate
    message = EmailMessage()
    message["From"], message["To"] = settings.notify.mail_from, "lab-ops@localhost"
    message["Subject"] = "block test"
    message.set_content("sent with the block's login")
    transport.send(message)
    assert logins == [("ctdna-lab", True)] and len(accepted) == 1

    # an explicit setting (config or CTDNA_SMTP_*) wins over the block's value
    env = {"CTDNA_SMTP_USER": "other-user", "CTDNA_SMTP_PASSWORD": "from-env"}
    resolved = resolve_smtp(load_settings(lab, env=env).notify.smtp)
    assert (resolved.user, resolved.password, resolved.host) == ("other-user", "from-env",
                                                                 "127.0.0.1")
    # a wrong password in the block is refused by the real server (authentication checked)
    EmailServerCredentials(username="ctdna-lab", password="wrong", smtp_server="127.0.0.1",
                           smtp_type="STARTTLS", smtp_port=port
                           ).save("ctdna-relay-test", overwrite=True)
    bad = transport_from_settings(settings)
    assert isinstance(bad, SmtpTransport)
    bad.ssl_context = client_tls
    from pipeline.notify.transport import TransportUnavailableError

    with pytest.raises(TransportUnavailableError):
        bad.send(message)
    assert logins[1] == ("ctdna-lab", False) and len(accepted) == 1
    assert "wrong" not in repr(resolve_smtp(settings.notify.smtp))


def test_email_credentials_block_problems_are_config_errors_naming_the_key() -> None:
    from prefect_email import EmailServerCredentials

    from pipeline.notify.secrets import resolve_smtp

    with pytest.raises(ConfigError) as caught:
        resolve_smtp(SmtpSettings(credentials_block="no-such-email-block"))
    assert caught.value.field == "notify.smtp.credentials_block"
    EmailServerCredentials(username="u", password="p", smtp_server="127.0.0.1",
                           verify=False).save("ctdna-noverify", overwrite=True)
    with pytest.raises(ConfigError, match="verify=False") as caught:
        resolve_smtp(SmtpSettings(credentials_block="ctdna-noverify"))
    assert caught.value.field == "notify.smtp.credentials_block"
