"""Trend chart: plotted points (fractions), non-detects at the LoD, determinism."""

from __future__ import annotations

from datetime import date

import matplotlib.dates as mdates
import pandas as pd
import pytest
import report_scenarios

from pipeline.errors import InputError
from pipeline.report import charts
from pipeline.report.charts import (
    chart_series,
    format_percent,
    trend_chart_png,
    trend_chart_svg,
)


def _lod_of(scenario: report_scenarios.Scenario) -> dict[str, float]:
    return dict(zip(scenario.samples["sample_id"], scenario.samples["lod_vaf"], strict=True))


def test_non_detects_sit_at_the_draws_lod_never_zero(progression):
    data = chart_series(progression.observations, progression.samples, progression.therapies,
                        progression.assessment)
    lod = _lod_of(progression)
    non_detects = [p for s in data.series for p in s.points if not p.detected]
    assert len(non_detects) >= 10
    for point in non_detects:
        assert point.value == lod[point.sample_id] > 0
        assert point.lod_vaf == lod[point.sample_id]
        assert point.source == "lod"
    # every detect keeps its measured VAF (fraction, not percent)
    g1202r = next(s for s in data.markers if s.alteration == "G1202R")
    assert [(p.sample_id, p.value, p.detected) for p in g1202r.points[-2:]] == [
        ("S5", 0.006, True), ("S6", 0.011, True),
    ]


def test_every_draw_appears_in_every_series_even_without_calls(progression):
    data = chart_series(progression.observations, progression.samples, progression.therapies,
                        progression.assessment)
    draw_ids = list(progression.samples["sample_id"])
    for series in data.series:
        assert [p.sample_id for p in series.points] == draw_ids
    s4 = [p for s in data.series for p in s.points if p.sample_id == "S4"]
    assert s4 and all(not p.detected and p.value == 0.008 for p in s4)


def test_tracked_markers_exclude_chip_and_filtered_calls_are_non_detects(progression):
    data = chart_series(progression.observations, progression.samples, progression.therapies,
                        progression.assessment)
    labels = {s.label for s in data.markers}
    assert labels == {"ALK EML4-ALK fusion", "ALK G1202R", "TP53 R273H"}
    # S3 holds only the DNMT3A CHIP call: the ctDNA level is a non-detect at the LoD
    level = {p.sample_id: p for p in data.level.points}
    assert not level["S3"].detected and level["S3"].value == 0.004
    # TP53 in S6 is a weak_evidence (filtered) call: below LoD, drawn at the LoD
    tp53 = {p.sample_id: p for p in next(s for s in data.markers if s.gene == "TP53").points}
    assert not tp53["S6"].detected and tp53["S6"].value == 0.005
    # baseline truncal markers: what was detected at the baseline draw (not CHIP)
    assert data.truncal_markers == (("ALK", "EML4-ALK fusion"), ("TP53", "R273H"))


def test_ctdna_level_prefers_tumor_fraction_else_max_truncal_vaf(progression, cleared):
    data = chart_series(cleared.observations, cleared.samples, cleared.therapies,
                        cleared.assessment)
    level = {p.sample_id: p for p in data.level.points}
    assert (level["C1"].value, level["C1"].source) == (0.031, "tumor_fraction")
    assert (level["C2"].value, level["C2"].detected) == (0.002, False)
    data = chart_series(progression.observations, progression.samples, progression.therapies,
                        progression.assessment)
    level = {p.sample_id: p for p in data.level.points}
    # max of fusion 2.1% and TP53 1.8%; the 0.8% CHIP call never counts
    assert (level["S1"].value, level["S1"].source) == (0.021, "marker_vaf")
    # G1202R (1.1%) is not truncal: the level at S6 is the fusion's 1.5%
    assert level["S6"].value == 0.015


def test_confirmation_draws_come_from_confirmed_alerts_only(progression):
    assessment = progression.assessment
    data = chart_series(progression.observations, progression.samples, progression.therapies,
                        assessment)
    assert [sid for _, sid in data.confirmation_draws] == ["S4", "S5", "S6"]
    unconfirmed = assessment.model_copy(update={
        "alerts": [a.model_copy(update={"confirmed": False}) for a in assessment.alerts]
    })
    data = chart_series(progression.observations, progression.samples, progression.therapies,
                        unconfirmed)
    assert data.confirmation_draws == ()


