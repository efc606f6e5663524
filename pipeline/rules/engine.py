"""``evaluate_cohort``: kinetics once for the cohort, then the rule catalogue per patient.

Pure: no I/O, no clock. Draws collected after ``as_of`` and lines started after it are
dropped before anything is computed, so a later draw can never change an earlier
assessment. The current line is the latest line started on or before ``as_of``; rules
restart at each new line (clinical-evidence.md section 6, note 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any, cast

import numpy as np
import pandas as pd

import pipeline
from pipeline.assessment import Alert, Assessment, DrawLevel, Finding, Therapy
from pipeline.config import Settings
from pipeline.errors import NotFoundError
from pipeline.kinetics import (
    alteration_names,
    as_timestamp,
    compute_kinetics,
    is_chip,
    marker_keys,
)
from pipeline.rules.catalogue import (
    C1,
    C2_CAVEAT,
    LINE_GATES,
    ROW_MASKS,
    KnowledgeBaseLike,
    LineContext,
    make_alert,
)
from pipeline.rules.cohort import CohortLines, FrameColumns, LineParts, RowLike
from pipeline.rules.headline import make_headline
from pipeline.rules.registry import MECHANISM_RULES, RULES, STATUS_RULES

_RANK = {"OPTIMAL": 0, "WARNING": 1, "FAILURE": 2}


def evaluate_cohort(
    observations: pd.DataFrame,
    samples: pd.DataFrame,
    therapies: pd.DataFrame,
    settings: Settings,
    kb: KnowledgeBaseLike | None,
    as_of: date | str | pd.Timestamp | None = None,
    patient_ids: Iterable[str] | None = None,
) -> list[Assessment]:
    """Assess every patient (or ``patient_ids``) at ``as_of``.

    Parameters
    ----------
    observations, samples, therapies
        Store frames (docs/architecture.md, "Store frames"); VAF/LoD/TF are fractions 0-1.
    settings
        Resolved settings; ``settings.rules`` and ``settings.cadence`` drive the rules.
    kb
        The knowledge base (``pipeline.knowledge.load_knowledge_base()``): ``kb.version``
        and ``kb.therapy_options`` for resistance alerts. ``None`` evaluates without
        therapy options (resistance alerts then say so and are labelled unverified).
    as_of
        Evaluation date; None means each patient's latest draw or line start.
    patient_ids
        Restrict to these patients.

    Returns
    -------
    list[Assessment]
        One per patient, sorted by ``patient_id``.

    Raises
    ------
    NotFoundError
        A requested patient has neither draws nor a therapy history.
    """
    cutoff = as_timestamp(as_of)
    wanted = None if patient_ids is None else sorted(set(map(str, patient_ids)))
    if wanted is not None:
        observations = observations[observations["patient_id"].isin(wanted)]
        samples = samples[samples["patient_id"].isin(wanted)]
        therapies = therapies[therapies["patient_id"].isin(wanted)]
        known = set(samples["patient_id"]) | set(therapies["patient_id"])
        missing = [p for p in wanted if p not in known]
        if missing:
            raise NotFoundError(f"no draws and no therapy history for {missing[0]!r}",
                                field="patient_id")
    if kb is not None and hasattr(kb, "mark_chip"):  # KB chip_genes = the one list (#13)
        observations = kb.mark_chip(observations)
    # Marker keys once for the cohort: kinetics and the rules read the same column (#11).
    keys = marker_keys(observations) if len(observations) else pd.Series(dtype="object")
    kin = compute_kinetics(observations.assign(marker_key=keys), samples, therapies,
                           settings.rules, as_of=cutoff)

    obs = observations.copy()
    obs["marker_key"] = keys
    obs["is_chip"] = is_chip(obs, settings.rules) if len(obs) else pd.Series(dtype=bool)
    obs["alteration_name"] = (alteration_names(obs) if len(obs)
                              else pd.Series(dtype="object"))
    obs["detected"] = obs["detected"].astype(bool)
    obs["collection_date"] = pd.to_datetime(obs["collection_date"]).dt.normalize()
    for column in ("vaf", "copy_number", "lod_vaf", "tumor_fraction"):
        obs[column] = pd.to_numeric(obs[column], errors="coerce").astype("float64")

    draw_dates = pd.to_datetime(samples["collection_date"]).dt.normalize()
    kept = samples.assign(collection_date=draw_dates)
    if cutoff is not None:
        kept = kept[kept["collection_date"] <= cutoff]
    patients = wanted if wanted is not None else sorted(
        set(kept["patient_id"]) | set(kin.lines["patient_id"])
    )

    for column, mask in ROW_MASKS.items():  # once for the cohort, not per patient (#11)
        obs[column] = mask(obs).to_numpy(dtype=bool) if len(obs) else pd.Series(dtype=bool)

    latest_line = kin.lines.sort_values(["patient_id", "start_date", "line"]).groupby(
        "patient_id").tail(1)
    # Each patient's current line as a Row of the cohort frame, not a .loc Series per
    # patient (0.1-0.2 ms each; #11 item 2): the same cells.
    line_columns = FrameColumns(latest_line)
    line_at = {str(p): i for i, p in enumerate(latest_line["patient_id"].tolist())}
    # Every line's frames as slices of cohort frames, computed once (#11 item 2).
    cohort = CohortLines(kin.draws, obs if len(obs) else None, LINE_GATES)
    obs_by = _ObservationsBySample(obs)
    config_version = settings.version_label()  # hashes the settings: once, not per patient
    kept_by = _ByPatient(kept)

    future = _future_events(samples, therapies, cutoff)
    out = []
    for patient in patients:
        at = line_at.get(patient)
        line = None if at is None else line_columns.row(at)  # one per patient: tail(1)
        if cutoff is not None:
            when = cutoff.date()
        else:
            # No clock: the assessment date is the patient's latest event.
            dates = [*kept_by.get(patient)["collection_date"], *therapies.loc[
                therapies["patient_id"] == patient, "start_date"].map(pd.Timestamp)]
            when = max(dates).date()
        out.append(_assess(patient, when, line, cohort, obs_by, kept_by,
                           settings, kb, config_version, future.get(patient)))
    return out


def _assess(patient: str, as_of: date, line: RowLike | None,
            cohort: CohortLines, obs_by: _ObservationsBySample,
            kept_by: _ByPatient,
            settings: Settings, kb: KnowledgeBaseLike | None,
            config_version: str, future_event: date | None = None) -> Assessment:
    therapy = None
    parts = None
    draws: pd.DataFrame | None = None  # None: the line's own draws (parts)
    caveats: list[str] = []
    if line is not None:
        therapy = Therapy(
            drug=str(line["drug"]), start_date=line["start_date"].date(), line=int(line["line"]),
            end_date=None if pd.isna(line["end_date"]) else line["end_date"].date(),
            intent=str(line.get("intent", "palliative")),
        )
        parts = cohort.line(patient, int(line["line"]))
        # A line with no draw attributed to it (e.g. the only draw came before the baseline
        # window) has empty frames. The patient's unlined draws are not the line's: they
        # lack its kinetics (day, role, level) and once crashed the engine.
        if parts is None:
            draws = cohort.draws.iloc[0:0]
        if therapy.end_date is not None and therapy.end_date < as_of:
            caveats.append(f"Line {therapy.line} ({therapy.drug}) ended on "
                           f"{therapy.end_date}; later draws are not attributed to it.")
        if "," in str(line["level_sources"]):
            caveats.append("ctDNA level mixes tumour fraction and marker VAF across draws; "
                           "fold changes between them are approximate.")
    else:
        draws = _unlined_draws(kept_by.get(patient))
    ctx = LineContext(patient, as_of, settings, kb, therapy, line, draws,
                      obs_by.given(patient, parts, draws), caveats, parts=parts)

    alerts: list[Alert] = []
    for rule in RULES:
        if therapy is None and rule.needs_therapy_line:
            continue  # no line started by as_of: resistance, data-quality and CHIP rules only
        if rule.gate is not None and parts is not None and not parts.meets(rule.gate):
            continue  # no observation of the line can make this rule alert (#11 item 2)
        alerts.extend(rule.evaluate(ctx))
    context: list[Alert] = []
    if _response_assessed(ctx):
        # #9 item 8: once an on-treatment draw is assessed, the baseline-risk profile is
        # context for the reader, not a current alert.
        context = [a for a in alerts if a.rule_id == "B2"]
        alerts = [a for a in alerts if a.rule_id != "B2"]
    status, reason = _status(ctx, alerts)
    due = _next_draw_due(ctx, alerts + context, status)
    overdue_after = overdue = None
    if due is not None and therapy is not None:
        overdue_after = _overdue_limit(ctx, due)
        overdue = _overdue_alert(ctx, due, overdue_after)
        if overdue is not None:
            alerts.append(overdue)
    if ctx.provisional:
        caveats.append("No pre-treatment draw: the first on-treatment draw "
                       f"({ctx.reference['sample_id']}) is a provisional reference; early-"
                       "response milestones (E1-E3) cannot be judged, emergence, rise and "
                       "resistance rules apply.")
    if status == "OPTIMAL":
        caveats.append(C2_CAVEAT)
    if therapy is None:
        caveats.append("No line of therapy started on or before the evaluation date.")
    base = ctx.baseline
    levels = [] if line is None else parts.levels if parts is not None else _levels(ctx.draws)
    return Assessment(
        patient_id=patient, as_of=as_of, therapy=therapy, status=status,
        alerts=alerts, config_version=config_version,
        kb_version=str(kb.version) if kb is not None else "none",
        pipeline_version=pipeline.__version__,
        draws_used=list(dict.fromkeys(ctx.draw_arrays["sample_id"])),
        baseline_sample_id=None if base is None else str(base["sample_id"]),
        nadir=None if line is None or pd.isna(line["nadir"]) else float(line["nadir"]),
        next_draw_due=due,
        days_on_therapy=None if therapy is None else (as_of - therapy.start_date).days,
        status_reason=reason, caveats=caveats,
        headline=make_headline(status, reason, alerts, levels),
        baseline_context=context, baseline_provisional=ctx.provisional, levels=levels,
        reevaluate_on=_reevaluate_on(as_of, [
            due,  # the next draw falls due (a cadence date)
            None if overdue_after is None else overdue_after + timedelta(days=1),  # C1 fires
            None if therapy is None or therapy.end_date is None
            else therapy.end_date + timedelta(days=1),  # the line-ended caveat applies
            future_event,  # a draw or line dated after as_of enters the window
            # C1 counts the days overdue: an overdue patient's alert text changes daily.
            None if overdue is None else as_of + timedelta(days=1),
        ]),
    )


def _reevaluate_on(as_of: date, dates: list[date | None]) -> date | None:
    """The first of ``dates`` after ``as_of``: when this assessment changes with no new data.

    Incremental runs (#11 item 2) re-evaluate a patient without new or amended data only
    once this date has come (a cadence date passed); None means only new data, a therapy
    change or a new config/knowledge-base/pipeline version can change the assessment
    (``days_on_therapy`` aside, which is as of the evaluation by definition).
    tests/rules/test_reevaluate_on.py checks the claim: the assessment on the day before
    this date equals the one at ``as_of``.
    """
    later = [d for d in dates if d is not None and d > as_of]
    return min(later) if later else None


def _future_events(samples: pd.DataFrame, therapies: pd.DataFrame,
                  cutoff: pd.Timestamp | None) -> dict[str, date]:
    """Each patient's first draw or line start dated after ``cutoff`` (date-only).

    Such rows are dropped before the rules run, so the assessment changes on that date
    (an evaluation's window, #11 item 2). Empty without a cutoff.
    """
    if cutoff is None:
        return {}
    parts = [pd.DataFrame({"patient_id": frame["patient_id"].astype(str),
                           "when": pd.to_datetime(frame[column]).dt.normalize()})
             for frame, column in ((samples, "collection_date"), (therapies, "start_date"))
             if len(frame)]
    if not parts:
        return {}
    events = pd.concat(parts, ignore_index=True)
    events = events[events["when"] > cutoff]
    first = events.groupby("patient_id")["when"].min()
    return {str(p): pd.Timestamp(w).date() for p, w in first.items()}


def _response_assessed(ctx: LineContext) -> bool:
    """An informative on-treatment draw in a response window (from week 3) exists.

    The provisional reference itself does not count.
    """
    seq = ctx.evaluable_arrays
    # Numpy over the line's draws (no filtered frames): runs for every patient (#11 item 2).
    assessed = np.asarray(seq["day"], dtype=float) >= ctx.rules.early_window_start_week * 7
    if ctx.provisional:
        assessed &= np.asarray(seq["sample_id"]) != ctx.reference["sample_id"]
    return bool(assessed.any())


def _levels(draws: pd.DataFrame) -> list[DrawLevel]:
    """The line's per-draw levels as the rules used them (reports and emails read these)."""
    rows = draws.drop_duplicates(["sample_id", "role"])
    out = []
    for r in cast(Iterable[Any], rows.itertuples(index=False)):  # rows' cells: any scalar
        # A provisional reference is listed once, as the reference.
        if r.role == "on_treatment" and bool(getattr(r, "provisional", False)):
            continue
        out.append(DrawLevel(
            sample_id=str(r.sample_id), collection_date=pd.Timestamp(r.collection_date).date(),
            day=int(r.day), role=r.role, provisional_reference=bool(r.provisional),
            detected=bool(r.detected),
            level=None if pd.isna(r.ctdna_level) else float(r.ctdna_level),
            upper_bound=None if pd.isna(r.upper_bound) else float(r.upper_bound),
            unit=str(r.level_unit), source=str(r.level_source),
            markers=None if r.level_markers is None or pd.isna(r.level_markers)
            else str(r.level_markers),
            informative=bool(r.informative),
        ))
    seen: set[str] = set()
    unique = []
    for level in out:  # a provisional reference is also the first on-treatment draw
        if level.sample_id not in seen:
            seen.add(level.sample_id)
            unique.append(level)
    return unique


def _unlined_draws(patient_draws: pd.DataFrame) -> pd.DataFrame:
    frame = patient_draws.sort_values(["collection_date", "sample_id"]).copy()
    frame["role"] = "on_treatment"
    frame["day"] = 0
    frame["informative"] = True
    return frame


class _ByPatient:
    """A cohort frame's rows of one patient (an empty frame for none), grouped on first
    use: most evaluations never ask (#11 item 2). Draws dated by ``as_of`` (unlined draws,
    the no-clock date) and observations (:class:`_ObservationsBySample`) both use it."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame
        self._by_patient: dict[str, pd.DataFrame] | None = None

    def get(self, patient: str) -> pd.DataFrame:
        if self._by_patient is None:
            self._by_patient = {str(k): g for k, g in self._frame.groupby("patient_id",
                                                                          sort=False)}
        return self._by_patient.get(patient, self._frame.iloc[0:0])


class _ObservationsBySample:
    """A patient's observations for an arbitrary list of draws (unlined draws, lines
    without calls): the per-patient path, grouped lazily by patient."""

    def __init__(self, obs: pd.DataFrame) -> None:
        self._obs = obs
        self._by_patient = _ByPatient(obs)

    def given(self, patient: str, parts: LineParts | None,
              draws: pd.DataFrame | None) -> pd.DataFrame | None:
        """The observations a line context is given: the patient's calls on ``draws`` (a
        line without parts, unlined draws) or on the draws of a line without calls; None
        when the line's parts hold them."""
        if draws is not None:
            return self.for_draws(patient, draws)
        if parts is not None and not parts.has_observations:
            return self.for_draws(patient, parts.draws)
        return None

    def for_draws(self, patient: str, draws: pd.DataFrame) -> pd.DataFrame:
        pobs = self._by_patient.get(patient)
        # A provisional reference is listed twice in ``draws`` (reference and on-treatment).
        parts = [pobs[pobs["sample_id"] == s] for s in dict.fromkeys(draws["sample_id"])]
        parts = [p for p in parts if len(p)]
        obs = pd.concat(parts, ignore_index=True) if parts else self._empty()
        return obs.merge(draws[["sample_id", "day", "role"]].drop_duplicates("sample_id"),
                         on="sample_id", how="left")

    def _empty(self) -> pd.DataFrame:
        columns = self._obs.columns if len(self._obs) else [
            "sample_id", "marker_key", "detected", "category", "gene", "alteration", "is_chip",
            "variant_type", "fusion_partner", "vaf", "alt_reads", "depth", "copy_number",
            "collection_date", "lod_vaf", "tumor_fraction", "assay"]
        return pd.DataFrame(columns=list(columns)).astype({"detected": bool, "is_chip": bool})


