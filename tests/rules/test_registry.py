"""The rule registry (#9 items 6 and 9; #13 item 3): one declaration per rule, docs generated."""

from __future__ import annotations

from pipeline.config import CadenceSettings, RulesSettings
from pipeline.rules import docs
from pipeline.rules.catalogue import CATALOGUE
from pipeline.rules.registry import ENGINE_RULES, RULES, rule_for_category
from pipeline.schema import CATEGORIES

#: Knowledge-base categories that can mean resistance (#9 item 6); ``driver`` is the
#: tracked ALK fusion itself.
RESISTANCE_CATEGORIES = set(CATEGORIES) - {"driver"}


def test_docs_rules_md_is_generated_from_the_registry():
    assert docs.DOC_PATH.read_text(encoding="utf-8") == docs.render(), (
        "docs/rules.md drifted from the registry: run python -m pipeline.rules.docs")
    assert docs.main(["--check"]) == 0


def test_every_declared_rule_is_registered_once():
    registered = [i.rule_id for r in RULES for i in r.infos] + [i.rule_id for i in ENGINE_RULES]
    assert sorted(registered) == sorted(CATALOGUE)
    assert len(registered) == len(set(registered))


def test_every_resistance_category_has_a_rule_with_tier_and_evidence():
    mapping = rule_for_category()
    for category in RESISTANCE_CATEGORIES:
        assert mapping.get(category), f"knowledge-base category {category!r} has no rule"
        for rule_id in mapping[category]:
            info = CATALOGUE[rule_id]
            assert info.tiers and info.evidence_strength and info.sources


def test_config_keys_exist_and_evidence_is_labelled():
    known = set(RulesSettings.model_fields) | set(CadenceSettings.model_fields)
    text = docs.render()
    for info in CATALOGUE.values():
        assert set(info.config_keys) <= known, info.rule_id
        assert info.evidence_strength in ("evidenced", "analogy", "convention")
        assert info.evidence_strength in info.clinician.lower(), info.rule_id
        assert f"**{info.rule_id}**" in text
    # #13 item 3: ELN 2025 beside ELN 2020 for the CML-anchored rules
    for rule_id in ("E3", "E4", "P2"):
        sources = " ".join(CATALOGUE[rule_id].sources)
        assert "ELN 2025" in sources and ("ELN 2020" in sources or "ELN 2013" in sources)
