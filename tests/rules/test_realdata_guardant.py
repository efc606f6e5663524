"""The two real Guardant360 serial tables through the shipped ``guardant360`` profile (#9).

Inputs: ``../shared/realdata/mumtahena__ctDNA_lung/multi.csv`` and ``prep_gg.csv`` (read in
place through symlinks in a temporary folder, never copied into the repository), a manifest
with absolute dates (day 0 = 2020-01-06) and a plausible therapy file. The expectations were
written from the rows themselves (what a clinician reading them would conclude), not from the
pipeline's output:

* G1 (alectinib from day 0): the only baseline call is ALK E1407E 0.1 % (a passenger);
  EGFR E746_A750del rises 0.2 -> 0.7 -> 5.4 % and TP53 Y220C 0.1 -> 0.8 -> 4.3 % on days
  554/727/958. Not reassurance: FAILURE naming EGFR del19 / TP53 Y220C.
* G216 (alectinib from day 0): ALK I1171N 5.0 % with EML4-ALK 2.7 % in the day-0 draw;
  I1171N is rated resistant to alectinib: primary resistance, FAILURE, options offered.
* G301 (alectinib from day 0): ALK L1196M 3.3 % with EML4-ALK at day 0: judged against
  alectinib (knowledge base: intermediate) -> WARNING naming L1196M.
* G116 (osimertinib from day 0): EGFR del19 2.5 % -> 0.3 % (day 262) -> 44.7 % (day 579):
  a single-draw rise of about 150x from the nadir: WARNING asking for an urgent confirmatory
  draw naming G116_579 (not the "still detectable" of a stable patient).
* G70 (alectinib from day 0): BRAF V600E 0.5 % at baseline: pre-existing bypass -> R0.
* G31 (osimertinib from day 300, line 2): the only draw of the line is day 372 with EGFR
  del19 at 11 %: no pre-treatment draw -> provisional reference, not silently NOT_EVALUABLE.
* G325 (alectinib from day 100): first draw of the line is day 178 with BRAF V600E 1.1 %:
  provisional reference, BRAF V600E judged (R0).
* G18 (crizotinib from day 0): EML4-ALK 5.7 % at day 0, absent at day 364 while NF1 T811I
  stays at 1.2 %: fusion cleared, but tumour DNA persists -> not OPTIMAL.
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from pipeline.ingest import ingest_manifest, ingest_therapies
from pipeline.knowledge import load_knowledge_base
from pipeline.rules import evaluate_cohort
from pipeline.store.repository import Store

DAY0 = date(2020, 1, 6)
FOLDER = "mumtahena__ctDNA_lung"
PATIENTS = {"multi.csv": ["G1", "G116", "G70"],
            "prep_gg.csv": ["G216", "G301", "G18", "G31", "G325"]}
THERAPIES = [("G1", "alectinib", 0, 1), ("G116", "osimertinib", 0, 1), ("G70", "alectinib", 0, 1),
             ("G216", "alectinib", 0, 1), ("G301", "alectinib", 0, 1),
             ("G18", "crizotinib", 0, 1), ("G31", "erlotinib", 0, 1),
             ("G31", "osimertinib", 300, 2), ("G325", "alectinib", 100, 1)]


def _realdata() -> Path:
    env = os.environ.get("CTDNA_REALDATA")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "realdata"
    folder = root / FOLDER
    if not folder.is_dir():
        pytest.skip("shared/realdata not present")
    return folder


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, settings):
    src = _realdata()
    work = tmp_path_factory.mktemp("guardant")
    rows = ["sample_id,patient_id,collection_date,path,genome_build,assay\n"]
    for name, patients in PATIENTS.items():
        (work / name).symlink_to(src / name)  # read in place, never copied
        table = pd.read_csv(src / name, usecols=["Patient.ID", "Blood.Collection.Date"])
        for pid in patients:
            days = sorted({int(d) for d in table.loc[table["Patient.ID"] == pid,
                                                     "Blood.Collection.Date"]})
            rows += [f"{pid}_{d},{pid},{DAY0 + timedelta(days=d)},{name},GRCh37,guardant360\n"
                     for d in days]
    (work / "manifest.csv").write_text("".join(rows), encoding="utf-8")
    (work / "therapies.csv").write_text(
        "patient_id,drug,start_date,line\n" + "".join(
            f"{p},{drug},{DAY0 + timedelta(days=d)},{line}\n" for p, drug, d, line in THERAPIES),
        encoding="utf-8")
    kb = load_knowledge_base()
    # The tables are symlinks into ../shared/realdata: allow-list it (#10 item 4 confinement).
    settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(
        update={"allowed_roots": [str(src.resolve())]})})
    store = Store(f"sqlite:///{work / 'store.db'}")
    try:
        report = ingest_manifest(work / "manifest.csv", store, settings, kb)
        ingest_therapies(work / "therapies.csv", store)
        frames = (store.observations_frame(), store.samples_frame(), store.therapies_frame())
    finally:
        store.dispose()
    rejected = {r.sample_id: r.error for r in report.rejected}
    assessments = evaluate_cohort(*frames, settings, kb, as_of="2023-01-01")
    return {a.patient_id: a for a in assessments}, rejected, (frames, settings, kb)


def _need_draws(rejected: dict[str, str], *sample_ids: str) -> None:
    # #9 item 4: a row the profile cannot type ("TP53 Splice") no longer loses its draw.
    lost = {s: rejected[s] for s in sample_ids if s in rejected}
    assert not lost, lost


def _alert(a, rule_id):
    return [x for x in a.alerts if x.rule_id == rule_id]


def _named(a) -> set[str]:
    return {f"{f.gene} {f.alteration}" for x in a.alerts if x.tier in ("WARNING", "FAILURE")
            for f in x.findings if f.gene}


def test_g1_emerging_egfr_clone_is_failure_not_optimal(cohort):
    a = cohort[0]["G1"]
    assert a.status == "FAILURE"
    assert {"EGFR E746_A750del", "TP53 Y220C"} & _named(a)
    assert "EGFR E746_A750del" in a.headline or "TP53 Y220C" in a.headline


def test_g216_i1171n_on_alectinib_is_primary_resistance(cohort):
    a = cohort[0]["G216"]
    r0 = _alert(a, "R0")
    assert a.status == "FAILURE" and r0 and r0[0].tier == "FAILURE"
    assert r0[0].findings[0].alteration == "I1171N" and r0[0].therapy_options
    assert "I1171N" in a.headline


def test_g301_l1196m_is_judged_against_alectinib(cohort):
    a = cohort[0]["G301"]
    r0 = _alert(a, "R0")
    assert r0 and r0[0].findings[0].alteration == "L1196M"
    assert a.status in ("WARNING", "FAILURE") and "L1196M" in a.headline


def test_g116_150_fold_rise_asks_for_an_urgent_confirmatory_draw(cohort):
    assessments, rejected, _inputs = cohort
    _need_draws(rejected, "G116_0", "G116_262", "G116_579")
    a = assessments["G116"]
    urgent = [x for x in a.alerts
              if any(s.startswith("URGENT") and "G116_579" in s for s in x.suggested_actions)]
    assert a.status in ("WARNING", "FAILURE") and urgent


def test_g70_baseline_braf_v600e_is_judged(cohort):
    assessments, rejected, _inputs = cohort
    _need_draws(rejected, "G70_0")
    a = assessments["G70"]
    assert any(f.gene == "BRAF" for x in _alert(a, "R0") for f in x.findings)


def test_g31_no_pretreatment_draw_is_a_provisional_reference(cohort):
    a = cohort[0]["G31"]
    assert a.therapy.line == 2 and a.baseline_provisional
    assert a.baseline_sample_id == "G31_372" and a.status != "NOT_EVALUABLE"
    assert "provisional" in a.headline


def test_g325_braf_v600e_at_the_provisional_reference(cohort):
    a = cohort[0]["G325"]
    assert a.baseline_provisional and a.status in ("WARNING", "FAILURE")
    assert any(f.gene == "BRAF" and f.alteration == "V600E"
               for x in _alert(a, "R0") for f in x.findings)


def test_g18_fusion_cleared_but_tumour_dna_persists(cohort):
    a = cohort[0]["G18"]
    assert a.status != "OPTIMAL"
    last = a.levels[-1]
    assert last.sample_id == "G18_364" and last.detected and "NF1" in (last.markers or "")


def test_no_draw_of_the_real_tables_is_lost(cohort):
    # #9 item 4: 13 of 60 draws used to be rejected for one untyped row each.
    _assessments, rejected, _inputs = cohort
    assert rejected == {}


def test_every_date_of_the_real_history_evaluates(cohort):
    # Defect: as of a date between G325's line start and its first draw (2020-06-01), the
    # line had no draw of its own and the whole cohort's evaluation crashed ("internal
    # error"). Every draw date and line start, and the day before each, must evaluate.
    frames, settings, kb = cohort[2]
    _obs, samples, therapies = frames
    dates = {pd.Timestamp(d) for d in [*samples["collection_date"], *therapies["start_date"]]}
    events = [*zip(samples["patient_id"], samples["collection_date"], strict=True),
              *zip(therapies["patient_id"], therapies["start_date"], strict=True)]
    for day in sorted(dates | {d - timedelta(days=1) for d in dates}):
        assessments = evaluate_cohort(*frames, settings, kb, as_of=day.date())
        known = {p for p, when in events if pd.Timestamp(when) <= day}
        assert {a.patient_id for a in assessments} == known, day
    (g325,) = [a for a in evaluate_cohort(*frames, settings, kb, as_of="2020-06-01")
               if a.patient_id == "G325"]
    assert g325.status == "NOT_EVALUABLE" and g325.baseline_sample_id is None
    assert "no draw on this line" in g325.headline
