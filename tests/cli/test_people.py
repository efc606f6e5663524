"""The CLI for people (#12 item 4): version, completion, config show, new-store notice, progress."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
from datetime import UTC, date
from pathlib import Path

import pytest
import yaml

CTDNA = [sys.executable, "-m", "pipeline.cli"]
CTDNA_SCRIPT = Path(sys.executable).parent / "ctdna"  # completion keys on the program name


def run(*args: str, env: dict[str, str] | None = None,
        cmd: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CTDNA_")}
    full.update(env or {})
    return subprocess.run([*(cmd or CTDNA), *args], capture_output=True, text=True, env=full,
                          timeout=240)


@pytest.fixture
def batch(tmp_path: Path) -> tuple[Path, Path]:
    from pipeline.demo.data import write_demo_inbox

    inbox, config = write_demo_inbox(tmp_path, date(2026, 11, 21))
    return inbox / "batch-001", config


# ------------------------------------------------------------------ version, completion
def test_version_names_package_and_knowledge_base() -> None:
    import pipeline
    from pipeline.knowledge import load_knowledge_base

    out = run("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (f"ctdna {pipeline.__version__} "
                                  f"(knowledge base {load_knowledge_base().version})")


def test_show_completion_script_and_real_completions() -> None:
    if not CTDNA_SCRIPT.is_file():
        pytest.skip("ctdna console script not installed in this environment")
    # Typer detects the user's shell from the process tree; under CI the parent is `sh`
    # (make), which Typer cannot complete for, so name the shell explicitly (Typer's own
    # switch for that) instead of depending on who launched pytest.
    script = run("--show-completion", "bash", cmd=[str(CTDNA_SCRIPT)],
                 env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert script.returncode == 0, script.stderr
    assert "complete -o default -F _ctdna_completion ctdna" in script.stdout
    # what bash gets back when the user presses TAB after "ctdna con" / "ctdna doctor --"
    words = run(env={"_CTDNA_COMPLETE": "complete_bash", "COMP_WORDS": "ctdna con",
                     "COMP_CWORD": "1"}, cmd=[str(CTDNA_SCRIPT)])
    assert words.stdout.split() == ["config"]
    options = run(env={"_CTDNA_COMPLETE": "complete_bash", "COMP_WORDS": "ctdna doctor --",
                       "COMP_CWORD": "2"}, cmd=[str(CTDNA_SCRIPT)])
    assert {"--db", "--config"} <= set(options.stdout.split())


# ------------------------------------------------------------------ config show
def test_config_show_merges_file_and_env_and_masks_secrets(tmp_path: Path) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({
        "version": "lab-7", "rules": {"confirm_min_days": 21},
        "notify": {"smtp": {"host": "relay.lab.example", "user": "ctdna"}},
        "care_teams": {"THORAX": ["onc@lab.example"]},
    }), encoding="utf-8")
    out = run("config", "show", "--config", str(lab), env={
        "CTDNA_SMTP_PASSWORD": "hunter2-smtp", "CTDNA_SMTP_PORT": "2525",
        "CTDNA_DB_URL": "postgresql://ctdna:db-pass-99@db.lab.example:5432/ctdna"})
    assert out.returncode == 0, out.stderr
    assert "hunter2-smtp" not in out.stdout and "db-pass-99" not in out.stdout
    config = yaml.safe_load(out.stdout)
    assert config["version"] == "lab-7"  # the file
    assert config["rules"]["confirm_min_days"] == 21
    assert config["rules"]["confirm_max_days"] == 90  # shipped default
    assert config["notify"]["smtp"] == {**config["notify"]["smtp"], "host": "relay.lab.example",
                                        "user": "ctdna", "port": 2525, "password": "***"}
    assert config["database_url"] == "postgresql://ctdna:***@db.lab.example:5432/ctdna"
    assert config["care_teams"] == {"THORAX": ["onc@lab.example"]}
    header = [line for line in out.stdout.splitlines() if line.startswith("#")]
    assert any(str(lab) in line for line in header)
    assert any("CTDNA_SMTP_PASSWORD" in line for line in header)  # the name, never the value


def test_mask_secrets_any_secret_key_and_url_password() -> None:
    from pipeline.cli.config_cmd import mask_secrets

    data = {"a": {"api_token": "t0k", "client_secret": "s", "Password": None, "n": 3},
            "urls": ["smtp://u:pw@h:25", "https://lis.example/ctdna/"],
            "blocks": [{"auth_token": "x"}]}
    assert mask_secrets(data) == {
        "a": {"api_token": "***", "client_secret": "***", "Password": None, "n": 3},
        "urls": ["smtp://u:***@h:25", "https://lis.example/ctdna/"],
        "blocks": [{"auth_token": "***"}]}


def test_config_show_bad_file_is_one_line_exit_2(tmp_path: Path) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text("notify:\n  smtp:\n    hots: x\n", encoding="utf-8")
    out = run("config", "show", "--config", str(lab))
    assert out.returncode == 2 and out.stdout == ""
    assert "hots" in out.stderr and out.stderr.count("\n") == 1


# ------------------------------------------------------------------ new store notice
def test_forgotten_db_creates_the_default_store_with_a_notice(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "data")}
    first = run("evaluate", "--json", env=env)
    assert first.returncode == 0, first.stderr
    default = tmp_path / "data" / "ctdna" / "ctdna.sqlite"
    assert default.is_file()
    assert (f"notice: created a new empty store at {default}; pass --db or set CTDNA_DB_URL"
            in first.stderr)
    assert json.loads(first.stdout) == []  # stdout stays clean JSON
    second = run("evaluate", "--json", env=env)
    assert "notice" not in second.stderr  # only when created


def test_explicit_new_db_is_announced_too(tmp_path: Path) -> None:
    db = tmp_path / "new.sqlite"
    out = run("evaluate", "--db", f"sqlite:///{db}")
    assert out.returncode == 0, out.stderr
    assert f"created a new empty store at {db}" in out.stderr and "--db" not in out.stderr


# ------------------------------------------------------------------ progress
def test_ingest_plain_progress_lines_on_stderr_json_clean(batch: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    folder, config = batch
    db = f"sqlite:///{tmp_path / 'store.sqlite'}"
    out = run("ingest", "--manifest", str(folder / "manifest.csv"), "--json", "--config",
              str(config), "--db", db)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["ingested"]) == 13  # nothing else on stdout
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("ctdna: ingest:")]
    assert lines[0] == "ctdna: ingest: started, 13 to do"
    assert lines[-1].startswith("ctdna: ingest: 13 done in ")
    # batch ingest counts whole batches: step lines only when a batch ends mid-way
    assert all("/13 (" in ln for ln in lines[1:-1])
    evaluate = run("evaluate", "--json", "--as-of", "2026-11-21", "--config", str(config),
                   "--db", db)
    assert "ctdna: evaluate: started, 4 to do" in evaluate.stderr
    assert "ctdna: evaluate: 4 done in" in evaluate.stderr
    assert len(json.loads(evaluate.stdout)) == 4
    quiet = run("evaluate", "--json", "--config", str(config), "--db", db,
                env={"CTDNA_PROGRESS": "none"})
    assert "evaluate:" not in quiet.stderr


def test_terminal_gets_rich_bars(batch: tuple[Path, Path], tmp_path: Path) -> None:
    """stderr on a pseudo-terminal: rich bars, no plain lines."""
    folder, config = batch
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTDNA_")}
    env.update(COLUMNS="100", TERM="xterm")
    proc = subprocess.Popen(
        [*CTDNA, "ingest", "--manifest", str(folder / "manifest.csv"), "--config", str(config),
         "--db", f"sqlite:///{tmp_path / 's.sqlite'}"],
        stdout=subprocess.PIPE, stderr=secondary, env=env)
    os.close(secondary)
    chunks = []
    while True:
        ready, _, _ = select.select([primary], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(primary)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0
    assert "ingest" in screen and "13/13" in screen and "━" in screen
    assert "ctdna: ingest: started" not in screen


def test_tracked_counts_every_item_and_finishes_on_break() -> None:
    from pipeline.cli.progress import PlainProgress
    from pipeline.progress import tracked

    stream = io.StringIO()
    reporter = PlainProgress(stream)
    seen = []
    for i in tracked(list(range(20)), "reports", reporter):
        if i % 2:
            continue  # still counted
        seen.append(i)
    for i in tracked(list(range(10)), "delivery", reporter):
        if i == 3:
            break
    lines = stream.getvalue().splitlines()
    assert lines[0] == "ctdna: reports: started, 20 to do"
    assert [ln.split(" (")[0] for ln in lines[1:10]] == [
        f"ctdna: reports: {n}/20" for n in range(2, 20, 2)]
    assert lines[10].startswith("ctdna: reports: 20 done in")
    assert lines[-1].startswith("ctdna: delivery: 3 done in")  # break: what was done
    assert len(seen) == 10


def test_ambient_reporter_reaches_library_calls_without_a_parameter() -> None:
    from pipeline.cli.progress import PlainProgress
    from pipeline.progress import NULL, resolve, use

    reporter = PlainProgress(io.StringIO())
    assert resolve(None) is NULL
    with use(reporter):
        assert resolve(None) is reporter
    assert resolve(None) is NULL


def test_json_output_is_the_document_of_json_dumps_written_per_element(
        capsys: pytest.CaptureFixture[str]) -> None:
    # #11 item 2: --json is written element by element by orjson (a 10,000-patient
    # evaluate is 125 MB of text). The document is json.dumps(indent=2, default=str)'s:
    # the same text for ASCII data with ordinary floats, the same values otherwise.
    from dataclasses import dataclass
    from datetime import datetime

    import numpy as np

    from pipeline.cli.jsonout import print_json

    data = [{"patient_id": f"P{n}", "as_of": date(2026, 12, n + 1), "levels": [0.1, None],
             "nested": {"vaf": 0.0123, "ok": True, "empty": [], "none": {}}}
            for n in range(5)]
    print_json(data)
    assert capsys.readouterr().out == json.dumps(data, indent=2, default=str) + "\n"
    for single in ([], {}, {"a": 1}, [1], "text", 3):
        print_json(single)
        assert capsys.readouterr().out == json.dumps(single, indent=2) + "\n"

    @dataclass
    class Thing:
        x: int

    odd = {"when": datetime(2026, 12, 4, 9, 30, tzinfo=UTC), "np": np.float64(0.25),
           "count": np.int64(7), "thing": Thing(1), "tiny": 5e-05, "arrow": "0.4 \u2192 1.2 %",
           "line\nbreak": "tab\t\"quoted\"", 1: "int key"}
    print_json([odd])
    out = capsys.readouterr().out
    assert json.loads(out) == json.loads(json.dumps([odd], default=str))
    assert "\u2192" in out  # UTF-8, not an escape
