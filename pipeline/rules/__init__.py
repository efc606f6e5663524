"""Rule engine: CML-style molecular-response tiers for ctDNA (clinical-evidence.md section 6).

``evaluate_cohort`` is the entry point; ``CATALOGUE`` lists every rule with its ID,
title, tiers, window, confirmation, sources and evidence strength (see docs/rules.md).
"""

from __future__ import annotations

from pipeline.rules.catalogue import C2_CAVEAT, CATALOGUE, FAILURE_ACTION, RuleInfo
from pipeline.rules.engine import evaluate_cohort

__all__ = ["C2_CAVEAT", "CATALOGUE", "FAILURE_ACTION", "RuleInfo", "evaluate_cohort"]
