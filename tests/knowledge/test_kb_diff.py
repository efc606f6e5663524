"""``kb diff``: data diff and the re-evaluation dry run on a real SQLite store (issue #13)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

from pipeline.config import load_settings
from pipeline.ingest import ingest_manifest, ingest_therapies
from pipeline.knowledge import load_knowledge_base
from pipeline.knowledge.diff import data_diff, reevaluation_dry_run
from pipeline.store.repository import Store

SHIPPED = Path(__file__).resolve().parents[2] / "configs" / "knowledge"


def test_dry_run_sees_recognition_changes_and_stores_nothing(tmp_path: Path) -> None:
    from pipeline.demo.data import write_demo_inbox

    inbox, config = write_demo_inbox(tmp_path, date(2026, 11, 21))
    batch = inbox / "batch-001"
    settings = load_settings(config, env={})
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    new = load_knowledge_base()
    ingest_therapies(batch / "therapies.csv", store)
    ingest_manifest(batch / "manifest.csv", store, settings, new)
    # an "old" version that (wrongly) listed TP53 as a CHIP gene
    old_dir = tmp_path / "kb-old"
    shutil.copytree(SHIPPED, old_dir)
    manifest = old_dir / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("GNB1, GNAS, IDH1", "GNB1, GNAS, TP53, IDH1")
                        .replace('version: "2026.12.0"', 'version: "2026.11.9"'))
    old = load_knowledge_base(old_dir)
    diff = data_diff(old, new)
    assert diff["chip_genes"] == {"added": [], "removed": ["TP53"], "changed": []}
    assert diff["counts"]["entries"] == 1  # the generated TP53:CHIP entry
    stored_before = len(store.assessments_frame())
    rerun = reevaluation_dry_run(store, settings, old, new, date(2026, 11, 21))
    assert len(store.assessments_frame()) == stored_before  # nothing stored
    assert rerun["patients"] == len(store.patient_ids())
    changed = {row["patient_id"]: row for row in rerun["changed"]}
    assert changed, "the TP53 patient's alerts differ between the versions"
    for row in changed.values():
        assert row["fields"] and set(row["old"]) == set(row["new"]) == set(row["fields"])
    # identical versions change nothing
    same = reevaluation_dry_run(store, settings, new, new, date(2026, 11, 21))
    assert same["changed"] == []
