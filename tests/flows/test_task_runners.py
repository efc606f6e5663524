"""Parallel ingest and report writing through a Prefect task runner (issue #11 items 5-6).

The same two-manifest inbox through ``run.task_runner: thread`` and ``dask`` (prefect-dask's
DaskTaskRunner on a local cluster of two worker processes) must store the same samples and
give every patient the same assessment; each inbox file is one ingest task and each patient
shard one report task (never one task per patient or variant).
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.flow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]


def _script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def two_file_inbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cohort")
    _script("make_cohort").main([str(root / "src"), "--patients", "6", "--draws", "3",
                                 "--layout", "per-sample"])
    _script("shard_inbox").shard_inbox(root / "src", root / "inbox", 2, "files")
    return root / "inbox"


async def _task_runs(flow_run_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        return list(await client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[flow_run_id]))))


def _run(inbox: Path, tmp: Path, runner: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from flows.surveillance import surveillance_run
    from pipeline.store.repository import Store

    config = tmp / f"{runner}.yaml"
    config.write_text(yaml.safe_dump({"run": {"task_runner": runner, "workers": 2}}),
                      encoding="utf-8")
    db = f"sqlite:///{tmp / f'{runner}.sqlite'}"
    monkeypatch.setenv("CTDNA_CONFIG", str(config))
    monkeypatch.setenv("CTDNA_DB_URL", db)
    monkeypatch.setenv("CTDNA_OUTBOX", str(tmp / f"outbox-{runner}"))
    summary = surveillance_run(inbox=str(inbox), reports=str(tmp / f"reports-{runner}"))
    store = Store(db)
    statuses = dict(zip(*(store.assessments_frame(latest_only=True)[c]
                          for c in ("patient_id", "status")), strict=True))
    return summary, statuses, sorted(store.samples_frame()["sample_id"])


def test_thread_and_dask_runners_give_the_same_run(two_file_inbox: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    thread, thread_status, thread_samples = _run(two_file_inbox, tmp_path, "thread",
                                                 monkeypatch)
    dask, dask_status, dask_samples = _run(two_file_inbox, tmp_path, "dask", monkeypatch)

    assert thread.manifests == dask.manifests == 2
    assert thread.ingested == dask.ingested == 18 and not dask.rejected
    assert thread_samples == dask_samples and len(dask_samples) == 18
    assert thread_status == dask_status and len(dask_status) == 6
    assert thread.reports_written == dask.reports_written == 6
    assert thread.notifications_created == dask.notifications_created
    assert thread.tier_changes == dask.tier_changes

    for summary in (thread, dask):
        names = [t.name for t in asyncio.run(_task_runs(summary.run_id))]
        ingest = [n for n in names if n.startswith("ingest-manifest")]
        reports = [n for n in names if n.startswith("write-reports")]
        assert len(ingest) == 2, names  # one task per inbox file
        assert len(reports) == 2, names  # one task per patient shard (run.workers)
        assert len(names) < 20, names  # never a task per patient or variant
