"""Patient and cohort HTML reports (jinja2, autoescaped, one self-contained file each).

Both pages are single files with inline CSS and inline SVG: no external URL, no JavaScript,
so they open offline from a file share or an email attachment and print on A4.
The content follows clinical-evidence.md section 3.7 (trend plot on a log scale with the LoD,
per-draw table with LoD and detected flag, a note against cross-patient comparison,
tumor-fraction context for negatives) and section 6 (tiers in ELN words; FAILURE is an
early-switch *review*; cadence rule C1 for the next draw).

Units: values arrive as fractions (0-1) and are shown in percent, always with a ``%`` sign.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

import pipeline
from pipeline.assessment import FAILURE_MEANING, Alert, Assessment, Finding, Status
from pipeline.config import Settings
from pipeline.errors import InputError
from pipeline.kinetics import alteration_names
from pipeline.report.charts import (
    ChartData,
    chart_series,
    format_percent,
    therapy_bands,
    trend_chart_svg,
)
from pipeline.rules.catalogue import CATALOGUE

__all__ = [
    "COHORT_COLUMNS",
    "COHORT_PAGE_SIZE",
    "TIER_ORDER",
    "CohortRow",
    "render_cohort_report",
    "render_patient_report",
    "status_words",
    "write_html",
]

_TEMPLATES = Path(__file__).resolve().parent / "templates"

#: Cohort ordering after the overdue draws: most urgent tier first; never-evaluated last.
TIER_ORDER: tuple[str | None, ...] = ("FAILURE", "WARNING", "NOT_EVALUABLE", "OPTIMAL", None)

_STATUS_WORDS = {
    "OPTIMAL": "OPTIMAL",
    "WARNING": "WARNING",
    "FAILURE": "FAILURE",
    "NOT_EVALUABLE": "NOT EVALUABLE",
    "INFO": "INFO",
    None: "NOT YET EVALUATED",
}

_CROSS_PATIENT_NOTE = (
    "ctDNA levels are interpreted within this patient over time. Do not compare levels "
    "across patients or across assays: LoD, input DNA and tumor shedding differ."
)
_NEGATIVE_CONTEXT_NOTE = (
    "A draw below LoD is a non-detect at that draw's limit of detection, not a zero. When the "
    "draw's tumor fraction is below 1% a negative is less informative (FoundationOne Liquid "
    "CDx, Clin Cancer Res 2024;30:2452); plasma-negative does not downgrade CNS surveillance."
)


def status_words(status: str | None) -> str:
    """The tier in words as printed (``NOT_EVALUABLE`` -> ``NOT EVALUABLE``)."""
    return _STATUS_WORDS.get(status, str(status).replace("_", " "))


def _css_class(status: str | None) -> str:
    return "tier-" + (status or "none").lower().replace("_", "-")


# ----------------------------------------------------------------------------- jinja


def _environment() -> jinja2.Environment:
    # autoescape=True for every template, whatever its extension: patient IDs, gene names,
    # drug names and free-text evidence all come from outside and are escaped on output
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["pct"] = format_percent
    env.filters["tier_words"] = status_words
    env.filters["tier_class"] = _css_class
    env.filters["isodate"] = _iso
    return env


_ENV: jinja2.Environment | None = None


def _env() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV


def _iso(value: Any) -> str:
    """Dates as ``YYYY-MM-DD``, timestamps as ``YYYY-MM-DD HH:MM`` (plus the zone when known)."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            return text
        try:
            value = pd.Timestamp(text).to_pydatetime()
        except (ValueError, TypeError):
            return text
    if isinstance(value, pd.Timestamp):
        if pd.isna(value):
            return ""
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        zone = value.strftime(" %Z") if value.tzinfo is not None else ""
        return value.strftime("%Y-%m-%d %H:%M") + zone
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _int(value: Any) -> int | None:
    num = _num(value)
    return None if num is None else round(num)


def _to_date(value: Any) -> date | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return None if pd.isna(stamp) else stamp.date()


# ----------------------------------------------------------------------------- patient


def _for_patient(frame: pd.DataFrame, patient_id: str, name: str) -> pd.DataFrame:
    if "patient_id" not in frame.columns:
        raise InputError(f"{name} frame lacks a required column", field="patient_id")
    return frame[frame["patient_id"].astype(str) == patient_id].reset_index(drop=True)


