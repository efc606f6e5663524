"""Rule P4: emerging clones (#9 item 1, "whole-patient kinetics").

The ctDNA level follows the baseline truncal markers; a clone that appears only after the
start of the line (EGFR del19 rising 0.2 -> 0.7 -> 5.4 % while a low-level baseline passenger
stays cleared, in the real Guardant data) would otherwise be invisible. P4 follows every
non-CHIP somatic alteration absent at baseline that no mechanism rule (R0-R6) judges, and
raises a loss-of-response alert naming it when it is confirmed or rising.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.assessment import Alert
from pipeline.rules.catalogue import (
    P4,
    LineContext,
    confirmed_pairs,
    line_gate,
    make_alert,
    mapk_mask,
    marker_rows_by_date,
    met_mask,
    new_candidates,
    new_detections,
    obs_finding,
    row_mask,
)

#: Categories judged by a mechanism rule (R0-R6) or excluded from tumour tracking.
_OWNED_BY_OTHER_RULES = ("alk_resistance", "bypass", "driver", "chip")
_LEVEL_TYPES = ("snv", "mnv", "indel", "fusion", "sv")


@row_mask
def emerging_mask(obs: pd.DataFrame) -> pd.Series:
    """Observations P4 follows: VAF-bearing, non-CHIP, not owned by a mechanism rule.

    RB1 is owned by R6 (transformation); TP53 and unclassified alterations stay here.
    """
    genes = obs["gene"].astype("object").fillna("").astype(str).str.upper()
    category = obs["category"].astype("object").fillna("other")
    return (obs["variant_type"].isin(_LEVEL_TYPES) & ~obs["is_chip"].astype(bool)
            & ~category.isin(_OWNED_BY_OTHER_RULES) & (genes != "RB1")
            & ~mapk_mask(obs) & ~met_mask(obs))


@line_gate
def new_emerging(obs: pd.DataFrame) -> pd.Series:
    """Gate of P4: an on-treatment call P4 follows (P4 judges only new ones)."""
    return new_candidates(obs, emerging_mask(obs))


def clone_series(ctx: LineContext, keys: list[str]) -> pd.DataFrame:
    """One row per (marker_key, on-treatment draw): the clone's call in that draw or none."""
    treated = ctx.treated[["sample_id", "collection_date", "day", "level_lod", "lod_vaf"]]
    treated = treated.drop_duplicates("sample_id")
    grid = pd.MultiIndex.from_product([keys, treated["sample_id"]],
                                      names=["marker_key", "sample_id"]).to_frame(index=False)
    grid = grid.merge(treated, on="sample_id", how="left")
    obs = ctx.observations
    calls = obs[obs["marker_key"].isin(keys) & obs["detected"]]
    calls = calls.sort_values("vaf", ascending=False).drop_duplicates(["marker_key", "sample_id"])
    grid = grid.merge(calls[["marker_key", "sample_id", "vaf"]], on=["marker_key", "sample_id"],
                      how="left", indicator=True)
    grid["detected"] = grid.pop("_merge").eq("both")
    return grid.sort_values(["marker_key", "day", "sample_id"], kind="mergesort")


def rule_p4(ctx: LineContext) -> list[Alert]:
    """P4: a new clone confirmed or rising (WARNING); confirmed and rising (FAILURE)."""
    if ctx.surveillance:
        return []  # S1 judges every positive draw on a curative/adjuvant line
    new = new_detections(ctx, ctx.mask(emerging_mask))
    if not len(new):
        return []
    rules = ctx.rules
    series = clone_series(ctx, sorted(set(np.asarray(ctx.observation_arrays["marker_key"])[new])))
    alerts: list[tuple[int, float, Alert]] = []
    for key, s in series.groupby("marker_key", sort=True):
        det = s["detected"].to_numpy(bool)
        vaf = s["vaf"].to_numpy(float)
        hits = np.flatnonzero(det)
        first, last = vaf[hits[0]], vaf[hits[-1]]
        # A later informative negative (its LoD at or below the clone's last VAF) means
        # the clone is no longer seen: no current alert (the same test as R1).
        later = s.iloc[hits[-1] + 1:]
        if len(later) and (later["lod_vaf"].fillna(0) <= (last if last == last else 1)).any():
            continue
        confirmed = bool(confirmed_pairs(s["day"].to_numpy(float), det, rules).any())
        above_floor = bool(last >= rules.emerging_min_vaf)
        rising = len(hits) >= 2 and bool(last >= rules.emerging_rise_fold * first) and above_floor
        single_high = len(hits) == 1 and bool(last >= rules.emerging_single_draw_vaf)
        if confirmed and rising:
            tier, why = "FAILURE", "confirmed on consecutive draws and rising"
        elif (confirmed and above_floor) or rising or single_high:
            tier = "WARNING"
            why = ("confirmed on consecutive draws" if confirmed else "rising" if rising
                   else f"first seen at >= {rules.emerging_single_draw_vaf:.1%}")
        else:
            continue
        rows = marker_rows_by_date(ctx, new, key)
        path = " -> ".join(f"{v:.2%}" for v in vaf[hits] if v == v)
        findings = [obs_finding(r, "new since baseline (emerging clone)") for r in rows]
        label = f"{findings[0].gene or ''} {findings[0].alteration or ''}".strip()
        actions = [f"Emerging clone {label} ({path}): loss of response even if the baseline "
                   "markers stay cleared; consider imaging and re-genotyping."]
        if tier == "WARNING":
            actions.append(f"Confirm on the next draw (target within {rules.confirm_min_days}-"
                           f"{rules.confirm_max_days} days).")
        alert = make_alert(P4, tier, findings, actions, evidence=[f"{label}: {why} ({path})"],
                           confirmed=confirmed)
        alerts.append((0 if tier == "FAILURE" else 1, -float(np.nan_to_num(last)), alert))
    return [a for _, _, a in sorted(alerts, key=lambda t: (t[0], t[1]))]
