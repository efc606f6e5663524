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
from functools import cached_property
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact

from pipeline.assessment import Alert, Finding, Therapy, TherapyOption
from pipeline.config import RulesSettings, Settings
from pipeline.kinetics import FOLD_LOWER, FOLD_VALUE

EvidenceStrength = Literal["direct", "analogy", "heuristic"]

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


@dataclass
class LineContext:
    """Everything a rule may read for one patient at ``as_of`` on the current line."""

    patient_id: str
    as_of: date
    settings: Settings
    kb: KnowledgeBaseLike | None
    therapy: Therapy | None
    line: pd.Series | None  # row of Kinetics.lines
    draws: pd.DataFrame  # Kinetics.draws rows of the line (baseline first)
    observations: pd.DataFrame  # observations of those draws, with day, role, marker_key
    caveats: list[str] = field(default_factory=list)

    @property
    def rules(self) -> RulesSettings:
        return self.settings.rules

    @cached_property
    def baseline(self) -> pd.Series | None:
        rows = self.draws[self.draws["role"] == "baseline"]
        return rows.iloc[0] if len(rows) else None

    @cached_property
    def baseline_detected(self) -> bool:
        base = self.baseline
        return base is not None and bool(base["detected"])

    @cached_property
    def treated(self) -> pd.DataFrame:
        return self.draws[self.draws["role"] == "on_treatment"]

    @cached_property
    def evaluable(self) -> pd.DataFrame:
        """On-treatment draws that can carry a response decision (Q1 excluded)."""
        treated = self.treated
        return treated[treated["informative"].astype(bool)]

    @cached_property
    def _first_clearance_day(self) -> float:
        seq = self.evaluable
        cleared = seq[seq["censored"].astype(bool)]
        return float(cleared["day"].iloc[0]) if len(cleared) else float("nan")

    def first_clearance_day(self) -> float:
        """Day of the first informative negative on the line (NaN when none)."""
        return self._first_clearance_day


# --------------------------------------------------------------------------- helpers


def _date(value: Any) -> date:
    return pd.Timestamp(value).date()


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def draw_finding(row: pd.Series, note: str | None = None) -> Finding:
    """A draw-level finding: the ctDNA level (or its censoring bound) and the LoD."""
    detected = bool(row["detected"])
    level = _num(row["ctdna_level"])
    source = "tumour fraction" if row["level_source"] == "tumor_fraction" else "max VAF"
    text = (f"ctDNA level {level:.4g} ({source})" if detected and level is not None
            else "ctDNA detected, level not quantifiable" if detected
            else f"not detected (< LoD {float(row['lod_vaf']):.4g})")
    return Finding(
        gene=None, alteration="ctDNA level", sample_id=str(row["sample_id"]),
        collection_date=_date(row["collection_date"]),
        vaf=level if row["level_source"] == "marker_vaf" else None, detected=detected,
        lod_vaf=_num(row["lod_vaf"]), alt_reads=_int(row.get("alt_reads")),
        depth=_int(row.get("depth")), ctdna_level=level,
        note="; ".join(t for t in (f"day {int(row['day'])}", text, note) if t),
    )


def obs_finding(row: pd.Series, note: str | None = None) -> Finding:
    """A finding for one observed alteration in one draw."""
    return Finding(
        gene=row["gene"] if pd.notna(row["gene"]) else None,
        alteration=row["alteration"] if pd.notna(row["alteration"]) else None,
        sample_id=str(row["sample_id"]), collection_date=_date(row["collection_date"]),
        vaf=_num(row["vaf"]), detected=bool(row["detected"]), lod_vaf=_num(row["lod_vaf"]),
        alt_reads=_int(row["alt_reads"]), depth=_int(row["depth"]),
        copy_number=_num(row["copy_number"]), note=note,
    )


def confirmed_pairs(days: np.ndarray, condition: np.ndarray, rules: RulesSettings) -> np.ndarray:
    """True at draw i when draws i-1 and i (consecutive) both meet ``condition``.

    The second draw must be ``confirm_min_days`` to ``confirm_max_days`` after the first
    (ELN 2020 "confirmed within 1-3 months"; ELN 2013 "2 consecutive tests").
    """
    cond = np.asarray(condition, dtype=bool)
    gap = np.diff(np.asarray(days, dtype=float), prepend=np.nan)
    prev = np.concatenate([[False], cond[:-1]])
    in_window = (gap >= rules.confirm_min_days) & (gap <= rules.confirm_max_days)
    return cond & prev & in_window


