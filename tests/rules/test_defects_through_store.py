"""#9 defects, each driven through the real readers and store (CSV table -> SQLite -> rules).

The calls files use the canonical table format (``docs/input-formats.md``), recognised by the
shipped knowledge base at ingest, as a lab would deliver them.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from pipeline.ingest import ingest_manifest, ingest_therapies
from pipeline.knowledge import load_knowledge_base
from pipeline.rules import evaluate_cohort
from pipeline.store.repository import Store

HEADER = "sample_id,gene,variant_type,protein_change,vaf,alt_reads,depth,fusion_partner\n"
START = date(2024, 3, 4)


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


def _run(tmp_path: Path, settings, kb, draws: dict[int, list[str]], drug: str = "alectinib",
         as_of: date | None = None, start: date = START):
    """Ingest one patient's draws ({day: [call rows]}) and therapy; evaluate."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "empty.csv").write_text(HEADER, encoding="utf-8")  # a draw with no calls
    rows = [HEADER]
    manifest = ["sample_id,patient_id,collection_date,path,genome_build,lod_vaf\n"]
    for day, calls in sorted(draws.items()):
        sid = f"D{day:+05d}"
        rows += [f"{sid},{c}\n" for c in calls]
        when = start + timedelta(days=day)
        path = "calls.csv" if calls else "empty.csv"
        manifest.append(f"{sid},PX,{when},{path},GRCh38,0.001\n")
    (tmp_path / "calls.csv").write_text("".join(rows), encoding="utf-8")
    (tmp_path / "manifest.csv").write_text("".join(manifest), encoding="utf-8")
    (tmp_path / "therapies.csv").write_text(
        f"patient_id,drug,start_date,line\nPX,{drug},{start},1\n", encoding="utf-8")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        report = ingest_manifest(tmp_path / "manifest.csv", store, settings, kb)
        assert not report.rejected, report.rejected
        ingest_therapies(tmp_path / "therapies.csv", store)
        frames = (store.observations_frame(), store.samples_frame(), store.therapies_frame())
    finally:
        store.dispose()
    return evaluate_cohort(*frames, settings, kb, as_of=as_of)[0]


def _ids(a, tier=None):
    return {x.rule_id for x in a.alerts if tier is None or x.tier == tier}


def _reads(vaf: float, depth: int = 5000) -> str:
    return f"{vaf},{round(vaf * depth)},{depth}"


def test_emerging_clone_is_not_false_reassurance(tmp_path, settings, kb):
    # Defect 1 (real G1): the only baseline marker is a low-level passenger that clears;
    # TP53 Y220C then rises 0.1 -> 0.8 -> 4.3 %. Before the fix: OPTIMAL, "cleared".
    draws = {
        0: [f"ALK,snv,E1407E,{_reads(0.0012)},"],
        180: [f"TP53,snv,Y220C,{_reads(0.002)},"],
        360: [f"TP53,snv,Y220C,{_reads(0.008)},"],
        540: [f"TP53,snv,Y220C,{_reads(0.043)},"],
    }
    a = _run(tmp_path, settings, kb, draws)
    assert a.status == "FAILURE" and "P4" in _ids(a, "FAILURE")
    p4 = next(x for x in a.alerts if x.rule_id == "P4")
    assert {(f.gene, f.alteration) for f in p4.findings} == {("TP53", "Y220C")}
    assert "TP53 Y220C" in a.headline and "0.2 → 0.8 → 4.3 %" in a.headline
    # the baseline markers themselves are cleared: the level path says so
    assert a.levels[0].markers == "ALK E1407E" and not a.levels[-1].detected
    # ... and the headline names what that level measures, so "ctDNA 0.1 % -> < 0.1 %"
    # beside a rising clone no longer reads as a contradiction (round 2 review of real G1)
    assert "; baseline markers (ALK E1407E) 0.12 % → < " in a.headline


