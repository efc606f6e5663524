"""The engine's results stay byte-identical across rewrites (#11 item 2).

``tests/fixtures/rules/golden_cohort.json`` was first written by the engine before the #11
cohort-wide rework (commit 8a8f7bc) from ``golden_cohort.golden_timeline()``; main's
cohort-scale engine (2997ab8 and later) reproduced it except for the three headlines that
9cc81ed reworded on purpose ("baseline markers (...)" instead of "ctDNA"), so it was
rewritten once with that wording. Regenerate it only for an intended clinical change, with
``cd tests/rules && python test_golden.py --write``, and say which change in the commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from golden_cohort import AS_OF, golden_timeline

from pipeline.config import load_settings
from pipeline.rules import evaluate_cohort

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "rules" / "golden_cohort.json"


def _current() -> str:
    settings = load_settings(env={})
    frames = golden_timeline().frames()
    out = evaluate_cohort(*frames, settings, None, as_of=AS_OF)
    payload = [a.contract_json() for a in out]
    for item in payload:  # package and config-file versions are not clinical results
        item.pop("pipeline_version", None)
        item.pop("config_version", None)
    return json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n"


def test_engine_matches_golden_cohort() -> None:
    current = _current()
    assert json.loads(current), "golden cohort produced no assessments"
    assert current == GOLDEN.read_text(encoding="utf-8")


if __name__ == "__main__":
    if "--write" in sys.argv:
        GOLDEN.write_text(_current(), encoding="utf-8")
