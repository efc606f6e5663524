"""``ctdna run --json`` through the real flow: summary JSON on stdout, progress on stderr."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.flow


def test_run_json_summary_and_plain_progress_of_every_stage(lab_env: dict[str, Any]) -> None:
    from pipeline.cli.main import app

    reports = lab_env["tmp"] / "reports"
    result = CliRunner().invoke(app, ["run", "--inbox", str(lab_env["inbox"]), "--json",
                                      "--reports", str(reports)],
                                env={"CTDNA_PROGRESS": "plain"})
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)  # nothing but the JSON on stdout
    assert summary["ingested"] == 13 and summary["rejected"] == []
    assert summary["patients_evaluated"] == 4 and summary["reports_written"] == 4
    alerts = [m for _r, m in lab_env["handler"].messages if "[ops]" not in str(m["Subject"])]
    assert summary["emails_sent"] == len(alerts) > 0
    assert summary["reports_dir"] == str(reports.resolve())
    for stage, count in (("ingest", 13), ("evaluate", 4),
                         ("delivery", summary["emails_sent"])):
        assert f"ctdna: {stage}: started, {count} to do" in result.stderr, stage
        assert f"ctdna: {stage}: {count} done in" in result.stderr, stage
    # reports are written in run.workers (2) patient shards in parallel: one line each
    started = re.findall(r"ctdna: reports (\d)/2: started, (\d+) to do", result.stderr)
    done = re.findall(r"ctdna: reports (\d)/2: (\d+) done in", result.stderr)
    assert sorted(k for k, _n in started) == sorted(k for k, _n in done) == ["1", "2"]
    assert sum(int(n) for _k, n in started) == sum(int(n) for _k, n in done) == 4
