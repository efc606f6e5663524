"""The serial trend chart of one patient (matplotlib, Agg, no network).

What is drawn follows clinical-evidence.md section 3.7 ("serial trend plot on a log scale with
LoD marked") and section 6 ("a non-detect is stored as < lod, never as 0"):

* one series per tracked alteration (gene + alteration): its VAF per draw;
* the draw-level ctDNA level as its own series: the assay-reported tumor fraction when the
  draw has one, else the maximum VAF of the baseline truncal markers (section 6, "Core
  quantities");
* non-detects as hollow downward triangles **at the draw's LoD** ("below LoD"), never at zero;
* the LoD of each draw as a faint step line;
* draws that a *confirmed* alert used (the CML-style "confirmed on draws X and Y");
* therapy lines as shaded bands labelled with the drug.

Units: every value in :class:`ChartPoint` is a **fraction** (0-1), as everywhere inside
ctdna. Only the drawing converts to percent, and the y-axis label says so.

Output is deterministic (fixed rcParams, ``svg.hashsalt``, no date or creator metadata), so
tests and report diffs are stable.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import matplotlib
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib import style as mpl_style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from pipeline.assessment import Assessment
from pipeline.errors import InputError

__all__ = [
    "ChartData",
    "ChartPoint",
    "ChartSeries",
    "TherapyBand",
    "chart_series",
    "format_percent",
    "trend_chart_png",
    "trend_chart_svg",
]

#: Categories never used as truncal markers: CHIP is excluded from the ctDNA level
#: (rule Q2, clinical-evidence.md section 6).
_EXCLUDED_FROM_LEVEL = frozenset({"chip"})

#: Variant types whose abundance is not a VAF (copy number) and so are not on the VAF chart.
_NOT_VAF_TYPES = frozenset({"cnv"})

#: Fixed style: the report must look the same on every machine, whatever matplotlibrc says.
_RC: Any = {
    "svg.hashsalt": "ctdna-report",
    "svg.fonttype": "none",  # text stays text: selectable, searchable, small
    "text.parse_math": False,  # a '$' in a gene or drug name must not start mathtext
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "figure.dpi": 100.0,
    "savefig.dpi": 150.0,
    "path.simplify": False,
    "axes.unicode_minus": False,
}

#: ``metadata`` keys that would embed timestamps or version strings into the output.
_SVG_METADATA: dict[str, Any] = {"Date": None, "Creator": None, "Format": None, "Type": None}
_PNG_METADATA: dict[str, Any] = {"Software": None}

#: Colour-blind friendly palette (Okabe-Ito) for the tracked alterations.
_PALETTE = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#999999",
)
_LEVEL_COLOUR = "#000000"
_LOD_COLOUR = "#7f7f7f"
_BAND_COLOURS = ("#dbe9f6", "#fde8d0", "#dff2e1", "#efe0f0")

_REQUIRED_SAMPLE_COLUMNS = ("sample_id", "patient_id", "collection_date", "lod_vaf")
_REQUIRED_OBSERVATION_COLUMNS = (
    "sample_id", "gene", "alteration", "variant_type", "category", "vaf", "detected",
)
_REQUIRED_THERAPY_COLUMNS = ("drug", "start_date")


@dataclass(frozen=True)
class ChartPoint:
    """One plotted point.

    Attributes
    ----------
    collection_date
        Date of the blood draw.
    sample_id
        The draw's lab accession.
    value
        Fraction 0-1. For a detect: the VAF (or tumor fraction for the ctDNA level). For a
        non-detect: the draw's LoD, i.e. the point is "below this value" (left-censored).
    detected
        False for a non-detect ("below LoD").
    lod_vaf
        The draw's limit of detection, fraction 0-1.
    source
        Where the value comes from: ``"vaf"``, ``"tumor_fraction"``, ``"truncal_vaf"`` or
        ``"lod"`` (non-detect placed at the LoD).
    """

    collection_date: date
    sample_id: str
    value: float
    detected: bool
    lod_vaf: float
    source: str


@dataclass(frozen=True)
class ChartSeries:
    """A line on the chart: one tracked alteration, or the draw-level ctDNA level."""

    kind: Literal["marker", "ctdna_level"]
    label: str
    gene: str | None
    alteration: str | None
    category: str | None
    points: tuple[ChartPoint, ...]


@dataclass(frozen=True)
class TherapyBand:
    """A line of therapy; ``end`` None means ongoing."""

    line: int
    drug: str
    start: date
    end: date | None


@dataclass(frozen=True)
class ChartData:
    """Everything the chart shows, as data (fractions), before any drawing.

    Exposed so that tests and the per-draw table read the same numbers the chart plots.
    """

    series: tuple[ChartSeries, ...]
    lod_steps: tuple[tuple[date, float], ...]
    confirmation_draws: tuple[tuple[date, str], ...]
    therapy_bands: tuple[TherapyBand, ...]
    truncal_markers: tuple[tuple[str, str], ...]

    @property
    def markers(self) -> tuple[ChartSeries, ...]:
        """The per-alteration series (without the ctDNA level)."""
        return tuple(s for s in self.series if s.kind == "marker")

    @property
    def level(self) -> ChartSeries | None:
        """The draw-level ctDNA level series, when there is any draw."""
        for s in self.series:
            if s.kind == "ctdna_level":
                return s
        return None


def format_percent(fraction: float | None) -> str:
    """Format a fraction as a percent string with sensible precision.

    Parameters
    ----------
    fraction
        A value in 0-1 (VAF, LoD, tumor fraction).

    Returns
    -------
    str
        ``"1.23%"``, ``"0.50%"``, ``"0.012%"``; ``"n/a"`` for None/NaN.
    """
    if fraction is None or not np.isfinite(fraction):
        return "n/a"
    pct = float(fraction) * 100.0
    if pct == 0:
        return "0%"
    if pct >= 10:
        return f"{pct:.1f}%"
    if pct >= 1:
        return f"{pct:.2f}%"
    # two significant digits below 1%: sub-percent VAFs are the clinically interesting range
    digits = 1 - int(np.floor(np.log10(pct)))
    return f"{pct:.{digits}f}%"


def _to_date(value: Any) -> date | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        return None
    return stamp.date()


def _require(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    for column in columns:
        if column not in frame.columns:
            raise InputError(f"{name} frame lacks a required column", field=column)


def _single_patient(*frames: pd.DataFrame) -> None:
    ids: set[str] = set()
    for frame in frames:
        if "patient_id" in frame.columns and len(frame):
            ids.update(str(p) for p in frame["patient_id"].dropna().unique())
    if len(ids) > 1:
        raise InputError(
            f"chart frames hold {len(ids)} patients; pass one patient's rows", field="patient_id"
        )


def _draws(samples: pd.DataFrame) -> pd.DataFrame:
    draws = samples.copy()
    draws["collection_date"] = [_to_date(v) for v in draws["collection_date"]]
    if "tumor_fraction" not in draws.columns:
        draws["tumor_fraction"] = np.nan
    draws["lod_vaf"] = pd.to_numeric(draws["lod_vaf"], errors="coerce").astype(float)
    draws["tumor_fraction"] = pd.to_numeric(draws["tumor_fraction"], errors="coerce")
    draws["sample_id"] = draws["sample_id"].astype(str)
    return draws.sort_values(["collection_date", "sample_id"], kind="mergesort").reset_index(
        drop=True
    )


@dataclass(frozen=True)
class _Draw:
    sample_id: str
    collection_date: date
    lod_vaf: float  # fraction; NaN when unknown
    tumor_fraction: float  # fraction; NaN when not reported


def _draw_list(draws: pd.DataFrame) -> list[_Draw]:
    return [
        _Draw(str(sid), day, float(lod), float(tf))
        for sid, day, lod, tf in zip(
            draws["sample_id"], draws["collection_date"], draws["lod_vaf"],
            draws["tumor_fraction"], strict=True,
        )
    ]


def _detected_mask(observations: pd.DataFrame) -> pd.Series:
    return observations["detected"].fillna(False).astype(bool)


def tracked_markers(observations: pd.DataFrame) -> list[tuple[str, str, str]]:
    """Alterations followed over time: (gene, alteration, category), sorted.

    An alteration is tracked when it was detected in at least one draw, is a VAF-bearing call
    (not a CNV) and is not a CHIP gene (rule Q2: CHIP mimics progression, section 6).

    Parameters
    ----------
    observations
        Store observations of one patient.
    """
    if observations.empty:
        return []
    obs = observations[
        _detected_mask(observations)
        & observations["gene"].notna()
        & observations["alteration"].notna()
        & ~observations["variant_type"].isin(_NOT_VAF_TYPES)
        & ~observations["category"].isin(_EXCLUDED_FROM_LEVEL)
    ]
    seen: dict[tuple[str, str], str] = {}
    for gene, alteration, category in obs[["gene", "alteration", "category"]].itertuples(
        index=False
    ):
        seen.setdefault((str(gene), str(alteration)), str(category))
    return sorted((g, a, c) for (g, a), c in seen.items())


def _level_markers(assessment: Assessment | None) -> list[tuple[str, str]]:
    """The tracked markers the rules' ctDNA level came from (``Assessment.levels``)."""
    out: dict[tuple[str, str], None] = {}
    for level in assessment.levels if assessment is not None else []:
        for label in (level.markers or "").split(", "):
            if label:
                gene, _, alteration = label.partition(" ")
                out[(gene, alteration)] = None
    return list(out)


