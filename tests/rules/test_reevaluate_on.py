"""``reevaluate_on`` is honest: nothing changes before it without new data (#11 item 2).

Incremental runs skip a patient with no new or amended data, the same therapy, config,
knowledge base and pipeline until the assessment's ``reevaluate_on`` date has come. That is
only safe if the assessment made on the day before that date is the one already stored.
Checked on the golden scenario cohort at several evaluation dates across a line (before the
first draw, in the response windows, in maintenance, overdue, after a line ended).
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from golden_cohort import golden_timeline
from rules_timeline import START

from pipeline.config import load_settings
from pipeline.rules import evaluate_cohort

#: Fields that are "as of the evaluation" by definition, not a change of the assessment.
AS_OF_FIELDS = ("as_of", "days_on_therapy", "reevaluate_on", "pipeline_version",
                "config_version")


def _by_patient(as_of: date) -> dict[str, dict[str, object]]:
    frames = golden_timeline().frames()
    out = evaluate_cohort(*frames, load_settings(env={}), None, as_of=as_of)
    return {a.patient_id: a.contract_json() for a in out}


def _clinical(payload: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in payload.items() if k not in AS_OF_FIELDS}


@pytest.mark.parametrize("day", [-10, 10, 30, 45, 100, 160, 240, 400])
def test_assessment_is_unchanged_until_reevaluate_on(day: int) -> None:
    as_of = START + timedelta(days=day)
    now = _by_patient(as_of)
    checked_dates = 0
    for patient, payload in now.items():
        raw = payload["reevaluate_on"]
        if raw is None:
            # Nothing but new data or a new version changes it: a year later is the same.
            later = as_of + timedelta(days=365)
        else:
            again = date.fromisoformat(str(raw))
            assert again > as_of, (patient, again)
            checked_dates += 1
            later = again - timedelta(days=1)
        if later == as_of:
            continue
        assert _clinical(_by_patient(later)[patient]) == _clinical(payload), (
            f"{patient}: assessment at {as_of} changed by {later} without new data "
            f"(reevaluate_on {raw})")
    assert now, "the golden cohort produced no assessments"


def test_reevaluate_on_is_a_date_that_changes_something() -> None:
    """Not a daily re-evaluation in disguise: only overdue patients (C1 counts the days)
    get the next day; others get a later cadence date, on which something does change."""
    as_of = START + timedelta(days=100)
    now = _by_patient(as_of)
    dates = {p: date.fromisoformat(str(v["reevaluate_on"]))
             for p, v in now.items() if v["reevaluate_on"] is not None}
    assert dates, "no patient has a cadence date at day 100"
    for patient, again in dates.items():
        overdue = any(a["rule_id"] == "C1" for a in now[patient]["alerts"])  # type: ignore[union-attr]
        assert overdue == (again == as_of + timedelta(days=1)), (patient, again)
    assert any(d > as_of + timedelta(days=1) for d in dates.values()), dates
    changed = [p for p, d in dates.items()
               if _clinical(_by_patient(d)[p]) != _clinical(now[p])]
    assert changed, dates
