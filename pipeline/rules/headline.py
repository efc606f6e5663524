"""The assessment headline: one sentence saying what drives the status (#9 item 8).

Used by the report's first lines, the email and ``evaluate --json`` (``headline``), e.g.
"FAILURE: New ALK G1202R 0.27 -> 0.93 % on 2 draws; ctDNA 0.1 % -> 1.2 % after clearance".
"""

from __future__ import annotations

from pipeline.assessment import Alert, DrawLevel

#: Which alert leads the headline when several are current (mechanism before kinetics).
_PRIORITY = ("R0", "R2", "R1", "R3", "R4", "R5", "R6", "S1", "P4", "P2", "P3", "P1", "E3",
             "E4", "E2")
_NEW = {"R1", "R2", "R4", "R5", "P4"}
_TIER_WORDS = {"FAILURE": "FAILURE (early-switch review)", "WARNING": "WARNING",
               "OPTIMAL": "OPTIMAL", "NOT_EVALUABLE": "Not evaluable for response"}


def level_text(value: float | None, unit: str = "fraction") -> str:
    """A level as clinicians read it: percent for fractions, MTM/mL for molecule counts."""
    if value is None:
        return "?"
    if unit == "mtm_per_ml":
        return f"{value:.3g} MTM/mL"
    return f"{value * 100:.3g} %"


def _draw_text(level: DrawLevel) -> str:
    if level.detected:
        return level_text(level.level, level.unit)
    bound = level.upper_bound
    return "< LoD" if bound is None else f"< {level_text(bound, level.unit)}"


_KINETIC = {"E2", "E3", "E4", "P1", "P2", "P3"}


def _kinetic_part(alert: Alert) -> str | None:
    """For level rules: the marker behind the latest level and the level path."""
    levels = sorted((f for f in alert.findings if f.ctdna_level is not None),
                    key=lambda f: f.collection_date)
    if not levels:
        return None
    last = levels[-1]
    values = [f.ctdna_level for f in levels if f.ctdna_level is not None]
    path = " → ".join(f"{v * 100:.3g}" for v in dict.fromkeys(values))
    label = f"{last.gene} {last.alteration}: " if last.gene else ""
    text = f"{label}ctDNA {path} %" if "→" in path else f"{label}ctDNA level {path} %"
    if alert.tier == "WARNING" and alert.confirmed is False:
        urgent = any(x.startswith("URGENT") for x in alert.suggested_actions)
        text += " (unconfirmed: urgent confirmatory draw)" if urgent else " (unconfirmed)"
    return text


def _alteration_part(alert: Alert) -> str:
    if alert.rule_id in _KINETIC:
        kinetic = _kinetic_part(alert)
        if kinetic:
            return kinetic
    named = [f for f in alert.findings if f.gene and f.alteration and f.alteration != "ctDNA level"]
    if not named:
        return alert.title
    lead = named[0]
    label = f"{lead.gene} {lead.alteration}"
    same = [f for f in named if (f.gene, f.alteration) == (lead.gene, lead.alteration)]
    values = [f.vaf for f in sorted(same, key=lambda f: f.collection_date) if f.vaf is not None]
    path = " → ".join(f"{v * 100:.3g}" for v in dict.fromkeys(values))
    text = ("New " if alert.rule_id in _NEW else "") + label
    if path:
        text += f" {path} %"
        if len(values) > 1:
            text += f" on {len(values)} draws"
    elif lead.copy_number is not None:
        text += f" (copy number {lead.copy_number:.3g})"
    if alert.rule_id == "R0":
        reason = next((e for e in alert.evidence if "knowledge base rates" in e), "")
        text += ": " + (reason.split(": ", 1)[1] if reason else "present at baseline")
    elif alert.tier == "WARNING" and alert.confirmed is False:
        urgent = any(x.startswith("URGENT") for x in alert.suggested_actions)
        text += " (unconfirmed: urgent confirmatory draw)" if urgent else " (unconfirmed)"
    return text


def _level_part(levels: list[DrawLevel], new_clone_leads: bool = False) -> str:
    if not levels:
        return ""
    ref = next((lv for lv in levels if lv.role == "baseline"), levels[0])
    latest = levels[-1]
    if latest.sample_id == ref.sample_id:
        word = "provisional reference" if ref.provisional_reference else "baseline"
        return f"ctDNA {_draw_text(ref)} ({word})"
    treated = [lv for lv in levels if lv.role == "on_treatment" and lv.sample_id != ref.sample_id]
    cleared_before = any(not lv.detected and lv.informative for lv in treated[:-1])
    # The level follows the baseline markers. When a clone absent at baseline leads the
    # headline, "ctDNA 0.1 % -> < 0.1 %" beside "EGFR del19 0.2 -> 5.4 %" reads as a
    # contradiction (real Guardant G1, round 2 review): name what the level measures.
    what = f"baseline markers ({ref.markers})" if new_clone_leads and ref.markers else "ctDNA"
    text = f"{what} {_draw_text(ref)} → {_draw_text(latest)}"
    if latest.detected and cleared_before:
        text += " after clearance"
    if ref.provisional_reference:
        text += " (from a provisional on-treatment reference)"
    return text


def make_headline(status: str, reason: str, alerts: list[Alert], levels: list[DrawLevel]) -> str:
    """One sentence for the status, naming the alteration(s) behind it."""
    rank = {rid: i for i, rid in enumerate(_PRIORITY)}
    current = [a for a in alerts if a.tier in ("FAILURE", "WARNING") and a.rule_id in rank]
    # FAILURE first; among equals an urgent request (single-draw 1-log rise) leads.
    current.sort(key=lambda a: (a.tier != "FAILURE",
                                not any(x.startswith("URGENT") for x in a.suggested_actions),
                                rank[a.rule_id]))
    parts = []
    if current and status in ("FAILURE", "WARNING", "NOT_EVALUABLE"):
        lead = current[0]
        parts.append(_alteration_part(lead))
        others = [a for a in current[1:] if a.tier == lead.tier]
        if others:
            parts[-1] += f" (+{len(others)} more {lead.tier} rule{'s' if len(others) > 1 else ''})"
    else:
        parts.append(reason.split(": not evaluable for response")[0])
    level = _level_part(levels, new_clone_leads=bool(current) and current[0].rule_id in _NEW)
    if level and current and current[0].rule_id in _KINETIC and (
            "→" in parts[0] or "→" not in level):
        # the lead already gives the level path; keep only what the level part adds
        level = ("provisional reference (no pre-treatment draw)"
                 if levels and levels[0].provisional_reference else
                 "after clearance" if level.endswith("after clearance") else "")
    if level:
        parts.append(level)
    return f"{_TIER_WORDS.get(status, status)}: " + "; ".join(p for p in parts if p)