def _confirmation_draws(assessment: Assessment | None) -> set[str]:
    if assessment is None:
        return set()
    used: set[str] = set()
    for alert in assessment.alerts:
        if alert.confirmed:
            used.update(alert.draws_used)
    return used


def chart_series(
    observations: pd.DataFrame,
    samples: pd.DataFrame,
    therapies: pd.DataFrame,
    assessment: Assessment | None = None,
) -> ChartData:
    """Compute the points the trend chart plots (fractions 0-1, one patient).

    Parameters
    ----------
    observations
        ``Store.observations_frame`` rows of one patient.
    samples
        ``Store.samples_frame`` rows of the same patient: every draw, also those without calls.
    therapies
        ``Store.therapies_frame`` rows of the same patient.
    assessment
        The current assessment; supplies the baseline draw and the confirmed alerts' draws.

    Returns
    -------
    ChartData
        Series whose non-detect points sit at the draw's LoD (``detected=False``,
        ``source="lod"``), never at zero.

    Raises
    ------
    InputError
        A frame lacks a contract column, or the frames hold several patients.
    """
    _require(samples, _REQUIRED_SAMPLE_COLUMNS, "samples")
    _require(observations, _REQUIRED_OBSERVATION_COLUMNS, "observations")
    _require(therapies, _REQUIRED_THERAPY_COLUMNS, "therapies")
    _single_patient(samples, observations, therapies)

    draws = _draws(samples)
    obs = observations.copy()
    obs["sample_id"] = obs["sample_id"].astype(str)
    obs["vaf"] = pd.to_numeric(obs["vaf"], errors="coerce").astype(float)
    obs = obs[obs["sample_id"].isin(set(draws["sample_id"]))]

    draw_list = _draw_list(draws)
    markers = tracked_markers(obs)
    detected = obs[_detected_mask(obs) & obs["vaf"].notna()]
    # highest detected VAF of each (draw, marker): duplicates (e.g. a VCF and a re-call of the
    # same allele) must not draw two points for one draw
    best = (
        detected.groupby(["sample_id", "gene", "alteration"], sort=False)["vaf"].max().to_dict()
    )
    detected_any = {
        (str(s), str(g), str(a))
        for s, g, a in obs.loc[_detected_mask(obs), ["sample_id", "gene", "alteration"]]
        .astype(str)
        .itertuples(index=False)
    }

    series: list[ChartSeries] = []
    for gene, alteration, category in markers:
        points: list[ChartPoint] = []
        for draw in draw_list:
            sid = str(draw.sample_id)
            lod = float(draw.lod_vaf)
            vaf = best.get((sid, gene, alteration))
            if vaf is not None:
                points.append(ChartPoint(draw.collection_date, sid, float(vaf), True, lod, "vaf"))
            elif (sid, gene, alteration) in detected_any:
                # detected without a VAF (e.g. a fusion call without read support fields):
                # there is no value to plot, and it is not a non-detect either
                continue
            elif np.isfinite(lod):
                points.append(ChartPoint(draw.collection_date, sid, lod, False, lod, "lod"))
        series.append(
            ChartSeries("marker", f"{gene} {alteration}", gene, alteration, category, tuple(points))
        )

    # #9 item 9: one truth per quantity. The level is the one the rules used
    # (``Assessment.levels``: baseline truncal markers, tumour fraction or a draw-level
    # value, censored at the LoD), never recomputed here. Levels in MTM/mL are not VAF and
    # are left off this VAF axis.
    truncal = _level_markers(assessment)
    level_points: list[ChartPoint] = []
    for level in assessment.levels if assessment is not None else []:
        if level.unit != "fraction":
            continue
        bound = level.upper_bound if level.upper_bound is not None else np.nan
        if level.detected and level.level is not None:
            level_points.append(ChartPoint(level.collection_date, level.sample_id, level.level,
                                           True, bound, level.source))
        elif not level.detected and np.isfinite(bound):
            level_points.append(ChartPoint(level.collection_date, level.sample_id, bound, False,
                                           bound, "lod"))
    if level_points:
        series.append(
            ChartSeries(
                "ctdna_level",
                "ctDNA level used by the rules (tumour fraction or draw-level value, else max "
                "VAF of the baseline markers)",
                None,
                None,
                None,
                tuple(level_points),
            )
        )

    lod_steps = tuple(
        (d.collection_date, float(d.lod_vaf))
        for d in draw_list
        if np.isfinite(d.lod_vaf)
    )
    confirm_ids = _confirmation_draws(assessment)
    confirmation = tuple(
        (d.collection_date, str(d.sample_id))
        for d in draw_list
        if d.sample_id in confirm_ids
    )
    return ChartData(
        series=tuple(series),
        lod_steps=lod_steps,
        confirmation_draws=confirmation,
        therapy_bands=therapy_bands(therapies),
        truncal_markers=tuple(truncal),
    )