def test_preexisting_resistance_to_the_current_drug(tmp_path, settings, kb):
    # Defect 2 (real G216): ALK I1171N at 5 % in the draw at the start of alectinib.
    draws = {0: ["ALK,fusion,,0.027,135,5000,EML4", f"ALK,snv,I1171N,{_reads(0.05)},",
                 f"TP53,snv,M246V,{_reads(0.063)},"]}
    a = _run(tmp_path, settings, kb, draws)
    assert a.status == "FAILURE"
    r0 = next(x for x in a.alerts if x.rule_id == "R0")
    assert r0.tier == "FAILURE" and r0.therapy_options
    assert any("Primary resistance: early-switch review" in s for s in r0.suggested_actions)
    assert "alectinib" not in {o.name for o in r0.therapy_options}
    assert "ALK I1171N" in a.headline and "resistant" in a.headline
    # the same mutation on brigatinib (rated sensitive) raises no R0
    b = _run(tmp_path / "brigatinib", settings, kb, draws, drug="brigatinib")
    assert "R0" not in _ids(b)


def test_confirmation_at_real_intervals(tmp_path, settings, kb):
    # Defect 3 (real G116): draws 6-10 months apart; EGFR-type marker 2.5 % -> 0.3 % -> 44.7 %.
    draws = {
        0: ["ALK,fusion,,0.025,125,5000,EML4"],
        262: ["ALK,fusion,,0.003,15,5000,EML4"],
        579: ["ALK,fusion,,0.447,2235,5000,EML4"],
    }
    single = _run(tmp_path, settings, kb, draws)
    urgent = [x for x in single.alerts if any(s.startswith("URGENT") for s in x.suggested_actions)]
    assert single.status == "WARNING" and urgent
    assert "D+0579" in urgent[0].suggested_actions[0]  # names the draw to confirm
    assert "urgent confirmatory draw" in single.headline
    # the next draw, ten months later, still counts as the confirmation
    draws[880] = ["ALK,fusion,,0.39,1950,5000,EML4"]
    confirmed = _run(tmp_path / "confirmed", settings, kb, draws)
    assert confirmed.status == "FAILURE"


def test_no_pretreatment_draw_is_a_provisional_reference(tmp_path, settings, kb):
    # Defect 5 (real G31, second line): 11 % ctDNA, no draw within 14 days before the start.
    draws = {72: [f"EGFR,indel,E746_A750del,{_reads(0.11)},", f"TP53,snv,K132Q,{_reads(0.006)},"]}
    a = _run(tmp_path, settings, kb, draws)
    assert a.status != "NOT_EVALUABLE" and a.baseline_provisional
    assert a.baseline_sample_id == "D+0072"
    assert any("provisional reference" in c for c in a.caveats)
    assert "provisional" in a.headline


def test_braf_v600e_has_a_rule(tmp_path, settings, kb):
    # Defect "labels without consequence": BRAF V600E (category bypass) emerging on treatment.
    draws = {
        0: ["ALK,fusion,,0.02,100,5000,EML4"],
        60: [],
        200: [f"BRAF,snv,V600E,{_reads(0.011)},"],
        290: [f"BRAF,snv,V600E,{_reads(0.013)},"],
    }
    a = _run(tmp_path, settings, kb, draws)
    r4 = [x for x in a.alerts if x.rule_id == "R4"]
    assert r4 and r4[0].tier == "FAILURE" and r4[0].findings[0].gene == "BRAF"
    assert r4[0].therapy_options


def test_optimal_patient_lists_no_b2_warning_and_json_is_rounded(tmp_path, settings, kb):
    draws = {
        -2: ["ALK,fusion,,0.0312345,156,5000,EML4", f"TP53,snv,R273H,{_reads(0.0212345)},"],
        42: [],
        120: [],
    }
    a = _run(tmp_path, settings, kb, draws)
    assert a.status == "OPTIMAL"
    assert not [x for x in a.alerts if x.tier == "WARNING"]
    assert [x.rule_id for x in a.baseline_context] == ["B2"]
    payload = a.contract_json()
    assert payload["headline"].startswith("OPTIMAL")
    assert payload["levels"][0]["level"] == 0.0312  # 3 significant digits
    # every E/P finding names the marker behind the level
    e1 = next(x for x in a.alerts if x.rule_id == "E1")
    assert e1.findings[0].gene == "ALK" and "EML4-ALK" in (e1.findings[0].alteration or "")
