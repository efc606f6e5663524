"""The ``ctdna`` command line as a lab uses it: real subprocesses, exit codes, JSON shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

CTDNA = [sys.executable, "-m", "pipeline.cli"]
OBSERVATION_FIELDS = {"sample_id", "patient_id", "collection_date", "chrom", "pos", "ref", "alt",
                      "gene", "alteration", "variant_type", "vaf", "alt_reads", "depth",
                      "filter", "detected", "category"}


def ctdna(*args: str, db: str,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "CTDNA_DB_URL": db, **(env or {})}
    full_env.pop("CTDNA_DEBUG", None)
    return subprocess.run([*CTDNA, *args], capture_output=True, text=True, env=full_env,
                          timeout=240)


@pytest.fixture
def demo_inbox(tmp_path: Path) -> tuple[Path, Path]:
    from pipeline.demo.data import write_demo_inbox

    inbox, config = write_demo_inbox(tmp_path, date(2026, 11, 21))
    return inbox / "batch-001", config


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.sqlite'}"


def test_ingest_json_then_identical_is_unchanged(demo_inbox: tuple[Path, Path], db: str) -> None:
    batch, config = demo_inbox
    args = ["ingest", "--manifest", str(batch / "manifest.csv"), "--therapies",
            str(batch / "therapies.csv"), "--json", "--config", str(config)]
    first = ctdna(*args, db=db)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert len(report["ingested"]) == 13 and report["unchanged"] == [] and report["rejected"] == []
    second = json.loads(ctdna(*args, db=db).stdout)
    assert second["ingested"] == [] and len(second["unchanged"]) == 13


def test_observations_json_contract(demo_inbox: tuple[Path, Path], db: str) -> None:
    batch, config = demo_inbox
    ctdna("ingest", "--manifest", str(batch / "manifest.csv"), "--config", str(config), db=db)
    out = ctdna("observations", "--patient", "DEMO-001", "--json", db=db)
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert records and all(set(r) >= OBSERVATION_FIELDS for r in records)
    g1202r = [r for r in records if r["alteration"] == "G1202R"]
    assert {r["sample_id"] for r in g1202r} == {"D001-M6", "D001-M8"}
    assert all(r["category"] == "alk_resistance" and 0 < r["vaf"] < 1 for r in g1202r)
    fusion = [r for r in records if r["variant_type"] == "fusion"]
    assert fusion and all(r["alteration"] == "EML4-ALK fusion" for r in fusion)
    # DEMO-003 declares percent VAFs: stored as a fraction
    kras = json.loads(ctdna("observations", "--patient", "DEMO-003", "--json", db=db).stdout)
    assert [round(r["vaf"], 6) for r in kras] == [0.0041]


def test_evaluate_json_contract(demo_inbox: tuple[Path, Path], db: str) -> None:
    batch, config = demo_inbox
    ctdna("ingest", "--manifest", str(batch / "manifest.csv"), "--therapies",
          str(batch / "therapies.csv"), "--config", str(config), db=db)
    out = ctdna("evaluate", "--json", "--as-of", "2026-11-21", "--config", str(config), db=db)
    assert out.returncode == 0, out.stderr
    assessments = {a["patient_id"]: a for a in json.loads(out.stdout)}
    assert set(assessments) == {"DEMO-001", "DEMO-002", "DEMO-003", "DEMO-004"}
    for a in assessments.values():
        assert {"patient_id", "as_of", "therapy", "status", "alerts"} <= set(a)
        assert a["status"] in {"OPTIMAL", "WARNING", "FAILURE", "NOT_EVALUABLE"}
        for alert in a["alerts"]:
            assert {"rule_id", "tier", "title", "findings", "suggested_actions",
                    "therapy_options", "evidence"} <= set(alert)
    assert assessments["DEMO-001"]["status"] == "FAILURE"
    # baseline-negative: not evaluable for response (B1), yet the emerging KRAS G12D alerts
    demo3 = {a["rule_id"]: a["tier"] for a in assessments["DEMO-003"]["alerts"]}
    assert demo3 == {"B1": "INFO", "R4": "WARNING"}
    assert assessments["DEMO-003"]["status"] == "WARNING"
    assert assessments["DEMO-004"]["status"] == "OPTIMAL"
    r1 = [a for a in assessments["DEMO-001"]["alerts"] if a["rule_id"] == "R1"]
    assert r1 and any(o["name"] == "lorlatinib" for o in r1[0]["therapy_options"])


@pytest.mark.parametrize(("args", "needle"), [
    (["ingest"], "--manifest"),
    (["evaluate", "--as-of", "21/11/2026"], "--as-of"),
    (["observations", "--patient", "NOPE", "--json"], "unknown patient"),
    (["report", "--out", "x.html"], "--patient"),
])
def test_usage_errors_are_one_line_exit_2(args: list[str], needle: str, db: str) -> None:
    out = ctdna(*args, db=db)
    assert out.returncode == 2
    assert needle in out.stderr
    assert "Traceback" not in out.stderr
    # one error line; a new store is announced on its own line (#12 item 4)
    errors = [ln for ln in out.stderr.splitlines() if not ln.startswith("ctdna: notice:")]
    assert len(errors) == 1


def test_bad_manifest_row_rejected_others_stored(demo_inbox: tuple[Path, Path], db: str) -> None:
    batch, config = demo_inbox
    (batch / "D004-W6.vcf").write_bytes(b"")  # 0-byte VCF
    out = ctdna("ingest", "--manifest", str(batch / "manifest.csv"), "--json",
                "--config", str(config), db=db)
    assert out.returncode == 2
    report = json.loads(out.stdout)
    assert len(report["ingested"]) == 12
    (rejected,) = report["rejected"]
    assert "D004-W6.vcf" in rejected["path"] and "D004-W6.vcf" in rejected["error"]
    assert "Traceback" not in out.stderr
    observations = ctdna("observations", "--patient", "DEMO-004", "--json", db=db)
    assert {r["sample_id"] for r in json.loads(observations.stdout)} <= {"D004-B"}


def test_invalid_config_is_a_clear_error(tmp_path: Path, db: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("rules:\n  deep_decrease: 1.5\n")
    out = ctdna("evaluate", "--config", str(config), db=db)
    assert out.returncode == 2
    assert "rules.deep_decrease" in out.stderr and str(config) in out.stderr
