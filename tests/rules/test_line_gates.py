"""Line gates never change a result: a gated rule alerts on no line its gate excludes.

The engine skips a rule on a line where no observation meets the rule's gate (#11 item 2:
most lines carry no resistance, bypass, RB1 or CHIP call, and building those rules' frames
for every patient dominated the cohort evaluation). The claim is that each gate is implied
by every alert its rule can raise, so the engine with gates must give the very same
assessments as the engine without them. These tests check that on the golden cohort and on
random timelines mixing every kind of call a gated rule reads (new or pre-existing at
baseline, detected or not, CHIP genes), with and without the knowledge base.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from golden_cohort import AS_OF, golden_timeline
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rules_timeline import START, Timeline, cnv, fusion, snv

from pipeline.knowledge import load_knowledge_base
from pipeline.rules import engine, evaluate_cohort
from pipeline.rules.catalogue import LINE_GATES
from pipeline.rules.registry import RULES

#: Calls that reach every gated rule: R0-R2 (ALK resistance), R3 (MET), R4 (MAPK), R5 (other
#: bypass), R6 (RB1 with TP53), P4 (emerging clones), Q2 (CHIP genes).
_CALLS: list[Any] = [
    lambda v: snv("ALK", "G1202R", "alk_resistance", v),
    lambda v: snv("ALK", "I1171N", "alk_resistance", v),
    lambda v: snv("ALK", "L1196M", "alk_resistance", v),
    lambda v: snv("KRAS", "p.G12C", "bypass", v),
    lambda v: snv("MAP2K1", "K57N", "bypass", v),
    lambda v: snv("BRAF", "V600E", "other", v),
    lambda v: cnv("MET", 2.0 + 40 * v),
    lambda v: snv("PIK3CA", "E545K", "bypass", v),
    lambda v: snv("RB1", "R552*", "other", v),
    lambda v: snv("TP53", "R273H", "other", v),
    lambda v: snv("DNMT3A", "R882H", "other", v),
    lambda v: snv("TET2", "Q1034*", "other", v),
]

_draw = st.tuples(
    st.integers(-20, 400),  # day on the line (negative: a baseline candidate)
    st.one_of(st.none(), st.floats(0.004, 0.2)),  # fusion VAF (None: not detected)
    st.lists(st.tuples(st.integers(0, len(_CALLS) - 1), st.floats(0.003, 0.1)),
             max_size=4),
)
_patient = st.tuples(st.sampled_from(["alectinib", "brigatinib", "lorlatinib"]),
                     st.lists(_draw, min_size=1, max_size=6))


def _ungated() -> tuple[Any, ...]:
    return tuple(dataclasses.replace(rule, gate=None) for rule in RULES)


def _both(monkeypatch: pytest.MonkeyPatch, frames: Any, settings: Any, kb: Any,
          as_of: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    gated = [a.model_dump(mode="json") for a in
             evaluate_cohort(*frames, settings, kb, as_of=as_of)]
    with monkeypatch.context() as patch:
        patch.setattr(engine, "RULES", _ungated())
        plain = [a.model_dump(mode="json") for a in
                 evaluate_cohort(*frames, settings, kb, as_of=as_of)]
    return gated, plain


def test_every_gate_is_registered_and_used() -> None:
    used = {rule.gate for rule in RULES if rule.gate is not None}
    assert used and used <= set(LINE_GATES)


@pytest.mark.parametrize("with_kb", [False, True])
def test_golden_cohort_is_the_same_with_and_without_gates(
        monkeypatch: pytest.MonkeyPatch, settings: Any, with_kb: bool) -> None:
    kb = load_knowledge_base() if with_kb else None
    gated, plain = _both(monkeypatch, golden_timeline().frames(), settings, kb, AS_OF)
    assert gated == plain
    assert any(alert["rule_id"].startswith("R") for a in gated for alert in a["alerts"])


@pytest.fixture(scope="module")
def kb() -> Any:
    return load_knowledge_base()


@hsettings(max_examples=30, deadline=None,
           suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(_patient, min_size=1, max_size=4), st.integers(0, 420), st.booleans())
def test_random_timelines_are_the_same_with_and_without_gates(
        monkeypatch: pytest.MonkeyPatch, settings: Any, kb: Any,
        patients: list[Any], cut: int, with_kb: bool) -> None:
    t = Timeline()
    for n, (drug, draws) in enumerate(patients):
        patient = f"Q{n:02d}"
        t.therapy(patient, drug, START)
        seen: set[int] = set()
        for day, level, calls in draws:
            if day in seen:
                continue
            seen.add(day)
            made = [fusion(level)] if level is not None else []
            made += [_CALLS[i](vaf) for i, vaf in calls]
            t.draw(patient, day, *made)
    gated, plain = _both(monkeypatch, t.frames(), settings, kb if with_kb else None,
                         START + timedelta(days=cut))
    assert gated == plain