def therapy_bands(therapies: pd.DataFrame) -> tuple[TherapyBand, ...]:
    """Therapy lines sorted by start date; ``line`` numbered by order when missing."""
    if therapies.empty:
        return ()
    rows = []
    for i, row in enumerate(therapies.to_dict("records")):
        start = _to_date(row.get("start_date"))
        if start is None:
            raise InputError("therapy line without a start date", record=i + 1, field="start_date")
        line_value = row.get("line")
        line = int(line_value) if line_value is not None and not pd.isna(line_value) else 0
        rows.append((start, line, str(row["drug"]), _to_date(row.get("end_date"))))
    rows.sort(key=lambda r: (r[0], r[1]))
    return tuple(
        TherapyBand(line=line or i + 1, drug=drug, start=start, end=end)
        for i, (start, line, drug, end) in enumerate(rows)
    )


# --------------------------------------------------------------------------- drawing


def _percent_tick(value: float, _pos: int) -> str:
    # the axis is in percent; ticks are powers of ten, written without exponents
    if value <= 0:
        return ""
    if value >= 1:
        return f"{value:g}%"
    digits = -int(np.floor(np.log10(value) + 1e-9))
    return f"{value:.{digits}f}%"


def _build_figure(data: ChartData, as_of: date | None) -> Figure:
    fig = Figure(figsize=(9.0, 5.0), layout="constrained")
    # the Agg canvas explicitly (not pyplot): headless, and no global backend switch for
    # whoever imports this module
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    all_values = [p.value for s in data.series for p in s.points] + [v for _, v in data.lod_steps]
    dates = [p.collection_date for s in data.series for p in s.points]
    dates += [b.start for b in data.therapy_bands]
    dates += [b.end for b in data.therapy_bands if b.end is not None]
    if as_of is not None:
        dates.append(as_of)

    if not dates:
        ax.text(0.5, 0.5, "No draws stored for this patient", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return fig

    x_min = min(dates) - timedelta(days=7)
    x_max = max(dates) + timedelta(days=7)
    ax.set_xlim(mdates.date2num(x_min), mdates.date2num(x_max))
    ax.set_yscale("log")
    positive = [v for v in all_values if v > 0 and np.isfinite(v)]
    low = min(positive) * 100 if positive else 0.01
    high = max(positive) * 100 if positive else 10.0
    y_low = 10 ** np.floor(np.log10(low) - 0.2)
    y_high = 10 ** np.ceil(np.log10(high) + 0.2)
    ax.set_ylim(y_low, y_high)

    handles: list[Any] = []
    for i, band in enumerate(data.therapy_bands):
        end = band.end or x_max
        colour = _BAND_COLOURS[i % len(_BAND_COLOURS)]
        ax.axvspan(mdates.date2num(band.start), mdates.date2num(end), color=colour, alpha=0.7,
                   lw=0, zorder=0)
        ax.text(mdates.date2num(band.start), 0.985, f" L{band.line}: {band.drug}",
                transform=ax.get_xaxis_transform(), ha="left", va="top", fontsize=8,
                color="#333333", clip_on=True, zorder=5)
    if data.therapy_bands:
        handles.append(Patch(facecolor=_BAND_COLOURS[0], label="therapy line (drug labelled)"))

    if data.lod_steps:
        lod_x = [mdates.date2num(d) for d, _ in data.lod_steps] + [mdates.date2num(x_max)]
        lod_y = [v * 100 for _, v in data.lod_steps] + [data.lod_steps[-1][1] * 100]
        ax.step(lod_x, lod_y, where="post", color=_LOD_COLOUR, lw=1.0, alpha=0.6,
                ls="--", zorder=1)
        handles.append(Line2D([], [], color=_LOD_COLOUR, lw=1.0, ls="--", alpha=0.6,
                              label="LoD of each draw"))

    order = {s.label: i for i, s in enumerate(data.series)}
    dodge = 0.004 * (mdates.date2num(x_max) - mdates.date2num(x_min))
    colour_of: dict[str, str] = {}
    for i, s in enumerate(data.markers):
        colour_of[s.label] = _PALETTE[i % len(_PALETTE)]
    for s in data.series:
        is_level = s.kind == "ctdna_level"
        colour = _LEVEL_COLOUR if is_level else colour_of[s.label]
        xs = np.array([mdates.date2num(p.collection_date) for p in s.points], dtype=float)
        # the connecting line runs through detects only (a gap at a non-detect): a line into
        # the LoD would suggest a measured value there
        ys = np.array([p.value * 100 if p.detected else np.nan for p in s.points], dtype=float)
        ax.plot(xs, ys, color=colour, lw=2.4 if is_level else 1.4, marker="o",
                ms=6 if is_level else 4.5, zorder=4 if is_level else 3)
        nd = [p for p in s.points if not p.detected]
        if nd:
            # several markers below the same draw's LoD share one position; a small sideways
            # dodge (display only, well under a day per point at a year's span) keeps each
            # triangle visible. The y position is exactly the LoD.
            shift = dodge * (order[s.label] - (len(order) - 1) / 2)
            ax.plot([mdates.date2num(p.collection_date) + shift for p in nd],
                    [p.value * 100 for p in nd],
                    ls="none", marker="v", ms=7 if is_level else 6, mfc="none", mec=colour,
                    mew=1.4, zorder=4)
        handles.append(Line2D([], [], color=colour, lw=2.4 if is_level else 1.4, marker="o",
                              ms=5, label=s.label))
    if any(not p.detected for s in data.series for p in s.points):
        handles.append(Line2D([], [], ls="none", marker="v", mfc="none", mec="#333333", ms=6,
                              label="below LoD (plotted at the draw's LoD)"))

    level = data.level
    if data.confirmation_draws and level is not None:
        at = {p.sample_id: p for p in level.points}
        conf = [at[sid] for _, sid in data.confirmation_draws if sid in at]
        ax.plot([mdates.date2num(p.collection_date) for p in conf], [p.value * 100 for p in conf],
                ls="none", marker="o", ms=14, mfc="none", mec="#C00000", mew=1.8, zorder=6)
        for d, _ in data.confirmation_draws:
            ax.axvline(mdates.date2num(d), color="#C00000", lw=0.8, ls=":", zorder=2)
        handles.append(Line2D([], [], ls="none", marker="o", ms=10, mfc="none", mec="#C00000",
                              mew=1.8, label="draw used by a confirmed alert"))

    ax.yaxis.set_major_locator(LogLocator(base=10.0))
    ax.yaxis.set_major_formatter(FuncFormatter(_percent_tick))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("VAF / ctDNA level (%, log scale)")
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=4, maxticks=10))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    for label in ax.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")
    ax.set_xlabel("collection date")
    ax.grid(True, which="major", axis="y", color="#dddddd", lw=0.6, zorder=0)
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    return fig