def _status(ctx: LineContext, alerts: list[Alert]) -> tuple[str, str]:
    """Current molecular-response tier of the line, with a one-line reason."""
    failures = [a for a in alerts if a.tier == "FAILURE"]
    if failures:
        return "FAILURE", "early-switch review: " + ", ".join(
            dict.fromkeys(a.rule_id for a in failures))
    warnings = [a for a in alerts if a.tier == "WARNING" and a.rule_id in STATUS_RULES]
    provisional = " (provisional reference: no pre-treatment draw)" if ctx.provisional else ""
    if ctx.surveillance:
        if warnings:
            return "WARNING", ", ".join(dict.fromkeys(a.rule_id for a in warnings))
        if len(ctx.treated_arrays):
            return "OPTIMAL", "ctDNA negative on surveillance (curative/adjuvant line, S1)"
        return "NOT_EVALUABLE", "surveillance line without an on-treatment draw yet"
    if not ctx.baseline_detected or ctx.therapy is None:
        mechanism = [a for a in warnings if a.rule_id in MECHANISM_RULES]
        if mechanism:
            return "WARNING", "resistance or emerging alteration: " + ", ".join(
                dict.fromkeys(a.rule_id for a in mechanism))
        why = ("no line of therapy" if ctx.therapy is None else
               "no draw on this line" if ctx.baseline is None else
               "ctDNA not detected at the reference draw" + provisional)
        return "NOT_EVALUABLE", f"{why}: not evaluable for response (B1)"
    if warnings:
        return "WARNING", ", ".join(dict.fromkeys(a.rule_id for a in warnings)) + provisional
    if any(a.rule_id == "E1" for a in alerts):
        return "OPTIMAL", "molecular clearance by week 10 (E1)"
    seq = ctx.evaluable_arrays
    if len(seq) and bool(seq["censored"][-1]):
        return "OPTIMAL", (f"cleared (first informative negative on day "
                           f"{ctx.first_clearance_day():.0f}"
                           + (", after the week-" f"{ctx.rules.clearance_by_week:g} landmark "
                              "of E1)" if not ctx.provisional else provisional + ")"))
    if ctx.provisional:
        return "WARNING", ("ctDNA detected at the provisional reference (no pre-treatment "
                           "draw); response cannot be measured until a later draw")
    if not _response_assessed(ctx):
        return "WARNING", ("high-risk baseline (B2); no on-treatment draw in a response "
                           "window yet")
    return "WARNING", "ctDNA detected; no response milestone reached yet"


