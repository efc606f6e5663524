"""Deployments: the scheduled surveillance run, manual re-runs and re-evaluation.

``ctdna serve`` serves all three from one long-running process (Prefect ``serve``): no
work pool is needed on a single host; for several hosts see docs/deployment.md. The
schedule's cron and timezone come from configs (``schedule``). Each deployment has a
concurrency limit of 1; with ``schedule.exclusive_runs`` all runs share the one slot of the
global concurrency limit ``ctdna-surveillance`` (flows/run_lock.py; opt-in, see
docs/deployment.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.config import Settings, load_settings


def build_deployments(settings: Settings, inbox: Path) -> list[Any]:
    """The three deployments, ready to serve (importing Prefect lazily)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    from flows.reevaluate import reevaluate
    from flows.surveillance import surveillance_run

    no_overlap = ConcurrencyLimitConfig(
        limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
    )
    inbox_str = str(inbox.resolve())
    scheduled = surveillance_run.to_deployment(
        name="scheduled",
        schedule=Cron(settings.schedule.cron, timezone=settings.schedule.timezone),
        concurrency_limit=no_overlap,
        parameters={"inbox": inbox_str},
        description="Scheduled surveillance run over the lab's inbox",
        tags=["ctdna", "scheduled"],
    )
    manual = surveillance_run.to_deployment(
        name="manual",
        concurrency_limit=no_overlap,
        parameters={"inbox": inbox_str},
        description="On-demand re-runs: prefect deployment run 'surveillance-run/manual' "
        "--param sample_ids='[\"S-123\"]' --param force=true",
        tags=["ctdna", "manual"],
    )
    reeval = reevaluate.to_deployment(
        name="reevaluate",
        concurrency_limit=no_overlap,
        description="Re-evaluate the cohort after a config or knowledge-base change",
        tags=["ctdna", "reevaluate"],
    )
    return [scheduled, manual, reeval]


def serve_deployments(*, inbox: Path, db_url: str | None = None,
                      config_file: Path | None = None) -> None:
    """Serve the deployments until interrupted (schedules stay active across restarts)."""
    import os

    from prefect import serve

    from flows.local_server import uses_temporary_server
    from pipeline.errors import InputError, OrchestratorUnavailableError

    if uses_temporary_server():
        # Served deployments on Prefect's throwaway temporary server would vanish with this
        # process, schedules and run history included (issue #12).
        raise OrchestratorUnavailableError(
            "ctdna serve needs a running Prefect server: start one with `prefect server start` "
            "and set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api); see docs/deployment.md")
    if not inbox.is_dir():
        raise InputError("inbox folder does not exist", path=inbox, field="--inbox")
    if db_url:
        os.environ["CTDNA_DB_URL"] = db_url
    if config_file:
        os.environ["CTDNA_CONFIG"] = str(config_file)
    settings = load_settings(config_file)
    serve(*build_deployments(settings, inbox), pause_on_shutdown=False)
