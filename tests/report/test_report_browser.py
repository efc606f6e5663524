"""Both pages open in headless Chromium without a SEVERE console error and without fetching.

Needs the Debian packages ``chromium`` and ``chromium-driver``. Skipped with a reason when
they are absent, unless ``CTDNA_REQUIRE_BROWSER`` is set (CI), in which case it fails.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from pipeline.report.render import (
    CohortRow,
    render_cohort_report,
    render_patient_report,
    write_html,
)
from tests.browser import headless_chromium

pytestmark = pytest.mark.browser


@pytest.fixture()
def driver(tmp_path):
    yield from headless_chromium(tmp_path)


def _open(web, path: Path) -> None:
    web.get(path.as_uri())
    severe = [entry for entry in web.get_log("browser") if entry.get("level") == "SEVERE"]
    assert severe == [], f"SEVERE console errors in {path.name}: {severe}"
    # opened offline: the page fetched nothing besides itself
    resources = web.execute_script("return performance.getEntriesByType('resource').length")
    assert resources == 0


def test_patient_and_cohort_pages_open_cleanly(driver, tmp_path, progression, cleared,
                                               settings, kb_sources):
    from selenium.webdriver.common.by import By

    patient = write_html(tmp_path / "patient.html", render_patient_report(
        progression.patient_id, progression.observations, progression.samples,
        progression.therapies, progression.assessment, progression.alert_history, settings,
        kb_sources,
    ))
    _open(driver, patient)
    tier = driver.find_element(By.ID, "current-tier")
    assert tier.text == "FAILURE"
    assert tier.value_of_css_property("color") == "rgba(127, 29, 29, 1)"
    chart = driver.find_element(By.CSS_SELECTOR, "#trend-chart svg")
    assert chart.size["width"] > 600 and chart.size["height"] > 250
    assert len(driver.find_elements(By.CSS_SELECTOR, "tr.draw")) == 6

    rows = [
        CohortRow.from_assessment(s.assessment, s.samples["collection_date"], settings)
        for s in (progression, cleared)
    ]
    cohort = write_html(tmp_path / "cohort.html",
                        render_cohort_report(rows, settings, datetime(2025, 10, 2, 7, 0)))
    _open(driver, cohort)
    ids = [r.get_attribute("data-patient")
           for r in driver.find_elements(By.CSS_SELECTOR, "tr.patient")]
    # PT-0002's week 8-10 draw was due 2025-07-14: overdue on 2025-10-02, so it comes first
    assert rows[1].next_draw_due == date(2025, 7, 14)
    assert ids == ["PT-0002", "PT-0001"]
