"""Regenerate docs/img/patient-report.png and docs/img/cohort-report.png.

Renders the scenario patients of the report tests and photographs both pages with headless
Chromium (``chromium --headless=new --screenshot``). Run from the repository root:

    .venv/bin/python tests/report/make_screenshots.py

Not a test (pytest does not collect it); it writes only into docs/img/.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import date, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import report_scenarios  # noqa: E402

from pipeline.config import load_settings  # noqa: E402
from pipeline.report.render import (  # noqa: E402
    CohortRow,
    render_cohort_report,
    render_patient_report,
    write_html,
)


def _shoot(page: Path, out: Path, size: str, profile: Path) -> None:
    subprocess.run(
        ["/usr/bin/chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
         f"--window-size={size}", f"--screenshot={out}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )


def main() -> None:
    settings = load_settings(env={})
    progression = report_scenarios.progression()
    cleared = report_scenarios.cleared()
    rows = [
        CohortRow.from_assessment(s.assessment, s.samples["collection_date"], settings,
                                  care_team="thoracic-onc-a")
        for s in (progression, cleared)
    ]
    rows += [
        CohortRow("PT-0007", "WARNING", "brigatinib", 1, date(2025, 3, 17), date(2025, 8, 4),
                  date(2025, 9, 1), ("P1 WARNING: Loss of molecular response after clearance",),
                  "thoracic-onc-b"),
        CohortRow("PT-0011", "NOT_EVALUABLE", "lorlatinib", 1, date(2025, 8, 25),
                  date(2025, 8, 20), date(2025, 10, 6),
                  ("B1 INFO: ctDNA not detected at baseline",), "thoracic-onc-a"),
        CohortRow("PT-0014", "OPTIMAL", "alectinib", 1, date(2024, 11, 4), date(2025, 8, 11),
                  date(2025, 11, 3), (), "thoracic-onc-b"),
        CohortRow("PT-0019", None, None, None, None, date(2025, 9, 22), None, (), None),
    ]
    out_dir = REPO / "docs" / "img"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        patient = write_html(work / "patient.html", render_patient_report(
            progression.patient_id, progression.observations, progression.samples,
            progression.therapies, progression.assessment, progression.alert_history, settings,
            report_scenarios.KB_SOURCES, generated_at=datetime(2025, 10, 2, 7, 0),
        ))
        cohort = write_html(work / "cohort.html", render_cohort_report(
            rows, settings, datetime(2025, 10, 2, 7, 0)))
        _shoot(patient, out_dir / "patient-report.png", "1100,2600", work / "profile")
        _shoot(cohort, out_dir / "cohort-report.png", "1100,760", work / "profile")


if __name__ == "__main__":
    main()