def _obs_label(row: Mapping[str, Any]) -> str:
    # ``alteration_name`` (kinetics.alteration_names): the vendor's text when the knowledge
    # base could not name the row, so "TP53 Splice Site SNV" rather than "TP53 >".
    gene, alteration = row.get("gene"), row.get("alteration_name", row.get("alteration"))
    if gene is not None and not pd.isna(gene) and alteration is not None and not pd.isna(
        alteration
    ):
        return f"{gene} {alteration}"
    parts = [str(row.get(k)) for k in ("chrom", "pos") if row.get(k) is not None
             and not pd.isna(row.get(k))]
    change = f"{row.get('ref') or ''}>{row.get('alt') or ''}"
    where = ":".join(parts)
    gene_text = f"{gene} " if gene is not None and not pd.isna(gene) else ""
    return f"{gene_text}{where} {change}".strip()


def _reads(alt_reads: Any, depth: Any) -> str:
    a, d = _int(alt_reads), _int(depth)
    if a is None and d is None:
        return ""
    return f"{'?' if a is None else a}/{'?' if d is None else d} reads"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _draw_rows(
    obs: pd.DataFrame,
    draws: pd.DataFrame,
    data: ChartData,
    baseline_sample_id: str | None,
) -> list[dict[str, Any]]:
    """One row per draw: detected alterations and the tracked markers below its LoD."""
    confirm_ids = {sid for _, sid in data.confirmation_draws}
    tracked = {(s.gene, s.alteration) for s in data.markers}
    rows: list[dict[str, Any]] = []
    if len(obs):
        obs = obs.assign(alteration_name=alteration_names(obs))
    by_sample = {sid: g for sid, g in obs.groupby(obs["sample_id"].astype(str), sort=False)}
    days: list[Any] = [_to_date(v) for v in draws["collection_date"]]
    ordered = draws.assign(_d=days).sort_values(
        ["_d", "sample_id"], kind="mergesort"
    )
    for draw in _records(ordered):
        sid = str(draw["sample_id"])
        lod = _num(draw.get("lod_vaf"))
        lod_text = format_percent(lod)
        sample_obs = by_sample.get(sid, obs.iloc[0:0])
        detected_items: list[dict[str, Any]] = []
        below_items: list[dict[str, Any]] = []
        detected_keys: set[tuple[str, str]] = set()
        for row in _records(sample_obs):
            label = _obs_label(row)
            category = row.get("category")
            key = (str(row.get("gene")), str(row.get("alteration")))
            if bool(row.get("detected")):
                detected_keys.add(key)
                vaf = _num(row.get("vaf"))
                cn = _num(row.get("copy_number"))
                if vaf is not None:
                    value = f"VAF {format_percent(vaf)}"
                elif cn is not None:
                    value = f"copy number {cn:.2f}"
                else:
                    value = "detected, VAF not reported"
                detected_items.append({
                    "label": label,
                    "value": value,
                    "reads": _reads(row.get("alt_reads"), row.get("depth")),
                    "chip": category == "chip",
                    "category": category if isinstance(category, str) else "",
                })
            else:
                # a sub-threshold or filtered call is reported as below LoD (never as its raw
                # value or as zero); the raw evidence is shown for audit only
                filt = row.get("filter")
                reason = (
                    f"filtered: {filt}" if isinstance(filt, str) and filt not in ("PASS", "")
                    else "below the calling threshold"
                )
                below_items.append({
                    "label": label,
                    "value": f"below LoD (<{lod_text})",
                    "reads": _reads(row.get("alt_reads"), row.get("depth")),
                    "note": reason,
                })
        seen_below = {item["label"] for item in below_items}
        for gene, alteration in sorted(tracked, key=lambda k: (str(k[0]), str(k[1]))):
            if (str(gene), str(alteration)) in detected_keys:
                continue
            label = f"{gene} {alteration}"
            if label in seen_below:
                continue
            below_items.append({"label": label, "value": f"below LoD (<{lod_text})", "reads": "",
                                "note": ""})
        flags = []
        if baseline_sample_id is not None and sid == baseline_sample_id:
            flags.append("baseline")
        if sid in confirm_ids:
            flags.append("used by a confirmed alert")
        tf = _num(draw.get("tumor_fraction"))
        rows.append({
            "date": _iso(draw["_d"]),
            "sample_id": sid,
            "assay": draw.get("assay") if isinstance(draw.get("assay"), str) else "",
            "depth": _int(draw.get("median_depth")),
            "lod": lod_text,
            "lod_source": draw.get("lod_source") if isinstance(draw.get("lod_source"), str)
            else "",
            "tumor_fraction": format_percent(tf) if tf is not None else "",
            "low_tf": tf is not None and tf < 0.01 and not detected_items,
            "detected": detected_items,
            "below": below_items,
            "nothing": not detected_items,
            "flags": flags,
        })
    return rows


