"""Rules R5 (other knowledge-base bypass alterations) and R6 (transformation markers).

#9 item 6: every knowledge-base category that can mean resistance maps to a rule. MET is
judged by R3, MAPK (KRAS/NRAS/MAP2K1/BRAF V600E) by R4; R5 takes the remaining bypass
entries (PIK3CA, EGFR, ERBB2, NF2, KRAS/EGFR/ERBB2 amplification, MET exon 14 ...), R6 the
histologic-transformation markers (RB1 loss together with TP53).
"""

from __future__ import annotations

import pandas as pd

from pipeline.assessment import Alert
from pipeline.rules.catalogue import (
    R5,
    R6,
    LineContext,
    attach_therapy_options,
    confirmed_pairs,
    line_gate,
    make_alert,
    mapk_mask,
    met_mask,
    mutation_alerts,
    new_candidates,
    new_detections,
    obs_finding,
    row_mask,
)


@row_mask
def other_bypass_mask(obs: pd.DataFrame) -> pd.Series:
    """Knowledge-base bypass calls that neither R3 (MET) nor R4 (MAPK) judges."""
    category = obs["category"].astype("object").fillna("")
    return (category == "bypass") & ~met_mask(obs) & ~mapk_mask(obs)


@line_gate
def new_other_bypass(obs: pd.DataFrame) -> pd.Series:
    """Gate of R5: an on-treatment bypass call outside MET/MAPK (R5 judges only new ones)."""
    return new_candidates(obs, other_bypass_mask(obs))


def rule_r5(ctx: LineContext) -> list[Alert]:
    """R5: a new bypass alteration outside MET/MAPK (WARNING; FAILURE when confirmed)."""
    new = new_detections(ctx, ctx.mask(other_bypass_mask))
    return mutation_alerts(ctx, R5, new, rising_escalates=False)


def _seen_gene(obs: pd.DataFrame, gene: str) -> pd.Series:
    """Detected non-CHIP calls of ``gene`` (upper-case symbol)."""
    genes = obs["gene"].astype("object").fillna("").astype(str).str.upper()
    return obs["detected"].astype(bool) & ~obs["is_chip"].astype(bool) & (genes == gene)


@line_gate
def rb1_seen(obs: pd.DataFrame) -> pd.Series:
    """Gate of R6: a detected non-CHIP RB1 call (R6 needs one, with TP53)."""
    return _seen_gene(obs, "RB1")


def rule_r6(ctx: LineContext) -> list[Alert]:
    """R6: RB1 loss with TP53 on the line (WARNING; FAILURE when RB1 is confirmed)."""
    obs = ctx.observations
    rb1 = obs[rb1_seen(obs)]
    tp53 = obs[_seen_gene(obs, "TP53")]
    if not len(rb1) or not len(tp53):
        return []
    treated = ctx.treated.drop_duplicates("sample_id")
    det = treated["sample_id"].isin(set(rb1["sample_id"])).to_numpy()
    confirmed = bool(confirmed_pairs(treated["day"].to_numpy(float), det, ctx.rules).any())
    tier = "FAILURE" if confirmed else "WARNING"
    rows = pd.concat([rb1, tp53]).sort_values(["collection_date", "gene"])
    findings = [obs_finding(r, "transformation marker") for _, r in rows.iterrows()]
    actions = ["RB1 loss with TP53: small-cell (or squamous) transformation possible; a tissue "
               "re-biopsy decides (plasma cannot show histology); check neuron-specific "
               "enolase and imaging."]
    alert = make_alert(R6, tier, findings, actions, confirmed=confirmed,
                       evidence=["RB1 detected on 2 consecutive draws" if confirmed else
                                 "RB1 and TP53 detected on this line"])
    first = rb1.iloc[0]
    return [attach_therapy_options(alert, ctx, [(str(first["gene"]),
                                                 str(first["alteration"]))])]
