"""The rule catalogue: one small function per rule, each with a stable ID and its sources.

Rules follow ``../shared/reference/clinical-evidence.md`` section 6 (default rule set v0).
Each rule reads one :class:`LineContext` (a patient's current line of therapy at ``as_of``)
and returns the alerts that are *active* at ``as_of``. FAILURE alerts stay active for the
rest of the line (a clinician has to review them; ELN 2020 treats confirmed failure as a
reason to change treatment, not as a transient state); WARNING and INFO alerts describe
the latest draws. FAILURE always means "early-switch review by a clinician", never an
automatic change of therapy.

Confirmation (section 6, "Core quantities"): the same condition on 2 consecutive
evaluable draws, at least ``confirm_min_days`` and at most ``confirm_max_days`` apart.
Evaluable draws are on-treatment draws that are not non-informative negatives (Q1).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property, wraps
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from pipeline.assessment import Alert, Finding, Therapy, TherapyOption
from pipeline.config import RulesSettings, Settings
from pipeline.kinetics import FOLD_LOWER, FOLD_VALUE, fisher_pvalues
from pipeline.rules.cohort import Columns, LineParts, RowLike

#: How a rule is supported (#13 item 3): ``evidenced`` = directly shown in TKI-treated
#: oncogene-driven NSCLC; ``analogy`` = borrowed from CML (ELN) or IO/chemo ctDNA data;
#: ``convention`` = a scheduling or data-handling convention, not an outcome claim.
EvidenceStrength = Literal["evidenced", "analogy", "convention"]

FAILURE_ACTION = (
    "Early-switch review by the treating clinician: confirm the result, re-genotype "
    "(plasma or tissue) and weigh the options below; this is not an automatic change of therapy."
)


class KnowledgeBaseLike(Protocol):
    """What the rules need from ``pipeline.knowledge.KnowledgeBase``."""

    version: str

    def therapy_options(self, alterations: list[tuple[str, str]],
                        current_drug: str | None, *, prior_drugs: list[str] | None = None,
                        ) -> Any: ...


@dataclass(frozen=True)
class RuleInfo:
    """Catalogue entry: what a rule is, for clinicians and for the audit trail."""

    rule_id: str
    title: str
    tiers: tuple[str, ...]
    trigger: str
    window: str
    confirmation: str
    sources: tuple[str, ...]
    evidence_strength: EvidenceStrength
    sets_status: bool = True  # its WARNING/FAILURE sets the molecular-response status
    needs_therapy_line: bool = True  # False: also evaluated before any line has started
    config_keys: tuple[str, ...] = ()  # ``rules.*`` / ``cadence.*`` keys it reads
    categories: tuple[str, ...] = ()  # knowledge-base categories it judges (#9 item 6)
    clinician: str = ""  # one sentence for clinicians, saying evidenced or analogy

    def strength_label(self) -> str:
        """The label shown in alerts and reports (#13 item 3)."""
        return {
            "evidenced": "evidenced (TKI-treated NSCLC data)",
            "analogy": "analogy (CML ELN / IO ctDNA data; heuristic default)",
            "convention": "convention (heuristic default)",
        }[self.evidence_strength]


@dataclass
class LineContext:
    """Everything a rule may read for one patient at ``as_of`` on the current line."""

    patient_id: str
    as_of: date
    settings: Settings
    kb: KnowledgeBaseLike | None
    therapy: Therapy | None
    line: RowLike | None  # row of Kinetics.lines
    #: Kinetics.draws rows of the line (baseline first); None: the line's ``parts``.
    given_draws: pd.DataFrame | None
    #: Observations of those draws with day, role, marker_key; None: the line's ``parts``.
    given_observations: pd.DataFrame | None
    caveats: list[str] = field(default_factory=list)
    #: The line's precomputed slices of the cohort frames (#11 item 2); None = compute here.
    parts: LineParts | None = None

    @property
    def rules(self) -> RulesSettings:
        return self.settings.rules

    # The line's frames, cut from the cohort frames only when a rule reads them: most
    # rules read arrays and rows (below), and a frame slice costs 0.1-0.2 ms (#11 item 2).

    @cached_property
    def draws(self) -> pd.DataFrame:
        """Kinetics.draws rows of the line (baseline first)."""
        if self.given_draws is not None:
            return self.given_draws
        assert self.parts is not None, "a line context needs draws or parts"
        return self.parts.draws

    @cached_property
    def observations(self) -> pd.DataFrame:
        """Observations of the line's draws, with day, role and marker_key."""
        if self.given_observations is not None:
            return self.given_observations
        assert self.parts is not None and self.parts.has_observations, \
            "a line context needs observations or parts with observations"
        observations = self.parts.observations
        assert observations is not None  # has_observations
        return observations

    @cached_property
    def baseline(self) -> RowLike | None:
        if self.parts is not None:
            return self.parts.baseline
        rows = self.draws[self.draws["role"] == "baseline"]
        return rows.iloc[0] if len(rows) else None

    @property
    def reference(self) -> RowLike:
        """The baseline draw, for rules that checked there is one (``baseline_detected``)."""
        base = self.baseline
        if base is None:
            raise RuntimeError("a rule read the baseline of a line that has none")
        return base

    @cached_property
    def baseline_detected(self) -> bool:
        base = self.baseline
        return base is not None and bool(base["detected"])

    @cached_property
    def provisional(self) -> bool:
        """True when the reference is the first on-treatment draw (#9 item 5)."""
        base = self.baseline
        return base is not None and bool(base.get("provisional", False))

    @cached_property
    def surveillance(self) -> bool:
        """True on a curative/adjuvant line: a negative reference is expected (#9 item 7)."""
        if self.line is None:
            return False
        return str(self.line.get("intent", "palliative")) in ("curative", "adjuvant")

    @cached_property
    def treated(self) -> pd.DataFrame:
        if self.parts is not None:
            return self.parts.treated
        return self.draws[self.draws["role"] == "on_treatment"]

    @cached_property
    def evaluable(self) -> pd.DataFrame:
        """On-treatment draws that can carry a response decision (Q1 excluded)."""
        if self.parts is not None:
            return self.parts.evaluable
        treated = self.treated
        return treated[treated["informative"].astype(bool)]

    @cached_property
    def _first_clearance_day(self) -> float:
        seq = self.evaluable_arrays
        # Positions, not a filtered frame: this runs for every line (#11 item 2).
        cleared = np.flatnonzero(np.asarray(seq["censored"]).astype(bool))
        return float(np.asarray(seq["day"])[cleared[0]]) if len(cleared) else float("nan")

    def first_clearance_day(self) -> float:
        """Day of the first informative negative on the line (NaN when none)."""
        return self._first_clearance_day

    # Columns and rows. With the engine's line parts they are array slices of the cohort
    # frames (no pandas frame or Series built per line; #11 item 2): the same values.

    def from_parts(self, frame: str) -> bool:
        """The line's parts serve ``frame`` (a line without calls has no observations)."""
        return self.parts is not None and (frame != "observations"
                                           or self.parts.has_observations)

    def _arrays(self, frame: str) -> Columns:
        if self.from_parts(frame):
            assert self.parts is not None
            return self.parts.arrays(frame)
        return Columns.of(getattr(self, frame))

    def _row(self, frame: str, position: int) -> RowLike:
        if self.from_parts(frame):
            assert self.parts is not None
            return self.parts.row(frame, position)
        rows: pd.DataFrame = getattr(self, frame)
        return rows.iloc[position]

    @cached_property
    def evaluable_arrays(self) -> Columns:
        """The columns of :attr:`evaluable` as arrays."""
        return self._arrays("evaluable")

    @cached_property
    def treated_arrays(self) -> Columns:
        """The columns of :attr:`treated` as arrays."""
        return self._arrays("treated")

    @cached_property
    def draw_arrays(self) -> Columns:
        """The columns of :attr:`draws` as arrays."""
        return self._arrays("draws")

    @cached_property
    def observation_arrays(self) -> Columns:
        """The columns of :attr:`observations` as arrays."""
        return self._arrays("observations")

    # Rows for findings. With the engine's line parts they are read from cohort arrays, not
    # built as pandas Series (0.1 ms each; #11 item 2): the same cells either way.

    def evaluable_row(self, position: int) -> RowLike:
        """Row ``position`` of :attr:`evaluable` (negative counts from the end)."""
        return self._row("evaluable", position)

    def treated_row(self, position: int) -> RowLike:
        """Row ``position`` of :attr:`treated` (negative counts from the end)."""
        return self._row("treated", position)

    def mask(self, mask: RowMask) -> np.ndarray:
        """A row mask (:func:`row_mask`) over :attr:`observations`, as a bool array: the
        engine's cohort column when there is one, no line frame cut (#11 item 2)."""
        column = MASK_COLUMNS.get(mask)
        if column is not None and self.from_parts("observations"):
            return np.asarray(self.observation_arrays[column], dtype=bool)
        return np.asarray(mask(self.observations), dtype=bool)

    def observation_rows_at(self, positions: Any) -> list[RowLike]:
        """The rows of :attr:`observations` at ``positions``, in that order."""
        return [self._row("observations", int(i)) for i in positions]

    def observation_row(self, position: int) -> RowLike:
        """Row ``position`` of :attr:`observations`."""
        return self._row("observations", position)


# --------------------------------------------------------------------------- helpers

RowMask = Callable[[pd.DataFrame], pd.Series]

#: Per-observation masks, keyed by the column the engine stores them in (#11 item 2).
ROW_MASKS: dict[str, RowMask] = {}


def row_mask(fn: RowMask) -> RowMask:
    """Register a mask that depends on each observation row alone.

    Such a mask gives the same value for a row whether it is computed on the whole cohort
    or on one patient's slice, so the engine computes it once for the cohort (one
    vectorized pass instead of one pandas pass per patient and rule: issue #11 item 2) and
    stores it as column ``mask.<name>``; the wrapped function returns that column when it
    is present and computes the mask otherwise (a frame built outside the engine).
    """
    column = f"mask.{fn.__name__}"

    @wraps(fn)
    def cached(obs: pd.DataFrame) -> pd.Series:
        if column in obs.columns:
            return obs[column]
        return fn(obs)

    ROW_MASKS[column] = fn
    MASK_COLUMNS[cached] = column
    return cached


#: The engine's cohort column of each registered row mask (:meth:`LineContext.mask`).
MASK_COLUMNS: dict[Callable[..., Any], str] = {}


#: Line gates (#11 item 2): per-observation conditions, keyed by name. A rule that declares
#: a gate (``RegisteredRule.gate``) provably returns no alert on a line where no observation
#: meets it, so the engine evaluates each gate once for the cohort and skips the rule there.
LINE_GATES: dict[str, RowMask] = {}


def line_gate(fn: RowMask) -> RowMask:
    """Register ``fn`` (line observations with ``role`` -> bool per row) as a line gate."""
    LINE_GATES[fn.__name__] = fn
    return fn


def new_candidates(obs: pd.DataFrame, mask: pd.Series) -> pd.Series:
    """Detected on-treatment calls in ``mask`` whose marker was not detected at baseline.

    Reads column ``new_since_baseline``, which the engine adds to the line observations
    (``CohortLines``); the rows :func:`new_detections` returns, and what the gates test.
    """
    return pd.Series(_new_since_baseline(obs, mask), index=obs.index)


def _new_since_baseline(obs: pd.DataFrame | Columns, mask: Any) -> np.ndarray:
    """:func:`new_candidates` as a bool array, on a frame or on line arrays (numpy, not
    pandas operators: this runs on every gated line; #11 item 2)."""
    return (np.asarray(mask, dtype=bool) & np.asarray(obs["detected"]).astype(bool)
            & (np.asarray(obs["role"]) == "on_treatment")
            & np.asarray(obs["new_since_baseline"], dtype=bool))


def _date(value: Any) -> date:
    return pd.Timestamp(value).date()


def _text(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def draw_finding(row: RowLike, note: str | None = None) -> Finding:
    """A draw-level finding: the ctDNA level (or its censoring bound), the LoD and the marker.

    #9 item 8: the finding names the gene and alteration whose VAF is the level (or says
    that the level is a tumour fraction / draw-level value) and lists the tracked markers
    detected in the draw.
    """
    detected = bool(row["detected"])
    level = _num(row["ctdna_level"])
    source = str(row["level_source"])
    unit = str(row.get("level_unit", "fraction"))
    shown = (f"{level:.3g} MTM/mL" if unit == "mtm_per_ml" else f"{level:.2%}") \
        if level is not None else ""
    lod = _num(row.get("level_lod", row["lod_vaf"]))
    markers = row.get("level_markers")
    gene = row.get("level_gene") if source == "marker_vaf" and detected else None
    gene = None if gene is None or pd.isna(gene) else str(gene)
    alteration = row.get("level_alteration") if gene else None
    alteration = "ctDNA level" if alteration is None or pd.isna(alteration) else str(alteration)
    what = {"tumor_fraction": "tumour fraction", "marker_vaf": "max VAF of tracked markers"}.get(
        source, f"draw-level {source.removeprefix('draw_')}")
    lod_text = "?" if lod is None else (f"{lod:.3g} MTM/mL" if unit == "mtm_per_ml"
                                        else f"{lod:.2%}")
    text = (f"ctDNA level {shown} ({what}" + (f": {markers}" if markers and
                                                 not pd.isna(markers) else "") + ")"
            if detected and level is not None
            else "ctDNA detected, level not quantifiable" if detected
            else f"not detected (< LoD {lod_text})")
    return Finding(
        gene=gene, alteration=alteration, sample_id=str(row["sample_id"]),
        collection_date=_date(row["collection_date"]),
        vaf=level if row["level_source"] == "marker_vaf" else None, detected=detected,
        lod_vaf=_num(row["lod_vaf"]), alt_reads=_int(row.get("alt_reads")),
        depth=_int(row.get("depth")), ctdna_level=level,
        note="; ".join(t for t in (f"day {int(row['day'])}", text, note) if t),
    )


def obs_finding(row: RowLike, note: str | None = None) -> Finding:
    """A finding for one observed alteration in one draw."""
    return Finding(
        gene=row["gene"] if pd.notna(row["gene"]) else None,
        # ``alteration_name``: the engine's cohort column (kinetics.alteration_names: the
        # vendor's text for a row the knowledge base could not name).
        alteration=_text(row.get("alteration_name", row["alteration"])),
        sample_id=str(row["sample_id"]), collection_date=_date(row["collection_date"]),
        vaf=_num(row["vaf"]), detected=bool(row["detected"]), lod_vaf=_num(row["lod_vaf"]),
        alt_reads=_int(row["alt_reads"]), depth=_int(row["depth"]),
        copy_number=_num(row["copy_number"]), note=note,
    )


def confirmed_pairs(days: np.ndarray, condition: np.ndarray, rules: RulesSettings) -> np.ndarray:
    """True at draw i when draws i-1 and i (consecutive) both meet ``condition``.

    The confirming draw is the next informative draw *whenever it comes* (#9 item 3: real
    intervals are 6-12 months). It must be at least ``confirm_min_days`` later, so that
    a technical repeat is not taken as an independent confirmation; ``confirm_max_days``
    is the target for scheduling the re-draw (rule C1), not an expiry (ELN 2013 "2
    consecutive tests"; ELN 2020 "confirmed within 1-3 months" as a scheduling target).
    """
    cond = np.asarray(condition, dtype=bool)
    gap = np.diff(np.asarray(days, dtype=float), prepend=np.nan)
    prev = np.concatenate([[False], cond[:-1]])
    return cond & prev & (gap >= rules.confirm_min_days)


def _weeks(days: float) -> str:
    return f"week {days / 7:.1f}"


def make_alert(info: RuleInfo, tier: str, findings: list[Finding], actions: list[str],
           evidence: list[str] | None = None, confirmed: bool | None = None,
           draws: list[str] | None = None) -> Alert:
    if tier == "FAILURE" and FAILURE_ACTION not in actions:
        actions = [FAILURE_ACTION, *actions]
    used = draws if draws is not None else list(dict.fromkeys(f.sample_id for f in findings))
    return Alert(
        rule_id=info.rule_id, tier=tier, title=info.title, findings=findings,
        suggested_actions=actions,
        evidence=[*(evidence or []), *info.sources,
                  f"evidence strength: {info.strength_label()}"],
        evidence_strength=info.evidence_strength, confirmed=confirmed, draws_used=used,
    )


def attach_therapy_options(alert: Alert, ctx: LineContext,
                           alterations: list[tuple[str, str]]) -> Alert:
    """Therapy options from the knowledge base; unverified knowledge stays labelled."""
    drug = ctx.therapy.drug if ctx.therapy else None
    if ctx.kb is None:
        alert.unverified_knowledge = True
        alert.suggested_actions.append(
            "Therapy options unavailable: no knowledge base was loaded for this evaluation."
        )
        return alert
    prior = "" if ctx.line is None else str(ctx.line.get("prior_drugs") or "")  # issue #13
    advice = ctx.kb.therapy_options(alterations, drug,
                                    prior_drugs=[d for d in prior.split(";") if d])
    options = []
    for option in getattr(advice, "options", []) or []:
        data = option.model_dump() if hasattr(option, "model_dump") else dict(vars(option))
        data = {k: v for k, v in data.items() if k in TherapyOption.model_fields}
        options.append(TherapyOption.model_validate(data))
    alert.therapy_options = options
    unverified = bool(getattr(advice, "unverified", False)) or any(
        not o.verified for o in options
    )
    alert.unverified_knowledge = unverified
    for note in getattr(advice, "notes", []) or []:
        alert.suggested_actions.append(str(note))
    if unverified:
        alert.suggested_actions.append(
            "Some therapy information is UNVERIFIED against its primary source; check before use."
        )
    alert.evidence.extend(str(c) for c in getattr(advice, "citations", []) or [])
    return alert


# --------------------------------------------------------------------------- catalogue

_ELN2020 = "ELN 2020 (Hochhaus, Leukemia 2020;34:966) [V]"
_ELN2025 = ("ELN 2025 (Leukemia 2025;39:1797, PMC12310532) [V2]: a switch after a missed "
            "milestone weighs individual circumstances")
_CTMONITR = "ctMoniTR TKI aggregate, Clin Cancer Res 2025 (doi:10.1158/1078-0432.CCR-24-3612) [V]"
_ALTA3 = "ALTA-3, JTO 2023: baseline ctDNA ALK fusion detectable in 34% [V]"
_CONFIRM = ("next informative draw >= confirm_min_days later, whenever it comes "
            "(confirm_max_days is the re-draw target, not an expiry)")

CATALOGUE: dict[str, RuleInfo] = {}


def register(info: RuleInfo) -> RuleInfo:
    """Add a rule's declaration to :data:`CATALOGUE` (one declaration per rule ID)."""
    if info.rule_id in CATALOGUE:
        raise ValueError(f"rule {info.rule_id} declared twice")
    CATALOGUE[info.rule_id] = info
    return info


B1 = register(RuleInfo(
    "B1", "Not evaluable for response: ctDNA not detected at baseline", ("INFO",),
    "No tracked marker detected at the baseline draw (or at the provisional reference)",
    "Baseline (last draw <= baseline_window_days before start)", "none",
    (_ALTA3, "FoundationOne Liquid CDx: TF < 1% negatives uninformative (CCR 2024) [V]",
     _CTMONITR + ": clearance requires baseline detection"),
    "evidenced", sets_status=False, config_keys=("baseline_window_days",),
    clinician="Evidenced: response milestones need ctDNA detected before treatment; "
              "emergence and resistance rules stay active."))
B2 = register(RuleInfo(
    "B2", "High-risk baseline profile", ("WARNING",),
    "Baseline ctDNA detected, and/or EML4-ALK variant 3, and/or a TP53 mutation at baseline",
    "Baseline; shown as baseline context once an on-treatment draw is assessed", "none",
    ("ELN 2020 baseline warning (high-risk ACA/ELTS) analogue [V]",
     "ALTA-3: PFS 11.1 vs 22.5 mo with detectable baseline ctDNA (HR 0.48) [V]",
     "Lin, JCO 2018: variant 3 -> 57% ALK mutations, 32% G1202R [V]",
     "CROWN/ESMO: variant 3 and TP53 poor prognosis [V]"),
    "analogy", sets_status=False,
    config_keys=("high_risk_baseline_genes", "high_risk_fusion_variant_pattern"),
    clinician="Prognostic data are evidenced; the 'baseline warning' tier is an analogy to "
              "ELN's high-risk baseline."))
E1 = register(RuleInfo(
    "E1", "Molecular clearance by week 10", ("INFO",),
    "All tracked markers below the LoD on an informative draw", "By week 10 (clearance_by_week)",
    "none (later re-detection is handled by P1/P2)",
    (_CTMONITR + ": persistent detection vs clearance OS HR 2.12",
     "Cancer Res 2019;79:1204: >98% ctDNA elimination in TKI responders [V]"),
    "evidenced", sets_status=False, config_keys=("clearance_by_week",),
    clinician="Evidenced: clearance within 10 weeks of a TKI goes with longer survival "
              "(ctMoniTR, pooled drivers, not ALK-only)."))
E2 = register(RuleInfo(
    "E2", "Partial molecular response", ("WARNING",),
    "Detected, decrease from baseline >= partial_decrease (50%); 'deep' when >= 90%",
    "Weeks 3-10 (evaluated until the week-12 landmark)", "none",
    ("ctMoniTR IO/chemo thresholds 50/90/100% (JITC 2025) [V2]; not validated for TKIs",
     "Cancer Res 2019;79:1204: TKI response is bimodal [V]"),
    "analogy", config_keys=("partial_decrease", "deep_decrease", "early_window_start_week",
                            "early_window_end_week"),
    clinician="Analogy: the 50/90 % tiers come from immunotherapy/chemotherapy ctDNA data."))
E3 = register(RuleInfo(
    "E3", "Insufficient early molecular response", ("WARNING", "FAILURE"),
    "Detected with < 50% decrease from baseline, or any increase",
    "Weeks 3-10 (the confirming draw may fall later)",
    "FAILURE when confirmed on the " + _CONFIRM + "; otherwise WARNING",
    (_ELN2020 + ": >10% at 3 months is failure only when confirmed", _ELN2025,
     "Cancer Res 2019;79:1204: bimodal TKI response, non-responders' PFS 1.6 mo [V]"),
    "analogy", config_keys=("partial_decrease", "early_window_start_week",
                            "early_window_end_week", "confirm_min_days"),
    clinician="Analogy to ELN 2020 'failure if confirmed'; ELN 2025 asks the switch to weigh "
              "the individual patient."))
E4 = register(RuleInfo(
    "E4", "ctDNA still detectable at the second landmark", ("WARNING", "FAILURE"),
    "Never cleared and still detected", "From week 12 (second landmark weeks 12-16)",
    "FAILURE when the level rises on 2 consecutive draws (each rise significant by Fisher test)",
    (_ELN2020 + ": 6-month milestone analogue", _ELN2025, "ctMoniTR second window 7-13 weeks [V2]"),
    "analogy", config_keys=("second_landmark_start_week", "second_landmark_end_week",
                            "significance_alpha"),
    clinician="Analogy: the week 12-16 landmark mirrors ELN's 6-month milestone."))
P1 = register(RuleInfo(
    "P1", "Loss of molecular response (re-detection after clearance)", ("WARNING",),
    "After an informative clearance, a tracked marker is detected again; a single draw "
    ">= 10x the nadir or above urgent_level_ceiling asks for an URGENT confirmatory draw",
    "Any time", "none (confirmation escalates to P2)",
    (_ELN2020 + ": loss of MMR = warning at any time",
     "ELN 2013 warning -> test up to monthly (BJH guidance) [V2]"),
    "analogy", config_keys=("rise_from_nadir_fold", "urgent_level_ceiling"),
    clinician="Analogy to ELN 'loss of major molecular response' (a warning at any time)."))
P2 = register(RuleInfo(
    "P2", "Confirmed loss of molecular response", ("FAILURE",),
    "Re-detection after clearance on 2 consecutive draws (or a confirmed >= 1-log rise "
    "from the nadir)", "Any time", _CONFIRM,
    ("ELN 2013: confirmed loss of MMR = failure [V2]", _ELN2025,
     "NCCN: 1-log rise with loss of MMR -> mutation analysis [V2]",
     "Cancer Res 2019: ctDNA lead time about 4-8.7 weeks in NSCLC [V]"),
    "analogy", config_keys=("confirm_min_days", "rise_from_nadir_fold"),
    clinician="Analogy to ELN 2013 'confirmed loss of MMR = failure'; ctDNA lead time over "
              "imaging is evidenced in NSCLC."))
P3 = register(RuleInfo(
    "P3", "Rising ctDNA without prior clearance", ("WARNING", "FAILURE"),
    ">= 2x rise from the nadir on 2 consecutive draws (WARNING); >= 10x on 2 draws "
    "(FAILURE); a single draw >= 10x the nadir or above urgent_level_ceiling is an URGENT "
    "WARNING naming the draw", "Any time", _CONFIRM,
    ("Signatera ctDNA velocity (+27 vs +137%/month) [V press]",
     "Branford, Blood 2014;124:511: halving time rescues single thresholds [V]",
     "NCCN: 1-log rise -> mutation analysis [V2]"),
    "analogy", config_keys=("never_cleared_warning_fold", "rise_from_nadir_fold",
                            "urgent_level_ceiling", "confirm_min_days"),
    clinician="Analogy: the 1-log rise comes from CML (NCCN); velocity data come from "
              "colorectal MRD."))
P4 = register(RuleInfo(
    "P4", "Emerging clone (new somatic alteration after treatment start)",
    ("WARNING", "FAILURE"),
    "A non-CHIP somatic alteration not detected at baseline (and not judged by R1-R6) is "
    "detected on treatment: WARNING when confirmed on 2 consecutive draws or rising >= "
    "emerging_rise_fold to >= emerging_min_vaf, or on one draw >= emerging_single_draw_vaf; "
    "FAILURE when confirmed AND rising to >= emerging_min_vaf",
    "Any time on the line, even when the baseline markers stay cleared", _CONFIRM,
    ("Angeles, NPJ Precis Oncol 2021: serial plasma tracks tumour evolution in ALK+ NSCLC "
     "[V title]", "McCoach, Clin Cancer Res 2018: new alterations at progression [V]",
     "ELN 2013: confirmed loss of response = failure [V2]"),
    "analogy", categories=("other",),
    config_keys=("emerging_min_vaf", "emerging_rise_fold", "emerging_single_draw_vaf",
                 "confirm_min_days"),
    clinician="Analogy: a new tumour clone is treated like ELN's loss of response; the "
              "fold and floor are heuristic defaults."))
R0 = register(RuleInfo(
    "R0", "Pre-existing resistance to the current drug", ("WARNING", "FAILURE"),
    "An ALK resistance or bypass alteration detected at baseline or any draw of the line "
    "(new or not) that the knowledge base rates resistant (FAILURE) or intermediate "
    "(WARNING) to the current drug; a bypass alteration without drug data is a WARNING",
    "Baseline and every draw of the current line", "none (primary resistance)",
    (_ELN2020 + ": resistance mutations = failure at any time",
     "Gainor, Cancer Discov 2016: each ALK TKI has its own mutation spectrum [V]"),
    "evidenced", needs_therapy_line=True, categories=("alk_resistance", "bypass"),
    clinician="Evidenced concept (drug-specific ALK resistance); the per-drug activity "
              "cells carry their own knowledge-base labels."))
R1 = register(RuleInfo(
    "R1", "New ALK kinase-domain resistance mutation", ("WARNING", "FAILURE"),
    "An ALK resistance mutation (knowledge-base category alk_resistance) not present at "
    "baseline is detected above the LoD", "Any time on the line",
    "FAILURE when detected on 2 consecutive draws (" + _CONFIRM + "), or its VAF rises "
    "significantly (Fisher exact test on read counts)",
    (_ELN2020 + ": resistance mutations = failure",
     "McCoach, Clin Cancer Res 2018: 53% of progressing plasma samples carry ALK mutations [V]"),
    "evidenced", needs_therapy_line=False, categories=("alk_resistance",),
    config_keys=("confirm_min_days", "significance_alpha"),
    clinician="Evidenced: ALK resistance mutations in plasma mark progression on ALK TKIs."))
R2 = register(RuleInfo(
    "R2", "Two or more ALK resistance mutations (compound or polyclonal)", ("FAILURE",),
    ">= 2 distinct ALK kinase-domain mutations in one draw, at least one new", "Any time",
    "none",
    ("Lin & Shaw, eBioMedicine 2019: compound mutations in about 35% of lorlatinib-resistant "
     "biopsies [V]",),
    "analogy", needs_therapy_line=False, categories=("alk_resistance",),
    clinician="Analogy from tissue: compound vs polyclonal cannot be told apart in plasma "
              "without phasing."))
R3 = register(RuleInfo(
    "R3", "MET bypass (amplification or fusion)", ("WARNING", "FAILURE"),
    "MET plasma CN >= 2.1 (WARNING), >= 2.7 (FAILURE); fold-change and absolute-CN assays "
    "use their own cut-offs; a MET fusion is FAILURE", "Any time", "none",
    ("Dagogo-Jack, Clin Cancer Res 2020: MET amp 15% after next-gen TKIs, 22% after "
     "lorlatinib [V]", "PMC10552597: pCN floor 2.1, >= 2.7 fewer overlapping drivers [V] "
     "(treatment-naive cohort: the 2.7 FAILURE cut-off is an analogy)"),
    "analogy", needs_therapy_line=False, categories=("bypass",),
    config_keys=("met_pcn_warning", "met_pcn_failure", "met_fold_change_warning",
                 "met_fold_change_failure", "met_absolute_cn_failure"),
    clinician="MET bypass after ALK TKIs is evidenced; the plasma copy-number cut-offs are "
              "an analogy from a treatment-naive cohort."))
R4 = register(RuleInfo(
    "R4", "New MAPK bypass mutation (KRAS/NRAS G12/G13/Q61, MAP2K1, BRAF V600E)",
    ("WARNING", "FAILURE"),
    "A KRAS/NRAS G12/G13/Q61, MAP2K1 activating or BRAF V600E mutation not present at "
    "baseline", "Any time", "FAILURE when detected on 2 consecutive draws (" + _CONFIRM + ")",
    ("CROWN 5-year / Lin & Shaw: ALK-independent resistance after lorlatinib [V]",
     "Hrustanovic, Nat Med 2015: RAS-MAPK dependence [V]",
     "FoundationOne Liquid CDx list: BRAF V600E -> BRAF + MEK inhibition [V]"),
    "analogy", needs_therapy_line=False, categories=("bypass",),
    config_keys=("confirm_min_days",),
    clinician="Analogy: MAPK reactivation is an evidenced mechanism, but plasma frequencies "
              "and tiers are heuristic."))
R5 = register(RuleInfo(
    "R5", "New bypass alteration (other knowledge-base bypass: PIK3CA, EGFR, ERBB2, NF2, ...)",
    ("WARNING", "FAILURE"),
    "A knowledge-base bypass alteration not covered by R3/R4, absent at baseline, detected "
    "on treatment", "Any time",
    "FAILURE when detected on 2 consecutive draws (" + _CONFIRM + ")",
    ("alk-knowledge.md 3.3: ALK-independent bypass tracks (several recalled-unverified)",
     "Recondo, Clin Cancer Res 2020: NF2 loss in lorlatinib resistance [V abstract]"),
    "analogy", needs_therapy_line=False, categories=("bypass",),
    config_keys=("confirm_min_days",),
    clinician="Analogy: these bypass tracks are reported in ALK+ resistance but several are "
              "unverified in the knowledge base."))
R6 = register(RuleInfo(
    "R6", "Histologic transformation markers (RB1 loss with TP53)", ("WARNING", "FAILURE"),
    "An RB1 loss-of-function alteration detected on the line together with a TP53 "
    "alteration", "Any time",
    "FAILURE when RB1 is detected on 2 consecutive draws (" + _CONFIRM + ")",
    ("alk-knowledge.md 3.3: small-cell transformation in ALK+ NSCLC (recalled-unverified)",
     "EGFR-mutant NSCLC: RB1+TP53 loss precedes SCLC transformation (Offin, JTO 2019) [U]"),
    "analogy", needs_therapy_line=False, categories=("transformation",),
    config_keys=("confirm_min_days",),
    clinician="Analogy from EGFR-mutant NSCLC: RB1 and TP53 loss suggest small-cell "
              "transformation; a tissue biopsy decides."))
Q1 = register(RuleInfo(
    "Q1", "Non-informative negative draw", ("INFO",),
    "All markers below the LoD, but the LoD lies above the last detected level",
    "Any", "none; the draw cannot satisfy E1 or clear P1",
    ("Signatera 'qualified' values [V2]", "FoundationOne Liquid CDx TF < 1% [V]"),
    "evidenced", sets_status=False,
    clinician="Evidenced: a negative with a poor LoD does not prove clearance."))
Q2 = register(RuleInfo(
    "Q2", "Clonal haematopoiesis variant excluded from the ctDNA level", ("INFO",),
    "Variant in a knowledge-base CHIP gene (plus any rules.chip_genes a lab adds) or category "
    "chip", "Any", "none",
    ("Razavi 2019 via bioSkills [V2]", "FoundationOne Tracker excludes non-tumour variants [V]"),
    "evidenced", sets_status=False, needs_therapy_line=False, categories=("chip",),
    config_keys=("chip_genes",),
    clinician="Evidenced: clonal haematopoiesis variants in plasma are not tumour DNA."))
S1 = register(RuleInfo(
    "S1", "Surveillance (curative/adjuvant intent): conversion to ctDNA-positive",
    ("WARNING", "FAILURE"),
    "On a line declared curative or adjuvant: a negative reference is expected; a positive "
    "draw (variant or draw-level call above its LoD) is a WARNING, confirmed on the next "
    "draw a FAILURE (molecular relapse)", "Any time on the line", _CONFIRM,
    ("FDA ctDNA guidance (Nov 2024): early-stage curative-intent settings [V2]",
     "RaDaR LUCID: ctDNA preceded recurrence by a median 212.5 days [V press]",
     "ALINA: adjuvant alectinib after resection (Lin & Gainor, TLCR 2024) [V2]"),
    "analogy", config_keys=("confirm_min_days",),
    clinician="Analogy: post-surgery MRD conversion is evidenced in early-stage NSCLC; its use "
              "under adjuvant ALK TKIs is not yet validated."))
C1 = register(RuleInfo(
    "C1", "Surveillance draw overdue", ("INFO",),
    "No draw by the end of the cadence window plus overdue_grace_days",
    "Baseline, weeks 3-6, weeks 8-10, then every 8-12 weeks; about 4 weeks after a WARNING",
    "none",
    ("ELN warning -> test up to monthly [V2]", "CROWN: imaging every 8 weeks [V]"),
    "convention", sets_status=False,
    config_keys=("first_draw_weeks", "second_draw_weeks", "maintenance_interval_weeks",
                 "after_warning_interval_weeks", "overdue_grace_days"),
    clinician="Convention: draw cadence aligned with imaging; not an outcome claim."))

C2_CAVEAT = (
    "C2: a negative plasma result does not downgrade CNS surveillance (brain metastases "
    "shed poorly into plasma; CROWN tracks intracranial progression separately)."
)


# --------------------------------------------------------------------------- rules


def rule_b1(ctx: LineContext) -> list[Alert]:
    """B1: baseline missing or negative -> not evaluable for response rules."""
    base = ctx.baseline
    if ctx.surveillance:
        return []  # a negative reference is the expected state on a curative/adjuvant line
    actions = ["Surveillance for emerging resistance only (R1-R4 remain active)."]
    if base is None:
        finding = Finding(
            gene=None, alteration="ctDNA level", sample_id="(none)",
            collection_date=ctx.therapy.start_date if ctx.therapy else ctx.as_of,
            detected=False,
            note=f"no draw within {ctx.rules.baseline_window_days} days before the line start",
        )
        return [make_alert(B1, "INFO", [finding], actions, draws=[])]
    if bool(base["detected"]):
        return []
    return [make_alert(B1, "INFO", [draw_finding(base)], actions)]


def rule_b2(ctx: LineContext) -> list[Alert]:
    """B2: detected baseline ctDNA, EML4-ALK variant 3 or TP53 -> high-risk profile."""
    base = ctx.baseline
    if base is None or ctx.provisional:
        return []
    obs = ctx.observation_arrays
    # Plain numpy over the line's rows, then Python over the few baseline calls: B2 runs on
    # every line with a baseline, and pandas masks here cost 5 ms per patient (#11 item 2).
    at_base = np.flatnonzero((np.asarray(obs["sample_id"]) == base["sample_id"])
                             & np.asarray(obs["detected"], dtype=bool))
    pattern = re.compile(ctx.rules.high_risk_fusion_variant_pattern)
    high_genes = set(ctx.rules.high_risk_baseline_genes)
    is_v3: list[int] = []
    high_gene: list[int] = []
    columns = [np.asarray(obs[c]) for c in ("category", "alteration", "gene", "is_chip")]
    for pos in at_base:
        category, alteration, gene, is_chip = (column[pos] for column in columns)
        if isinstance(category, str) and category == "driver" and pattern.search(
                str(alteration)):
            is_v3.append(int(pos))
        gene_text = "" if gene is None or pd.isna(gene) else str(gene)
        if gene_text.upper() in high_genes and not bool(is_chip):
            high_gene.append(int(pos))
    if not (bool(base["detected"]) or is_v3 or high_gene):
        return []
    findings = [draw_finding(base)] if bool(base["detected"]) else []
    findings += [obs_finding(ctx.observation_row(pos), "EML4-ALK variant 3") for pos in is_v3]
    findings += [obs_finding(ctx.observation_row(pos), "high-risk co-mutation")
                 for pos in high_gene]
    return [make_alert(B2, "WARNING", findings, [
        "High-risk baseline profile: keep the shorter (about 4-weekly) draw interval until "
        "clearance.",
    ])]


def _early_state(ctx: LineContext) -> tuple[Columns, float]:
    """The line's evaluable draws (as arrays) and the day of first clearance (NaN: none)."""
    return ctx.evaluable_arrays, ctx.first_clearance_day()


def rule_e1(ctx: LineContext) -> list[Alert]:
    """E1: cleared by week 10 and still clear at the latest evaluable draw -> OPTIMAL."""
    if not ctx.baseline_detected or ctx.provisional or ctx.surveillance:
        return []
    seq, first_clear = _early_state(ctx)
    if not len(seq) or np.isnan(first_clear) or not bool(seq["censored"][-1]):
        return []
    if first_clear > ctx.rules.clearance_by_week * 7:
        return []
    cleared = ctx.evaluable_row(_first_position(seq, first_clear))
    findings = [draw_finding(ctx.reference, "baseline"), draw_finding(cleared, "clearance")]
    latest = ctx.evaluable_row(-1)
    if latest["sample_id"] != cleared["sample_id"]:
        findings.append(draw_finding(latest, "latest evaluable draw, still below LoD"))
    return [make_alert(E1, "INFO", findings, [
        "Continue therapy and the maintenance draw cadence (every 8-12 weeks).",
    ], evidence=[f"cleared at {_weeks(first_clear)}"])]


def _first_position(seq: Columns, day: float) -> int:
    """Position of the first row of ``seq`` on ``day`` (a day known to be there)."""
    return int(np.flatnonzero(np.asarray(seq["day"], dtype=float) == day)[0])


# Numpy over the line's draws rather than pandas Series: these run for every line and the
# pandas overhead dominated the cohort evaluation (#11 item 2); same comparisons, NaN false.
def _early_window(ctx: LineContext, seq: Columns) -> np.ndarray:
    rules = ctx.rules
    days = np.asarray(seq["day"], dtype=float)
    return (days >= rules.early_window_start_week * 7) & (
        days <= rules.early_window_end_week * 7
    )


def _insufficient(ctx: LineContext, seq: Columns) -> np.ndarray:
    """Detected with a decrease from baseline below ``partial_decrease`` (or an increase)."""
    exact = np.asarray(seq["fold_from_baseline_kind"]) == FOLD_VALUE
    return np.asarray(seq["detected"]).astype(bool) & exact & (
        np.asarray(seq["decrease_from_baseline"], dtype=float) < ctx.rules.partial_decrease
    )


def rule_e2_e3(ctx: LineContext) -> list[Alert]:
    """E2 (partial response, WARNING) and E3 (insufficient response, FAILURE if confirmed)."""
    # A provisional (on-treatment) reference cannot measure an early decrease (#9 item 5).
    if not ctx.baseline_detected or ctx.provisional or ctx.surveillance:
        return []
    seq, first_clear = _early_state(ctx)
    if not len(seq):
        return []
    rules = ctx.rules
    days = np.asarray(seq["day"], dtype=float)
    before_clear = np.isnan(first_clear) | (days < first_clear)
    window = _early_window(ctx, seq) & before_clear
    insufficient = _insufficient(ctx, seq) & before_clear
    alerts: list[Alert] = []

    # E3 confirmed: an insufficient draw in weeks 3-10 confirmed by the next draw.
    started = np.concatenate([[False], (insufficient & window)[:-1]])
    confirmed = confirmed_pairs(days, insufficient, rules) & started
    base = ctx.reference  # E2/E3 run only with a detected baseline
    if confirmed.any():
        i = int(np.flatnonzero(confirmed)[0])
        pair = [ctx.evaluable_row(i - 1), ctx.evaluable_row(i)]
        findings = [draw_finding(base, "baseline")] + [
            draw_finding(r, f"decrease from baseline {r['decrease_from_baseline']:.0%}")
            for r in pair
        ]
        return [make_alert(E3, "FAILURE", findings, [
            "Re-genotype plasma (or tissue) for resistance mechanisms.",
        ], confirmed=True, evidence=[
            f"confirmed on {pair[0]['sample_id']} and {pair[1]['sample_id']} "
            f"({int(pair[1]['day'] - pair[0]['day'])} days apart)",
        ])]

    latest = ctx.evaluable_row(-1)
    latest_day = float(latest["day"])
    applicable = (
        rules.early_window_start_week * 7 <= latest_day < rules.second_landmark_start_week * 7
        and bool(latest["detected"]) and bool(before_clear[-1])
    )
    if not applicable:
        return alerts
    decrease = latest["decrease_from_baseline"]
    findings = [draw_finding(base, "baseline"), draw_finding(
        latest, None if pd.isna(decrease) else f"decrease from baseline {decrease:.0%}")]
    if bool(insufficient[-1]):
        alerts.append(make_alert(E3, "WARNING", findings, [
            f"Unconfirmed: repeat the draw in {rules.confirm_min_days}-28 days to confirm "
            "before any early-switch review.",
        ], confirmed=False))
    elif latest["fold_from_baseline_kind"] == FOLD_VALUE:
        depth = f"deep (>= {rules.deep_decrease:.0%})" if decrease >= rules.deep_decrease \
            else f"partial (>= {rules.partial_decrease:.0%})"
        alerts.append(make_alert(E2, "WARNING", findings, [
            "Partial molecular response: re-draw in about 4 weeks.",
        ], evidence=[f"{depth} decrease from baseline at {_weeks(latest_day)}"]))
    return alerts


def _fisher_rise(p: Any, alpha: float) -> bool:
    """A rise counts when the read-count test supports it, or when reads are unknown."""
    return bool(pd.isna(p) or p < alpha)


def rule_e4(ctx: LineContext) -> list[Alert]:
    """E4: never cleared and still detected from week 12; FAILURE when rising on 2 draws."""
    if not ctx.baseline_detected or ctx.surveillance:
        return []
    seq, first_clear = _early_state(ctx)
    rules = ctx.rules
    if not len(seq) or not np.isnan(first_clear):
        return []
    latest = ctx.evaluable_row(-1)
    landmark = rules.second_landmark_start_week * 7
    if float(latest["day"]) < landmark or not bool(latest["detected"]):
        return []
    level = np.asarray(seq["ctdna_level"], dtype=float)
    prev = np.concatenate([[np.nan], level[:-1]])
    rise = (level > prev) & np.array(
        [_fisher_rise(p, rules.significance_alpha) for p in seq["fisher_p"]]
    )
    days = np.asarray(seq["day"], dtype=float)
    two = rise & np.concatenate([[False], rise[:-1]])
    # The second rise is confirmed whenever the next draw comes (#9 item 3).
    escalate = two & (days >= landmark)
    at_landmark = np.flatnonzero((days >= landmark)
                                 & (days <= rules.second_landmark_end_week * 7))
    findings = ([draw_finding(ctx.evaluable_row(int(i))) for i in at_landmark]
                or [draw_finding(latest)])
    if escalate.any():
        i = int(np.flatnonzero(escalate)[0])
        rows = [ctx.evaluable_row(i - 2), ctx.evaluable_row(i - 1), ctx.evaluable_row(i)]
        return [make_alert(E4, "FAILURE", [draw_finding(r) for r in rows], [
            "Re-genotype plasma (or tissue) for resistance mechanisms.",
        ], confirmed=True, evidence=[
            "level rising on 2 consecutive draws: " + " -> ".join(
                f"{r['ctdna_level']:.4g}" for r in rows),
        ])]
    if latest["sample_id"] not in {f.sample_id for f in findings}:
        findings.append(draw_finding(latest, "latest draw"))
    return [make_alert(E4, "WARNING", findings, [
        "Persistent ctDNA at the second landmark: draw about every 4 weeks; consider imaging.",
    ])]


def rule_p1_p2(ctx: LineContext) -> list[Alert]:
    """P1 (re-detection after clearance, WARNING) and P2 (confirmed, FAILURE)."""
    if not ctx.baseline_detected or ctx.surveillance:
        return []
    seq, first_clear = _early_state(ctx)
    if np.isnan(first_clear):
        return []
    days = np.asarray(seq["day"], dtype=float)
    detected = np.asarray(seq["detected"], dtype=bool)
    later = days > first_clear
    if not (later & detected).any():
        return []  # nothing re-detected after clearance: no P1/P2 (the usual case, #11)
    after = np.flatnonzero(later)  # positions in seq of the draws after clearance
    detected = detected[after]
    confirmed = confirmed_pairs(days[after], detected, ctx.rules)
    cleared_row = ctx.evaluable_row(_first_position(seq, first_clear))
    if confirmed.any():
        i = int(np.flatnonzero(confirmed)[0])
        pair = [ctx.evaluable_row(int(after[i - 1])), ctx.evaluable_row(int(after[i]))]
        log_rise = all(
            r["fold_from_nadir_kind"] in (FOLD_VALUE, FOLD_LOWER)
            and r["fold_from_nadir"] >= ctx.rules.rise_from_nadir_fold for r in pair
        )
        findings = [draw_finding(cleared_row, "clearance")] + [
            draw_finding(r, "re-detected") for r in pair]
        return [make_alert(P2, "FAILURE", findings, [
            "Resistance work-up: re-genotype plasma/tissue (rules R1-R3).",
        ], confirmed=True, evidence=[
            f"re-detected on {pair[0]['sample_id']} and {pair[1]['sample_id']}"
            + (f"; >= {ctx.rules.rise_from_nadir_fold:g}x above the nadir" if log_rise else ""),
        ])]
    latest = ctx.evaluable_row(int(after[-1]))
    if not bool(latest["detected"]):
        return []
    note = None
    if latest["fold_from_nadir_kind"] in (FOLD_VALUE, FOLD_LOWER):
        note = f">= {latest['fold_from_nadir']:.3g}x the nadir (nadir is an LoD bound)"
    urgent = urgent_rise(ctx, latest)
    action = (f"URGENT: {urgent}; draw a confirmatory sample now (confirms "
              f"{latest['sample_id']})." if urgent else
              "Loss of molecular response: repeat the draw in about 4 weeks to confirm.")
    return [make_alert(P1, "WARNING", [draw_finding(cleared_row, "clearance"),
                                       draw_finding(latest, note)], [action],
                       confirmed=False, evidence=[urgent] if urgent else None)]


def urgent_rise(ctx: LineContext, row: RowLike) -> str:
    """Why one draw needs an urgent confirmatory draw (#9 item 3), or "".

    A single draw >= ``rise_from_nadir_fold`` above the nadir (exact or a lower bound) or
    at or above ``urgent_level_ceiling`` (fraction levels only).
    """
    rules = ctx.rules
    if not bool(row["detected"]):
        return ""
    # The first on-treatment draw has no nadir before it: its reference is the baseline.
    kind, fold, ref = row["fold_from_nadir_kind"], row["fold_from_nadir"], "the nadir"
    if kind not in (FOLD_VALUE, FOLD_LOWER) and pd.isna(row.get("nadir_before")):
        kind, fold = row["fold_from_baseline_kind"], row["fold_from_baseline"]
        ref = "the provisional reference" if ctx.provisional else "baseline"
    if kind in (FOLD_VALUE, FOLD_LOWER) and pd.notna(fold) \
            and fold >= rules.rise_from_nadir_fold:
        bound = ">= " if kind == FOLD_LOWER else ""
        return (f"single-draw rise {bound}{fold:.3g}x from {ref} on {row['sample_id']} "
                f"({_date(row['collection_date'])})")
    level = row["ctdna_level"]
    if row.get("level_unit", "fraction") == "fraction" and pd.notna(level) \
            and level >= rules.urgent_level_ceiling:
        return (f"ctDNA level {level:.1%} on {row['sample_id']} "
                f"({_date(row['collection_date'])}) is above the "
                f"{rules.urgent_level_ceiling:.0%} ceiling")
    return ""


def rule_p3(ctx: LineContext) -> list[Alert]:
    """P3: never cleared, >= 2x (WARNING) or >= 10x (FAILURE) above nadir on 2 draws."""
    if not ctx.baseline_detected or ctx.surveillance:
        return []
    seq, first_clear = _early_state(ctx)
    if not len(seq) or not np.isnan(first_clear):
        return []
    rules = ctx.rules
    exact = np.asarray(seq["fold_from_nadir_kind"]) == FOLD_VALUE
    fold = np.asarray(seq["fold_from_nadir"], dtype=float)
    days = np.asarray(seq["day"], dtype=float)
    fail = confirmed_pairs(days, exact & (fold >= rules.rise_from_nadir_fold), rules)
    warn = confirmed_pairs(days, exact & (fold >= rules.never_cleared_warning_fold), rules)

    def findings_for(i: int) -> list[Finding]:
        rows = [ctx.evaluable_row(i - 1), ctx.evaluable_row(i)]
        nadir = rows[0]["nadir_before_sample_id"]
        out = [draw_finding(r) for r in _draws_of_sample(ctx, seq, nadir)]
        return out + [draw_finding(r, f"{r['fold_from_nadir']:.3g}x the nadir, Fisher p="
                                      f"{r['fisher_p']:.3g}") for r in rows]

    if fail.any():
        i = int(np.flatnonzero(fail)[0])
        return [make_alert(P3, "FAILURE", findings_for(i), [
            "Resistance work-up: re-genotype plasma/tissue (rules R1-R3).",
        ], confirmed=True)]
    if warn[-1]:
        return [make_alert(P3, "WARNING", findings_for(len(seq) - 1), [
            "Rising ctDNA: draw about every 4 weeks; consider imaging.",
        ], confirmed=True)]
    latest = ctx.evaluable_row(-1)
    urgent = urgent_rise(ctx, latest)
    if urgent:
        nadir = latest["nadir_before_sample_id"]
        rows = [*_draws_of_sample(ctx, seq, nadir), latest]
        return [make_alert(P3, "WARNING", [draw_finding(r) for r in rows], [
            f"URGENT: {urgent}; draw a confirmatory sample now. Confirmed on the next "
            "draw, this is FAILURE (early-switch review).",
        ], confirmed=False, evidence=[urgent])]
    return []


def _draws_of_sample(ctx: LineContext, seq: Columns,
                     sample_id: Any) -> list[RowLike]:
    """The rows of ``seq`` (``ctx.evaluable``) of draw ``sample_id``, in order."""
    return [ctx.evaluable_row(int(i))
            for i in np.flatnonzero(np.asarray(seq["sample_id"]) == sample_id)]


def new_detections(ctx: LineContext, mask: np.ndarray) -> np.ndarray:
    """On-treatment detections matching ``mask`` whose marker was not detected at baseline.

    ``mask``: bool per row of ``ctx.observations`` (``ctx.mask(...)``, ``_category_is``).

    Returns their positions in ``ctx.observations`` (rows: ``ctx.observation_rows_at``;
    columns: ``ctx.observation_arrays``): no frame is cut per line (#11 item 2).
    """
    if ctx.from_parts("observations"):  # the engine's line arrays: computed once
        return np.flatnonzero(_new_since_baseline(ctx.observation_arrays, mask))
    obs = ctx.observations
    # A frame built outside the engine (or a patient's unlined draws): test it here.
    wanted = (np.asarray(mask, dtype=bool) & obs["detected"].to_numpy(dtype=bool)
              & (obs["role"].to_numpy() == "on_treatment"))
    if not wanted.any():  # the usual case: a cheap exit before any pandas work (#11 item 2)
        return np.flatnonzero(wanted)
    base = ctx.baseline
    keys = obs["marker_key"].to_numpy()
    at_base = set()
    if base is not None:
        at_base = set(keys[(obs["sample_id"].to_numpy() == base["sample_id"])
                           & obs["detected"].to_numpy(dtype=bool)])
    return np.flatnonzero(wanted & ~pd.Series(keys).isin(at_base).to_numpy())


@dataclass(frozen=True)
class _MarkerSeries:
    """One marker over the line's on-treatment draws: one element per draw (``ctx.treated``).

    Arrays, not a merged frame: R1/R4/R5 build one per new marker, and the pandas merge
    cost 7 ms each on the cohort (#11 item 2). A draw without a call of the marker has
    ``detected`` False and NaN reads/VAF.
    """

    detected: np.ndarray  # bool
    day: np.ndarray  # days on the line, float
    vaf: np.ndarray  # fraction 0-1, NaN when no call
    alt_reads: np.ndarray  # reads, NaN when no call or unknown
    depth: np.ndarray  # reads, NaN when no call or unknown
    lod_vaf: np.ndarray  # the draw's LoD, fraction 0-1


def _numeric(values: np.ndarray) -> np.ndarray:
    """``values`` as float64, unparsable entries NaN (``pd.to_numeric(errors="coerce")``)."""
    if values.dtype.kind in "fiub":  # already numbers: the same floats, no pandas pass
        return values.astype(float)
    return pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan)


def _marker_series(ctx: LineContext, key: str) -> _MarkerSeries:
    """The marker's first call in each on-treatment draw of the line (or none)."""
    obs = ctx.observation_arrays
    rows = np.flatnonzero(np.asarray(obs["marker_key"]) == key)
    first: dict[Any, int] = {}
    for row, sample in zip(rows, np.asarray(obs["sample_id"])[rows], strict=True):
        first.setdefault(sample, int(row))
    treated = ctx.treated_arrays
    at = np.array([first.get(s, -1) for s in treated["sample_id"]], dtype=np.int64)
    hit = at >= 0
    picked = at[hit]

    def pick(column: str) -> np.ndarray:
        out = np.full(len(at), np.nan)
        out[hit] = _numeric(np.asarray(obs[column])[picked])
        return out

    detected = np.zeros(len(at), dtype=bool)
    detected[hit] = np.asarray(obs["detected"])[picked].astype(bool)
    return _MarkerSeries(detected=detected, day=np.asarray(treated["day"], dtype=float),
                         vaf=pick("vaf"), alt_reads=pick("alt_reads"), depth=pick("depth"),
                         lod_vaf=np.asarray(treated["lod_vaf"], dtype=float))


def marker_rows_by_date(ctx: LineContext, new: np.ndarray, key: Any) -> list[RowLike]:
    """The rows at ``new`` (positions in ``ctx.observations``) of marker ``key``, by date.

    numpy's quicksort on the collection dates: the order ``DataFrame.sort_values(
    "collection_date")`` gave the per-marker frames before (#11 item 2).
    """
    arrays = ctx.observation_arrays
    members = new[np.asarray(arrays["marker_key"])[new] == key]
    dates = np.asarray(arrays["collection_date"])[members]
    return ctx.observation_rows_at(members[np.argsort(dates, kind="quicksort")])


def mutation_alerts(ctx: LineContext, info: RuleInfo, new: np.ndarray,
                     rising_escalates: bool) -> list[Alert]:
    """One alert per new marker (``new``: positions from :func:`new_detections`)."""
    rules = ctx.rules
    alerts = []
    keys = np.asarray(ctx.observation_arrays["marker_key"])[new]
    # Per marker, in key order (groupby's): positions, not grouped frames (#11 item 2).
    for key in sorted(k for k in pd.unique(keys) if not pd.isna(k)):
        series = _marker_series(ctx, str(key))
        det, days, vaf = series.detected, series.day, series.vaf
        confirmed = confirmed_pairs(days, det, rules)
        rising = np.zeros(len(det), dtype=bool)
        pairs = np.flatnonzero(det[1:] & det[:-1]) + 1  # pairs of detections only
        pairs = pairs[vaf[pairs] > vaf[pairs - 1]]
        # A rise only escalates an unconfirmed call of a rule that escalates on rises: the
        # test (about 2 ms a call, scipy's per-call cost) is skipped when it cannot change
        # the alert (#11 item 2).
        if len(pairs) and rising_escalates and not confirmed.any():
            # A rise counts when Fisher's exact test on the read counts supports it, or
            # when the reads are unknown (p NaN): kinetics' test, the same p-values.
            p = fisher_pvalues(series.alt_reads[pairs - 1], series.depth[pairs - 1],
                               series.alt_reads[pairs], series.depth[pairs])
            rising[pairs] = np.isnan(p) | (p < rules.significance_alpha)
        last = int(np.flatnonzero(det)[-1])
        last_vaf = vaf[last]
        # Marker-level Q1: a later negative only counts when its LoD is at or below the
        # VAF at which the mutation was seen.
        cleared_later = (~det[last + 1:]) & (
            np.isnan(last_vaf) | (series.lod_vaf[last + 1:] <= last_vaf))
        escalate = confirmed.any() or (rising_escalates and rising.any())
        if not escalate and cleared_later.any():
            continue
        rows = marker_rows_by_date(ctx, new, key)
        findings = [obs_finding(r) for r in rows]
        alteration = (str(rows[0]["gene"]), str(rows[0]["alteration"]))
        tier = "FAILURE" if escalate else "WARNING"
        why = ("confirmed on 2 consecutive draws" if confirmed.any() else
               "VAF rising (Fisher exact test on read counts)" if escalate else
               "single draw, unconfirmed")
        actions = [] if escalate else [
            f"Repeat the draw in {rules.confirm_min_days}-28 days to confirm.",
        ]
        alert = make_alert(info, tier, findings, actions, evidence=[why],
                       confirmed=bool(confirmed.any()))
        alerts.append(attach_therapy_options(alert, ctx, [alteration]))
    return alerts


@line_gate
def new_alk_resistance(obs: pd.DataFrame) -> pd.Series:
    """Gate of R1 and R2: an on-treatment ALK resistance call (they judge only new ones)."""
    return new_candidates(obs, obs["category"] == "alk_resistance")


def rule_r1(ctx: LineContext) -> list[Alert]:
    """R1: new ALK kinase-domain resistance mutation (WARNING; FAILURE confirmed/rising)."""
    new = new_detections(ctx, _category_is(ctx, "alk_resistance"))
    return mutation_alerts(ctx, R1, new, rising_escalates=True)


def _category_is(ctx: LineContext, category: str) -> np.ndarray:
    """The line's observations of ``category`` (knowledge-base category), as a bool array."""
    return np.asarray(ctx.observation_arrays["category"]) == category


def rule_r2(ctx: LineContext) -> list[Alert]:
    """R2: >= 2 distinct ALK resistance mutations in one draw (at least one new)."""
    arrays = ctx.observation_arrays
    keys = np.asarray(arrays["marker_key"])
    new_keys = set(keys[new_detections(ctx, _category_is(ctx, "alk_resistance"))])
    on_alk = np.flatnonzero((np.asarray(arrays["category"]) == "alk_resistance")
                            & np.asarray(arrays["detected"]).astype(bool)
                            & (np.asarray(arrays["role"]) == "on_treatment"))
    per_draw: dict[Any, set[Any]] = {}
    for sample, key in zip(np.asarray(arrays["sample_id"])[on_alk], keys[on_alk],
                           strict=True):
        per_draw.setdefault(sample, set()).add(key)
    # Draws with >= 2 distinct (non-missing, as groupby's nunique counts) ALK markers, one
    # of them new: decided once, here, from the line arrays (#11 item 2).
    multi = [s for s, k in per_draw.items()
             if sum(not pd.isna(x) for x in k) >= 2 and k & new_keys]
    if not multi:
        return []
    obs = ctx.observations
    alk = obs[(obs["category"] == "alk_resistance") & obs["detected"]
              & (obs["role"] == "on_treatment")]
    rows = alk[alk["sample_id"].isin(multi)].sort_values(["collection_date", "marker_key"])
    first = rows[rows["sample_id"] == rows["sample_id"].iloc[0]]
    actions = ["Phasing (same-read evidence) is needed to call compound vs polyclonal: "
               "report as '>= 2 ALK mutations (compound vs polyclonal undetermined)'."]
    drug = (ctx.therapy.drug if ctx.therapy else "") or ""
    if "lorlatinib" in drug.lower():
        actions.append("On lorlatinib: a lorlatinib-refractory compound mutation is possible.")
    alert = make_alert(R2, "FAILURE", [obs_finding(r) for _, r in rows.iterrows()], actions)
    alterations = [(str(g), str(a)) for g, a in zip(first["gene"], first["alteration"],
                                                    strict=True)]
    return [attach_therapy_options(alert, ctx, alterations)]


def _met_tier(ctx: LineContext, row: RowLike) -> tuple[str | None, str]:
    rules = ctx.rules
    if row["variant_type"] in ("fusion", "sv"):
        return "FAILURE", "MET fusion"
    assay = ctx.settings.assay(row.get("assay") if pd.notna(row.get("assay")) else None)
    cn = _num(row["copy_number"])
    if assay.cnv_kind == "absolute_cn":
        min_tf = assay.met_amp_min_tumor_fraction
        tf = _num(row.get("tumor_fraction"))
        if cn is not None and cn >= rules.met_absolute_cn_failure and (
                min_tf is None or (tf is not None and tf >= min_tf)):
            return "FAILURE", f"absolute copy number {cn:g}"
        return "WARNING", (f"absolute copy number {cn}" if cn is not None else "called") + (
            f"; tumour fraction below {min_tf:.1%}: interpret with caution" if min_tf else "")
    if cn is None:
        return "WARNING", "amplification called without a copy-number value"
    if assay.cnv_kind in ("fold_change", "log2_ratio"):
        fold = 2.0 ** cn if assay.cnv_kind == "log2_ratio" else cn
        if fold >= rules.met_fold_change_failure:
            return "FAILURE", f"fold change {fold:.3g}"
        if fold >= rules.met_fold_change_warning:
            return "WARNING", f"fold change {fold:.3g}"
        return None, ""
    if cn >= rules.met_pcn_failure:
        return "FAILURE", f"plasma copy number {cn:g}"
    if cn >= rules.met_pcn_warning:
        return "WARNING", f"plasma copy number {cn:g} (2.1-2.7 may be chromosome-7 gain)"
    return None, ""


@line_gate
def new_met(obs: pd.DataFrame) -> pd.Series:
    """Gate of R3: an on-treatment MET call (R3 grades only new ones)."""
    return new_candidates(obs, met_mask(obs))


def rule_r3(ctx: LineContext) -> list[Alert]:
    """R3: MET amplification (by assay copy-number kind) or MET fusion."""
    new = new_detections(ctx, ctx.mask(met_mask))
    graded = [(row, *_met_tier(ctx, row)) for row in ctx.observation_rows_at(new)]
    graded = [g for g in graded if g[1] is not None]
    if not graded:
        return []
    tier = "FAILURE" if any(g[1] == "FAILURE" for g in graded) else "WARNING"
    findings = [obs_finding(row, why) for row, _, why in graded]
    alert = make_alert(R3, tier, findings, [
        "MET bypass: consider dual ALK + MET inhibition (see options); confirm by tissue or "
        "a repeat draw when copy number is near the threshold.",
    ])
    alteration = "fusion" if any(r["variant_type"] != "cnv" for r, _, _ in graded) \
        else "amplification"
    return [attach_therapy_options(alert, ctx, [("MET", alteration)])]


_MAPK_HOTSPOT = re.compile(r"^(?:p\.)?(?:G12|G13|Q61)[A-Z]")


@row_mask
def mapk_mask(obs: pd.DataFrame) -> pd.Series:
    """KRAS/NRAS G12/G13/Q61, MAP2K1 (knowledge-base bypass) and BRAF V600E calls (R4)."""
    genes = obs["gene"].astype("object").fillna("").astype(str).str.upper()
    text = obs["alteration"].astype("object").fillna("").astype(str)
    hotspot = text.str.match(_MAPK_HOTSPOT)
    braf = (genes == "BRAF") & text.str.contains(r"V600E", regex=False)
    return ((genes.isin(["KRAS", "NRAS"]) & hotspot) | braf
            | ((genes == "MAP2K1") & (obs["category"] == "bypass"))) & obs[
        "variant_type"].isin(["snv", "mnv", "indel"])


@row_mask
def met_mask(obs: pd.DataFrame) -> pd.Series:
    """MET copy-number gains and MET fusions (R3)."""
    genes = obs["gene"].astype("object").fillna("").astype(str).str.upper()
    partner = obs["fusion_partner"].astype("object").fillna("").astype(str).str.upper()
    return ((genes == "MET") & obs["variant_type"].isin(["cnv", "fusion", "sv"])) | (
        (partner == "MET") & obs["variant_type"].isin(["fusion", "sv"]))


@line_gate
def new_mapk(obs: pd.DataFrame) -> pd.Series:
    """Gate of R4: an on-treatment MAPK call (R4 judges only new ones)."""
    return new_candidates(obs, mapk_mask(obs))


def rule_r4(ctx: LineContext) -> list[Alert]:
    """R4: new KRAS/NRAS G12/G13/Q61 or MAP2K1 activating mutation (FAILURE confirmed)."""
    new = new_detections(ctx, ctx.mask(mapk_mask))
    return mutation_alerts(ctx, R4, new, rising_escalates=False)


def rule_q1(ctx: LineContext) -> list[Alert]:
    """Q1: list the line's non-informative negatives (data quality; no tier effect)."""
    informative = np.asarray(ctx.treated_arrays["informative"]).astype(bool)
    if informative.all():  # the usual case: no frame built (#11 item 2)
        return []
    bad = [ctx.treated_row(int(i)) for i in np.flatnonzero(~informative)]
    findings = [draw_finding(r, f"LoD above the last detected level "
                                f"{r['prev_detected_level']:.4g}") for r in bad]
    return [make_alert(Q1, "INFO", findings, [
        "Non-informative negative: repeat with a more sensitive assay or more input; this "
        "draw does not count as clearance.",
    ])]


@line_gate
def chip_seen(obs: pd.DataFrame) -> pd.Series:
    """Gate of Q2: a detected CHIP call."""
    return obs["is_chip"] & obs["detected"]


def rule_q2(ctx: LineContext) -> list[Alert]:
    """Q2: CHIP variants seen on the line (excluded from the ctDNA level)."""
    obs = ctx.observations
    chip = obs[chip_seen(obs)]
    if not len(chip):
        return []
    return [make_alert(Q2, "INFO", [obs_finding(r, "CHIP: excluded from the ctDNA level")
                                for _, r in chip.iterrows()], [
        "A rising CHIP variant can mimic progression; matched white-cell sequencing resolves it.",
    ])]
