"""Resistance alerts carry therapy options from the real knowledge base (pipeline.knowledge)."""

from __future__ import annotations

import pytest
from rules_timeline import START, Timeline, cnv, fusion, snv
from test_scenarios import alert, run

from pipeline.knowledge import load_knowledge_base


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


def test_r1_g1202r_on_alectinib_gets_kb_options_labelled_unverified(settings, kb):
    t = Timeline().therapy("P1", "alectinib", START)
    t.draw("P1", -2, fusion(0.03))
    t.draw("P1", 42)
    t.draw("P1", 200, fusion(0.01), snv("ALK", "G1202R", "alk_resistance", 0.011))
    a = run(t, settings, kb=kb)
    r1 = alert(a, "R1")
    assert a.kb_version == kb.version
    expected = kb.therapy_options([("ALK", "G1202R")], "alectinib")
    assert [o.name for o in r1.therapy_options] == [o.name for o in expected.options]
    assert "lorlatinib" in {o.name for o in r1.therapy_options}
    assert r1.unverified_knowledge == (expected.unverified
                                       or any(not o.verified for o in expected.options))
    assert set(expected.citations) <= set(r1.evidence)


def test_r3_met_amplification_options_and_failure_wording(settings, kb):
    t = Timeline().therapy("P1", "lorlatinib", START)
    t.draw("P1", -2)
    t.draw("P1", 150, cnv("MET", 3.4), assay="guardant360")
    a = run(t, settings, kb=kb)
    r3 = alert(a, "R3")
    assert r3.tier == "FAILURE" and a.status == "FAILURE"
    assert r3.therapy_options, "the knowledge base lists ALK+MET strategies"
    assert r3.suggested_actions[0].startswith("Early-switch review")
    assert not any(s.lower().startswith("switch") for s in r3.suggested_actions)
