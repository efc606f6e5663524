"""Rule R0: pre-existing resistance to the current drug (#9 item 2).

Resistance rules R1-R5 look for *new* alterations. An ALK I1171N at 5 % in the draw taken
at the start of alectinib (real Guardant data, G216), which the knowledge base rates
resistant to alectinib, is primary resistance: the clinician should review the choice of
drug now, not after it has been "confirmed" as new. R0 judges every ALK resistance or
bypass alteration seen at baseline or on any draw of the current line against the current
drug's activity cell in the knowledge base.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipeline.assessment import Alert
from pipeline.rules.catalogue import (
    R0,
    LineContext,
    attach_therapy_options,
    line_gate,
    make_alert,
    obs_finding,
    row_mask,
)

_TIER = {"R": "FAILURE", "I": "WARNING"}
_WORDS = {"R": "resistant", "I": "intermediate activity", "S": "sensitive"}


def _activity(ctx: LineContext, kb_id: Any) -> dict[str, str] | None:
    lookup = getattr(ctx.kb, "drug_activity", None)
    if lookup is None or ctx.therapy is None or kb_id is None or pd.isna(kb_id):
        return None
    result: dict[str, str] | None = lookup(str(kb_id), ctx.therapy.drug)
    return result


@line_gate
@row_mask
def resistance_seen(obs: pd.DataFrame) -> pd.Series:
    """The calls R0 judges (and its gate): detected non-CHIP ALK resistance or bypass."""
    category = obs["category"].astype("object").fillna("")
    return (obs["detected"] & category.isin(["alk_resistance", "bypass"])
            & ~obs["is_chip"].astype(bool))


def rule_r0(ctx: LineContext) -> list[Alert]:
    """R0: ALK resistance / bypass detected on the line, judged against the current drug."""
    if ctx.therapy is None:
        return []
    chosen = np.flatnonzero(ctx.mask(resistance_seen))
    if not len(chosen):
        return []
    base = ctx.baseline
    base_id = None if base is None else str(base["sample_id"])
    alerts: list[tuple[int, Alert]] = []
    # Rows by marker, each marker's calls by date then sample (a stable sort, as pandas'
    # sort_values + groupby gave), over positions: a frame sort per line cost 2 ms (#11).
    arrays = ctx.observation_arrays
    keys, dates, samples = (np.asarray(arrays[c])[chosen]
                            for c in ("marker_key", "collection_date", "sample_id"))
    order = sorted(range(len(chosen)), key=lambda i: (keys[i], dates[i], samples[i]))
    by_marker: dict[Any, list[int]] = {}
    for i in order:
        by_marker.setdefault(keys[i], []).append(i)
    for members in by_marker.values():
        rows = [ctx.observation_row(int(chosen[i])) for i in members]
        first = rows[0]
        cell = _activity(ctx, first.get("kb_id"))
        gene, alteration = str(first["gene"]), str(first["alteration"])
        label = f"{gene} {alteration}"
        at_baseline = base_id is not None and base_id in {samples[i] for i in members}
        when = "at the baseline draw" if at_baseline else "on this line"
        if cell is not None and cell["activity"] in _TIER:
            tier = _TIER[cell["activity"]]
            verified = cell["evidence_label"] != "recalled-unverified"
            headline = (f"{label} {when}: knowledge base rates {cell['drug']} "
                        f"{_WORDS[cell['activity']]} ({cell['reported']}; "
                        f"{cell['evidence_label']})")
            actions = ([f"Primary resistance: early-switch review. {headline}."]
                       if tier == "FAILURE" else
                       [f"Reduced activity of the current drug expected: {headline}; "
                        "review at the next visit and shorten the draw interval."])
            evidence = [headline, cell["citation"]]
        elif first["category"] == "bypass" and at_baseline:
            tier, verified = "WARNING", True
            drug = ctx.therapy.drug
            actions = [f"Pre-existing ALK-independent (bypass) alteration {label} at baseline: "
                       f"{drug} alone may not control this clone; follow it on every draw."]
            evidence = [f"{label} detected at baseline; no per-drug activity in the "
                        "knowledge base for bypass alterations"]
        else:
            continue
        findings = [obs_finding(r, "present at baseline" if r["sample_id"] == base_id
                                else None) for r in rows]
        alert = make_alert(R0, tier, findings, actions, evidence=evidence, confirmed=None)
        alert = attach_therapy_options(alert, ctx, [(gene, alteration)])
        if not verified:
            alert.unverified_knowledge = True
        alerts.append((0 if tier == "FAILURE" else 1, alert))
    return [a for _, a in sorted(alerts, key=lambda t: t[0])]