def _finding_view(finding: Finding) -> dict[str, Any]:
    if finding.detected and finding.vaf is not None:
        value = f"VAF {format_percent(finding.vaf)}"
    elif not finding.detected:
        value = (f"below LoD (<{format_percent(finding.lod_vaf)})" if finding.lod_vaf is not None
                 else "below LoD")
    elif finding.copy_number is not None:
        value = f"copy number {finding.copy_number:.2f}"
    else:
        value = "detected"
    what = " ".join(x for x in (finding.gene, finding.alteration) if x) or "ctDNA level"
    return {
        "what": what,
        "sample_id": finding.sample_id,
        "date": finding.collection_date.isoformat(),
        "value": value,
        "reads": _reads(finding.alt_reads, finding.depth),
        "level": format_percent(finding.ctdna_level) if finding.ctdna_level is not None else "",
        "note": finding.note or "",
    }


def _strength(alert: Alert) -> str:
    """The rule's evidence label (evidenced / analogy / convention; #13 item 3)."""
    info = CATALOGUE.get(alert.rule_id)
    if info is not None:
        return info.strength_label()
    return alert.evidence_strength or "not stated"


def _alert_view(alert: Alert) -> dict[str, Any]:
    return {
        "rule_id": alert.rule_id,
        "tier": alert.tier,
        "title": alert.title,
        "confirmed": alert.confirmed,
        "findings": [_finding_view(f) for f in alert.findings],
        "actions": list(alert.suggested_actions),
        "evidence": list(alert.evidence),
        "evidence_strength": _strength(alert),
        "unverified": alert.unverified_knowledge
        or any(not o.verified for o in alert.therapy_options),
        "options": [
            {
                "name": o.name,
                "kind": o.kind,
                "reference": o.reference,
                "evidence_level": o.evidence_level or "",
                "verified": o.verified,
            }
            for o in alert.therapy_options
        ],
        "draws_used": list(alert.draws_used),
    }


def _therapy_rows(therapies: pd.DataFrame, reference_day: date | None) -> list[dict[str, Any]]:
    rows = []
    for band in therapy_bands(therapies):
        stop = band.end or reference_day
        days = (stop - band.start).days if stop is not None else None
        rows.append({
            "line": band.line,
            "drug": band.drug,
            "start": band.start.isoformat(),
            "end": band.end.isoformat() if band.end else "ongoing",
            "days": days if days is not None and days >= 0 else None,
            "ongoing": band.end is None,
        })
    return rows


