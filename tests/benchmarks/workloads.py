"""The measured workloads, shared by the full benchmarks and the CI regression check."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

#: The benchmarks' clock: CPU seconds of this process. On a shared runner, time spent
#: waiting for a core is not the code's cost (wall seconds varied 3-6x with the load).
CLOCK = time.process_time


def calibration() -> float:
    """CPU seconds of a fixed pandas/numpy/Python workload: the machine's speed right now.

    Benchmark figures are divided by it, so a slower or busier machine does not read as a
    regression (the same code gives about the same ratio on a quiet or a loaded runner).
    The mix (a group-wise median, CSV writing, a Python loop) is the mix of the workloads.
    """
    rng = np.random.default_rng(11)
    start = CLOCK()
    frame = pd.DataFrame({"k": rng.integers(0, 500, 60_000), "v": rng.random(60_000)})
    frame.groupby("k")["v"].median()
    frame.to_csv(index=False)
    sum(i * i for i in range(150_000))
    return CLOCK() - start


def best_of(runs: int, func: Callable[[], Any]) -> float:
    """Fastest of ``runs`` timings of ``func`` (CPU seconds, :data:`CLOCK`)."""
    best = float("inf")
    for _ in range(runs):
        start = CLOCK()
        func()
        best = min(best, CLOCK() - start)
    return best


_RUNS = itertools.count()


def _fresh_db(tmp: Path) -> Path:
    """A new SQLite file for one timed run (a new name: the store remembers, per URL and
    process, that a schema is current, so a file deleted and re-created under the same URL
    would not be migrated)."""
    return tmp / f"run{next(_RUNS)}.sqlite"


def ingest_vcf(vcf: Path, tmp: Path) -> Any:
    """Ingest ``vcf`` through its manifest (``make_cohort.write_big_vcf`` writes
    ``big-manifest.csv`` next to it) into a fresh SQLite store: read, recognition, store."""
    from pipeline.config import load_settings
    from pipeline.ingest import ingest_manifest
    from pipeline.knowledge import load_knowledge_base
    from pipeline.store.repository import Store

    store = Store(f"sqlite:///{_fresh_db(tmp)}")
    report = ingest_manifest(vcf.parent / "big-manifest.csv", store, load_settings(env={}),
                             load_knowledge_base())
    assert report.ingested == ["BIG-1"], report
    store.dispose()
    return report


def ingest_cohort(make_cohort: ModuleType, folder: Path, patients: int, draws: int,
                  layout: str, db_url: str) -> Any:
    """Write a synthetic cohort and ingest it (manifest + therapies) into ``db_url``."""
    from pipeline.config import load_settings
    from pipeline.ingest import ingest_manifest, ingest_therapies
    from pipeline.knowledge import load_knowledge_base
    from pipeline.store.repository import Store

    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "manifest.csv").exists():
        make_cohort.write_cohort(folder, patients, draws, layout, 11, date(2026, 12, 1))
    store = Store(db_url)
    settings, kb = load_settings(env={}), load_knowledge_base()
    ingest_therapies(folder / "therapies.csv", store)
    report = ingest_manifest(folder / "manifest.csv", store, settings, kb)
    assert not report.rejected, report.rejected[:3]
    return store


def per_sample_cost(make_cohort: ModuleType, tmp: Path, small: int, large: int) -> float:
    """Seconds per extra sample: ingest ``large`` vs ``small`` one-file-per-sample draws."""
    times = {}
    for n in (small, large):
        folder = tmp / f"ps{n}"
        make_cohort.write_cohort(folder, n, 1, "per-sample", 11, date(2026, 12, 1))

        def run(n: int = n, folder: Path = folder) -> None:
            ingest_cohort(make_cohort, folder, n, 1, "per-sample", f"sqlite:///{_fresh_db(tmp)}")

        times[n] = best_of(2, run)
    return (times[large] - times[small]) / (large - small)


def evaluate_all(store: Any) -> int:
    """Evaluate every patient of the store (nothing persisted); returns the count."""
    from pipeline.config import load_settings
    from pipeline.knowledge import load_knowledge_base
    from pipeline.service import evaluate_patients

    results = evaluate_patients(store, load_settings(env={}), load_knowledge_base(), None,
                                date(2026, 12, 1), persist=False)
    return len(results)


def prepare_alert_emails(store: Any, outbox: Path, with_charts: bool = True
                         ) -> Callable[[], int]:
    """Enqueue the cohort's notifications; return the delivery step (to be timed)."""
    from pipeline.config import load_settings
    from pipeline.knowledge import load_knowledge_base
    from pipeline.notify import deliver_pending, enqueue_for_assessment, transport_from_settings
    from pipeline.notify.charts import store_chart_provider
    from pipeline.service import evaluate_patients

    settings = load_settings(env={})
    results = evaluate_patients(store, settings, load_knowledge_base(), None, date(2026, 12, 1))
    for result in results:
        enqueue_for_assessment(store.engine, result.assessment, result.assessment_id,
                               result.care_team, settings)

    def deliver() -> int:
        transport = transport_from_settings(settings, outbox=outbox)
        report = deliver_pending(store.engine, settings, transport, "bench",
                                 chart_for=store_chart_provider(store) if with_charts else None)
        return len(report.sent)

    return deliver