def _next_draw_due(ctx: LineContext, alerts: list[Alert], status: str) -> date | None:
    """C1: the earliest date the next draw is due, from the cadence settings."""
    therapy = ctx.therapy
    if therapy is None:
        return None
    cadence = ctx.settings.cadence
    start = therapy.start_date
    days = np.asarray(ctx.treated_arrays["day"], dtype=float)
    last = max([start, *[pd.Timestamp(d).date() for d in ctx.draw_arrays["collection_date"]]])
    if not (days >= cadence.first_draw_weeks[0] * 7).any():
        due = start + timedelta(weeks=cadence.first_draw_weeks[0])
    elif not (days >= cadence.second_draw_weeks[0] * 7).any():
        due = start + timedelta(weeks=cadence.second_draw_weeks[0])
    else:
        due = last + timedelta(weeks=cadence.maintenance_interval_weeks[0])
    high_risk = any(a.rule_id == "B2" for a in alerts) and np.isnan(ctx.first_clearance_day())
    if status in ("WARNING", "FAILURE") or high_risk:
        due = min(due, last + timedelta(weeks=cadence.after_warning_interval_weeks))
    return max(due, last)


def _draw_window_end(ctx: LineContext, due: date) -> date:
    """The last day of the window the next draw is due in (cadence settings, rule C1)."""
    cadence = ctx.settings.cadence
    therapy = ctx.therapy
    assert therapy is not None
    days = np.asarray(ctx.treated_arrays["day"], dtype=float)
    if not (days >= cadence.first_draw_weeks[0] * 7).any():
        latest = therapy.start_date + timedelta(weeks=cadence.first_draw_weeks[1])
    elif not (days >= cadence.second_draw_weeks[0] * 7).any():
        latest = therapy.start_date + timedelta(weeks=cadence.second_draw_weeks[1])
    else:
        latest = due + timedelta(weeks=cadence.maintenance_interval_weeks[1]
                                 - cadence.maintenance_interval_weeks[0])
    return max(latest, due)


def _overdue_limit(ctx: LineContext, due: date) -> date:
    """The last day before the next draw counts as overdue: window end + grace days."""
    return _draw_window_end(ctx, due) + timedelta(days=ctx.settings.cadence.overdue_grace_days)


def _overdue_alert(ctx: LineContext, due: date, limit: date) -> Alert | None:
    """C1 (INFO): the next draw is overdue (``as_of`` after ``limit``)."""
    if ctx.as_of <= limit:
        return None
    latest = _draw_window_end(ctx, due)
    finding = Finding(gene=None, alteration="next draw", sample_id="(due)",
                      collection_date=due, detected=False,
                      note=f"due {due}, window closed {latest}, "
                           f"{(ctx.as_of - latest).days} days overdue")
    return make_alert(C1, "INFO", [finding], ["Schedule a surveillance draw."], draws=[])
