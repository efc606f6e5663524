"""Scaled-down benchmarks for CI (``make bench-ci``, run by ``.ci/run``): fail on a 3x
regression.

Robust to a noisy, shared runner (2 cores, other jobs): a figure is never compared in
seconds. Each workload is timed in **CPU seconds of this process** (``time.process_time``:
time spent waiting for a core while other jobs run is not counted) and divided by a fixed
reference workload (:func:`workloads.calibration`) timed the same way, in the same process,
immediately before and after it (the faster of the two). The *ratio* is what
``baseline.json`` records and what is compared: a machine that is slower or busier overall
slows the reference as much as the workload, so the ratio stays, while code that became
3x slower moves it 3x. Each workload is the best of two runs. ``CTDNA_BENCH_RECORD=1``
rewrites the baseline (after an intended change; say so in the commit).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.benchmarks.workloads import (
    best_of,
    calibration,
    evaluate_all,
    ingest_cohort,
    ingest_vcf,
    per_sample_cost,
    prepare_alert_emails,
)

pytestmark = pytest.mark.benchmark
BASELINE = Path(__file__).with_name("baseline.json")
TOLERANCE = 3.0


def _ratio(seconds: Callable[[], float]) -> tuple[float, float]:
    """(CPU seconds of the workload, its ratio to the reference timed around it)."""
    before = calibration()
    figure = seconds()
    return figure, figure / min(before, calibration())


def _figures(make_cohort: Any, tmp: Path) -> dict[str, tuple[float, float]]:
    from pipeline.io import read_variant_file

    out: dict[str, tuple[float, float]] = {}
    out["ingest_per_sample"] = _ratio(lambda: per_sample_cost(make_cohort, tmp, 20, 80))
    vcf = make_cohort.write_big_vcf(tmp, 20_000, 11)
    out["vcf_20k_read"] = _ratio(lambda: best_of(2, lambda: read_variant_file(
        vcf, sample_id="BIG-1", genome_build="GRCh38")))
    out["vcf_20k_ingest"] = _ratio(lambda: best_of(2, lambda: ingest_vcf(vcf, tmp)))
    store = ingest_cohort(make_cohort, tmp / "cohort", 30, 12, "per-patient",
                          f"sqlite:///{tmp / 'cohort.sqlite'}")
    out["evaluate_30x12"] = _ratio(lambda: best_of(2, lambda: evaluate_all(store)))
    small = ingest_cohort(make_cohort, tmp / "alerts", 8, 12, "per-patient",
                          f"sqlite:///{tmp / 'alerts.sqlite'}")
    deliver = prepare_alert_emails(small, tmp / "outbox")
    sent: list[int] = []
    out["seconds_per_alert_email"] = _ratio(
        lambda: best_of(1, lambda: sent.append(deliver())) / max(1, sent[-1]))
    return out


def test_no_threefold_regression(make_cohort: Any, tmp_path: Path) -> None:
    figures = _figures(make_cohort, tmp_path)
    ratios = {name: ratio for name, (_, ratio) in figures.items()}
    if os.environ.get("CTDNA_BENCH_RECORD") == "1":
        BASELINE.write_text(json.dumps({
            "recorded": date.today().isoformat(),
            "clock": "process CPU seconds; ratio = workload / reference workload",
            "cpu_seconds": {name: seconds for name, (seconds, _) in figures.items()},
            "ratios": ratios}, indent=2) + "\n")
        pytest.skip(f"baseline recorded in {BASELINE}")
    recorded = json.loads(BASELINE.read_text())["ratios"]
    missing = sorted(set(ratios) - set(recorded))
    assert not missing, f"no baseline for {missing}: record one (CTDNA_BENCH_RECORD=1)"
    for name, ratio in ratios.items():  # shown with -s and in CI's log on failure
        print(f"{name}: ratio {ratio:.3f} (baseline {recorded[name]:.3f}, "
              f"x{ratio / recorded[name]:.2f})")
    slow = {name: (ratio, recorded[name]) for name, ratio in ratios.items()
            if ratio > TOLERANCE * recorded[name]}
    assert not slow, "regressed more than 3x (ratio now, recorded): " + ", ".join(
        f"{name} {now:.3f} vs {then:.3f}" for name, (now, then) in slow.items())
