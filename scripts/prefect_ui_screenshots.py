"""Screenshots of a real flow run in the Prefect UI for docs/ (issue #12 "Done when").

Against a running ``prefect server start`` (``PREFECT_UI_API_URL`` set to its API, so the
UI in the browser reaches it) and a finished ``ctdna run`` on it, drives Debian's headless
Chromium (selenium + /usr/bin/chromedriver) to the flow-run page and to the run's markdown
artifact and saves both::

    PREFECT_UI_API_URL=http://127.0.0.1:4264/api prefect server start --port 4264 &
    PREFECT_API_URL=http://127.0.0.1:4264/api ctdna run --inbox <demo inbox> ... --json
    .venv/bin/python scripts/prefect_ui_screenshots.py http://127.0.0.1:4264 <run id> docs/img
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path


def _artifact_id(base: str, run_id: str, key: str) -> str:
    body = json.dumps({"artifacts": {"flow_run_id": {"any_": [run_id]},
                                     "key": {"any_": [key]}}}).encode()
    request = urllib.request.Request(f"{base}/api/artifacts/filter", data=body,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.load(response)[0]["id"])


def _shot(url: str, out: Path, size: tuple[int, int], wait_text: str) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                f"--window-size={size[0]},{size[1]}"):
        options.add_argument(arg)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and wait_text not in driver.page_source:
            time.sleep(1)
        time.sleep(4)  # the run graph animates in after the data arrives
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main(base: str, run_id: str, folder: Path) -> None:
    _shot(f"{base}/runs/flow-run/{run_id}", folder / "prefect-run-page.png", (1400, 760),
          "write-reports")
    artifact = _artifact_id(base, run_id, "ctdna-run-summary")
    _shot(f"{base}/artifacts/artifact/{artifact}", folder / "prefect-run-artifact.png",
          (1300, 1350), "Tier changes")


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), sys.argv[2], Path(sys.argv[3]))
