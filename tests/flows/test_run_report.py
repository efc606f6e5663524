"""A run you can read in the Prefect UI (issue #12, item 3): name, run id, artifacts."""

from __future__ import annotations

import asyncio
import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.flow


def _identifiers(inbox: Path) -> set[str]:
    """Every sample accession and patient id in the demo inbox's manifests and therapies."""
    found: set[str] = set()
    for path in inbox.rglob("*.csv"):
        with path.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                found |= {row[k] for k in ("sample_id", "patient_id") if row.get(k)}
    for path in inbox.rglob("*.tsv"):
        with path.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                found |= {row[k] for k in ("sample_id", "patient_id") if row.get(k)}
    return found


async def _flow_run_and_artifacts(run_id: str) -> tuple[Any, list[Any]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        flow_run = await client.read_flow_run(run_id)
        artifacts = await client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    return flow_run, artifacts


def test_run_is_named_by_its_time_and_publishes_phi_free_artifacts(
        lab_env: dict[str, Any]) -> None:
    from flows.surveillance import surveillance_run

    inbox = lab_env["inbox"]
    identifiers = _identifiers(inbox)
    assert len(identifiers) >= 8  # 4 patients and their samples: the check below has teeth
    summary = surveillance_run(inbox=str(inbox), reports=str(lab_env["tmp"] / "reports"))

    flow_run, artifacts = asyncio.run(_flow_run_and_artifacts(summary.run_id))
    assert str(flow_run.id) == summary.run_id  # ctdna's run id is the flow-run id
    assert re.fullmatch(r"surveillance-\d{4}-\d\d-\d\dT\d{4}", flow_run.name), flow_run.name

    by_type = {a.type: a for a in artifacts}
    assert set(by_type) == {"markdown", "table"}, [a.type for a in artifacts]
    markdown = str(by_type["markdown"].data)
    assert "| samples ingested | 13 |" in markdown
    assert "| patients evaluated | 4 |" in markdown
    assert "### Patients evaluated" in markdown and "| new or amended draws | 4 |" in markdown
    assert f"| notifications sent | {summary.emails_sent} |" in markdown
    assert "cohort.html" in markdown
    table = by_type["table"].data
    table_text = str(table)
    assert "samples ingested" in table_text and "notifications created" in table_text
    # first assessments of the 4 demo patients: tier changes from "none", counts only
    assert sum(summary.tier_changes.values()) == 4
    assert all(change.startswith("none->") for change in summary.tier_changes)
    assert "### Tier changes" in markdown
    for change, n in summary.tier_changes.items():
        assert f"| {change} | {n} |" in markdown
        assert {"quantity": f"tier change {change}", "count": n} in (
            json.loads(table) if isinstance(table, str) else table)
    assert "| patients skipped | 0 |" in markdown
    assert "| notifications deferred | 0 |" in markdown
    assert "| notifications dead-lettered | 0 |" in markdown
    for identifier in identifiers:
        assert identifier not in markdown, identifier
        assert identifier not in table_text, identifier
        assert identifier not in flow_run.name

    # nothing new: the second run evaluates nobody and says why the 4 patients were skipped
    again = surveillance_run(inbox=str(inbox), reports=str(lab_env["tmp"] / "reports"))
    assert (again.patients_evaluated, again.patients_skipped) == (0, 4)
    _run, artifacts = asyncio.run(_flow_run_and_artifacts(again.run_id))
    markdown = str({a.type: a for a in artifacts}["markdown"].data)
    assert "| patients skipped | 4 |" in markdown and "### Patients skipped" in markdown
    assert "unchanged since the last evaluation" in markdown
    assert "### Tier changes" not in markdown and "### Patients evaluated" not in markdown


def test_tier_changes_and_skips_are_counted_without_identifiers() -> None:
    from flows.run_report import NOT_MARKED, skipped_patients, tier_changes

    pairs = [(None, "OPTIMAL"), ("OPTIMAL", "WARNING"), ("OPTIMAL", "WARNING"),
             ("WARNING", "WARNING"), ("WARNING", "FAILURE")]
    assert tier_changes(pairs) == {"OPTIMAL->WARNING": 2, "WARNING->FAILURE": 1,
                                   "none->OPTIMAL": 1}
    assert skipped_patients(10, 3) == {NOT_MARKED: 7}
    assert skipped_patients(3, 3) == {}
    # reasons reported by the evaluation itself (incremental evaluation) are used as given
    assert skipped_patients(10, 3, {"unchanged": 5, "cadence not due": 2, "x": 0}) == {
        "unchanged": 5, "cadence not due": 2}


def test_rejection_reasons_are_shown_without_sample_or_file_name() -> None:
    from flows.run_report import redact_rejection

    reason = redact_rejection("/lab/in/P-17_batch.tsv: line 4: sample S-123: VAF 1.7 > 1",
                              "/lab/in/P-17_batch.tsv", "S-123")
    assert reason == "<file>: line 4: sample <sample>: VAF 1.7 > 1"


def test_two_concurrent_runs_are_serialised_by_the_global_limit() -> None:
    import threading
    import time

    from prefect import flow
    from prefect.client.orchestration import get_client

    from flows.run_lock import LIMIT_NAME, one_run_at_a_time

    spans: list[tuple[float, float]] = []

    @flow(name="lock-probe")
    def probe() -> None:
        with one_run_at_a_time():
            start = time.monotonic()
            time.sleep(2.0)
            spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=probe) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(spans) == 2
    (_, a_end), (b_start, _) = sorted(spans)
    assert b_start >= a_end, spans  # the second waited for the first: no overlap
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(LIMIT_NAME)
    assert limit.limit == 1 and limit.active
