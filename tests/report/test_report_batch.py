"""Reports rewritten only when their content changed; one chart render shared with email.

Issue #11 item 3. Real files in a temporary report folder, real matplotlib renders, real
scenario patients (tests/report/report_scenarios.py); the service-level test ingests a small
synthetic cohort into a real SQLite store.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from pipeline.report.batch import MANIFEST_NAME, write_patient_reports
from pipeline.report.chartcache import ChartCache
from pipeline.report.charts import trend_chart_png, trend_chart_svg
from pipeline.service import patient_report_name

REPO = Path(__file__).resolve().parents[2]


def _batch(scenarios):
    with warnings.catch_warnings():  # pandas' notice about all-NA columns of one scenario
        warnings.simplefilter("ignore", FutureWarning)
        cat = {k: pd.concat([getattr(s, k) for s in scenarios], ignore_index=True)
               for k in ("observations", "samples", "therapies")}
    return ([s.patient_id for s in scenarios], cat["observations"], cat["samples"],
            cat["therapies"], {s.patient_id: s.assessment for s in scenarios},
            {s.patient_id: s.alert_history for s in scenarios})


def _write(folder, batch, settings, kb_sources, **kw):
    return write_patient_reports(*batch, settings, kb_sources, folder, patient_report_name, **kw)


def _state(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.glob("patient-*.html")}


def test_second_run_rewrites_nothing_and_a_change_rewrites_one(tmp_path, progression, cleared,
                                                               settings, kb_sources):
    batch = _batch([progression, cleared])
    first = _write(tmp_path, batch, settings, kb_sources)
    assert first.written == ["PT-0001", "PT-0002"] and first.unchanged == []
    assert first.charts_drawn == 2  # one SVG per patient, no PNG asked for
    assert set(first.paths) == {"PT-0001", "PT-0002"}
    assert (tmp_path / MANIFEST_NAME).is_dir()
    before = _state(tmp_path)

    second = _write(tmp_path, batch, settings, kb_sources)
    assert second.written == [] and second.unchanged == ["PT-0001", "PT-0002"]
    assert second.charts_drawn == 0
    assert second.paths == first.paths
    assert _state(tmp_path) == before  # not even touched (same mtime)

    # a re-called VAF of one draw of PT-0002 changes its report only
    obs = batch[1].copy()
    hit = (obs["patient_id"] == "PT-0002") & obs["detected"] & obs["vaf"].notna()
    obs.loc[hit[hit].index[0], "vaf"] *= 1.5
    third = _write(tmp_path, (batch[0], obs, *batch[2:]), settings, kb_sources)
    assert third.written == ["PT-0002"] and third.unchanged == ["PT-0001"]
    after = _state(tmp_path)
    name_1, name_2 = patient_report_name("PT-0001"), patient_report_name("PT-0002")
    assert after[name_1] == before[name_1]
    assert after[name_2][1] != before[name_2][1]


def test_missing_file_new_sources_or_damaged_manifest_rewrite(tmp_path, progression, cleared,
                                                              settings, kb_sources):
    batch = _batch([progression, cleared])
    _write(tmp_path, batch, settings, kb_sources)
    (tmp_path / patient_report_name("PT-0001")).unlink()
    assert _write(tmp_path, batch, settings, kb_sources).written == ["PT-0001"]

    # a knowledge-base source update is printed in every report: all are rewritten
    changed = [dict(s, version=s["version"] + "-next") for s in kb_sources]
    assert _write(tmp_path, batch, settings, changed).written == ["PT-0001", "PT-0002"]

    for entry in (tmp_path / MANIFEST_NAME).glob("*.fp"):
        entry.write_bytes(b"\xff damaged")
    assert _write(tmp_path, batch, settings, changed).written == ["PT-0001", "PT-0002"]
    assert {p.name for p in (tmp_path / MANIFEST_NAME).glob("*.fp")} == {
        patient_report_name("PT-0001") + ".fp", patient_report_name("PT-0002") + ".fp"}


def test_report_embeds_the_chart_the_rules_levels_give(tmp_path, progression, settings,
                                                      kb_sources):
    # one truth per quantity: the page's chart is the same SVG trend_chart_svg draws from the
    # assessment (its levels and confirmed draws), not a second computation
    _write(tmp_path, _batch([progression]), settings, kb_sources)
    html = (tmp_path / patient_report_name("PT-0001")).read_text(encoding="utf-8")
    svg = trend_chart_svg(progression.observations, progression.samples, progression.therapies,
                          progression.assessment)
    assert svg.strip() in html


def test_png_drawn_once_by_the_report_step_is_what_the_email_reads(tmp_path, progression,
                                                                   cleared, settings,
                                                                   kb_sources):
    batch = _batch([progression, cleared])
    out = _write(tmp_path, batch, settings, kb_sources, png_for={"PT-0001"})
    assert out.charts_drawn == 3  # SVG x 2 + the PNG of the patient with an email
    expected = trend_chart_png(progression.observations, progression.samples,
                               progression.therapies, progression.assessment)

    # the email builder: a fresh cache object (another task), same folder -> no render
    email_side = ChartCache.for_reports(tmp_path)
    assert email_side.png("PT-0001") == expected
    assert email_side.png("PT-0002") is None  # nothing drawn for it: caller may draw
    assert email_side.renders == 0
    assert not list((tmp_path / ".charts").glob("*PT-*"))  # file names carry no patient ID

    # with the same content, a later run reads the PNG instead of drawing it again
    again = _write(tmp_path, batch, settings, kb_sources, png_for={"PT-0001"})
    assert again.charts_drawn == 0 and again.unchanged == ["PT-0001", "PT-0002"]

    # content changed and no PNG asked for: the old PNG is discarded, never sent stale
    obs = batch[1].copy()
    hit = (obs["patient_id"] == "PT-0001") & obs["detected"] & obs["vaf"].notna()
    obs.loc[hit[hit].index[0], "vaf"] *= 0.5
    _write(tmp_path, (batch[0], obs, *batch[2:]), settings, kb_sources)
    assert ChartCache.for_reports(tmp_path).png("PT-0001") is None


def test_chart_cache_draws_each_format_once(progression):
    cache = ChartCache()
    frames = (progression.observations, progression.samples, progression.therapies)
    charts = cache.charts("PT-0001", *frames, progression.assessment)
    assert charts.svg == charts.svg and charts.png == charts.png
    assert cache.renders == 2
    assert charts.svg == trend_chart_svg(*frames, progression.assessment)


# ----------------------------------------------------------------------------- service


@pytest.fixture()
def small_store(tmp_path):
    from pipeline.config import load_settings
    from pipeline.ingest import ingest_manifest, ingest_therapies
    from pipeline.knowledge import knowledge_base_for
    from pipeline.store.repository import Store

    cohort = tmp_path / "cohort"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_cohort.py"), str(cohort),
                    "--patients", "6", "--draws", "5", "--layout", "single"],
                   check=True, capture_output=True)
    settings = load_settings(env={})
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    kb = knowledge_base_for(settings)
    ingest_therapies(str(cohort / "therapies.csv"), store)
    report = ingest_manifest(str(cohort / "manifest.csv"), store, settings, kb)
    assert not report.rejected and len(report.ingested) == 30
    yield store, settings, kb, cohort
    store.dispose()


def test_service_report_step_counts_and_cohort_page(tmp_path, small_store):
    from pipeline.service import evaluate_patients, write_reports

    store, settings, kb, _cohort = small_store
    folder = tmp_path / "reports"
    today = date(2026, 12, 1)
    results = evaluate_patients(store, settings, kb, None, today, persist=False)
    first = write_reports(store, settings, kb, results, folder, today=today)
    assert first.counts()["reports_written"] == 6 and first.cohort_written
    assert first.cohort_path == str(folder / "cohort.html")
    page = (folder / "cohort.html").read_text(encoding="utf-8")
    data = json.loads(page.split('id="cohort-data">', 1)[1].split("</script>", 1)[0])
    assert len(data["rows"]) == 6
    by_id = {r[0]: r for r in data["rows"]}
    for r in results:
        a = r.assessment
        row = by_id[a.patient_id]
        assert row[1] == a.status  # the rules' tier and due date, not recomputed
        assert row[7] == (a.next_draw_due.isoformat() if a.next_draw_due else None)

    again = evaluate_patients(store, settings, kb, None, today, persist=False)
    second = write_reports(store, settings, kb, again, folder, today=today)
    assert second.counts() == {"reports_written": 0, "reports_unchanged": 6,
                               "charts_drawn": 0, "cohort_written": 0}
