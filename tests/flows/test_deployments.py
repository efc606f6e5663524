"""Deployment definitions: cron and timezone from configs, no overlapping runs."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.flow


def test_deployments_from_config(tmp_path: Path) -> None:
    from flows.serve import build_deployments
    from pipeline.config import load_settings

    config = tmp_path / "lab.yaml"
    config.write_text('schedule:\n  cron: "30 5 * * *"\n  timezone: "America/New_York"\n')
    settings = load_settings(config, env={})
    scheduled, manual, reeval = build_deployments(settings, tmp_path)
    assert scheduled.name == "scheduled"
    (schedule,) = scheduled.schedules
    assert schedule.schedule.cron == "30 5 * * *"
    assert schedule.schedule.timezone == "America/New_York"
    for deployment in (scheduled, manual, reeval):
        assert deployment.concurrency_limit == 1
        assert deployment.concurrency_options.collision_strategy.value == "ENQUEUE"
    assert manual.schedules == [] and scheduled.parameters["inbox"] == str(tmp_path.resolve())
    assert "patient" not in str(scheduled.parameters).lower()
