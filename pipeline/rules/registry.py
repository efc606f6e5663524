"""The rule registry: the one list of rules the engine runs (#9 item 9).

Each rule declares itself once in :data:`pipeline.rules.catalogue.CATALOGUE` (ID, title,
tiers, whether it sets the status, whether it needs a therapy line, evidence strength,
sources, config keys, knowledge-base categories) and has one evaluation function. Adding a
rule = one module with its declaration (``register(RuleInfo(...))``) and function, its
config defaults in ``RulesSettings`` / ``configs/defaults.yaml``, and one line here.
``docs/rules.md`` is generated from this registry (``python -m pipeline.rules.docs``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.assessment import Alert
from pipeline.rules import bypass, emerging, preexisting, surveillance
from pipeline.rules import catalogue as c

RuleFunction = Callable[[c.LineContext], list[Alert]]


@dataclass(frozen=True)
class RegisteredRule:
    """One evaluation function and the rule IDs (declarations) it can emit."""

    evaluate: RuleFunction
    infos: tuple[c.RuleInfo, ...]
    #: Name of a line gate (:data:`pipeline.rules.catalogue.LINE_GATES`): the rule returns
    #: no alert on a line where no observation meets it (#11 item 2).
    gate: str | None = None

    def __post_init__(self) -> None:
        if self.gate is not None and self.gate not in c.LINE_GATES:
            raise ValueError(f"unknown line gate {self.gate!r}")

    @property
    def needs_therapy_line(self) -> bool:
        return any(i.needs_therapy_line for i in self.infos)


#: Evaluation order. C1 (cadence) is computed by the engine from the final status.
RULES: tuple[RegisteredRule, ...] = (
    RegisteredRule(c.rule_b1, (c.B1,)),
    RegisteredRule(c.rule_b2, (c.B2,)),
    RegisteredRule(c.rule_e1, (c.E1,)),
    RegisteredRule(c.rule_e2_e3, (c.E2, c.E3)),
    RegisteredRule(c.rule_e4, (c.E4,)),
    RegisteredRule(c.rule_p1_p2, (c.P1, c.P2)),
    RegisteredRule(c.rule_p3, (c.P3,)),
    RegisteredRule(emerging.rule_p4, (c.P4,), gate="new_emerging"),
    RegisteredRule(preexisting.rule_r0, (c.R0,), gate="resistance_seen"),
    RegisteredRule(c.rule_r1, (c.R1,), gate="new_alk_resistance"),
    RegisteredRule(c.rule_r2, (c.R2,), gate="new_alk_resistance"),
    RegisteredRule(c.rule_r3, (c.R3,), gate="new_met"),
    RegisteredRule(c.rule_r4, (c.R4,), gate="new_mapk"),
    RegisteredRule(bypass.rule_r5, (c.R5,), gate="new_other_bypass"),
    RegisteredRule(bypass.rule_r6, (c.R6,), gate="rb1_seen"),
    RegisteredRule(surveillance.rule_s1, (c.S1,)),
    RegisteredRule(c.rule_q1, (c.Q1,)),
    RegisteredRule(c.rule_q2, (c.Q2,), gate="chip_seen"),
)

#: Rules computed by the engine itself, not by a registered function.
ENGINE_RULES: tuple[c.RuleInfo, ...] = (c.C1,)

#: Rule IDs whose WARNING/FAILURE sets the molecular-response status.
STATUS_RULES = frozenset(i.rule_id for r in RULES for i in r.infos if i.sets_status)

#: Rules judging a mechanism or a new clone: they set the status even when the line is not
#: evaluable for response (no detected baseline, no line).
MECHANISM_RULES = frozenset({"P4", "R0", "R1", "R2", "R3", "R4", "R5", "R6", "S1"})


def rule_for_category() -> dict[str, list[str]]:
    """Knowledge-base category -> rule IDs that judge it (#9 item 6)."""
    out: dict[str, list[str]] = {}
    for info in c.CATALOGUE.values():
        for category in info.categories:
            out.setdefault(category, []).append(info.rule_id)
    return out
