"""Kinetics: levels, left-censoring, baseline, nadir, fold bounds, Fisher test, growth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rules_timeline import START, Timeline, fusion, snv
from scipy.stats import fisher_exact

from pipeline.kinetics import (
    FOLD_LOWER,
    FOLD_UPPER,
    FOLD_VALUE,
    compute_kinetics,
    fisher_pvalues,
)


def _rows(kin, patient="P1"):
    return kin.draws[kin.draws["patient_id"] == patient].set_index("sample_id")


def test_non_detect_is_left_censored_never_zero(settings):
    t = Timeline().therapy("P1", "alectinib", START)
    t.draw("P1", -2, fusion(0.04))
    empty = t.draw("P1", 30)  # a draw with no observations at all
    kin = compute_kinetics(*t.frames(), settings.rules)
    row = _rows(kin).loc[empty]
    assert math.isnan(row["ctdna_level"])
    assert bool(row["censored"]) and row["upper_bound"] == pytest.approx(0.005)
    assert row["fold_from_baseline_kind"] == FOLD_UPPER
    assert row["fold_from_baseline"] == pytest.approx(0.005 / 0.04)
    assert (kin.draws["ctdna_level"].dropna() > 0).all()


def test_level_is_max_vaf_of_truncal_markers_excluding_chip(settings):
    t = Timeline().therapy("P1", "alectinib", START)
    t.draw("P1", -1, fusion(0.02), snv("TP53", "R273H", "transformation", 0.03),
           snv("DNMT3A", "R882H", "chip", 0.30))
    later = t.draw("P1", 28, fusion(0.01), snv("DNMT3A", "R882H", "chip", 0.35),
                   snv("KRAS", "G12C", "bypass", 0.2))  # not at baseline: not tracked
    kin = compute_kinetics(*t.frames(), settings.rules)
    rows = _rows(kin)
    assert rows["ctdna_level"].iloc[0] == pytest.approx(0.03)
    assert rows.loc[later, "ctdna_level"] == pytest.approx(0.01)
    assert set(kin.markers["marker_key"]) == {"ALK:EML4-ALK fusion", "TP53:R273H"}


def test_tumor_fraction_preferred_and_zero_tf_is_censored(settings):
    t = Timeline().therapy("P1", "alectinib", START)
    t.draw("P1", -1, fusion(0.02), tf=0.08)
    zero = t.draw("P1", 28, fusion(0.01), tf=0.0)
    kin = compute_kinetics(*t.frames(), settings.rules)
    rows = _rows(kin)
    assert rows["ctdna_level"].iloc[0] == pytest.approx(0.08)
    assert rows.loc[zero, "censored"] and rows.loc[zero, "level_source"] == "tumor_fraction"


def test_baseline_window_and_start_day(settings):
    t = Timeline().therapy("P1", "alectinib", START)
    t.draw("P1", -20, fusion(0.05))
    t.draw("P1", -14, fusion(0.04))  # oldest draw still inside the 14-day window
    kin = compute_kinetics(*t.frames(), settings.rules)
    assert kin.lines["baseline_sample_id"].iloc[0] == "P1-d-014"
    t.draw("P1", 0, fusion(0.03))  # a draw on the start day counts as baseline
    kin = compute_kinetics(*t.frames(), settings.rules)
    assert kin.lines["baseline_sample_id"].iloc[0] == "P1-d+000"
    t2 = Timeline().therapy("P2", "alectinib", START)
    t2.draw("P2", -15, fusion(0.05))
    kin = compute_kinetics(*t2.frames(), settings.rules)
    assert kin.lines["baseline_sample_id"].isna().all()


def test_nadir_is_lod_of_clearing_draw_and_rise_is_a_lower_bound(settings):
    t = Timeline().therapy("P1", "alectinib", START)
    t.draw("P1", -1, fusion(0.05))
    t.draw("P1", 28, fusion(0.02))
    clear = t.draw("P1", 56, lod=0.004)
    back = t.draw("P1", 84, fusion(0.04))
    kin = compute_kinetics(*t.frames(), settings.rules)
    line = kin.lines.iloc[0]
    assert line["nadir"] == pytest.approx(0.004) and bool(line["nadir_censored"])
    assert line["nadir_sample_id"] == clear
    row = _rows(kin).loc[back]
    assert row["fold_from_nadir_kind"] == FOLD_LOWER
    assert row["fold_from_nadir"] == pytest.approx(10.0)


def test_non_informative_negative_cannot_set_nadir(settings):
    t = Timeline().therapy("P1", "alectinib", START)
    t.draw("P1", -1, fusion(0.05))
    t.draw("P1", 28, fusion(0.006))
    blind = t.draw("P1", 42, lod=0.01)  # LoD above the last detected level (Q1)
    kin = compute_kinetics(*t.frames(), settings.rules)
    rows = _rows(kin)
    assert not rows.loc[blind, "informative"]
    assert kin.lines["nadir"].iloc[0] == pytest.approx(0.006)
    assert not bool(kin.lines["nadir_censored"].iloc[0])


def test_fisher_p_uses_pooled_read_counts(settings):
    t = Timeline().therapy("P1", "alectinib", START)
    t.draw("P1", -1, fusion(0.05, alt_reads=100, depth=2000))
    second = t.draw("P1", 28, fusion(0.01, alt_reads=20, depth=2000))
    kin = compute_kinetics(*t.frames(), settings.rules)
    row = _rows(kin).loc[second]
    expected = fisher_exact([[100, 1900], [20, 1980]])[1]
    assert row["fisher_p"] == pytest.approx(expected)
    assert row["alt_reads"] == 20 and row["depth"] == 2000


def test_fisher_pvalues_vector_handles_unknown_counts():
    p = fisher_pvalues(np.array([5, np.nan, 3]), np.array([100, 100, 2]),
                       np.array([50, 5, 1]), np.array([100, 100, 100]))
    assert p[0] < 1e-6 and math.isnan(p[1]) and math.isnan(p[2])  # alt > depth is invalid


def test_doubling_time_from_log_linear_fit(settings):
    t = Timeline().therapy("P1", "alectinib", START)
    t.draw("P1", -1, fusion(0.05))
    for day, level in ((28, 0.01), (56, 0.02), (84, 0.04)):
        t.draw("P1", day, fusion(level))
    kin = compute_kinetics(*t.frames(), settings.rules)
    line = kin.lines.iloc[0]
    assert line["growth_fit_points"] == 3
    assert line["doubling_time_days"] == pytest.approx(28.0, rel=0.02)
    assert _rows(kin)["fold_from_baseline_kind"].iloc[1] == FOLD_VALUE
