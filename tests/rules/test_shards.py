"""A cohort evaluated in patient shards on worker processes gives the assessments of one
process (#11 item 2, ``pipeline/evaluation.py``): the same objects, contract JSON and
sample rows, in patient order, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from pipeline import evaluation
from pipeline.config import Settings, load_settings
from pipeline.ingest import ingest_manifest, ingest_therapies
from pipeline.knowledge import knowledge_base_for
from pipeline.store.repository import Store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cohort")
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_cohort.py"), str(folder),
                    "--patients", "40", "--draws", "6", "--layout", "single"],
                   check=True, capture_output=True)
    return folder


def _with_processes(settings: Settings, processes: int) -> Settings:
    return settings.model_copy(update={"run": settings.run.model_copy(
        update={"evaluate_processes": processes})})


def test_shards_on_worker_processes_give_the_one_process_assessments(
        cohort: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(env={})
    kb = knowledge_base_for(settings)
    ingest_therapies(str(cohort / "therapies.csv"), store)
    report = ingest_manifest(str(cohort / "manifest.csv"), store, settings, kb)
    assert not report.rejected and len(report.ingested) == 240
    ids = store.patient_ids()[::-1]  # any order in, patient order out
    as_of = date(2026, 12, 1)

    one = evaluation.evaluate_from_store(store, _with_processes(settings, 3), kb, ids, as_of)
    monkeypatch.setattr(evaluation, "MIN_SHARD_PATIENTS", 10)  # 40 patients: 3 shards
    monkeypatch.setattr(evaluation.os, "cpu_count", lambda: 3)  # as many as shards
    if hasattr(evaluation.os, "sched_getaffinity"):
        monkeypatch.setattr(evaluation.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert len(evaluation._shards(sorted(ids), 3, True)) == 3
    sharded = evaluation.evaluate_from_store(store, _with_processes(settings, 3), kb, ids,
                                             as_of)

    assert [e.assessment.patient_id for e in sharded] == sorted(ids)
    assert len({e.assessment.status for e in sharded}) >= 2  # not a trivial cohort
    for a, b in zip(one, sharded, strict=True):
        assert a.assessment == b.assessment
        assert a.payload == b.payload == b.assessment.contract_json()
        assert a.sample_pks == b.sample_pks and a.sample_pks


def test_small_cohorts_and_in_memory_stores_stay_in_one_process() -> None:
    ids = [f"P{n:05d}" for n in range(5000)]
    assert evaluation._shards(ids, 2, True, cpus=2) == [ids[:2500], ids[2500:]]
    assert evaluation._shards(ids[:3999], 2, True, cpus=2) == [ids[:3999]]  # < 2 x 2,000
    assert evaluation._shards(ids, 1, True, cpus=2) == [ids]
    assert evaluation._shards(ids, 2, False, cpus=2) == [ids]
    assert evaluation._shards(ids, 2, True, cpus=1) == [ids]  # one processor: one process
    assert not evaluation._shareable(Store("sqlite://"))