def _history_rows(alert_history: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for i, item in enumerate(alert_history):
        for key in ("evaluated_at", "rule_id", "tier", "title"):
            if key not in item:
                raise InputError("alert history entry lacks a field", record=i + 1, field=key)
        when = item["evaluated_at"]
        rows.append({
            "sort": pd.Timestamp(when),
            "evaluated_at": _iso(when),
            "rule_id": str(item["rule_id"]),
            "tier": str(item["tier"]),
            "title": str(item["title"]),
        })
    rows.sort(key=lambda r: (r["sort"], r["rule_id"]), reverse=True)
    return rows


def _source_rows(kb_sources: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    out = []
    for item in kb_sources:
        out.append({k: str(item.get(k) or "") for k in ("name", "version", "licence", "url")})
    return out


def render_patient_report(
    patient_id: str,
    observations: pd.DataFrame,
    samples: pd.DataFrame,
    therapies: pd.DataFrame,
    assessment: Assessment | None,
    alert_history: Sequence[Mapping[str, Any]],
    settings: Settings,
    kb_sources: Sequence[Mapping[str, Any]],
    *,
    generated_at: datetime | None = None,
    chart_svg: str | None = None,
) -> str:
    """Render the clinician report of one patient as one self-contained HTML document.

    Parameters
    ----------
    patient_id
        The pseudonymous patient ID (rows of other patients in the frames are ignored).
    observations, samples, therapies
        Store frames (``Store.observations_frame`` / ``samples_frame`` / ``therapies_frame``);
        VAF, LoD and tumor fraction are fractions 0-1.
    assessment
        The current assessment of the patient, or None when it was never evaluated.
    alert_history
        Earlier assessments' alerts: dicts with ``evaluated_at``, ``rule_id``, ``tier``,
        ``title``.
    settings
        The resolved configuration (its version label is printed).
    kb_sources
        Knowledge-base sources: dicts with ``name``, ``version``, ``licence``, ``url`` (URLs
        are printed as text, never linked or fetched).
    generated_at
        When the report was produced; printed when given (omitted by default so that the
        output is reproducible).
    chart_svg
        The trend chart already drawn for this run (``ChartCache.charts(...).svg``, issue #11
        item 3: one render per patient shared with the email); drawn here when None.

    Returns
    -------
    str
        HTML5 text with inline CSS and SVG, no external URL and no script.

    Raises
    ------
    InputError
        The assessment belongs to another patient, a frame lacks a contract column, or an
        alert-history entry lacks a field.
    """
    patient_id = str(patient_id)
    if assessment is not None and assessment.patient_id != patient_id:
        raise InputError(
            "assessment belongs to another patient than the report", field="patient_id"
        )
    obs = _for_patient(observations, patient_id, "observations")
    draws = _for_patient(samples, patient_id, "samples")
    lines = _for_patient(therapies, patient_id, "therapies")

    data = chart_series(obs, draws, lines, assessment)
    svg = chart_svg if chart_svg is not None else trend_chart_svg(obs, draws, lines, assessment)
    last_draw = max((p.collection_date for s in data.series for p in s.points), default=None)
    reference_day = assessment.as_of if assessment is not None else last_draw
    status = assessment.status if assessment is not None else None
    context = {
        "patient_id": patient_id,
        "status": status,
        "assessment": assessment,
        "alerts": [_alert_view(a) for a in assessment.alerts] if assessment else [],
        "baseline_context": [_alert_view(a) for a in assessment.baseline_context]
        if assessment else [],
        "therapy_rows": _therapy_rows(lines, reference_day),
        "chart_svg": Markup(svg),  # matplotlib's SVG writer escapes every text it contains
        "truncal": [f"{g} {a}" for g, a in data.truncal_markers],
        "draw_rows": _draw_rows(obs, draws, data, assessment.baseline_sample_id
                                if assessment else None),
        "history": _history_rows(alert_history),
        "config_version_report": settings.version_label(),
        "config_version_assessment": assessment.config_version if assessment else None,
        "kb_version": assessment.kb_version if assessment else None,
        "pipeline_version": pipeline.__version__,
        "pipeline_version_assessment": assessment.pipeline_version if assessment else None,
        "kb_sources": _source_rows(kb_sources),
        "failure_meaning": FAILURE_MEANING,
        "cross_patient_note": _CROSS_PATIENT_NOTE,
        "negative_note": _NEGATIVE_CONTEXT_NOTE,
        "generated_at": _iso(generated_at) if generated_at else None,
    }
    return _env().get_template("patient.html.j2").render(context)


# ----------------------------------------------------------------------------- cohort


@dataclass(frozen=True)
class CohortRow:
    """One patient on the lab's cohort overview.

    Attributes
    ----------
    patient_id
        Pseudonymous patient ID.
    status
        Current tier (``OPTIMAL`` / ``WARNING`` / ``FAILURE`` / ``NOT_EVALUABLE``), None when
        the patient was never evaluated.
    therapy_drug, therapy_line, therapy_start
        The current line of therapy, None when there is none.
    last_draw_date
        Collection date of the patient's latest draw, None without draws.
    next_draw_due
        When the next draw is due: the assessment's ``next_draw_due`` (rule C1). None when
        no schedule applies (no therapy line).
    alerts
        Short ``"RULE TIER: title"`` lines of the current alerts, most severe first.
    care_team
        Routing key of the care team, when known.
    alterations
        ``"GENE ALTERATION"`` of the patient's detected calls (searchable on the page).
    """

    patient_id: str
    status: Status | None
    therapy_drug: str | None
    therapy_line: int | None
    therapy_start: date | None
    last_draw_date: date | None
    next_draw_due: date | None
    alerts: tuple[str, ...] = ()
    care_team: str | None = None
    alterations: tuple[str, ...] = ()
    #: Notified WARNING/FAILURE alerts nobody has acknowledged yet (issue #14 item 2).
    open_alerts: int = 0

    @classmethod
    def from_assessment(
        cls,
        assessment: Assessment,
        draw_dates: Iterable[date],
        settings: Settings,
        *,
        care_team: str | None = None,
        alterations: Iterable[str] = (),
        open_alerts: int = 0,
    ) -> CohortRow:
        """Build the row of one evaluated patient.

        Parameters
        ----------
        assessment
            The patient's current assessment.
        draw_dates
            Collection dates of the patient's draws (``samples_frame.collection_date``).
        settings
            Resolved settings (kept for callers; the due date comes from the assessment).
        care_team
            Routing key, when known.
        alterations
            The patient's detected alterations (``"GENE ALTERATION"``), for the page search.
        open_alerts
            Unacknowledged notified alerts (``service.open_alert_counts``); such rows lead.
        """
        dates = sorted(d for d in (_to_date(v) for v in draw_dates) if d is not None)
        therapy = assessment.therapy
        # #9 item 9: one truth per quantity: the due date is the rules' (C1), never
        # recomputed here (None when no line of therapy applies).
        due = assessment.next_draw_due
        severity = {"FAILURE": 0, "WARNING": 1, "INFO": 2}
        alerts = tuple(
            f"{a.rule_id} {a.tier}: {a.title}"
            for a in sorted(assessment.alerts, key=lambda a: (severity.get(a.tier, 3), a.rule_id))
        )
        return cls(
            patient_id=assessment.patient_id,
            status=assessment.status,
            therapy_drug=therapy.drug if therapy else None,
            therapy_line=therapy.line if therapy else None,
            therapy_start=therapy.start_date if therapy else None,
            last_draw_date=dates[-1] if dates else None,
            next_draw_due=due,
            alerts=alerts,
            care_team=care_team,
            alterations=tuple(alterations),
            open_alerts=open_alerts,
        )


def _cohort_sort_key(item: dict[str, Any]) -> tuple[Any, ...]:
    row: CohortRow = item["row"]
    due = row.next_draw_due or date.max
    # Unacknowledged alerts first (closed-loop alerting, #14 item 2: a critical result is
    # handled once someone said so), then OVERDUE (most days overdue first), then by tier,
    # then the earliest due date.
    return (
        0 if row.open_alerts else 1,
        0 if item["overdue"] else 1,
        -item["days_overdue"] if item["overdue"] else 0,
        TIER_ORDER.index(row.status) if row.status in TIER_ORDER else len(TIER_ORDER),
        due,
        row.patient_id,
    )


#: Rows rendered as static HTML (first page of the interactive table; also what prints and
#: what a reader without JavaScript sees). The whole cohort is in the embedded JSON.
COHORT_PAGE_SIZE = 100

#: Columns of the embedded cohort JSON (one array per patient; strings interned).
COHORT_COLUMNS = (
    "patient_id", "status", "care_team", "therapy_drug", "therapy_line", "therapy_start",
    "last_draw_date", "next_draw_due", "days_overdue", "alerts", "alterations", "open_alerts",
)


def _json_for_script(data: Any) -> Markup:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&`` literal.

    Patient IDs, drugs and alert titles come from outside; escaping these three characters
    as ``\\u00XX`` means no value can close the script element or open another one.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)  # escaped above for the script-data context


def _cohort_payload(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole cohort as compact JSON: one array per patient, repeated strings interned."""
    strings: list[str] = []
    index: dict[str, int] = {}

    def intern(text: str | None) -> int | None:
        if text is None:
            return None
        if text not in index:
            index[text] = len(strings)
            strings.append(text)
        return index[text]

    rows = []
    for item in items:
        r: CohortRow = item["row"]
        rows.append([
            r.patient_id, r.status, intern(r.care_team), intern(r.therapy_drug), r.therapy_line,
            _iso(r.therapy_start) or None, _iso(r.last_draw_date) or None,
            _iso(r.next_draw_due) or None, item["days_overdue"] if item["overdue"] else None,
            [intern(a) for a in r.alerts], [intern(a) for a in r.alterations], r.open_alerts,
        ])
    return {"columns": list(COHORT_COLUMNS), "strings": strings, "rows": rows,
            "tiers": [t for t in TIER_ORDER if t is not None],
            # keyed as JavaScript's String(status) spells them ("null": never evaluated)
            "tier_words": {"null" if t is None else t: status_words(t) for t in TIER_ORDER},
            "page_size": COHORT_PAGE_SIZE}


def render_cohort_report(
    rows: Iterable[CohortRow],
    settings: Settings,
    generated_at: datetime | date,
) -> str:
    """Render the lab's overview of every patient as one self-contained HTML document.

    Usable at 10,000 patients (issue #11 item 3): the cohort is embedded once as JSON and a
    small inline script (no library, nothing fetched) searches it (patient ID, alteration,
    alert text), filters it by tier and care team, sorts it by column and pages it. The
    first page is also rendered as static HTML, so the most urgent patients print and show
    without JavaScript.

    Parameters
    ----------
    rows
        One :class:`CohortRow` per patient.
    settings
        Supplies ``cadence.overdue_grace_days`` and the config version label.
    generated_at
        The report's "today": a draw is OVERDUE when today > due + ``overdue_grace_days``.

    Returns
    -------
    str
        HTML5 text: tier counts at the top, then (patients with open alerts first, when
        known) OVERDUE draws first, then FAILURE, WARNING, NOT EVALUABLE, OPTIMAL, never
        evaluated.
    """
    today = generated_at.date() if isinstance(generated_at, datetime) else generated_at
    grace = timedelta(days=settings.cadence.overdue_grace_days)
    items: list[dict[str, Any]] = []
    for row in rows:
        due = row.next_draw_due
        overdue = due is not None and today > due + grace
        items.append({
            "row": row,
            "overdue": overdue,
            "days_overdue": (today - due).days if overdue and due is not None else 0,
        })
    items.sort(key=_cohort_sort_key)
    tally = Counter(i["row"].status for i in items)
    counts = [{"status": status, "count": tally.get(status, 0)} for status in TIER_ORDER]
    teams = sorted({i["row"].care_team for i in items if i["row"].care_team})
    context = {
        "items": items[:COHORT_PAGE_SIZE],
        "counts": counts,
        "n_patients": len(items),
        "n_overdue": sum(1 for i in items if i["overdue"]),
        "page_size": COHORT_PAGE_SIZE,
        "teams": teams,
        "tiers": [t for t in TIER_ORDER if t is not None],
        "has_open_alerts": any(i["row"].open_alerts for i in items),
        "cohort_json": _json_for_script(_cohort_payload(items)),
        "n_unacknowledged": sum(1 for i in items if i["row"].open_alerts),
        "grace_days": settings.cadence.overdue_grace_days,
        "today": today.isoformat(),
        "generated_at": _iso(generated_at),
        "config_version": settings.version_label(),
        "pipeline_version": pipeline.__version__,
        "failure_meaning": FAILURE_MEANING,
        "cross_patient_note": _CROSS_PATIENT_NOTE,
    }
    return _env().get_template("cohort.html.j2").render(context)


# ----------------------------------------------------------------------------- output


def write_html(path: str | Path, html: str) -> Path:
    """Write ``html`` to ``path`` atomically (temporary file in the same folder + rename).

    A reader (browser, mail job, file share) never sees a half-written report, and an
    interrupted run leaves the previous report in place.

    Parameters
    ----------
    path
        Destination file; missing parent folders are created.
    html
        The document text (written as UTF-8).

    Returns
    -------
    pathlib.Path
        The destination path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(html)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; a report is meant to be read by the care team's share
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