def _weeks(days: float) -> str:
    return f"week {days / 7:.1f}"


def _alert(info: RuleInfo, tier: str, findings: list[Finding], actions: list[str],
           evidence: list[str] | None = None, confirmed: bool | None = None,
           draws: list[str] | None = None) -> Alert:
    if tier == "FAILURE" and FAILURE_ACTION not in actions:
        actions = [FAILURE_ACTION, *actions]
    used = draws if draws is not None else list(dict.fromkeys(f.sample_id for f in findings))
    return Alert(
        rule_id=info.rule_id, tier=tier, title=info.title, findings=findings,  # type: ignore[arg-type]
        suggested_actions=actions,
        evidence=[*(evidence or []), *info.sources,
                  f"evidence strength: {info.evidence_strength}"
                  + ("" if info.evidence_strength == "direct" else " (heuristic default)")],
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
_CTMONITR = "ctMoniTR TKI aggregate, Clin Cancer Res 2025 (doi:10.1158/1078-0432.CCR-24-3612) [V]"
_ALTA3 = "ALTA-3, JTO 2023: baseline ctDNA ALK fusion detectable in 34% [V]"

CATALOGUE: dict[str, RuleInfo] = {}


def _register(info: RuleInfo) -> RuleInfo:
    CATALOGUE[info.rule_id] = info
    return info


B1 = _register(RuleInfo(
    "B1", "Not evaluable for response: ctDNA not detected at baseline", ("INFO",),
    "No baseline draw, or no tracked marker detected at the baseline draw",
    "Baseline (last draw <= baseline_window_days before start)", "none",
    (_ALTA3, "FoundationOne Liquid CDx: TF < 1% negatives uninformative (CCR 2024) [V]",
     _CTMONITR + ": clearance requires baseline detection"),
    "direct"))
B2 = _register(RuleInfo(
    "B2", "High-risk baseline profile", ("WARNING",),
    "Baseline ctDNA detected, and/or EML4-ALK variant 3, and/or a TP53 mutation at baseline",
    "Baseline", "none",
    ("ELN 2020 baseline warning (high-risk ACA/ELTS) analogue [V]",
     "ALTA-3: PFS 11.1 vs 22.5 mo with detectable baseline ctDNA (HR 0.48) [V]",
     "Lin, JCO 2018: variant 3 -> 57% ALK mutations, 32% G1202R [V]",
     "CROWN/ESMO: variant 3 and TP53 poor prognosis [V]"),
    "analogy"))
E1 = _register(RuleInfo(
    "E1", "Molecular clearance by week 10", ("INFO",),
    "All tracked markers below the LoD on an informative draw", "By week 10 (clearance_by_week)",
    "none (later re-detection is handled by P1/P2)",
    (_CTMONITR + ": persistent detection vs clearance OS HR 2.12",
     "Cancer Res 2019;79:1204: >98% ctDNA elimination in TKI responders [V]"),
    "direct"))
E2 = _register(RuleInfo(
    "E2", "Partial molecular response", ("WARNING",),
    "Detected, decrease from baseline >= partial_decrease (50%); 'deep' when >= 90%",
    "Weeks 3-10 (evaluated until the week-12 landmark)", "none",
    ("ctMoniTR IO/chemo thresholds 50/90/100% (JITC 2025) [V2]; not validated for TKIs",),
    "analogy"))
E3 = _register(RuleInfo(
    "E3", "Insufficient early molecular response", ("WARNING", "FAILURE"),
    "Detected with < 50% decrease from baseline, or any increase",
    "Weeks 3-10 (the confirming draw may fall later)",
    "FAILURE only when confirmed on the next draw 14-90 days later; otherwise WARNING",
    (_ELN2020 + ": >10% at 3 months is failure only when confirmed",
     "Cancer Res 2019;79:1204: bimodal TKI response, non-responders' PFS 1.6 mo [V]"),
    "analogy"))
E4 = _register(RuleInfo(
    "E4", "ctDNA still detectable at the second landmark", ("WARNING", "FAILURE"),
    "Never cleared and still detected", "From week 12 (second landmark weeks 12-16)",
    "FAILURE when the level rises on 2 consecutive draws (each rise significant by Fisher test)",
    (_ELN2020 + ": 6-month milestone analogue", "ctMoniTR second window 7-13 weeks [V2]"),
    "analogy"))
P1 = _register(RuleInfo(
    "P1", "Loss of molecular response (re-detection after clearance)", ("WARNING",),
    "After an informative clearance, a tracked marker is detected again", "Any time",
    "none (confirmation escalates to P2)",
    (_ELN2020 + ": loss of MMR = warning at any time",
     "ELN 2013 warning -> test up to monthly (BJH guidance) [V2]"),
    "analogy"))
P2 = _register(RuleInfo(
    "P2", "Confirmed loss of molecular response", ("FAILURE",),
    "Re-detection after clearance on 2 consecutive draws (or a confirmed >= 1-log rise "
    "from the nadir)", "Any time", "2 consecutive draws 14-90 days apart",
    ("ELN 2013: confirmed loss of MMR = failure [V2]",
     "NCCN: 1-log rise with loss of MMR -> mutation analysis [V2]",
     "Cancer Res 2019: ctDNA lead time about 4-8.7 weeks in NSCLC [V]"),
    "analogy"))
P3 = _register(RuleInfo(
    "P3", "Rising ctDNA without prior clearance", ("WARNING", "FAILURE"),
    ">= 2x rise from the nadir on 2 consecutive draws (WARNING); >= 10x (FAILURE)",
    "Any time", "2 consecutive draws 14-90 days apart",
    ("Signatera ctDNA velocity (+27 vs +137%/month) [V press]",
     "Branford, Blood 2014;124:511: halving time rescues single thresholds [V]"),
    "heuristic"))
R1 = _register(RuleInfo(
    "R1", "New ALK kinase-domain resistance mutation", ("WARNING", "FAILURE"),
    "An ALK resistance mutation (knowledge-base category alk_resistance) not present at "
    "baseline is detected above the LoD", "Any time on the line",
    "FAILURE when detected on 2 consecutive draws, or its VAF rises significantly "
    "(Fisher exact test on read counts)",
    (_ELN2020 + ": resistance mutations = failure",
     "McCoach, Clin Cancer Res 2018: 53% of progressing plasma samples carry ALK mutations [V]"),
    "direct"))
R2 = _register(RuleInfo(
    "R2", "Two or more ALK resistance mutations (compound or polyclonal)", ("FAILURE",),
    ">= 2 distinct ALK kinase-domain mutations in one draw, at least one new", "Any time",
    "none",
    ("Lin & Shaw, eBioMedicine 2019: compound mutations in about 35% of lorlatinib-resistant "
     "biopsies [V]",),
    "analogy"))
R3 = _register(RuleInfo(
    "R3", "MET bypass (amplification or fusion)", ("WARNING", "FAILURE"),
    "MET plasma CN >= 2.1 (WARNING), >= 2.7 (FAILURE); fold-change and absolute-CN assays "
    "use their own cut-offs; a MET fusion is FAILURE", "Any time", "none",
    ("Dagogo-Jack, Clin Cancer Res 2020: MET amp 15% after next-gen TKIs, 22% after "
     "lorlatinib [V]", "PMC10552597: pCN floor 2.1, >= 2.7 fewer overlapping drivers [V]"),
    "analogy"))
R4 = _register(RuleInfo(
    "R4", "New MAPK bypass mutation (KRAS/NRAS G12/G13/Q61, MAP2K1)", ("WARNING", "FAILURE"),
    "A KRAS/NRAS G12/G13/Q61 or MAP2K1 activating mutation not present at baseline",
    "Any time", "FAILURE when detected on 2 consecutive draws",
    ("CROWN 5-year / Lin & Shaw: ALK-independent resistance after lorlatinib [V]",
     "Hrustanovic, Nat Med 2015: RAS-MAPK dependence [V]"),
    "heuristic"))
Q1 = _register(RuleInfo(
    "Q1", "Non-informative negative draw", ("INFO",),
    "All markers below the LoD, but the LoD lies above the last detected level",
    "Any", "none; the draw cannot satisfy E1 or clear P1",
    ("Signatera 'qualified' values [V2]", "FoundationOne Liquid CDx TF < 1% [V]"),
    "direct"))
Q2 = _register(RuleInfo(
    "Q2", "Clonal haematopoiesis variant excluded from the ctDNA level", ("INFO",),
    "Variant in a CHIP gene (rules.chip_genes) or knowledge-base category chip", "Any", "none",
    ("Razavi 2019 via bioSkills [V2]", "FoundationOne Tracker excludes non-tumour variants [V]"),
    "direct"))
C1 = _register(RuleInfo(
    "C1", "Surveillance draw overdue", ("INFO",),
    "No draw by the end of the cadence window plus overdue_grace_days",
    "Baseline, weeks 3-6, weeks 8-10, then every 8-12 weeks; about 4 weeks after a WARNING",
    "none",
    ("ELN warning -> test up to monthly [V2]", "CROWN: imaging every 8 weeks [V]"),
    "heuristic"))

C2_CAVEAT = (
    "C2: a negative plasma result does not downgrade CNS surveillance (brain metastases "
    "shed poorly into plasma; CROWN tracks intracranial progression separately)."
)


# --------------------------------------------------------------------------- rules


def rule_b1(ctx: LineContext) -> list[Alert]:
    """B1: baseline missing or negative -> not evaluable for response rules."""
    base = ctx.baseline
    actions = ["Surveillance for emerging resistance only (R1-R4 remain active)."]
    if base is None:
        finding = Finding(
            gene=None, alteration="ctDNA level", sample_id="(none)",
            collection_date=ctx.therapy.start_date if ctx.therapy else ctx.as_of,
            detected=False,
            note=f"no draw within {ctx.rules.baseline_window_days} days before the line start",
        )
        return [_alert(B1, "INFO", [finding], actions, draws=[])]
    if bool(base["detected"]):
        return []
    return [_alert(B1, "INFO", [draw_finding(base)], actions)]


def rule_b2(ctx: LineContext) -> list[Alert]:
    """B2: detected baseline ctDNA, EML4-ALK variant 3 or TP53 -> high-risk profile."""
    base = ctx.baseline
    if base is None:
        return []
    obs = ctx.observations
    at_base = obs[(obs["sample_id"] == base["sample_id"]) & obs["detected"]]
    pattern = re.compile(ctx.rules.high_risk_fusion_variant_pattern)
    is_v3 = (at_base["category"] == "driver") & at_base["alteration"].astype(str).map(
        lambda text: bool(pattern.search(text))
    )
    genes = at_base["gene"].astype("object").fillna("").astype(str).str.upper()
    high_gene = genes.isin(ctx.rules.high_risk_baseline_genes) & ~at_base["is_chip"]
    if not (bool(base["detected"]) or is_v3.any() or high_gene.any()):
        return []
    findings = [draw_finding(base)] if bool(base["detected"]) else []
    findings += [obs_finding(r, "EML4-ALK variant 3") for _, r in at_base[is_v3].iterrows()]
    findings += [obs_finding(r, "high-risk co-mutation") for _, r in
                 at_base[high_gene].iterrows()]
    return [_alert(B2, "WARNING", findings, [
        "High-risk baseline profile: keep the shorter (about 4-weekly) draw interval until "
        "clearance.",
    ])]


def _early_state(ctx: LineContext) -> tuple[pd.DataFrame, float]:
    seq = ctx.evaluable
    return seq, ctx.first_clearance_day()


def rule_e1(ctx: LineContext) -> list[Alert]:
    """E1: cleared by week 10 and still clear at the latest evaluable draw -> OPTIMAL."""
    if not ctx.baseline_detected:
        return []
    seq, first_clear = _early_state(ctx)
    if not len(seq) or np.isnan(first_clear) or not bool(seq["censored"].iloc[-1]):
        return []
    if first_clear > ctx.rules.clearance_by_week * 7:
        return []
    cleared = seq[seq["day"] == first_clear].iloc[0]
    findings = [draw_finding(ctx.baseline, "baseline"), draw_finding(cleared, "clearance")]
    latest = seq.iloc[-1]
    if latest["sample_id"] != cleared["sample_id"]:
        findings.append(draw_finding(latest, "latest evaluable draw, still below LoD"))
    return [_alert(E1, "INFO", findings, [
        "Continue therapy and the maintenance draw cadence (every 8-12 weeks).",
    ], evidence=[f"cleared at {_weeks(first_clear)}"])]


def _early_window(ctx: LineContext, seq: pd.DataFrame) -> pd.Series:
    rules = ctx.rules
    return (seq["day"] >= rules.early_window_start_week * 7) & (
        seq["day"] <= rules.early_window_end_week * 7
    )


def _insufficient(ctx: LineContext, seq: pd.DataFrame) -> pd.Series:
    """Detected with a decrease from baseline below ``partial_decrease`` (or an increase)."""
    exact = seq["fold_from_baseline_kind"] == FOLD_VALUE
    return seq["detected"].astype(bool) & exact & (
        seq["decrease_from_baseline"] < ctx.rules.partial_decrease
    )


def rule_e2_e3(ctx: LineContext) -> list[Alert]:
    """E2 (partial response, WARNING) and E3 (insufficient response, FAILURE if confirmed)."""
    if not ctx.baseline_detected:
        return []
    seq, first_clear = _early_state(ctx)
    if not len(seq):
        return []
    rules = ctx.rules
    days = seq["day"].to_numpy(float)
    before_clear = np.isnan(first_clear) | (days < first_clear)
    window = _early_window(ctx, seq).to_numpy() & before_clear
    insufficient = _insufficient(ctx, seq).to_numpy() & before_clear
    alerts: list[Alert] = []

    # E3 confirmed: an insufficient draw in weeks 3-10 confirmed by the next draw.
    started = np.concatenate([[False], (insufficient & window)[:-1]])
    confirmed = confirmed_pairs(days, insufficient, rules) & started
    base = ctx.baseline
    if confirmed.any():
        i = int(np.flatnonzero(confirmed)[0])
        pair = [seq.iloc[i - 1], seq.iloc[i]]
        findings = [draw_finding(base, "baseline")] + [
            draw_finding(r, f"decrease from baseline {r['decrease_from_baseline']:.0%}")
            for r in pair
        ]
        return [_alert(E3, "FAILURE", findings, [
            "Re-genotype plasma (or tissue) for resistance mechanisms.",
        ], confirmed=True, evidence=[
            f"confirmed on {pair[0]['sample_id']} and {pair[1]['sample_id']} "
            f"({int(pair[1]['day'] - pair[0]['day'])} days apart)",
        ])]

    latest = seq.iloc[-1]
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
        alerts.append(_alert(E3, "WARNING", findings, [
            f"Unconfirmed: repeat the draw in {rules.confirm_min_days}-28 days to confirm "
            "before any early-switch review.",
        ], confirmed=False))
    elif latest["fold_from_baseline_kind"] == FOLD_VALUE:
        depth = f"deep (>= {rules.deep_decrease:.0%})" if decrease >= rules.deep_decrease \
            else f"partial (>= {rules.partial_decrease:.0%})"
        alerts.append(_alert(E2, "WARNING", findings, [
            "Partial molecular response: re-draw in about 4 weeks.",
        ], evidence=[f"{depth} decrease from baseline at {_weeks(latest_day)}"]))
    return alerts


def _fisher_rise(p: Any, alpha: float) -> bool:
    """A rise counts when the read-count test supports it, or when reads are unknown."""
    return bool(pd.isna(p) or p < alpha)


def rule_e4(ctx: LineContext) -> list[Alert]:
    """E4: never cleared and still detected from week 12; FAILURE when rising on 2 draws."""
    if not ctx.baseline_detected:
        return []
    seq, first_clear = _early_state(ctx)
    rules = ctx.rules
    if not len(seq) or not np.isnan(first_clear):
        return []
    latest = seq.iloc[-1]
    landmark = rules.second_landmark_start_week * 7
    if float(latest["day"]) < landmark or not bool(latest["detected"]):
        return []
    level = seq["ctdna_level"].to_numpy(float)
    prev = np.concatenate([[np.nan], level[:-1]])
    rise = (level > prev) & np.array(
        [_fisher_rise(p, rules.significance_alpha) for p in seq["fisher_p"]]
    )
    days = seq["day"].to_numpy(float)
    two = rise & np.concatenate([[False], rise[:-1]])
    gap = np.diff(days, prepend=np.nan) <= rules.confirm_max_days
    escalate = two & gap & (days >= landmark)
    at_landmark = seq[(seq["day"] >= landmark)
                      & (seq["day"] <= rules.second_landmark_end_week * 7)]
    findings = [draw_finding(r) for _, r in at_landmark.iterrows()] or [draw_finding(latest)]
    if escalate.any():
        i = int(np.flatnonzero(escalate)[0])
        rows = [seq.iloc[i - 2], seq.iloc[i - 1], seq.iloc[i]]
        return [_alert(E4, "FAILURE", [draw_finding(r) for r in rows], [
            "Re-genotype plasma (or tissue) for resistance mechanisms.",
        ], confirmed=True, evidence=[
            "level rising on 2 consecutive draws: " + " -> ".join(
                f"{r['ctdna_level']:.4g}" for r in rows),
        ])]
    if latest["sample_id"] not in {f.sample_id for f in findings}:
        findings.append(draw_finding(latest, "latest draw"))
    return [_alert(E4, "WARNING", findings, [
        "Persistent ctDNA at the second landmark: draw about every 4 weeks; consider imaging.",
    ])]


def rule_p1_p2(ctx: LineContext) -> list[Alert]:
    """P1 (re-detection after clearance, WARNING) and P2 (confirmed, FAILURE)."""
    if not ctx.baseline_detected:
        return []
    seq, first_clear = _early_state(ctx)
    if np.isnan(first_clear):
        return []
    after = seq[seq["day"] > first_clear]
    if not len(after):
        return []
    detected = after["detected"].to_numpy(bool)
    confirmed = confirmed_pairs(after["day"].to_numpy(float), detected, ctx.rules)
    cleared_row = seq[seq["day"] == first_clear].iloc[0]
    if confirmed.any():
        i = int(np.flatnonzero(confirmed)[0])
        pair = [after.iloc[i - 1], after.iloc[i]]
        log_rise = all(
            r["fold_from_nadir_kind"] in (FOLD_VALUE, FOLD_LOWER)
            and r["fold_from_nadir"] >= ctx.rules.rise_from_nadir_fold for r in pair
        )
        findings = [draw_finding(cleared_row, "clearance")] + [
            draw_finding(r, "re-detected") for r in pair]
        return [_alert(P2, "FAILURE", findings, [
            "Resistance work-up: re-genotype plasma/tissue (rules R1-R3).",
        ], confirmed=True, evidence=[
            f"re-detected on {pair[0]['sample_id']} and {pair[1]['sample_id']}"
            + (f"; >= {ctx.rules.rise_from_nadir_fold:g}x above the nadir" if log_rise else ""),
        ])]
    latest = after.iloc[-1]
    if not bool(latest["detected"]):
        return []
    note = None
    if latest["fold_from_nadir_kind"] in (FOLD_VALUE, FOLD_LOWER):
        note = f">= {latest['fold_from_nadir']:.3g}x the nadir (nadir is an LoD bound)"
    return [_alert(P1, "WARNING", [draw_finding(cleared_row, "clearance"),
                                   draw_finding(latest, note)], [
        "Loss of molecular response: repeat the draw in about 4 weeks to confirm.",
    ], confirmed=False)]


def rule_p3(ctx: LineContext) -> list[Alert]:
    """P3: never cleared, >= 2x (WARNING) or >= 10x (FAILURE) above nadir on 2 draws."""
    if not ctx.baseline_detected:
        return []
    seq, first_clear = _early_state(ctx)
    if len(seq) < 2 or not np.isnan(first_clear):
        return []
    rules = ctx.rules
    exact = (seq["fold_from_nadir_kind"] == FOLD_VALUE).to_numpy()
    fold = seq["fold_from_nadir"].to_numpy(float)
    days = seq["day"].to_numpy(float)
    fail = confirmed_pairs(days, exact & (fold >= rules.rise_from_nadir_fold), rules)
    warn = confirmed_pairs(days, exact & (fold >= rules.never_cleared_warning_fold), rules)

    def findings_for(i: int) -> list[Finding]:
        rows = [seq.iloc[i - 1], seq.iloc[i]]
        nadir = rows[0]["nadir_before_sample_id"]
        out = [draw_finding(r) for _, r in seq[seq["sample_id"] == nadir].iterrows()]
        return out + [draw_finding(r, f"{r['fold_from_nadir']:.3g}x the nadir, Fisher p="
                                      f"{r['fisher_p']:.3g}") for r in rows]

    if fail.any():
        i = int(np.flatnonzero(fail)[0])
        return [_alert(P3, "FAILURE", findings_for(i), [
            "Resistance work-up: re-genotype plasma/tissue (rules R1-R3).",
        ], confirmed=True)]
    if warn[-1]:
        return [_alert(P3, "WARNING", findings_for(len(seq) - 1), [
            "Rising ctDNA: draw about every 4 weeks; consider imaging.",
        ], confirmed=True)]
    return []


def _new_detections(ctx: LineContext, mask: pd.Series) -> pd.DataFrame:
    """On-treatment detections matching ``mask`` whose marker was not detected at baseline."""
    obs = ctx.observations
    base = ctx.baseline
    at_base = set()
    if base is not None:
        at_base = set(obs[(obs["sample_id"] == base["sample_id"]) & obs["detected"]]
                      ["marker_key"])
    chosen = obs[mask & obs["detected"] & (obs["role"] == "on_treatment")]
    return chosen[~chosen["marker_key"].isin(at_base)]


def _marker_series(ctx: LineContext, key: str) -> pd.DataFrame:
    """One row per on-treatment draw of the line with this marker's call (or none)."""
    treated = ctx.treated[["sample_id", "collection_date", "day", "lod_vaf", "median_depth"]]
    calls = ctx.observations[ctx.observations["marker_key"] == key]
    calls = calls[["sample_id", "vaf", "alt_reads", "depth", "detected"]]
    out = treated.merge(calls.drop_duplicates("sample_id"), on="sample_id", how="left")
    out["detected"] = out["detected"].astype("boolean").fillna(False).astype(bool)
    return out


def _mutation_alerts(ctx: LineContext, info: RuleInfo, new: pd.DataFrame,
                     rising_escalates: bool) -> list[Alert]:
    rules = ctx.rules
    alerts = []
    for key, group in new.groupby("marker_key", sort=True):
        series = _marker_series(ctx, str(key))
        det = series["detected"].to_numpy(bool)
        days = series["day"].to_numpy(float)
        confirmed = confirmed_pairs(days, det, rules)
        vaf = series["vaf"].to_numpy(float)
        alt = pd.to_numeric(series["alt_reads"], errors="coerce").to_numpy(float)
        dep = pd.to_numeric(series["depth"], errors="coerce").to_numpy(float)
        rising = np.zeros(len(series), dtype=bool)
        for i in np.flatnonzero(det[1:] & det[:-1]) + 1:  # pairs of detections only
            if not vaf[i] > vaf[i - 1]:
                continue
            counts = np.array([alt[i - 1], dep[i - 1], alt[i], dep[i]])
            if np.isfinite(counts).all() and counts[1] > 0 and counts[3] > 0:
                p = fisher_exact([[counts[0], counts[1] - counts[0]],
                                  [counts[2], counts[3] - counts[2]]])[1]
                rising[i] = p < rules.significance_alpha
            else:
                rising[i] = True
        last = int(np.flatnonzero(det)[-1])
        later = series.iloc[last + 1:]
        last_vaf = vaf[last]
        # Marker-level Q1: a later negative only counts when its LoD is at or below the
        # VAF at which the mutation was seen.
        cleared_later = later[(~later["detected"]) & (
            np.isnan(last_vaf) | (later["lod_vaf"] <= last_vaf))]
        escalate = confirmed.any() or (rising_escalates and rising.any())
        if not escalate and len(cleared_later):
            continue
        rows = group.sort_values("collection_date")
        findings = [obs_finding(r) for _, r in rows.iterrows()]
        alteration = (str(rows["gene"].iloc[0]), str(rows["alteration"].iloc[0]))
        tier = "FAILURE" if escalate else "WARNING"
        why = ("confirmed on 2 consecutive draws" if confirmed.any() else
               "VAF rising (Fisher exact test on read counts)" if escalate else
               "single draw, unconfirmed")
        actions = [] if escalate else [
            f"Repeat the draw in {rules.confirm_min_days}-28 days to confirm.",
        ]
        alert = _alert(info, tier, findings, actions, evidence=[why],
                       confirmed=bool(confirmed.any()))
        alerts.append(attach_therapy_options(alert, ctx, [alteration]))
    return alerts


def rule_r1(ctx: LineContext) -> list[Alert]:
    """R1: new ALK kinase-domain resistance mutation (WARNING; FAILURE confirmed/rising)."""
    obs = ctx.observations
    new = _new_detections(ctx, obs["category"] == "alk_resistance")
    return _mutation_alerts(ctx, R1, new, rising_escalates=True)


def rule_r2(ctx: LineContext) -> list[Alert]:
    """R2: >= 2 distinct ALK resistance mutations in one draw (at least one new)."""
    obs = ctx.observations
    alk = obs[(obs["category"] == "alk_resistance") & obs["detected"]
              & (obs["role"] == "on_treatment")]
    new_keys = set(_new_detections(ctx, obs["category"] == "alk_resistance")["marker_key"])
    counts = alk.groupby("sample_id")["marker_key"].nunique()
    multi = [s for s in counts[counts >= 2].index
             if new_keys & set(alk[alk["sample_id"] == s]["marker_key"])]
    if not multi:
        return []
    rows = alk[alk["sample_id"].isin(multi)].sort_values(["collection_date", "marker_key"])
    first = rows[rows["sample_id"] == rows["sample_id"].iloc[0]]
    actions = ["Phasing (same-read evidence) is needed to call compound vs polyclonal: "
               "report as '>= 2 ALK mutations (compound vs polyclonal undetermined)'."]
    drug = (ctx.therapy.drug if ctx.therapy else "") or ""
    if "lorlatinib" in drug.lower():
        actions.append("On lorlatinib: a lorlatinib-refractory compound mutation is possible.")
    alert = _alert(R2, "FAILURE", [obs_finding(r) for _, r in rows.iterrows()], actions)
    alterations = [(str(g), str(a)) for g, a in zip(first["gene"], first["alteration"],
                                                    strict=True)]
    return [attach_therapy_options(alert, ctx, alterations)]


def _met_tier(ctx: LineContext, row: pd.Series) -> tuple[str | None, str]:
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


def rule_r3(ctx: LineContext) -> list[Alert]:
    """R3: MET amplification (by assay copy-number kind) or MET fusion."""
    obs = ctx.observations
    genes = obs["gene"].astype("object").fillna("").astype(str).str.upper()
    partner = obs["fusion_partner"].astype("object").fillna("").astype(str).str.upper()
    met = ((genes == "MET") & obs["variant_type"].isin(["cnv", "fusion", "sv"])) | (
        (partner == "MET") & obs["variant_type"].isin(["fusion", "sv"]))
    new = _new_detections(ctx, met)
    graded = [(row, *_met_tier(ctx, row)) for _, row in new.iterrows()]
    graded = [g for g in graded if g[1] is not None]
    if not graded:
        return []
    tier = "FAILURE" if any(g[1] == "FAILURE" for g in graded) else "WARNING"
    findings = [obs_finding(row, why) for row, _, why in graded]
    alert = _alert(R3, tier, findings, [
        "MET bypass: consider dual ALK + MET inhibition (see options); confirm by tissue or "
        "a repeat draw when copy number is near the threshold.",
    ])
    alteration = "fusion" if any(r["variant_type"] != "cnv" for r, _, _ in graded) \
        else "amplification"
    return [attach_therapy_options(alert, ctx, [("MET", alteration)])]


_MAPK_HOTSPOT = re.compile(r"^(?:p\.)?(?:G12|G13|Q61)[A-Z]")


def rule_r4(ctx: LineContext) -> list[Alert]:
    """R4: new KRAS/NRAS G12/G13/Q61 or MAP2K1 activating mutation (FAILURE confirmed)."""
    obs = ctx.observations
    genes = obs["gene"].astype("object").fillna("").astype(str).str.upper()
    hotspot = obs["alteration"].astype("object").fillna("").astype(str).str.match(_MAPK_HOTSPOT)
    mask = (genes.isin(["KRAS", "NRAS"]) & hotspot) | (
        (genes == "MAP2K1") & (obs["category"] == "bypass"))
    mask &= obs["variant_type"].isin(["snv", "mnv", "indel"])
    new = _new_detections(ctx, mask)
    return _mutation_alerts(ctx, R4, new, rising_escalates=False)


def rule_q1(ctx: LineContext) -> list[Alert]:
    """Q1: list the line's non-informative negatives (data quality; no tier effect)."""
    treated = ctx.treated
    bad = treated[~treated["informative"].astype(bool)]
    if not len(bad):
        return []
    findings = [draw_finding(r, f"LoD above the last detected level "
                                f"{r['prev_detected_level']:.4g}") for _, r in bad.iterrows()]
    return [_alert(Q1, "INFO", findings, [
        "Non-informative negative: repeat with a more sensitive assay or more input; this "
        "draw does not count as clearance.",
    ])]


def rule_q2(ctx: LineContext) -> list[Alert]:
    """Q2: CHIP variants seen on the line (excluded from the ctDNA level)."""
    obs = ctx.observations
    chip = obs[obs["is_chip"] & obs["detected"]]
    if not len(chip):
        return []
    return [_alert(Q2, "INFO", [obs_finding(r, "CHIP: excluded from the ctDNA level")
                                for _, r in chip.iterrows()], [
        "A rising CHIP variant can mimic progression; matched white-cell sequencing resolves it.",
    ])]


#: Rules in evaluation order (C1 is computed by the engine from the final status).
RULE_FUNCTIONS: tuple[Callable[[LineContext], list[Alert]], ...] = (
    rule_b1, rule_b2, rule_e1, rule_e2_e3, rule_e4, rule_p1_p2, rule_p3,
    rule_r1, rule_r2, rule_r3, rule_r4, rule_q1, rule_q2,
)
