"""Molecular-response kinetics: per-draw ctDNA level, censoring, baseline, nadir, fold changes.

Pure and vectorised over the whole cohort (pandas merges and group-bys; no per-observation
Python loops). Inputs are the store frames of ``docs/architecture.md`` (observations,
samples, therapies); the output feeds the rule engine (``pipeline.rules``).

Conventions (``../shared/reference/clinical-evidence.md`` section 6, "Core quantities"):

* Every level is a fraction in [0, 1] (VAF or tumour fraction), never percent.
* ``ctdna_level`` of a draw is the assay-reported ``tumor_fraction`` when given, else the
  maximum VAF of the line's *tracked truncal markers*: the ALK fusion (category
  ``driver``) and every non-CHIP SNV/MNV/indel/fusion detected at the line's baseline draw.
  CHIP variants (category ``chip`` from the KB list, or a lab extra gene in
  ``rules.chip_genes``) never count (rule Q2).
* A draw in which no tracked marker is detected is *left-censored*: ``ctdna_level`` is NaN,
  ``censored`` is True and ``upper_bound`` is the draw's LoD (``lod_vaf``). It is never 0.
  A draw with no observations at all is such a draw.
* A censored draw whose LoD lies above the last detected level is *non-informative*
  (rule Q1): it can neither count as clearance nor set the nadir.
* Days are calendar days since the start of the line (day 0 = start date).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from pipeline.config import RulesSettings
from pipeline.fisher import fisher_two_sided

#: Fold-change kinds: the value is exact, or only a bound on the true fold change
#: because one side of the ratio is left-censored.
FOLD_VALUE = "value"
FOLD_UPPER = "upper_bound"  # true fold change < reported number (the draw is censored)
FOLD_LOWER = "lower_bound"  # true fold change > reported number (the reference is censored)
FOLD_NONE = "not_evaluable"

#: Variant types whose VAF can carry a ctDNA level (CNV rows have a copy number, not a VAF).
LEVEL_VARIANT_TYPES = ("snv", "mnv", "indel", "fusion", "sv")

_KEY = ["patient_id", "line"]


@dataclass(frozen=True)
class Kinetics:
    """Kinetics of a cohort.

    Attributes
    ----------
    draws
        One row per (patient_id, line, sample_id): the line's baseline draw (``role`` =
        ``"baseline"``) and its on-treatment draws (``role`` = ``"on_treatment"``), in
        date order. A draw can belong to two lines (on-treatment of line 1 and baseline of
        line 2). Columns are listed in :data:`DRAW_COLUMNS`.
    lines
        One row per (patient_id, line) started on or before ``as_of``: drug, dates,
        baseline, final nadir and the growth fit (:data:`LINE_COLUMNS`).
    markers
        One row per (patient_id, line, marker_key) tracked for the ctDNA level.
    """

    draws: pd.DataFrame
    lines: pd.DataFrame
    markers: pd.DataFrame


DRAW_COLUMNS = (
    "patient_id", "line", "sample_id", "sample_pk", "collection_date", "day", "role",
    "provisional", "lod_vaf", "tumor_fraction", "median_depth", "assay", "level_source",
    "level_lod",  # LoD in the level's own unit (draw-level LoD, else the draw's VAF LoD)
    "level_unit",  # fraction | mtm_per_ml
    "level_gene", "level_alteration",  # the marker whose VAF is the level (marker_vaf only)
    "level_markers",  # "GENE ALT, ..." tracked markers detected in the draw
    "ctdna_level",  # fraction 0-1; NaN when censored or when detected markers have no VAF
    "censored", "upper_bound", "detected", "n_markers_detected",
    "prev_detected_level", "informative",
    "alt_reads", "depth",  # pooled over the tracked markers (absent marker: 0 of median_depth)
    "fisher_p", "fisher_prev_sample_id",
    "fold_from_baseline", "fold_from_baseline_kind", "decrease_from_baseline",
    "nadir_before", "nadir_before_censored", "nadir_before_sample_id",
    "fold_from_nadir", "fold_from_nadir_kind",
    "nadir_upto", "nadir_upto_censored", "nadir_upto_sample_id",
)

LINE_COLUMNS = (
    "patient_id", "line", "drug", "intent", "start_date", "end_date", "next_start",
    "baseline_provisional", "baseline_sample_id", "baseline_date", "baseline_level",
    "baseline_detected", "baseline_lod", "nadir", "nadir_censored", "nadir_sample_id", "nadir_date",
    "growth_rate_per_day", "doubling_time_days", "halving_time_days", "growth_fit_points",
    "level_sources", "prior_drugs",  # prior_drugs: earlier lines' drugs, ';'-joined (#13)
)


def _dates(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, errors="coerce").dt.normalize()


def as_timestamp(value: date | str | pd.Timestamp | None) -> pd.Timestamp | None:
    """Normalise an ``as_of`` value to a midnight :class:`pandas.Timestamp` (None stays None)."""
    if value is None:
        return None
    return pd.Timestamp(value).normalize()


def marker_keys(observations: pd.DataFrame) -> pd.Series:
    """Stable identity of an alteration across draws.

    ``gene:alteration`` when the knowledge base named it (so a VCF SNV and a table
    ``protein_change`` row of the same mutation match), else ``chrom:pos:ref>alt``, else
    ``gene:variant_type``.
    """
    gene = observations["gene"].astype("object").where(observations["gene"].notna(), "")
    alteration = observations["alteration"]
    by_name = gene.astype(str).str.upper() + ":" + alteration.astype(str)
    by_pos = (
        observations["chrom"].astype(str).str.removeprefix("chr") + ":"
        + observations["pos"].astype(str) + ":"
        + observations["ref"].astype(str) + ">" + observations["alt"].astype(str)
    )
    by_type = gene.astype(str).str.upper() + ":" + observations["variant_type"].astype(str)
    has_pos = observations["pos"].notna() & observations["chrom"].notna()
    key = np.where(alteration.notna(), by_name, np.where(has_pos, by_pos, by_type))
    return pd.Series(key, index=observations.index, dtype="object")


def is_chip(observations: pd.DataFrame, rules: RulesSettings) -> pd.Series:
    """True for clonal-haematopoiesis variants (rule Q2: excluded from the ctDNA level).

    The gene list is the knowledge base's ``chip_genes`` (category ``chip``, re-applied by
    ``KnowledgeBase.mark_chip`` before the rules run); ``rules.chip_genes`` only ADDS a
    lab's extra genes (issue #13: one source of truth, no second list that can drift).
    """
    genes = observations["gene"].astype("object").fillna("").astype(str).str.upper()
    return (observations["category"] == "chip") | genes.isin(rules.chip_genes)


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    """``column`` as float64 (unparseable -> NaN); all NaN when the column is absent."""
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype="float64")
    return pd.to_numeric(frame[column], errors="coerce").astype("float64")


def prepare_samples(samples: pd.DataFrame, as_of: pd.Timestamp | None) -> pd.DataFrame:
    """Draws collected on or before ``as_of``, dates normalised, sorted deterministically."""
    out = samples.copy()
    out["collection_date"] = _dates(out["collection_date"])
    for column in ("lod_vaf", "tumor_fraction", "median_depth"):
        out[column] = _numeric(out, column)
    if "assay" not in out.columns:
        out["assay"] = None
    # Draw-level (sample-level) results, #9 item 7: optional columns; absent = none.
    for column in ("level_value", "level_lod"):
        out[column] = _numeric(out, column)
    for column in ("level_unit", "level_call"):
        if column not in out.columns:
            out[column] = None
        out[column] = out[column].astype("object").mask(out[column].isna(), None)
    if "sample_pk" not in out.columns:
        out["sample_pk"] = pd.NA
    if as_of is not None:
        out = out[out["collection_date"] <= as_of]
    return out.sort_values(["patient_id", "collection_date", "sample_id"], kind="mergesort")


def prepare_therapies(therapies: pd.DataFrame, as_of: pd.Timestamp | None) -> pd.DataFrame:
    """Lines started on or before ``as_of``, numbered, with the next line's start date.

    A missing ``line`` number is the rank of the start date within the patient.
    ``next_start`` bounds the on-treatment period of a line: rules restart at each new
    line (clinical-evidence.md section 6, note 2).
    """
    out = therapies.copy()
    out["start_date"] = _dates(out["start_date"])
    out["end_date"] = _dates(out["end_date"]) if "end_date" in out.columns else pd.NaT
    if "line" not in out.columns:
        out["line"] = np.nan
    # Therapy intent (#9 item 7): palliative unless the therapy file declares otherwise.
    intent = out["intent"] if "intent" in out.columns else pd.Series(None, index=out.index)
    out["intent"] = intent.astype("object").where(intent.notna(), "palliative").astype(str)
    out["intent"] = out["intent"].str.strip().str.lower()
    out = out.sort_values(["patient_id", "start_date", "drug"], kind="mergesort")
    rank = out.groupby("patient_id").cumcount() + 1
    out["line"] = pd.to_numeric(out["line"], errors="coerce").fillna(rank).astype("int64")
    out = out.sort_values(["patient_id", "start_date", "line"], kind="mergesort")
    out["next_start"] = out.groupby("patient_id")["start_date"].shift(-1)
    # drugs of the earlier lines, for indication-aware therapy options (issue #13 item 2)
    earlier = out[["patient_id", "start_date", "drug"]].merge(
        out[["patient_id", "start_date"]], on="patient_id", suffixes=("_prev", ""))
    earlier = earlier[earlier["start_date_prev"] < earlier["start_date"]]
    prior = earlier.groupby(["patient_id", "start_date"])["drug"].agg(
        lambda s: ";".join(dict.fromkeys(map(str, s))))
    out["prior_drugs"] = pd.Series(
        list(zip(out["patient_id"], out["start_date"], strict=True)), index=out.index
    ).map(prior).fillna("")
    if as_of is not None:
        out = out[out["start_date"] <= as_of]
    return out[["patient_id", "line", "drug", "intent", "start_date", "end_date", "next_start",
                "prior_drugs"]]


def assign_draws(
    samples: pd.DataFrame, lines: pd.DataFrame, rules: RulesSettings
) -> pd.DataFrame:
    """Attach draws to lines of therapy: the baseline draw and the on-treatment draws.

    Baseline = the last draw in ``[start - baseline_window_days, start +
    baseline_after_start_days]`` (a draw on the start day counts). On-treatment = draws
    after ``start + baseline_after_start_days``, before the next line's start and not
    after the line's ``end_date``.
    """
    pairs = samples.merge(lines, on="patient_id", how="inner")
    pairs["day"] = (pairs["collection_date"] - pairs["start_date"]).dt.days.astype("int64")
    in_window = (pairs["day"] >= -rules.baseline_window_days) & (
        pairs["day"] <= rules.baseline_after_start_days
    )
    on_treatment = (
        (pairs["day"] > rules.baseline_after_start_days)
        & (pairs["next_start"].isna() | (pairs["collection_date"] < pairs["next_start"]))
        & (pairs["end_date"].isna() | (pairs["collection_date"] <= pairs["end_date"]))
    )
    window = pairs[in_window].sort_values([*_KEY, "collection_date", "sample_id"])
    baseline = window.groupby(_KEY, sort=False).tail(1).assign(role="baseline",
                                                                provisional=False)
    treated = pairs[on_treatment].assign(role="on_treatment", provisional=False)
    # #9 item 5: without a pre-treatment draw the first on-treatment draw is a provisional
    # reference. It stays an on-treatment draw too (emergence, rise and resistance rules
    # read it); the early-response rules (E1-E3) do not judge a provisional reference.
    has_base = pd.MultiIndex.from_frame(baseline[_KEY])
    no_base = ~pd.MultiIndex.from_frame(treated[_KEY]).isin(has_base)
    first = treated[no_base].sort_values([*_KEY, "collection_date", "sample_id"])
    provisional = first.groupby(_KEY, sort=False).head(1).assign(role="baseline",
                                                                   provisional=True)
    out = pd.concat([baseline, provisional, treated], ignore_index=True)
    out["_order"] = (out["role"] == "on_treatment").astype(int)
    out = out.sort_values([*_KEY, "_order", "collection_date", "sample_id"], kind="mergesort")
    return out.drop(columns="_order").reset_index(drop=True)


def tracked_markers(
    draws: pd.DataFrame, observations: pd.DataFrame, rules: RulesSettings
) -> pd.DataFrame:
    """Markers whose VAF makes the ctDNA level of each line.

    The ALK fusion (category ``driver``) seen in any draw of the line, plus every non-CHIP
    SNV/MNV/indel/fusion detected at the line's baseline draw (truncal by assumption;
    clinical-evidence.md section 6). CNV rows are excluded (copy number, not VAF).
    """
    obs = observations[observations["variant_type"].isin(LEVEL_VARIANT_TYPES)]
    obs = obs[~is_chip(obs, rules)]
    linked = draws[[*_KEY, "sample_id", "role"]].merge(obs, on="sample_id", how="inner")
    driver = linked["category"] == "driver"
    baseline_detected = (linked["role"] == "baseline") & linked["detected"].astype(bool)
    chosen = linked[driver | baseline_detected]
    markers = chosen.assign(from_baseline=baseline_detected[driver | baseline_detected])
    markers = markers.sort_values([*_KEY, "marker_key", "from_baseline"],
                                  ascending=[True, True, True, False], kind="mergesort")
    markers = markers.drop_duplicates([*_KEY, "marker_key"])
    return markers[[*_KEY, "marker_key", "gene", "alteration", "category", "from_baseline"]]


def _pooled_reads(
    draws: pd.DataFrame, markers: pd.DataFrame, observations: pd.DataFrame
) -> pd.DataFrame:
    """Alt reads and depth summed over the tracked markers of each draw.

    A tracked marker absent from a draw contributes 0 alt reads out of the draw's
    ``median_depth`` (the draw was sequenced there and nothing was called). When any
    count is unknown the pooled count is unknown (NaN): a partial sum would bias the test.
    """
    grid = draws[[*_KEY, "sample_id", "median_depth"]].merge(
        markers[[*_KEY, "marker_key"]], on=_KEY, how="inner"
    )
    reads = observations[["sample_id", "marker_key", "alt_reads", "depth"]].copy()
    reads["alt_reads"] = pd.to_numeric(reads["alt_reads"], errors="coerce").astype("float64")
    reads["depth"] = pd.to_numeric(reads["depth"], errors="coerce").astype("float64")
    reads = reads.groupby(["sample_id", "marker_key"], as_index=False).agg(
        alt_reads=("alt_reads", "max"), depth=("depth", "max"), present=("depth", "size")
    )
    grid = grid.merge(reads, on=["sample_id", "marker_key"], how="left")
    absent = grid["present"].isna()
    grid.loc[absent, "alt_reads"] = 0.0
    grid.loc[absent, "depth"] = grid.loc[absent, "median_depth"]
    grid["unknown"] = grid["alt_reads"].isna() | grid["depth"].isna()
    pooled = grid.groupby([*_KEY, "sample_id"], as_index=False).agg(
        alt_reads=("alt_reads", "sum"), depth=("depth", "sum"), unknown=("unknown", "any")
    )
    pooled.loc[pooled["unknown"], ["alt_reads", "depth"]] = np.nan
    return pooled.drop(columns="unknown")


def _joined_labels(rows: pd.DataFrame, keys: list[str]) -> list[str]:
    """Per group of ``keys`` (in order of first appearance): its distinct ``label`` values in
    row order, joined by ", ".

    The same text as ``groupby(keys, sort=False)["label"].agg(lambda x: ", ".join(
    dict.fromkeys(x)))``, without a Python call per group (45,000 draws: 1 s; #11 item 2).
    """
    if not len(rows):
        return []
    group = rows.groupby(keys, sort=False).ngroup().to_numpy()
    labels = rows["label"].to_numpy()
    first = ~pd.DataFrame({"g": group, "label": labels}).duplicated().to_numpy()
    group, labels = group[first], labels[first]
    order = np.argsort(group, kind="stable")  # groups numbered by first appearance
    group, labels = group[order], labels[order].tolist()
    bounds = np.searchsorted(group, np.arange(group[-1] + 2))
    return [", ".join(labels[a:b]) for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(),
                                                   strict=True)]


def fisher_pvalues(alt1: np.ndarray, depth1: np.ndarray, alt2: np.ndarray,
                   depth2: np.ndarray) -> np.ndarray:
    """Two-sided Fisher exact p-values for alt/ref read counts of pairs of draws.

    Parameters
    ----------
    alt1, depth1, alt2, depth2
        Alt-read counts and total depths (reads) of the earlier and the later draw.

    Returns
    -------
    numpy.ndarray
        p-value per pair; NaN when a count is unknown or inconsistent (alt > depth).
        The test runs once per *distinct* table, all tables in one vectorized call
        (``pipeline.fisher``: the same p-values as ``scipy.stats.fisher_exact``).
    """
    table = np.column_stack([alt1, depth1, alt2, depth2]).astype("float64")
    valid = np.isfinite(table).all(axis=1)
    valid &= (table[:, 0] <= table[:, 1]) & (table[:, 2] <= table[:, 3])
    valid &= (table[:, 1] > 0) & (table[:, 3] > 0)
    out = np.full(len(table), np.nan)
    if not valid.any():
        return out
    distinct, inverse = np.unique(table[valid].astype("int64"), axis=0, return_inverse=True)
    pvalues = fisher_two_sided(distinct[:, 0], distinct[:, 1], distinct[:, 2], distinct[:, 3])
    out[valid] = pvalues[inverse.ravel()]
    return out


def _fold(numerator: pd.Series, num_censored: pd.Series, denominator: pd.Series,
          den_censored: pd.Series, num_bound: pd.Series, den_bound: pd.Series
          ) -> tuple[pd.Series, pd.Series]:
    """Fold change ``numerator / denominator`` with left-censoring on either side."""
    num = numerator.where(~num_censored, num_bound)
    den = denominator.where(~den_censored, den_bound)
    fold = num / den
    kind = np.select(
        [num_censored & den_censored, num_censored, den_censored],
        [FOLD_NONE, FOLD_UPPER, FOLD_LOWER],
        default=FOLD_VALUE,
    )
    kind = np.where(fold.isna() | ~np.isfinite(fold), FOLD_NONE, kind)
    fold = fold.where(kind != FOLD_NONE)
    return fold.astype("float64"), pd.Series(kind, index=numerator.index, dtype="object")


def compute_kinetics(
    observations: pd.DataFrame,
    samples: pd.DataFrame,
    therapies: pd.DataFrame,
    rules: RulesSettings,
    *,
    as_of: date | str | pd.Timestamp | None = None,
) -> Kinetics:
    """Per-line kinetics of every patient in the frames.

    Parameters
    ----------
    observations, samples, therapies
        Store frames (``Store.observations_frame()``, ``samples_frame()``,
        ``therapies_frame()``); VAF, LoD and tumour fraction are fractions 0-1.
    rules
        ``settings.rules`` (baseline window, CHIP genes).
    as_of
        Draws collected and lines started after this date are ignored; None keeps all.

    Returns
    -------
    Kinetics
        ``draws``, ``lines`` and ``markers`` frames (see :class:`Kinetics`).
    """
    cutoff = as_timestamp(as_of)
    smp = prepare_samples(samples, cutoff)
    lines = prepare_therapies(therapies, cutoff)
    # Sample context (patient, date, LoD) comes from the samples frame; keep only the
    # call columns here so that merges do not duplicate it.
    context = ["sample_pk", "patient_id", "collection_date", "lod_vaf", "tumor_fraction", "assay"]
    obs = observations[observations["sample_id"].isin(smp["sample_id"])]
    obs = obs.drop(columns=[c for c in context if c in obs.columns]).copy()
    obs["vaf"] = pd.to_numeric(obs["vaf"], errors="coerce").astype("float64")
    obs["detected"] = obs["detected"].astype(bool)
    if "marker_key" not in obs.columns:  # the engine passes the keys it computed (#11)
        obs["marker_key"] = marker_keys(obs) if len(obs) else pd.Series(dtype="object")

    draws = assign_draws(smp, lines, rules)
    markers = tracked_markers(draws, obs, rules)

    # ctDNA level from the tracked markers: max VAF of the detected ones; the marker giving
    # it and every tracked marker detected are named (#9 item 1: "the level reported per
    # draw says which markers it comes from").
    tracked_obs = obs[obs["detected"]].merge(
        draws[[*_KEY, "sample_id"]].drop_duplicates(), on="sample_id"
    ).merge(markers[[*_KEY, "marker_key"]], on=[*_KEY, "marker_key"])
    tracked_obs = tracked_obs.assign(label=marker_labels(tracked_obs))
    tracked_obs = tracked_obs.sort_values([*_KEY, "sample_id", "vaf", "marker_key"],
                                          ascending=[True, True, True, False, True],
                                          na_position="last", kind="mergesort")
    per_draw = tracked_obs.groupby([*_KEY, "sample_id"], as_index=False, sort=False).agg(
        marker_level=("vaf", "max"), n_markers_detected=("marker_key", "nunique"),
        level_gene=("gene", "first"), level_alteration=("alteration", "first"),
    )
    per_draw["level_markers"] = _joined_labels(tracked_obs, [*_KEY, "sample_id"])
    draws = draws.merge(per_draw, on=[*_KEY, "sample_id"], how="left")
    draws["n_markers_detected"] = draws["n_markers_detected"].fillna(0).astype("int64")
    draws = _draw_level(draws)

    # Pooled read counts and the Fisher test against the previous draw of the line.
    reads = _pooled_reads(draws, markers, obs)
    draws = draws.merge(reads, on=[*_KEY, "sample_id"], how="left")
    grouped = draws.groupby(_KEY, sort=False)
    prev_alt = grouped["alt_reads"].shift(1)
    prev_depth = grouped["depth"].shift(1)
    draws["fisher_prev_sample_id"] = grouped["sample_id"].shift(1)
    draws["fisher_p"] = fisher_pvalues(
        prev_alt.to_numpy(float), prev_depth.to_numpy(float),
        draws["alt_reads"].to_numpy(float), draws["depth"].to_numpy(float),
    )

    # Q1: a negative whose LoD lies above the last detected level proves nothing.
    keys = [draws["patient_id"], draws["line"]]
    last_detected = draws["ctdna_level"].groupby(keys, sort=False).ffill()
    last_detected = last_detected.groupby(keys, sort=False).shift(1)
    draws["prev_detected_level"] = last_detected
    draws["informative"] = ~(draws["censored"] & (draws["level_lod"] > last_detected))

    draws = _add_baseline_folds(draws)
    draws = _add_nadir(draws)
    line_table = _line_summary(lines, draws)
    draws = draws.drop(columns=["marker_level", "level_value", "level_call"])
    extra = [c for c in draws.columns if c not in DRAW_COLUMNS]
    draws = draws[[*DRAW_COLUMNS, *extra]]
    return Kinetics(draws=draws, lines=line_table, markers=markers.reset_index(drop=True))


def alteration_names(observations: pd.DataFrame) -> pd.Series:
    """The alteration's name for people: the knowledge base's name, else the caller's text.

    A row the profile could not type (Guardant "TP53 Splice Site SNV", "TERT Promoter SNV")
    has no knowledge-base name; labelling it by its locus ("TP53 >") told a reader nothing
    (round 2 review of the real Guardant reports). The vendor's ``protein_change`` text is
    shown instead; the marker's identity (``marker_keys``) is unchanged.
    """
    alteration = observations["alteration"].astype("object")
    if "protein_change" in observations.columns:
        text = observations["protein_change"].astype("object")
        alteration = alteration.where(alteration.notna(), text)
    return alteration.mask(alteration.isna(), None)


def marker_labels(observations: pd.DataFrame) -> pd.Series:
    """``"GENE alteration"`` labels for findings and headlines (gene alone when unnamed)."""
    gene = observations["gene"].astype("object").fillna("").astype(str)
    alteration = alteration_names(observations).fillna("").astype(str)
    return (gene + " " + alteration).str.strip()


def _draw_level(draws: pd.DataFrame) -> pd.DataFrame:
    """The draw's ctDNA level, its LoD, unit and source, censoring and upper bound.

    Precedence: a draw-level value (``level_value``/``level_call``, tumour-informed MRD
    assays; #9 item 7), then the assay-reported ``tumor_fraction``, then the maximum VAF of
    the tracked markers. A negative draw-level call, a tumour fraction of 0 and a draw with
    no tracked marker detected are left-censored at the LoD, never a level 0.
    """
    out = draws
    call = out["level_call"].astype("object").fillna("").astype(str).str.lower()
    value = out["level_value"]
    level_lod = out["level_lod"]
    has_draw_level = value.notna() | call.isin(["positive", "negative"])
    has_tf = ~has_draw_level & out["tumor_fraction"].notna()
    unit = out["level_unit"].astype("object").fillna("").astype(str).str.lower()
    draw_detected = np.where(
        call == "positive", True,
        np.where(call == "negative", False,
                 value > level_lod.fillna(0.0)))
    out["level_source"] = np.select(
        [has_draw_level, has_tf],
        ["draw_" + unit.where(unit != "", "level"), "tumor_fraction"], default="marker_vaf")
    out["level_unit"] = np.where(has_draw_level & (unit == "mtm_per_ml"), "mtm_per_ml",
                                 "fraction")
    out["detected"] = np.select(
        [has_draw_level, has_tf],
        [draw_detected, out["tumor_fraction"] > 0],
        default=out["n_markers_detected"] > 0,
    ).astype(bool)
    level = np.select([has_draw_level, has_tf], [value, out["tumor_fraction"]],
                      default=out["marker_level"])
    out["ctdna_level"] = pd.Series(level, index=out.index, dtype="float64").where(out["detected"])
    out["level_lod"] = level_lod.where(has_draw_level & level_lod.notna(), out["lod_vaf"])
    out["censored"] = ~out["detected"]
    out["upper_bound"] = out["level_lod"].where(out["censored"])
    by_marker = out["level_source"] == "marker_vaf"
    for column in ("level_gene", "level_alteration", "level_markers"):
        out[column] = out[column].mask(~(by_marker & out["detected"]), None)
    return out


def _add_baseline_folds(draws: pd.DataFrame) -> pd.DataFrame:
    base = draws[draws["role"] == "baseline"][[*_KEY, "ctdna_level", "censored", "level_lod"]]
    base = base.rename(columns={
        "ctdna_level": "_b_level", "censored": "_b_censored", "level_lod": "_b_lod"
    })
    out = draws.merge(base, on=_KEY, how="left")
    out["_b_censored"] = out["_b_censored"].astype("boolean").fillna(True).astype(bool)
    fold, kind = _fold(out["ctdna_level"], out["censored"], out["_b_level"],
                       out["_b_censored"], out["level_lod"], out["_b_lod"])
    treated = out["role"] == "on_treatment"
    out["fold_from_baseline"] = fold.where(treated)
    out["fold_from_baseline_kind"] = kind.mask(~treated, None)
    out["decrease_from_baseline"] = 1.0 - out["fold_from_baseline"]
    return out.drop(columns=["_b_level", "_b_censored", "_b_lod"])


def _add_nadir(draws: pd.DataFrame) -> pd.DataFrame:
    """Running nadir over on-treatment draws: detected level or LoD of a clearing draw."""
    out = draws
    treated = out["role"] == "on_treatment"
    clearing = out["censored"] & out["informative"]
    candidate = out["ctdna_level"].where(~out["censored"], out["level_lod"].where(clearing))
    candidate = candidate.where(treated)
    grouped = candidate.groupby([out["patient_id"], out["line"]], sort=False)
    running = grouped.cummin()
    running = running.groupby([out["patient_id"], out["line"]], sort=False).ffill()
    sets_min = candidate.notna() & (candidate == running)
    censored_at = out["censored"].where(sets_min).astype("object")
    sample_at = out["sample_id"].where(sets_min)
    keys = [out["patient_id"], out["line"]]
    out["nadir_upto"] = running
    out["nadir_upto_censored"] = censored_at.groupby(keys, sort=False).ffill()
    out["nadir_upto_sample_id"] = sample_at.groupby(keys, sort=False).ffill()
    for column in ("nadir_upto", "nadir_upto_censored", "nadir_upto_sample_id"):
        before = column.replace("_upto", "_before")
        out[before] = out[column].groupby(keys, sort=False).shift(1).where(treated)
    nadir_censored = out["nadir_before_censored"].astype("boolean").fillna(True).astype(bool)
    fold, kind = _fold(out["ctdna_level"], out["censored"], out["nadir_before"],
                       nadir_censored, out["level_lod"], out["nadir_before"])
    no_nadir = out["nadir_before"].isna()
    out["fold_from_nadir"] = fold.where(treated & ~no_nadir)
    out["fold_from_nadir_kind"] = pd.Series(kind, index=out.index).where(
        treated & ~no_nadir, FOLD_NONE
    )
    out["nadir_upto_censored"] = out["nadir_upto_censored"].astype("object")
    out["nadir_before_censored"] = out["nadir_before_censored"].astype("object")
    return out


def _line_summary(lines: pd.DataFrame, draws: pd.DataFrame) -> pd.DataFrame:
    base = draws[draws["role"] == "baseline"].set_index(_KEY)
    summary = lines.set_index(_KEY).copy()
    summary["baseline_provisional"] = base["provisional"].astype("object")
    summary["baseline_sample_id"] = base["sample_id"]
    summary["baseline_date"] = base["collection_date"]
    summary["baseline_level"] = base["ctdna_level"]
    summary["baseline_detected"] = base["detected"].astype("object")
    summary["baseline_lod"] = base["level_lod"]

    treated = draws[draws["role"] == "on_treatment"]
    last = treated.groupby(_KEY, sort=False).tail(1).set_index(_KEY)
    summary["nadir"] = last["nadir_upto"]
    summary["nadir_censored"] = last["nadir_upto_censored"]
    summary["nadir_sample_id"] = last["nadir_upto_sample_id"]
    dates = treated.set_index("sample_id")["collection_date"]
    dates = dates[~dates.index.duplicated()]
    summary["nadir_date"] = summary["nadir_sample_id"].map(dates)

    # Growth after the nadir: log-linear least squares over >= 3 detected points, in
    # closed form per group (no per-group Python fit). Doubling time = ln 2 / rate.
    fit = treated.merge(
        summary["nadir_date"].reset_index(), on=_KEY, how="left"
    )
    fit = fit[fit["detected"] & (fit["ctdna_level"] > 0)
              & (fit["collection_date"] >= fit["nadir_date"])]
    fit = fit.assign(x=fit["day"].astype(float), y=np.log(fit["ctdna_level"]))
    fit = fit.assign(xx=fit["x"] ** 2, xy=fit["x"] * fit["y"])
    sums = fit.groupby(_KEY).agg(n=("x", "size"), sx=("x", "sum"), sy=("y", "sum"),
                                 sxx=("xx", "sum"), sxy=("xy", "sum"))
    denom = sums["n"] * sums["sxx"] - sums["sx"] ** 2
    slope = (sums["n"] * sums["sxy"] - sums["sx"] * sums["sy"]) / denom.where(denom > 0)
    slope = slope.where(sums["n"] >= 3)
    summary["growth_rate_per_day"] = slope
    summary["doubling_time_days"] = (np.log(2) / slope).where(slope > 0)
    summary["halving_time_days"] = (np.log(2) / -slope).where(slope < 0)
    summary["growth_fit_points"] = sums["n"].reindex(summary.index).fillna(0).astype("int64")
    distinct = draws[[*_KEY, "level_source"]].drop_duplicates().sort_values("level_source")
    sources = distinct.groupby(_KEY)["level_source"].agg(",".join)
    summary["level_sources"] = sources
    summary = summary.reset_index()
    return summary[list(LINE_COLUMNS)]
