"""Generate ``docs/rules.md`` from the rule registry (#9 item 9: docs cannot drift).

``python -m pipeline.rules.docs`` rewrites the file; ``--check`` exits 1 when the file
differs from what the registry generates (a test runs the same comparison).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.config import CadenceSettings, RulesSettings
from pipeline.rules.catalogue import C2_CAVEAT, CATALOGUE, RuleInfo
from pipeline.rules.registry import ENGINE_RULES, RULES, rule_for_category
from pipeline.schema import CATEGORIES

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "rules.md"

#: The prose of docs/rules.md; ``{RULES_TABLE}``, ``{C2}`` and ``{CATEGORIES}`` are filled in.
TEMPLATE = Path(__file__).resolve().parent / "templates" / "rules.md.in"


def _defaults(keys: tuple[str, ...]) -> str:
    rules, cadence = RulesSettings(), CadenceSettings()
    out = []
    for key in keys:
        source = rules if key in RulesSettings.model_fields else cadence
        value = getattr(source, key)
        if isinstance(value, tuple) and len(value) > 4:
            value = f"[{', '.join(map(str, value[:3]))}, ...]"
        out.append(f"`{key}` = {value}")
    return "; ".join(out) or "–"


def _row(info: RuleInfo) -> str:
    cells = [
        f"**{info.rule_id}**", info.title, info.trigger, info.window, " / ".join(info.tiers),
        info.confirmation, "yes" if info.sets_status else "no",
        "yes" if info.needs_therapy_line else "no",
        f"**{info.evidence_strength}**: {info.clinician}", "; ".join(info.sources),
        _defaults(info.config_keys),
    ]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render() -> str:
    """The full text of ``docs/rules.md`` from the registry."""
    header = ("| ID | Title | Trigger (default) | Window | Tiers | Confirmation | Sets status "
              "| Needs a line | Evidence (clinician wording) | Sources | Config keys (default) |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")
    infos = [i for r in RULES for i in r.infos] + list(ENGINE_RULES)
    table = "\n".join([header, *(_row(i) for i in infos)])
    mapping = rule_for_category()
    categories = "\n".join(
        f"| `{c}` | {', '.join(mapping.get(c, [])) or 'level marker (not a resistance category)'} |"
        for c in CATEGORIES)
    missing = set(CATALOGUE) - {i.rule_id for i in infos}
    if missing:
        raise RuntimeError(f"declared but not registered: {sorted(missing)}")
    text = TEMPLATE.read_text(encoding="utf-8")
    return (text.replace("{RULES_TABLE}", table).replace("{C2}", C2_CAVEAT)
            .replace("{CATEGORIES}", categories))


def main(argv: list[str] | None = None) -> int:
    """Write ``docs/rules.md`` (or, with ``--check``, report drift with exit status 1)."""
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in args:
        current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.is_file() else ""
        if current != text:
            print(f"{DOC_PATH}: out of date; run python -m pipeline.rules.docs", file=sys.stderr)
            return 1
        return 0
    DOC_PATH.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
