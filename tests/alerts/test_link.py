"""Acknowledgement by the signed link (issue #14 item 2): the real HTTP endpoint on
127.0.0.1, links for the messages a real SMTP server received; forged, expired and reused
links refused. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta

import pytest

from pipeline.alerts.ack import list_alerts
from pipeline.alerts.signing import ack_link, make_token, verify_token
from pipeline.errors import AckLinkError, ConfigError

from .conftest import SECRET, T0
from .helpers import ACK_BASE, notify_patient, settings_for


def _fetch(url: str, form: dict[str, str] | None = None) -> tuple[int, str]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _local(link: str, server) -> str:
    """The public link as the reverse proxy forwards it to the local server."""
    assert link.startswith(ACK_BASE + "/")
    return server.url + "/ack/" + link[len(ACK_BASE) + 1:]


def _recipient(smtp_server) -> str:
    """The ``To`` of the first message the real SMTP server received (what the email builder
    signs into each link)."""
    return str(smtp_server.handler.messages[0][2]["To"])


def test_get_confirms_post_acknowledges_once(engine, tmp_path, smtp_server, clock,
                                             ack_server_factory) -> None:
    settings = settings_for(tmp_path, smtp_server.port)
    notify_patient(engine, settings, T0)
    server = ack_server_factory(engine, settings)
    ref = next(r["ref"] for r in list_alerts(engine) if r["kind"] == "alert")
    to = _recipient(smtp_server)
    assert to == "thoracic-a@hospital.example, onc-nurse-a@hospital.example"
    link = ack_link(ref, to, settings, now=T0)
    assert link is not None and link.startswith(ACK_BASE + "/v1.")
    url = _local(link, server)

    clock.at = T0 + timedelta(hours=2)
    status, page = _fetch(url)  # what a mail scanner or the clinician's click does
    assert status == 200 and '<form method="post">' in page and ref in page
    assert "PT-0001" not in page  # no patient identifier on the page
    state = {r["ref"]: r for r in list_alerts(engine)}[ref]
    assert state["state"] == "delivered" and state["acknowledged_at"] is None
    assert _fetch(url)[0] == 200  # opening again is harmless

    clock.at = T0 + timedelta(hours=3)
    status, page = _fetch(url, {"name": "Dr. C. Example", "note": "seen, tumour board Fri"})
    assert status == 200 and "Acknowledged by <strong>Dr. C. Example</strong>" in page
    state = {r["ref"]: r for r in list_alerts(engine)}[ref]
    assert (state["state"], state["acknowledged_by"], state["acknowledgement_note"],
            state["acknowledged_at"]) == ("acknowledged", "Dr. C. Example",
                                          "seen, tumour board Fri", T0 + timedelta(hours=3))

    reused, page = _fetch(url, {"name": "someone else"})
    assert reused == 410 and "already used" in page and "Nothing was recorded" in page
    assert _fetch(url)[0] == 410
    assert {r["ref"]: r for r in list_alerts(engine)}[ref]["acknowledged_by"] == "Dr. C. Example"

    # Without a name the link's recipient is recorded.
    status_ref = next(r["ref"] for r in list_alerts(engine) if r["kind"] == "status")
    other = _local(ack_link(status_ref, to, settings, now=T0) or "", server)
    assert _fetch(other, {"name": "", "note": ""})[0] == 200
    assert {r["ref"]: r for r in list_alerts(engine)}[status_ref]["acknowledged_by"] == to


def test_forged_expired_and_unknown_links_are_refused(engine, tmp_path, smtp_server, clock,
                                                      ack_server_factory) -> None:
    settings = settings_for(tmp_path, smtp_server.port)
    notify_patient(engine, settings, T0)
    server = ack_server_factory(engine, settings)
    ref = list_alerts(engine)[0]["ref"]
    good = ack_link(ref, "thoracic-a@hospital.example", settings, now=T0) or ""
    head, payload, signature = good.rsplit("/", 1)[1].split(".")

    forged = [
        f"{head}.{payload}.{'A' * len(signature)}",                     # wrong signature
        make_token(ref, "x@y.example", b"another-secret-0123456789",
                   expires_at=T0 + timedelta(days=1)),                   # other key
        f"{head}.{payload[:-2]}xx.{signature}",                          # payload altered
        "v2.abc.def", "not-a-token",
    ]
    for token in forged:
        status, page = _fetch(server.url + "/ack/" + token)
        assert status == 403 and "not a valid acknowledgement link" in page, token
        assert _fetch(server.url + "/ack/" + token, {"name": "x"})[0] == 403
    clock.at = T0 + timedelta(hours=48, seconds=1)  # link_valid_hours: 48
    status, page = _fetch(_local(good, server), {"name": "late"})
    assert status == 410 and "expired" in page
    unknown = make_token("0000-0000", "x@y.example", SECRET.encode(),
                         expires_at=T0 + timedelta(days=5))
    assert _fetch(server.url + "/ack/" + unknown)[0] == 404
    assert _fetch(server.url + "/healthz") == (200, "ok")
    assert all(r["acknowledged_at"] is None and r["delivered_at"] is None
               for r in list_alerts(engine))


def test_racing_posts_of_one_link_record_one_acknowledgement(engine, tmp_path, smtp_server,
                                                              ack_server_factory) -> None:
    settings = settings_for(tmp_path, smtp_server.port)
    notify_patient(engine, settings, T0)
    server = ack_server_factory(engine, settings)
    ref = list_alerts(engine)[0]["ref"]
    url = _local(ack_link(ref, "a@hospital.example", settings, now=T0) or "", server)
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda i=i: statuses.append(
        _fetch(url, {"name": f"clinician {i}"})[0])) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 410, 410, 410, 410, 410]


def test_token_and_secret_rules(tmp_path, monkeypatch) -> None:
    from tests.notify.helpers import make_settings

    settings = make_settings(tmp_path, ack={"base_url": ACK_BASE})
    secret = SECRET.encode()
    token = make_token("A7F3-K92Q", "t@h.example", secret, expires_at=T0 + timedelta(hours=1))
    claims = verify_token(token, secret, now=T0)
    assert (claims.alert_ref, claims.recipient) == ("A7F3-K92Q", "t@h.example")
    with pytest.raises(AckLinkError) as caught:
        verify_token(token, secret, now=T0 + timedelta(hours=1))
    assert caught.value.reason == "expired" and caught.value.http_status == 410
    # Two links for the same alert and recipient differ (a nonce each).
    assert ack_link("A7F3-K92Q", "t", settings) != ack_link("A7F3-K92Q", "t", settings)
    assert ack_link("A7F3-K92Q", "t", make_settings(tmp_path)) is None  # no base_url
    monkeypatch.setenv("CTDNA_ACK_SECRET", "short")
    with pytest.raises(ConfigError, match="shorter than 16 bytes"):
        ack_link("A7F3-K92Q", "t", settings)
    monkeypatch.delenv("CTDNA_ACK_SECRET")
    with pytest.raises(ConfigError, match="CTDNA_ACK_SECRET or name a Prefect"):
        ack_link("A7F3-K92Q", "t", settings)


def test_secret_is_refused_in_yaml_and_escalation_teams_must_exist(tmp_path) -> None:
    from tests.notify.helpers import make_settings

    with pytest.raises(ConfigError) as caught:
        make_settings(tmp_path, ack={"base_url": ACK_BASE, "secret": "in-the-file-123456"})
    assert caught.value.field == "notify.ack.secret" and "CTDNA_ACK_SECRET" in str(caught.value)
    with pytest.raises(ConfigError, match="not in care_teams"):
        make_settings(tmp_path, escalation={"teams": {"no-such-team": {"after_hours": 2}}})
    with pytest.raises(ConfigError) as unknown_key:
        make_settings(tmp_path, escalation={"after_hour": 2})
    assert unknown_key.value.field == "notify.escalation.after_hour"
