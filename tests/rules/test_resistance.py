"""R1-R4: emerging resistance, including in baseline-negative patients.

These run with ``kb=None`` (the engine's documented no-knowledge-base mode: alerts say
that therapy options are unavailable and are labelled unverified); the knowledge-base
therapy options are tested in test_with_knowledge_base.py once the real KB is present.
"""

from __future__ import annotations

from rules_timeline import START, Timeline, cnv, fusion, snv
from test_scenarios import alert, ids, run


def negative_baseline() -> Timeline:
    t = Timeline().therapy("P1", "alectinib", START)
    t.draw("P1", -2)
    t.draw("P1", 35)
    return t


def test_r1_baseline_negative_patient_still_alerts_on_emerging_mutation(settings):
    t = negative_baseline()
    t.draw("P1", 120, snv("ALK", "G1202R", "alk_resistance", 0.012))
    a = run(t, settings)
    r1 = alert(a, "R1")
    assert a.status == "WARNING" and r1.tier == "WARNING" and "B1" in ids(a)
    assert r1.findings[0].vaf == 0.012 and r1.findings[0].lod_vaf == 0.005
    assert r1.unverified_knowledge  # no knowledge base: options unavailable, labelled


def test_r1_boundary_below_lod_is_not_a_detection(settings):
    t = negative_baseline()
    t.draw("P1", 120, snv("ALK", "G1202R", "alk_resistance", 0.004))
    a = run(t, settings)
    assert "R1" not in ids(a) and a.status == "NOT_EVALUABLE"


def test_r1_confirmed_is_failure(settings):
    t = negative_baseline()
    t.draw("P1", 120, snv("ALK", "G1202R", "alk_resistance", 0.012))
    t.draw("P1", 140, snv("ALK", "G1202R", "alk_resistance", 0.011))
    a = run(t, settings)
    assert alert(a, "R1").tier == "FAILURE" and a.status == "FAILURE"


def test_r1_unconfirmed_blip_cleared_by_informative_negative(settings):
    t = negative_baseline()
    t.draw("P1", 120, snv("ALK", "G1202R", "alk_resistance", 0.012))
    t.draw("P1", 125, lod=0.02)  # LoD above the blip: proves nothing
    assert "R1" in ids(run(t, settings))
    t.draw("P1", 150, lod=0.005)
    assert "R1" not in ids(run(t, settings))


def test_r1_rising_vaf_escalates_only_when_significant(settings):
    t = negative_baseline()
    t.draw("P1", 120, snv("ALK", "L1196M", "alk_resistance", 0.01, alt_reads=20, depth=2000))
    t.draw("P1", 126, snv("ALK", "L1196M", "alk_resistance", 0.05, alt_reads=100, depth=2000))
    assert alert(run(t, settings), "R1").tier == "FAILURE"  # 6 days: not a confirmation
    t2 = negative_baseline()
    t2.draw("P1", 120, snv("ALK", "L1196M", "alk_resistance", 0.01, alt_reads=20, depth=2000))
    t2.draw("P1", 126, snv("ALK", "L1196M", "alk_resistance", 0.011, alt_reads=22, depth=2000))
    assert alert(run(t2, settings), "R1").tier == "WARNING"


def test_r1_boundary_mutation_present_at_baseline_is_not_new(settings):
    t = Timeline().therapy("P1", "lorlatinib", START)
    t.draw("P1", -2, fusion(0.03), snv("ALK", "G1202R", "alk_resistance", 0.02))
    t.draw("P1", 42, snv("ALK", "G1202R", "alk_resistance", 0.01))
    assert "R1" not in ids(run(t, settings))


def test_r2_two_alk_mutations_is_failure_with_compound_caveat(settings):
    t = Timeline().therapy("P1", "lorlatinib", START)
    t.draw("P1", -2, fusion(0.03))
    t.draw("P1", 42)
    t.draw("P1", 120, fusion(0.02), snv("ALK", "G1202R", "alk_resistance", 0.01),
           snv("ALK", "L1196M", "alk_resistance", 0.008))
    a = run(t, settings)
    r2 = alert(a, "R2")
    assert r2.tier == "FAILURE" and a.status == "FAILURE"
    text = " ".join(r2.suggested_actions)
    assert "compound vs polyclonal" in text and "lorlatinib" in text


def test_r2_boundary_single_mutation(settings):
    t = Timeline().therapy("P1", "lorlatinib", START)
    t.draw("P1", -2, fusion(0.03))
    t.draw("P1", 120, snv("ALK", "G1202R", "alk_resistance", 0.01))
    assert "R2" not in ids(run(t, settings))


def test_r3_met_plasma_copy_number_tiers(settings):
    def with_cn(cn: float) -> str | None:
        t = negative_baseline()
        t.draw("P1", 120, cnv("MET", cn), assay="guardant360")
        found = [x for x in run(t, settings).alerts if x.rule_id == "R3"]
        return found[0].tier if found else None

    assert with_cn(2.7) == "FAILURE"
    assert with_cn(2.69) == "WARNING"
    assert with_cn(2.1) == "WARNING"
    assert with_cn(2.09) is None


def test_r3_fold_change_assay_uses_its_own_cutoffs(settings):
    t = negative_baseline()
    t.draw("P1", 120, cnv("MET", 2.1), assay="tso500_ctdna")
    assert alert(run(t, settings), "R3").tier == "FAILURE"
    t2 = negative_baseline()
    t2.draw("P1", 120, cnv("MET", 1.2), assay="tso500_ctdna")
    assert "R3" not in ids(run(t2, settings))


def test_r4_mapk_hotspot_warning_then_confirmed_failure(settings):
    t = negative_baseline()
    t.draw("P1", 120, snv("KRAS", "G12C", "bypass", 0.01))
    assert alert(run(t, settings), "R4").tier == "WARNING"
    t.draw("P1", 140, snv("KRAS", "G12C", "bypass", 0.01))
    assert alert(run(t, settings), "R4").tier == "FAILURE"


def test_r4_boundary_non_hotspot_kras(settings):
    t = negative_baseline()
    t.draw("P1", 120, snv("KRAS", "A146T", "bypass", 0.01))
    assert "R4" not in ids(run(t, settings))
