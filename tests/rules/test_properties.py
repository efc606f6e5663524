"""Properties: later draws never change an earlier assessment; row order changes nothing."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rules_timeline import START, Timeline, fusion, snv

from pipeline.rules import evaluate_cohort

_level = st.one_of(st.none(), st.floats(0.006, 0.2))
_draw = st.tuples(st.integers(1, 200), _level, st.booleans())


def _timeline(draws: list[tuple[int, float | None, bool]]) -> Timeline:
    t = Timeline().therapy("P1", "alectinib", START)
    t.therapy("P2", "brigatinib", START)
    t.draw("P1", -1, fusion(0.05))
    t.draw("P2", -1)
    seen = set()
    for day, level, mutation in draws:
        if day in seen:
            continue
        seen.add(day)
        calls = [fusion(level)] if level is not None else []
        if mutation:
            calls.append(snv("ALK", "G1202R", "alk_resistance", 0.01))
        t.draw("P1", day, *calls)
        t.draw("P2", day, *calls)
    return t


def _dump(assessments):
    return [a.model_dump(mode="json") for a in assessments]


def _same_but_for_the_later_draw(before, after, day: int) -> None:
    """Equal assessments, except when to look again: P1's later draw is a cadence date
    (``reevaluate_on`` no later than that draw; #11 item 2)."""
    later = (START + timedelta(days=day)).isoformat()
    got = after[0]["reevaluate_on"]
    assert got is not None and got <= later, (got, later)
    for item in before + after:
        item.pop("reevaluate_on")
    assert before == after


@hsettings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_draw, min_size=1, max_size=6), st.integers(1, 200),
       st.integers(1, 120), _level)
def test_draw_after_as_of_changes_nothing(rules_settings, draws, cut, extra_gap, extra):
    t = _timeline(draws)
    as_of = START + timedelta(days=cut)
    before = _dump(evaluate_cohort(*t.frames(), rules_settings, None, as_of=as_of))
    t.draw("P1", cut + extra_gap, *([fusion(extra)] if extra is not None else []))
    after = _dump(evaluate_cohort(*t.frames(), rules_settings, None, as_of=as_of))
    _same_but_for_the_later_draw(before, after, cut + extra_gap)


@hsettings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_draw, min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_row_order_changes_nothing(rules_settings, draws, rnd):
    t = _timeline(draws)
    obs, samples, therapies = t.frames()
    expected = _dump(evaluate_cohort(obs, samples, therapies, rules_settings, None))

    def shuffle(frame):
        order = list(range(len(frame)))
        rnd.shuffle(order)
        return frame.iloc[order].reset_index(drop=True)

    got = _dump(evaluate_cohort(shuffle(obs), shuffle(samples), shuffle(therapies),
                                rules_settings, None))
    assert got == expected


# ---------------------------------------------------------------- #9 item 1 properties

_RANK = {"OPTIMAL": 0, "NOT_EVALUABLE": 0, "WARNING": 1, "FAILURE": 2}
_clone_vaf = st.one_of(st.none(), st.floats(0.001, 0.3))
_clone_draw = st.tuples(st.integers(1, 700), _level, _clone_vaf)


def _clone_timeline(draws, baseline: float | None, with_clone: bool) -> Timeline:
    t = Timeline().therapy("P1", "alectinib", START)
    t.draw("P1", -1, *([fusion(baseline)] if baseline is not None else []))
    seen = set()
    for day, level, clone in draws:
        if day in seen:
            continue
        seen.add(day)
        calls = [fusion(level)] if level is not None else []
        if with_clone and clone is not None:
            calls.append(snv("SMAD4", "R361H", "other", clone))
        t.draw("P1", day, *calls)
    return t


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_clone_draw, min_size=1, max_size=6), _level)
def test_an_emerging_clone_only_raises_the_tier(rules_settings, draws, baseline):
    (before,) = evaluate_cohort(*_clone_timeline(draws, baseline, False).frames(),
                                rules_settings, None)
    (after,) = evaluate_cohort(*_clone_timeline(draws, baseline, True).frames(),
                               rules_settings, None)
    assert _RANK[after.status] >= _RANK[before.status], (before.status, after.status)
    # the clone never changes the baseline markers' level the response rules read
    assert [(lv.sample_id, lv.level) for lv in after.levels] == [
        (lv.sample_id, lv.level) for lv in before.levels]


@hsettings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_clone_draw, min_size=1, max_size=6), _level, st.integers(1, 700),
       st.integers(1, 300), _clone_vaf)
def test_a_later_draw_with_a_clone_never_changes_an_earlier_assessment(
        rules_settings, draws, baseline, cut, gap, clone):
    t = _clone_timeline(draws, baseline, True)
    as_of = START + timedelta(days=cut)
    before = _dump(evaluate_cohort(*t.frames(), rules_settings, None, as_of=as_of))
    t.draw("P1", cut + gap, fusion(0.05), *([snv("SMAD4", "R361H", "other", clone)]
                                           if clone is not None else []))
    after = _dump(evaluate_cohort(*t.frames(), rules_settings, None, as_of=as_of))
    _same_but_for_the_later_draw(before, after, cut + gap)
