"""The cohort page at 10,000 patients in headless Chromium: search, filter, sort, paging.

Issue #11 item 3. The rows are synthetic ``CohortRow`` objects (seeded), rendered by the real
renderer and driven in a real browser; expected counts are computed from the same rows in
Python. Prints the file size and load time (recorded in docs/performance.md).
"""

from __future__ import annotations

import random
import time
from datetime import date, datetime, timedelta

import pytest
from test_report_browser import _open, driver  # noqa: F401 - the headless Chromium fixture

from pipeline.report.render import CohortRow, render_cohort_report, write_html

pytestmark = pytest.mark.browser

N = 10_000
TODAY = date(2026, 12, 1)
TEAMS = ("thoracic-a", "thoracic-b", "community-clinic")
TIERS = ("OPTIMAL", "OPTIMAL", "OPTIMAL", "WARNING", "FAILURE", "NOT_EVALUABLE")


def _rows() -> list[CohortRow]:
    rnd = random.Random(11)
    rows = []
    for i in range(1, N + 1):
        status = rnd.choice(TIERS)
        alts = ["ALK EML4-ALK fusion", "TP53 R273H"] + (["ALK G1202R"] if i % 7 == 0 else [])
        rows.append(CohortRow(
            patient_id=f"P{i:05d}", status=status, therapy_drug="alectinib", therapy_line=1,
            therapy_start=date(2025, 1, 1),
            last_draw_date=TODAY - timedelta(days=rnd.randint(1, 200)),
            next_draw_due=TODAY + timedelta(days=rnd.randint(-90, 90)),
            alerts=(f"R1 {status}: ALK G1202R emerged",)
            if status in ("WARNING", "FAILURE") else (),
            care_team=TEAMS[i % 3], alterations=tuple(alts)))
    return rows


def _status(web) -> str:
    from selenium.webdriver.common.by import By

    return web.find_element(By.ID, "cohort-status").text


def _ids(web) -> list[str]:
    return web.execute_script(
        "return Array.from(document.querySelectorAll('#cohort-table tbody tr.patient'))"
        ".map(function (r) { return r.getAttribute('data-patient'); });")


def _wait_for(web, text: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = _status(web)
        if text in status:
            return status
        time.sleep(0.05)
    raise AssertionError(f"status never showed {text!r}: {_status(web)!r}")


def test_10k_cohort_page_search_filter_sort_page(driver, tmp_path, settings):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    rows = _rows()
    started = time.perf_counter()
    html = render_cohort_report(rows, settings, datetime(2026, 12, 1, 7, 0))
    render_s = time.perf_counter() - started
    page = write_html(tmp_path / "cohort.html", html)
    size_mb = page.stat().st_size / 1e6

    _open(driver, page)  # no SEVERE console error, nothing fetched
    load_ms = driver.execute_script(
        "var t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd;")
    print(f"\n10k cohort page: {size_mb:.2f} MB, rendered in {render_s:.2f} s, "
          f"loaded in {load_ms:.0f} ms")
    assert size_mb < 10 and load_ms < 10_000
    assert _status(driver).startswith(f"Showing 1-100 of {N} patients")
    assert len(_ids(driver)) == 100

    box = driver.find_element(By.ID, "search")
    box.send_keys("P01234")
    _wait_for(driver, "of 1 patients")
    assert _ids(driver) == ["P01234"]
    box.clear()
    box.send_keys("g1202r")  # alteration search, case-insensitive
    expected = sum("ALK G1202R" in r.alterations or any("G1202R" in a for a in r.alerts)
                   for r in rows)
    _wait_for(driver, f"of {expected} patients (filtered from {N})")
    driver.execute_script("var s = document.getElementById('search'); s.value = '';"
                          "s.dispatchEvent(new Event('input'));")
    _wait_for(driver, f"of {N} patients.")

    Select(driver.find_element(By.ID, "filter-tier")).select_by_value("FAILURE")
    Select(driver.find_element(By.ID, "filter-team")).select_by_value("thoracic-b")
    want = [r for r in rows if r.status == "FAILURE" and r.care_team == "thoracic-b"]
    _wait_for(driver, f"of {len(want)} patients (filtered from {N})")
    shown = _ids(driver)
    assert set(shown) <= {r.patient_id for r in want}

    driver.find_element(By.CSS_SELECTOR, "th[data-sort=patient]").click()
    assert _ids(driver)[:3] == sorted(r.patient_id for r in want)[:3]
    driver.find_element(By.CSS_SELECTOR, "th[data-sort=patient]").click()  # descending
    assert _ids(driver)[:3] == sorted((r.patient_id for r in want), reverse=True)[:3]
    driver.find_element(By.CSS_SELECTOR, "th[data-sort=next_due]").click()
    first = min(want, key=lambda r: (r.next_draw_due, r.patient_id))
    assert _ids(driver)[0] in {r.patient_id for r in want
                               if r.next_draw_due == first.next_draw_due}

    driver.find_element(By.ID, "page-next").click()
    _wait_for(driver, "Showing 101-")
    assert len(_ids(driver)) == min(100, len(want) - 100)
