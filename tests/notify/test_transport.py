from __future__ import annotations

import os
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, DeliveryError
from pipeline.notify.message import build_email, notification_content, report_location
from pipeline.notify.transport import (
    EmlOutboxTransport,
    SmtpTransport,
    TransportUnavailableError,
    send_ops_message,
    transport_from_settings,
)

from .helpers import OPS, assessment, free_port, make_settings, smtp_settings


def _message(settings, recipients=("thoracic-a@hospital.example",)):
    a = assessment()
    content = notification_content(a, kind="alert", tier="FAILURE", alert=a.alerts[0],
                                   report=report_location(settings, a.patient_id))
    return build_email(content, "A7F3-K92Q", list(recipients), settings)


def test_smtp_delivers_to_real_server(tmp_path, smtp_server):
    settings = smtp_settings(tmp_path, smtp_server.port)
    transport = transport_from_settings(settings)
    assert isinstance(transport, SmtpTransport)
    result = transport.send(_message(settings))
    [(_, rcpts, msg)] = smtp_server.handler.messages
    assert rcpts == ["thoracic-a@hospital.example"]
    assert msg["Message-ID"] == result.message_id
    assert result.refused == ()


def test_partial_recipient_refusal_is_reported_not_lost(tmp_path, smtp_server):
    async def handle_RCPT(server, session, envelope, address, rcpt_options):
        if address.startswith("gone@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    smtp_server.handler.handle_RCPT = handle_RCPT
    settings = smtp_settings(tmp_path, smtp_server.port)
    result = SmtpTransport(settings.notify.smtp).send(
        _message(settings, ["gone@hospital.example", "ok@hospital.example"]))
    assert result.refused == ("gone@hospital.example",)
    assert smtp_server.handler.messages[0][1] == ["ok@hospital.example"]


def test_unreachable_relay_is_transport_unavailable(tmp_path):
    settings = smtp_settings(tmp_path, free_port())  # nothing listens there
    with pytest.raises(TransportUnavailableError, match=r"127\.0\.0\.1:\d+"):
        SmtpTransport(settings.notify.smtp).send(_message(settings))


def test_ssl_against_plain_server_fails_cleanly(tmp_path, smtp_server):
    settings = make_settings(tmp_path, smtp={"host": "127.0.0.1", "port": smtp_server.port,
                                             "tls": "ssl", "timeout_seconds": 5})
    with pytest.raises(TransportUnavailableError):
        SmtpTransport(settings.notify.smtp).send(_message(settings))
    assert smtp_server.handler.messages == []


def test_starttls_not_offered_is_refused_not_downgraded(tmp_path, smtp_server):
    settings = make_settings(tmp_path, smtp={"host": "127.0.0.1", "port": smtp_server.port,
                                             "tls": "starttls", "timeout_seconds": 5})
    with pytest.raises(TransportUnavailableError, match="STARTTLS"):
        SmtpTransport(settings.notify.smtp).send(_message(settings))
    assert smtp_server.handler.messages == []


def test_login_without_tls_is_a_config_error(tmp_path):
    # the password comes from the environment (a YAML password is refused, #12)
    settings = make_settings(tmp_path, smtp={"host": "relay.example", "tls": "none",
                                             "user": "u"})
    smtp = settings.notify.smtp.model_copy(update={"password": "p"})
    with pytest.raises(ConfigError, match=r"notify\.smtp\.tls"):
        SmtpTransport(smtp)


def test_default_ports(tmp_path):
    for tls, port in (("ssl", 465), ("starttls", 587), ("none", 25)):
        settings = make_settings(tmp_path, smtp={"host": "relay.example", "tls": tls})
        assert SmtpTransport(settings.notify.smtp).port == port


def test_env_overrides_select_smtp(tmp_path):
    from pipeline.config import load_settings

    settings = load_settings(env={"CTDNA_SMTP_HOST": "relay.example", "CTDNA_SMTP_PORT": "2525",
                                  "CTDNA_SMTP_TLS": "NONE", "CTDNA_MAIL_FROM": "a@b.example"})
    transport = transport_from_settings(settings)
    assert isinstance(transport, SmtpTransport)
    assert (transport.host, transport.port, settings.notify.mail_from) == (
        "relay.example", 2525, "a@b.example")


def test_eml_outbox_writes_rfc5322_files_atomically(tmp_path):
    settings = make_settings(tmp_path)
    transport = transport_from_settings(settings)
    assert isinstance(transport, EmlOutboxTransport)
    msg = _message(settings)
    result = transport.send(msg)
    path = Path(result.location)
    assert path.parent == tmp_path / "outbox" and path.suffix == ".eml"
    assert "A7F3-K92Q" in path.name
    data = path.read_bytes()
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    parsed = message_from_bytes(data, policy=policy.default)
    assert parsed["Subject"] == msg["Subject"]
    assert parsed["Message-ID"] == result.message_id
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_eml_outbox_unwritable_is_delivery_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DeliveryError, match="cannot write"):
        EmlOutboxTransport(blocker / "outbox").send(_message(make_settings(tmp_path)))


def test_ops_message_goes_to_ops_without_phi(tmp_path, smtp_server):
    settings = smtp_settings(tmp_path, smtp_server.port)
    send_ops_message(settings, transport_from_settings(settings),
                     "nightly run failed\nsecond line", "Run r1: 2 samples rejected.")
    [(_, rcpts, msg)] = smtp_server.handler.messages
    assert rcpts == [OPS]
    assert msg["Subject"] == "[ctDNA surveillance] [ops] nightly run failed second line"
    assert msg.get_content().strip() == "Run r1: 2 samples rejected."


def test_outbox_override_and_smtp_precedence(tmp_path, smtp_server):
    plain = make_settings(tmp_path)
    transport = transport_from_settings(plain, outbox=tmp_path / "run-outbox")
    assert isinstance(transport, EmlOutboxTransport)
    assert transport.folder == tmp_path / "run-outbox"
    smtp = smtp_settings(tmp_path, smtp_server.port)
    assert isinstance(transport_from_settings(smtp, outbox=tmp_path / "x"), SmtpTransport)
