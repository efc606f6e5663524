"""Therapy options in alerts follow the therapy history (issue #13 item 2), end to end."""

from __future__ import annotations

from datetime import timedelta

from rules_timeline import START, Timeline, fusion, snv
from test_scenarios import alert, run

from pipeline.kinetics import prepare_therapies
from pipeline.knowledge import load_knowledge_base


def test_prior_drugs_column_lists_earlier_lines():
    t = Timeline().therapy("P1", "crizotinib", START - timedelta(days=400))
    t.therapy("P1", "alectinib", START)
    lines = prepare_therapies(t.frames()[2], None)
    assert lines["prior_drugs"].tolist() == ["", "crizotinib"]


def test_r1_options_use_the_therapy_history(settings):
    kb = load_knowledge_base()

    def r1(timeline):
        timeline.draw("P1", -2, fusion(0.03))
        timeline.draw("P1", 42)
        timeline.draw("P1", 200, fusion(0.01), snv("ALK", "C1156Y", "alk_resistance", 0.011))
        return {o.name for o in alert(run(timeline, settings, kb=kb), "R1").therapy_options
                if o.kind == "approved"}

    # C1156Y on brigatinib after crizotinib: alectinib/ceritinib are on label (after
    # crizotinib), lorlatinib after a second-generation TKI
    with_history = r1(Timeline().therapy("P1", "crizotinib", START - timedelta(days=400))
                      .therapy("P1", "brigatinib", START))
    assert with_history == {"alectinib", "ceritinib", "lorlatinib"}
    # the same drug without crizotinib in the history: alectinib is outside its indication
    without = r1(Timeline().therapy("P1", "brigatinib", START))
    assert without == {"lorlatinib"}
