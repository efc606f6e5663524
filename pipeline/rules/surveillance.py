"""Rule S1: surveillance mode for curative-intent and adjuvant lines (#9 item 7).

After resection (adjuvant alectinib is standard since ALINA) the expected state is "no
ctDNA". Response milestones (B1, E1-E4, P1-P4) do not apply; what matters is conversion to
positive: a variant-level detection of any non-CHIP somatic alteration, or a draw-level
call/value above its LoD (tumour-informed MRD assays). One positive draw is a WARNING that
asks for a confirmatory draw; confirmed on the next draw it is FAILURE (molecular relapse:
early-switch review, here a staging work-up).
"""

from __future__ import annotations

import pandas as pd

from pipeline.assessment import Alert
from pipeline.rules.catalogue import (
    S1,
    LineContext,
    confirmed_pairs,
    draw_finding,
    make_alert,
    obs_finding,
)


def positive_draws(ctx: LineContext) -> pd.Series:
    """Per on-treatment draw (index aligned to ``ctx.treated``): positive for tumour DNA."""
    treated = ctx.treated
    obs = ctx.observations
    somatic = obs[obs["detected"].astype(bool) & ~obs["is_chip"].astype(bool)]
    by_variant = treated["sample_id"].isin(set(somatic["sample_id"]))
    return treated["detected"].astype(bool) | by_variant


def rule_s1(ctx: LineContext) -> list[Alert]:
    """S1: a positive draw on a curative/adjuvant line (WARNING; FAILURE confirmed)."""
    if not ctx.surveillance:
        return []
    treated = ctx.treated.drop_duplicates("sample_id")
    if not len(treated):
        return []
    positive = positive_draws(ctx).loc[treated.index].to_numpy(bool)
    informative = treated["informative"].astype(bool).to_numpy()
    keep = positive | informative
    seq, pos = treated[keep], positive[keep]
    if not pos[-1] and not (confirmed_pairs(seq["day"].to_numpy(float), pos, ctx.rules)).any():
        return []
    confirmed = confirmed_pairs(seq["day"].to_numpy(float), pos, ctx.rules)
    obs = ctx.observations
    somatic = obs[obs["detected"].astype(bool) & ~obs["is_chip"].astype(bool)]
    if confirmed.any():
        i = int(confirmed.nonzero()[0][0])
        rows = [seq.iloc[i - 1], seq.iloc[i]]
        tier = "FAILURE"
        actions = ["Confirmed conversion to ctDNA-positive on a curative/adjuvant line: "
                   "molecular relapse; restage (imaging) and review therapy."]
    else:
        rows = [seq.iloc[-1]]
        tier = "WARNING"
        actions = [f"ctDNA-positive draw {rows[0]['sample_id']} on a curative/adjuvant line: "
                   "draw a confirmatory sample promptly (target within "
                   f"{ctx.rules.confirm_min_days}-{ctx.rules.confirm_max_days} days)."]
    findings = [draw_finding(r, "positive") for r in rows]
    for r in rows:
        calls = somatic[somatic["sample_id"] == r["sample_id"]]
        findings += [obs_finding(c) for _, c in calls.iterrows()]
    return [make_alert(S1, tier, findings, actions, confirmed=bool(confirmed.any()))]
