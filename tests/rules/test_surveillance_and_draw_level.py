"""Surveillance mode (curative/adjuvant lines) and draw-level values (#9 item 7, rule side).

The frames carry the columns agreed with clinical-ingest (BRIEFING "Interfaces agreed"):
samples ``level_value/level_unit/level_lod/level_call`` and therapies ``intent``; the
engine treats them as optional, so these frames are exactly what the store returns once the
readers fill them.
"""

from __future__ import annotations

from rules_timeline import START, Timeline, fusion, snv

from pipeline.rules import evaluate_cohort


def _frames(t: Timeline, intent: str | None = None, levels: dict | None = None):
    obs, samples, therapies = t.frames()
    if intent is not None:
        therapies["intent"] = intent
    if levels is not None:
        for column in ("level_value", "level_unit", "level_lod", "level_call"):
            samples[column] = [levels.get(s, {}).get(column) for s in samples["sample_id"]]
        samples["level_value"] = samples["level_value"].astype("float64")
        samples["level_lod"] = samples["level_lod"].astype("float64")
    return obs, samples, therapies


def test_adjuvant_line_negative_reference_is_expected_and_stays_optimal(settings):
    t = Timeline().therapy("P1", "alectinib", START)
    t.draw("P1", -3)
    t.draw("P1", 90)
    t.draw("P1", 180)
    (a,) = evaluate_cohort(*_frames(t, intent="adjuvant"), settings, None)
    assert a.status == "OPTIMAL" and a.therapy.intent == "adjuvant"
    assert not {"B1", "S1"} & {x.rule_id for x in a.alerts}


def test_adjuvant_conversion_to_positive_warns_then_fails_when_confirmed(settings):
    t = Timeline().therapy("P1", "alectinib", START)
    t.draw("P1", -3)
    t.draw("P1", 90)
    t.draw("P1", 270, snv("TP53", "R273H", "transformation", 0.004), lod=0.001)
    (one,) = evaluate_cohort(*_frames(t, intent="adjuvant"), settings, None)
    s1 = [x for x in one.alerts if x.rule_id == "S1"]
    assert one.status == "WARNING" and s1 and s1[0].tier == "WARNING"
    assert any(f.gene == "TP53" for f in s1[0].findings)
    t.draw("P1", 450, snv("TP53", "R273H", "transformation", 0.006), lod=0.001)
    (two,) = evaluate_cohort(*_frames(t, intent="adjuvant"), settings, None)
    assert two.status == "FAILURE" and "S1" in {x.rule_id for x in two.alerts
                                                if x.tier == "FAILURE"}


def test_draw_level_values_are_the_level_and_conversion_is_caught(settings):
    # A tumour-informed MRD assay: one value per draw (MTM/mL) with its LoD and call.
    t = Timeline().therapy("P1", "alectinib", START)
    ids = [t.draw("P1", d) for d in (-3, 120, 240)]
    levels = {
        ids[0]: {"level_value": 0.0, "level_unit": "mtm_per_ml", "level_lod": 0.3,
                 "level_call": "negative"},
        ids[1]: {"level_value": 0.0, "level_unit": "mtm_per_ml", "level_lod": 0.3,
                 "level_call": "negative"},
        ids[2]: {"level_value": 1.2, "level_unit": "mtm_per_ml", "level_lod": 0.3,
                 "level_call": "positive"},
    }
    (a,) = evaluate_cohort(*_frames(t, intent="curative", levels=levels), settings, None,
                           as_of=START.replace(year=START.year + 1))
    assert a.status == "WARNING" and "S1" in {x.rule_id for x in a.alerts}
    by_id = {lv.sample_id: lv for lv in a.levels}
    assert by_id[ids[2]].unit == "mtm_per_ml" and by_id[ids[2]].level == 1.2
    assert not by_id[ids[1]].detected and by_id[ids[1]].upper_bound == 0.3


def test_palliative_line_uses_draw_level_tumour_fraction_for_response(settings):
    t = Timeline().therapy("P1", "alectinib", START)
    ids = [t.draw("P1", -2, fusion(0.02)), t.draw("P1", 42, fusion(0.001))]
    levels = {ids[0]: {"level_value": 0.05, "level_unit": "tumor_fraction", "level_lod": 0.001,
                       "level_call": "positive"},
              ids[1]: {"level_value": None, "level_unit": "tumor_fraction", "level_lod": 0.001,
                       "level_call": "negative"}}
    (a,) = evaluate_cohort(*_frames(t, levels=levels), settings, None)
    assert a.status == "OPTIMAL" and "E1" in {x.rule_id for x in a.alerts}
    assert a.levels[0].source == "draw_tumor_fraction" and a.levels[0].level == 0.05
