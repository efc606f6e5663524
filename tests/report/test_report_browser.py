"""Both pages open in headless Chromium without a SEVERE console error and without fetching.

Needs the Debian packages ``chromium`` and ``chromium-driver``. Skipped with a reason when
they are absent, unless ``CTDNA_REQUIRE_BROWSER`` is set (CI), in which case it fails.
"""

from __future__ import annotations

import os
import shutil
from datetime import date, datetime
from pathlib import Path

import pytest

from pipeline.report.render import (
    CohortRow,
    render_cohort_report,
    render_patient_report,
    write_html,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.browser


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    reason = (f"headless Chromium not installed ({', '.join(missing)} missing; "
              "apt-get install chromium chromium-driver)")
    if os.environ.get("CTDNA_REQUIRE_BROWSER"):
        pytest.fail(f"CTDNA_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


@pytest.fixture()
def driver(tmp_path):
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1200,1600",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    web = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    web.set_page_load_timeout(60)
    try:
        yield web
    finally:
        web.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


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
