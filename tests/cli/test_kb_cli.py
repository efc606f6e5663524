"""``ctdna kb show|audit|diff`` as a curator uses them: real subprocesses, real store."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

from pipeline.knowledge import load_knowledge_base
from pipeline.knowledge.audit import audit
from tests.cli.test_cli import ctdna

SHIPPED = Path(__file__).resolve().parents[2] / "configs" / "knowledge"


def test_kb_show_json_and_text(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.sqlite'}"
    out = ctdna("kb", "show", "ALK I1171N+L1198H", "--json", db=db)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["kb_id"] == "ALK:I1171N+L1198H" and data["kb_version"] == "2026.12.0"
    cells = {c["drug"]: c for c in data["activity"]}
    assert cells["lorlatinib"]["activity"] == "R" and cells["gilteritinib"]["activity"] == "S"
    assert [o["name"] for o in data["options_after_alectinib"] if o["kind"] == "approved"] == []
    text = ctdna("kb", "show", "G1202R", db=db)
    assert text.returncode == 0 and "ALK:G1202R" in text.stdout and "UNVERIFIED" in text.stdout
    missing = ctdna("kb", "show", "ALK:Z9999Q", db=db)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "Traceback" not in missing.stderr and "ALK:Z9999Q" in missing.stderr


def test_kb_audit_json_matches_library(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.sqlite'}"
    out = ctdna("kb", "audit", "--json", "--max-age-years", "3", db=db)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    expected = audit(load_knowledge_base(), 3)
    assert data["counts"] == expected["counts"]
    assert data["unverified"] == expected["unverified"]


def test_kb_audit_with_lab_override_shows_lab_version(tmp_path: Path) -> None:
    lab = tmp_path / "lab-kb"
    lab.mkdir()
    (lab / "override.yaml").write_text(
        "lab: Example\ncurator: Dr C\nreviewed_on: '2026-12-03'\nreason: test\n"
        "manifest: {chip_genes: [DNMT3A, TET2, IDH1]}\n")
    out = ctdna("kb", "audit", "--json", db=f"sqlite:///{tmp_path / 'x.sqlite'}",
                env={"CTDNA_KB_OVERRIDES": str(lab)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["kb_version"].startswith("2026.12.0+lab.")
    (lab / "override.yaml").write_text("lab: Example\nunknown_key: 1\n")
    bad = ctdna("kb", "audit", db=f"sqlite:///{tmp_path / 'x.sqlite'}",
                env={"CTDNA_KB_OVERRIDES": str(lab)})
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "override.yaml" in bad.stderr


def test_kb_diff_with_reevaluation_dry_run(tmp_path: Path) -> None:
    from pipeline.demo.data import write_demo_inbox

    inbox, config = write_demo_inbox(tmp_path, date(2026, 11, 21))
    batch = inbox / "batch-001"
    db = f"sqlite:///{tmp_path / 'store.sqlite'}"
    ingest = ctdna("ingest", "--manifest", str(batch / "manifest.csv"), "--therapies",
                   str(batch / "therapies.csv"), "--config", str(config), db=db)
    assert ingest.returncode == 0, ingest.stderr
    old = tmp_path / "kb-old"
    shutil.copytree(SHIPPED, old)
    activity = old / "activity.tsv"
    # the "old" version did not know lorlatinib is active against G1202R
    lines = [line if not line.startswith("ALK:G1202R\tlorlatinib\t") else
             "ALK:G1202R\tlorlatinib\tunknown\t-\trecalled-unverified\tnone\n"
             for line in activity.read_text().splitlines(keepends=True)]
    activity.write_text("".join(lines))
    manifest = old / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace('version: "2026.12.0"',
                                                     'version: "2026.11.9"'))
    out = ctdna("kb", "diff", str(old), str(SHIPPED), "--json", "--as-of", "2026-11-21",
                "--config", str(config), db=db)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    data = result["data"]
    assert (data["old_version"], data["new_version"]) == ("2026.11.9", "2026.12.0")
    assert [c["id"] for c in data["activity"]["changed"]] == ["ALK:G1202R lorlatinib"]
    rerun = result["reevaluation"]
    assert rerun["patients"] >= 1 and rerun["changed"], rerun
    changed = {row["patient_id"]: row for row in rerun["changed"]}
    assert "DEMO-001" in changed
    assert any("lorlatinib" in o for o in changed["DEMO-001"]["new"]["therapy_options"])
    # the dry run stores nothing
    history = ctdna("evaluate", "--patient", "DEMO-001", "--json", "--as-of", "2026-11-21",
                    "--config", str(config), db=db)
    assert history.returncode == 0
    bad = ctdna("kb", "diff", str(tmp_path), str(SHIPPED), db=db)
    assert bad.returncode == 2 and "no manifest.yaml" in bad.stderr
