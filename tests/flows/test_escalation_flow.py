"""Escalation as a step of the surveillance run (issue #14 item 2): a real run under Prefect
with a real SMTP server escalates an unacknowledged FAILURE alert once, before delivery, and
says so in the run summary and the ops notice; an acknowledged one is not escalated."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.flow

ONCALL = "oncall-oncology@hospital.example"


def test_run_escalates_unacknowledged_failure_once(lab_env: dict[str, Any]) -> None:
    from flows.surveillance import summary_of, surveillance_run
    from pipeline.alerts.ack import acknowledge, list_alerts
    from pipeline.store.repository import Store

    config = lab_env["config"]
    lab = yaml.safe_load(config.read_text(encoding="utf-8"))
    lab["notify"]["escalation"] = {"after_hours": 0.002, "address": ONCALL}  # 7.2 s
    config.write_text(yaml.safe_dump(lab), encoding="utf-8")
    handler, inbox = lab_env["handler"], lab_env["inbox"]

    first = summary_of(surveillance_run(inbox=str(inbox), return_state=True))
    assert first.emails_sent > 0 and first.escalations == []
    store = Store(os.environ["CTDNA_DB_URL"])
    try:
        failures = [r for r in list_alerts(store.engine) if r["tier"] == "FAILURE"]
        assert len(failures) >= 2
        acknowledge(store.engine, failures[0]["ref"], by="Dr. A")
        time.sleep(7.5)
        sent_before = len(handler.messages)
        second = summary_of(surveillance_run(inbox=str(inbox), return_state=True))
        escalated = [r["ref"] for r in list_alerts(store.engine)
                     if r["escalated_at"] is not None]
        assert failures[0]["ref"] not in escalated
        assert sorted(escalated) == sorted(r["ref"] for r in failures[1:])
        assert len(second.escalations) == len(escalated)
        new = handler.messages[sent_before:]
        to_oncall = [m for rcpt, m in new if list(rcpt) == [ONCALL]]
        assert len(to_oncall) == len(escalated)
        assert all("ESCALATION: not acknowledged" in str(m) for m in to_oncall)
        ops = [m for _r, m in new if "[ops]" in str(m["Subject"])]
        assert len(ops) == 1 and "Escalations (FAILURE alerts not acknowledged in time)" \
            in str(ops[0])
        third = summary_of(surveillance_run(inbox=str(inbox), return_state=True))
        assert third.escalations == []
    finally:
        store.dispose()