def _render(
    observations: pd.DataFrame,
    samples: pd.DataFrame,
    therapies: pd.DataFrame,
    assessment: Assessment | None,
    fmt: Literal["svg", "png"],
) -> bytes:
    data = chart_series(observations, samples, therapies, assessment)
    with mpl_style.context("default"), matplotlib.rc_context(_RC):
        fig = _build_figure(data, assessment.as_of if assessment else None)
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt,
                    metadata=_SVG_METADATA if fmt == "svg" else _PNG_METADATA)
    return buffer.getvalue()


_SVG_START = re.compile(r"<svg\b")


def trend_chart_svg(
    observations: pd.DataFrame,
    samples: pd.DataFrame,
    therapies: pd.DataFrame,
    assessment: Assessment | None = None,
) -> str:
    """Render the trend chart as inline SVG text (``<svg ...>...</svg>``, no XML prolog).

    Parameters
    ----------
    observations, samples, therapies
        One patient's store frames (see :func:`chart_series`).
    assessment
        The current assessment (baseline draw, confirmed alerts), optional.

    Returns
    -------
    str
        SVG markup ready to embed in HTML. The y-axis is in percent (declared on the axis
        label); internal values are fractions. Byte-identical for identical inputs.
    """
    text = _render(observations, samples, therapies, assessment, "svg").decode("utf-8")
    match = _SVG_START.search(text)
    if match is None:  # pragma: no cover - matplotlib always writes an <svg> root
        raise RuntimeError("matplotlib produced no <svg> element")
    return text[match.start():].strip() + "\n"


def trend_chart_png(
    observations: pd.DataFrame,
    samples: pd.DataFrame,
    therapies: pd.DataFrame,
    assessment: Assessment | None = None,
) -> bytes:
    """Render the same figure as :func:`trend_chart_svg` as PNG bytes (150 dpi, for emails)."""
    return _render(observations, samples, therapies, assessment, "png")