def test_therapy_bands_are_ordered_and_open_ended(cleared):
    bands = chart_series(cleared.observations, cleared.samples, cleared.therapies).therapy_bands
    assert [(b.line, b.drug, b.end) for b in bands] == [
        (1, "alectinib", date(2025, 4, 30)), (2, "lorlatinib", None),
    ]


def test_drawn_figure_puts_below_lod_triangles_at_the_lod_on_a_log_axis(progression):
    data = chart_series(progression.observations, progression.samples, progression.therapies,
                        progression.assessment)
    fig = charts._build_figure(data, progression.assessment.as_of)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert "%" in ax.get_ylabel()
    lod_by_day = {
        mdates.date2num(pd.Timestamp(d).date()): v
        for d, v in zip(progression.samples["collection_date"], progression.samples["lod_vaf"],
                        strict=True)
    }
    triangles = [line for line in ax.get_lines() if line.get_marker() == "v"]
    assert len(triangles) == 4  # three markers + the ctDNA level
    n_points = 0
    for line in triangles:
        assert line.get_markerfacecolor() == "none"  # hollow
        for x, y in zip(line.get_xdata(), line.get_ydata(), strict=True):
            nearest = min(lod_by_day, key=lambda day: abs(day - x))
            assert abs(nearest - x) < 2  # sideways dodge only, well under two days
            assert y == pytest.approx(lod_by_day[nearest] * 100)  # percent on the axis
            assert y > 0
            n_points += 1
    assert n_points == sum(not p.detected for s in data.series for p in s.points)


def test_svg_is_inline_deterministic_and_escaped(progression):
    args = (progression.observations, progression.samples, progression.therapies,
            progression.assessment)
    first = trend_chart_svg(*args)
    assert first == trend_chart_svg(*args)
    assert first.startswith("<svg") and first.rstrip().endswith("</svg>")
    assert "<?xml" not in first and "<!DOCTYPE" not in first
    assert "<dc:date>" not in first and "Matplotlib" not in first
    assert "below LoD" in first and "L1: alectinib" in first
    assert "VAF / ctDNA level (%, log scale)" in first

    evil = report_scenarios.progression(gene_override="<script>alert(1)</script>")
    svg = trend_chart_svg(evil.observations, evil.samples, evil.therapies, evil.assessment)
    assert "<script" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt; G1202R" in svg


def test_png_is_the_same_figure_and_deterministic(progression):
    args = (progression.observations, progression.samples, progression.therapies,
            progression.assessment)
    png = trend_chart_png(*args)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert png == trend_chart_png(*args)
    assert b"Software" not in png[:200]


def test_patient_without_draws_still_renders(progression):
    empty_obs = progression.observations.iloc[0:0]
    empty_samples = progression.samples.iloc[0:0]
    data = chart_series(empty_obs, empty_samples, progression.therapies)
    assert data.series == () and data.lod_steps == ()
    svg = trend_chart_svg(empty_obs, empty_samples, progression.therapies.iloc[0:0])
    assert "No draws stored for this patient" in svg


def test_frames_of_several_patients_are_refused(progression, cleared):
    both = pd.concat([progression.samples, cleared.samples], ignore_index=True)
    with pytest.raises(InputError, match="2 patients"):
        chart_series(progression.observations, both, progression.therapies)


def test_missing_contract_column_names_the_field(progression):
    with pytest.raises(InputError) as err:
        chart_series(progression.observations, progression.samples.drop(columns="lod_vaf"),
                     progression.therapies)
    assert err.value.field == "lod_vaf"
    assert "samples frame" in str(err.value)


@pytest.mark.parametrize(
    ("fraction", "text"),
    [(0.0123, "1.23%"), (0.005, "0.50%"), (0.00012, "0.012%"), (0.25, "25.0%"),
     (1.0, "100.0%"), (0.0, "0%"), (None, "n/a"), (float("nan"), "n/a")],
)
def test_format_percent(fraction, text):
    assert format_percent(fraction) == text
