"""The task runner a surveillance run spreads its independent work over (#11 items 5-6).

Independent units are whole inbox files (one ingest task each) and patient shards (one
report-writing task each); never a task per variant or per patient. ``run.task_runner`` in
the lab config chooses Prefect's ``ThreadPoolTaskRunner`` (default: threads in the flow's
process) or prefect-dask's ``DaskTaskRunner`` (worker processes of a local Dask cluster,
or an existing Dask scheduler shared by several hosts). Concurrent ingest is safe because
the store stores each sample atomically (unique ``(sample_id, version)``; docs/deployment.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

    from pipeline.config import RunSettings

T = TypeVar("T")


def task_runner_for(run: RunSettings) -> TaskRunner[Any]:
    """A fresh (not yet started) task runner for ``run.task_runner``; use it with ``with``."""
    if run.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if run.dask_address:
            return DaskTaskRunner(address=run.dask_address)
        # one single-threaded worker process per core asked for: the rules and readers
        # hold the GIL, so threads inside a Dask worker would not add speed
        return DaskTaskRunner(cluster_kwargs={
            "n_workers": run.workers, "threads_per_worker": 1, "processes": True,
            "dashboard_address": None})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=run.workers)


def shards(items: list[T], count: int) -> list[list[T]]:
    """``items`` dealt round-robin into at most ``count`` non-empty shards (order kept)."""
    count = max(1, min(count, len(items)))
    return [items[i::count] for i in range(count)] if items else []
