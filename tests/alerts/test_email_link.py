"""The acknowledgement links inside the real email (issue #14 item 2): one per item of the
digest, each acknowledging its own alert through the real HTTP endpoint."""

from __future__ import annotations

import re
import urllib.parse
import urllib.request

from pipeline.alerts.ack import list_alerts

from .conftest import T0
from .helpers import ACK_BASE, notify_patient, settings_for

LINK = re.compile(re.escape(ACK_BASE) + r"/(v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")


def test_every_item_of_the_email_has_a_working_link(engine, tmp_path, smtp_server,
                                                    ack_server_factory) -> None:
    settings = settings_for(tmp_path, smtp_server.port)
    notify_patient(engine, settings, T0)
    server = ack_server_factory(engine, settings)
    (message,) = [m for _f, _r, m in smtp_server.handler.messages]
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    refs = {r["ref"] for r in list_alerts(engine)}
    lines = [line for line in text.splitlines() if LINK.search(line)]
    assert len(lines) == len(refs) == 2
    assert {re.search(r"\[ref ([0-9A-Z-]+)\]", line).group(1) for line in lines} == refs
    assert len(LINK.findall(html)) == 2
    for line in lines:
        token = LINK.search(line).group(1)
        data = urllib.parse.urlencode({"name": "Dr. E"}).encode()
        with urllib.request.urlopen(f"{server.url}/ack/{token}", data=data, timeout=10) as r:
            assert r.status == 200
    assert {r["state"] for r in list_alerts(engine)} == {"acknowledged"}
