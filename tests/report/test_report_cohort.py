"""Cohort overview: ordering (OVERDUE first), tier counts, the rules' due date, escaping."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from pipeline.report.render import (
    CohortRow,
    render_cohort_report,
)

TODAY = date(2025, 10, 1)


def _row(pid: str, status, due: date | None, **kw) -> CohortRow:
    return CohortRow(
        patient_id=pid, status=status, therapy_drug=kw.get("drug", "alectinib"),
        therapy_line=1, therapy_start=date(2025, 2, 3), last_draw_date=date(2025, 9, 1),
        next_draw_due=due, alerts=kw.get("alerts", ()), care_team=kw.get("care_team"),
        open_alerts=kw.get("open_alerts", 0),
    )


def _order(html: str) -> list[str]:
    return re.findall(r'<tr class="patient[^"]*" data-patient="([^"]+)"', html)


def test_overdue_first_then_failure_warning_not_evaluable_optimal(settings):
    grace = settings.cadence.overdue_grace_days
    rows = [
        _row("P-OPT", "OPTIMAL", TODAY + timedelta(days=30)),
        _row("P-NEW", None, None, drug=None),
        _row("P-WARN", "WARNING", TODAY + timedelta(days=3)),
        _row("P-NE", "NOT_EVALUABLE", TODAY + timedelta(days=10)),
        _row("P-FAIL", "FAILURE", TODAY + timedelta(days=5)),
        _row("P-OPT-LATE", "OPTIMAL", TODAY - timedelta(days=grace + 20)),
        _row("P-WARN-LATE", "WARNING", TODAY - timedelta(days=grace + 1)),
        _row("P-EDGE", "OPTIMAL", TODAY - timedelta(days=grace)),  # exactly at the grace limit
    ]
    html = render_cohort_report(rows, settings, datetime(2025, 10, 1, 6, 0))
    assert _order(html) == [
        "P-OPT-LATE", "P-WARN-LATE",  # overdue, most overdue first
        "P-FAIL", "P-WARN", "P-NE", "P-EDGE", "P-OPT", "P-NEW",
    ]
    assert html.count('class="patient overdue"') == 2
    assert f"OVERDUE by {grace + 20} days" in html
    assert f"OVERDUE by {grace + 1} days" in html


def test_counts_per_tier_at_the_top(settings):
    rows = [
        _row("A", "FAILURE", TODAY), _row("B", "FAILURE", TODAY),
        _row("C", "WARNING", TODAY - timedelta(days=60)), _row("D", "OPTIMAL", TODAY),
        _row("E", "NOT_EVALUABLE", None), _row("F", None, None),
    ]
    html = render_cohort_report(rows, settings, TODAY)
    counts = dict(re.findall(r'data-count="([A-Z_]+)">[^<:]+: (\d+)<', html))
    assert counts == {"UNACKNOWLEDGED": "0", "OVERDUE": "1", "FAILURE": "2", "WARNING": "1",
                      "NOT_EVALUABLE": "1", "OPTIMAL": "1", "NONE": "1"}
    assert html.index('id="tier-counts"') < html.index('id="cohort-table"')
    assert ">NOT EVALUABLE<" in html and ">NOT YET EVALUATED<" in html


def test_row_from_assessment_uses_next_draw_due_else_cadence(progression, cleared, settings):
    row = CohortRow.from_assessment(progression.assessment, progression.samples["collection_date"],
                                    settings, care_team="thoracic-a")
    assert row.next_draw_due == progression.assessment.next_draw_due
    assert row.last_draw_date == date(2025, 9, 29)
    assert (row.status, row.therapy_drug, row.therapy_line) == ("FAILURE", "alectinib", 1)
    assert row.alerts[0].startswith("P2 FAILURE") and row.alerts[1].startswith("R1 FAILURE")
    # cleared: no next_draw_due in the assessment -> C1 (first on-treatment draw at week 5,
    # so the week 8-10 draw is next: due at the end of week 10)
    row = CohortRow.from_assessment(cleared.assessment, cleared.samples["collection_date"],
                                    settings)
    assert row.next_draw_due == date(2025, 5, 5) + timedelta(weeks=10)


def test_cohort_row_takes_the_rules_due_date(settings, progression):
    # #9 item 9: one truth per quantity: the row shows the assessment's next_draw_due (C1).
    a = progression.assessment
    row = CohortRow.from_assessment(a, [date(2025, 1, 1)], settings)
    assert a.next_draw_due is not None and row.next_draw_due == a.next_draw_due


def test_cohort_page_escapes_and_is_self_contained(settings):
    evil = "<script>alert(1)</script>"
    html = render_cohort_report(
        [_row(evil, "WARNING", TODAY, drug="<b>x</b>", alerts=(evil,), care_team=evil)],
        settings, TODAY,
    )
    # the only script elements are the page's own (cohort JSON + the table script); the
    # hostile values appear escaped in the HTML and \u-escaped in the embedded JSON
    assert html.lower().count("<script") == 2 and "<b>x" not in html
    assert '<script type="application/json" id="cohort-data">' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in html
    assert "alert(1)</script>" not in html
    assert "http" not in html and "src=" not in html and "href=" not in html
    assert "@page { size: A4" in html


def test_unacknowledged_alerts_come_first(settings):
    # #14 item 2: a notified alert nobody acknowledged leads the page, before overdue draws
    grace = settings.cadence.overdue_grace_days
    rows = [
        _row("P-FAIL-LATE", "FAILURE", TODAY - timedelta(days=grace + 5)),
        _row("P-WARN-OPEN", "WARNING", TODAY + timedelta(days=3), open_alerts=2),
        _row("P-FAIL", "FAILURE", TODAY + timedelta(days=5)),
        _row("P-FAIL-OPEN", "FAILURE", TODAY + timedelta(days=9), open_alerts=1),
    ]
    html = render_cohort_report(rows, settings, TODAY)
    assert _order(html) == ["P-FAIL-OPEN", "P-WARN-OPEN", "P-FAIL-LATE", "P-FAIL"]
    assert 'data-count="UNACKNOWLEDGED">UNACKNOWLEDGED: 2<' in html
    assert "2 unacknowledged" in html and "1 unacknowledged" in html
