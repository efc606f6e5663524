"""Incremental runs: only patients whose assessment may have changed are evaluated (#11 item 2).

A real SQLite store with the demo inbox ingested; the selection (``evaluation_queue``) and
the evaluation (``evaluate_patients``) are the use cases the surveillance flow calls. The
flow-level counterpart (reasons in the run summary) is in tests/flows/test_surveillance_flow.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.demo.data import write_demo_inbox
from pipeline.ingest import ingest_manifest, ingest_therapies
from pipeline.knowledge import load_knowledge_base
from pipeline.service import UNCHANGED, evaluate_patients, evaluation_queue
from pipeline.store.repository import Store

DEMO_DAY = date(2026, 11, 21)
PATIENTS = ["DEMO-001", "DEMO-002", "DEMO-003", "DEMO-004"]


@pytest.fixture
def lab(tmp_path: Path):
    inbox, config = write_demo_inbox(tmp_path, DEMO_DAY)
    settings = load_settings(config, env={})
    kb = load_knowledge_base()
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    ingest_therapies(inbox / "batch-001" / "therapies.csv", store)
    report = ingest_manifest(inbox / "batch-001" / "manifest.csv", store, settings, kb)
    assert not report.rejected
    return store, settings, kb, config


def _evaluate(store, settings, kb, today: date, run: str):
    """One incremental run on ``today``: select, evaluate, clear the marks as delivery does."""
    queue = evaluation_queue(store, settings, kb, run_id=run, today=today)
    results = evaluate_patients(store, settings, kb, queue.patients, as_of=today)
    _clear(store, results)
    return queue, results


def _clear(store, results) -> None:
    from pipeline.store.repository import clear_pending

    with store.engine.begin() as conn:  # what the alert ledger does in its transaction
        for result in results:
            clear_pending(conn, result.assessment.patient_id, result.read_at)


def test_first_run_evaluates_everyone_then_nothing_is_re_evaluated(lab) -> None:
    store, settings, kb, _config = lab
    first, results = _evaluate(store, settings, kb, DEMO_DAY, "run-1")
    assert first.patients == PATIENTS
    assert sum(first.reasons.values()) == 4 and first.skipped == {}
    assert all(r.assessment.reevaluate_on is None or r.assessment.reevaluate_on > DEMO_DAY
               for r in results)
    again, _ = _evaluate(store, settings, kb, DEMO_DAY, "run-2")
    assert again.patients == [] and again.reasons == {}
    assert again.skipped == {UNCHANGED: 4}


def test_config_knowledge_base_and_version_changes_re_evaluate_everyone(lab) -> None:
    store, settings, kb, config = lab
    _evaluate(store, settings, kb, DEMO_DAY, "run-1")
    config.write_text(config.read_text(encoding="utf-8").replace(
        'version: "demo-2026.11"', 'version: "demo-2026.12"'), encoding="utf-8")
    changed = load_settings(config, env={})
    assert changed.version_label() != settings.version_label()
    queue, _ = _evaluate(store, changed, kb, DEMO_DAY, "run-2")
    assert queue.patients == PATIENTS
    assert queue.reasons == {"configuration changed since the last evaluation": 4}

    # A knowledge base with another version: the stored assessments name the old one.
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE assessments SET kb_version = 'kb-older'")
    queue, _ = _evaluate(store, changed, kb, DEMO_DAY, "run-3")
    assert queue.reasons == {"knowledge base changed since the last evaluation": 4}


def test_new_draw_re_evaluates_only_that_patient_with_its_reason(lab, tmp_path: Path) -> None:
    store, settings, kb, _config = lab
    _evaluate(store, settings, kb, DEMO_DAY, "run-1")
    batch = tmp_path / "inbox" / "batch-001"
    rows = (batch / "manifest.csv").read_text(encoding="utf-8").splitlines()
    header, d004 = rows[0], [r for r in rows if r.startswith("D004-")][-1]
    fields = d004.split(",")
    fields[0], fields[2] = "D004-NEW", (DEMO_DAY - timedelta(days=1)).isoformat()
    extra = batch / "extra.csv"
    extra.write_text(header + "\n" + ",".join(fields) + "\n", encoding="utf-8")
    assert not ingest_manifest(extra, store, settings, kb).rejected
    queue, results = _evaluate(store, settings, kb, DEMO_DAY, "run-2")
    assert queue.patients == ["DEMO-004"]
    assert queue.reasons == {"new or amended draws": 1}
    assert queue.skipped == {UNCHANGED: 3}
    assert "D004-NEW" in results[0].assessment.draws_used


def test_a_passed_cadence_date_re_evaluates_without_new_data(lab) -> None:
    """No data arrives; on the stored ``reevaluate_on`` date the patient is evaluated again,
    and once its draw is overdue the C1 alert appears (the reason incremental runs need
    cadence dates at all)."""
    store, settings, kb, _config = lab
    _, results = _evaluate(store, settings, kb, DEMO_DAY, "run-1")
    dated = {r.assessment.patient_id: r.assessment.reevaluate_on for r in results
             if r.assessment.reevaluate_on is not None}
    assert dated, "no demo patient has a cadence date"
    patient, when = min(dated.items(), key=lambda item: item[1])

    day_before, _ = _evaluate(store, settings, kb, when - timedelta(days=1), "run-2")
    assert patient not in day_before.patients

    on_the_day, _ = _evaluate(store, settings, kb, when, "run-3")
    assert patient in on_the_day.patients
    assert on_the_day.reasons[
        "a cadence date passed (next draw due, draw overdue or line ended)"] >= 1

    # Keep following the patient's cadence dates: without new data its draw becomes overdue.
    today, rules = when, []
    for step in range(12):
        stamps = store.evaluation_stamps().set_index("patient_id")
        next_day = stamps.loc[patient, "reevaluate_on"]
        assert next_day is not None and next_day > today, (step, next_day)
        today = next_day
        queue, results = _evaluate(store, settings, kb, today, f"run-c{step}")
        assert patient in queue.patients
        rules = [a.rule_id for r in results if r.assessment.patient_id == patient
                 for a in r.assessment.alerts]
        if "C1" in rules:
            break
    assert "C1" in rules, f"{patient}: no overdue alert after following its cadence dates"


def test_stamps_survive_the_store_round_trip(lab) -> None:
    store, settings, kb, _config = lab
    _, results = _evaluate(store, settings, kb, DEMO_DAY, "run-1")
    stamps = store.evaluation_stamps().set_index("patient_id")
    for result in results:
        a = result.assessment
        row = stamps.loc[a.patient_id]
        assert row["reevaluate_on"] == a.reevaluate_on
        assert row["as_of"] == a.as_of
        assert row["config_version"] == settings.version_label()
