"""Headless Chromium for the page tests (Debian ``chromium`` + ``chromium-driver``).

One place for the driver's options, so the report, cohort-page and acknowledgement tests
run the browser the same way. Absent packages skip the test with a reason, unless
``CTDNA_REQUIRE_BROWSER`` is set (CI), which makes it fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def require_browser() -> None:
    """Skip (or, with ``CTDNA_REQUIRE_BROWSER``, fail) when Chromium is not installed."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    reason = (f"headless Chromium not installed ({', '.join(missing)} missing; "
              "apt-get install chromium chromium-driver)")
    if os.environ.get("CTDNA_REQUIRE_BROWSER"):
        pytest.fail(f"CTDNA_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


def headless_chromium(tmp_path: Path, window: str = "1200,1600") -> Iterator[Any]:
    """A selenium Chrome driver on headless Chromium with a throwaway profile (a fixture body)."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--window-size={window}",
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
