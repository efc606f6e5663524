"""``run:`` section of the lab config: task runner for parallel work (issue #11 items 5-6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.errors import ConfigError


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    lab = tmp_path / "lab.yaml"
    lab.write_text(text, encoding="utf-8")
    return load_settings(lab, env={})


def test_defaults_are_two_threads(tmp_path: Path) -> None:
    run = _load(tmp_path, "{}\n").run
    assert (run.task_runner, run.workers, run.dask_address) == ("thread", 2, None)


def test_dask_with_a_scheduler_address(tmp_path: Path) -> None:
    run = _load(tmp_path, "run:\n  task_runner: dask\n  workers: 4\n"
                          "  dask_address: tcp://10.0.0.5:8786\n").run
    assert (run.task_runner, run.workers, run.dask_address) == (
        "dask", 4, "tcp://10.0.0.5:8786")


@pytest.mark.parametrize(("text", "field"), [
    ("run:\n  task_runner: ray\n", "run.task_runner"),
    ("run:\n  workers: 0\n", "run.workers"),
    ("run:\n  threads: 3\n", "run.threads"),
    ("run:\n  dask_address: tcp://h:8786\n", "run"),
])
def test_bad_run_settings_are_config_errors_naming_the_key(tmp_path: Path, text: str,
                                                           field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert caught.value.field == field


def test_task_runner_for_each_setting(tmp_path: Path) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.runners import shards, task_runner_for

    thread = task_runner_for(_load(tmp_path, "run:\n  workers: 3\n").run)
    assert isinstance(thread, ThreadPoolTaskRunner) and thread._max_workers == 3
    local = task_runner_for(_load(tmp_path, "run:\n  task_runner: dask\n").run)
    assert isinstance(local, DaskTaskRunner) and local.cluster_kwargs["n_workers"] == 2
    remote = task_runner_for(_load(tmp_path, "run:\n  task_runner: dask\n"
                                             "  dask_address: tcp://h:8786\n").run)
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://h:8786"
    assert shards(list(range(5)), 2) == [[0, 2, 4], [1, 3]]
    assert shards([1], 4) == [[1]] and shards([], 2) == []


def test_run_settings_do_not_change_the_config_version(tmp_path: Path) -> None:
    """Threads or Dask cannot change a result: assessments keep their config version."""
    default = _load(tmp_path, "{}\n").version_label()
    assert _load(tmp_path, "run:\n  task_runner: dask\n  workers: 8\n").version_label() == default
