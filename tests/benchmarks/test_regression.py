"""Scaled-down benchmarks for CI (``make bench-ci``): fail on a 3x regression.

Each figure is divided by :func:`workloads.calibration` (the machine's speed at that
moment) and compared with the ratio recorded in ``baseline.json``; a ratio above
``TOLERANCE`` times the recorded one fails. ``CTDNA_BENCH_RECORD=1`` rewrites the file
(after an intended change, on a quiet machine; say so in the commit).
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest

from tests.benchmarks.workloads import (
    best_of,
    calibration,
    evaluate_all,
    ingest_cohort,
    per_sample_cost,
    prepare_alert_emails,
)

pytestmark = pytest.mark.benchmark
BASELINE = Path(__file__).with_name("baseline.json")
TOLERANCE = 3.0


def _figures(make_cohort, tmp: Path) -> dict[str, float]:
    from pipeline.io import read_variant_file

    figures: dict[str, float] = {}
    figures["ingest_per_sample"] = per_sample_cost(make_cohort, tmp, 20, 80)
    vcf = make_cohort.write_big_vcf(tmp, 20_000, 11)
    figures["vcf_20k_read"] = best_of(2, lambda: read_variant_file(
        vcf, sample_id="BIG-1", genome_build="GRCh38"))
    store = ingest_cohort(make_cohort, tmp / "cohort", 50, 12, "per-patient",
                          f"sqlite:///{tmp / 'cohort.sqlite'}")
    figures["evaluate_50x12"] = best_of(2, lambda: evaluate_all(store))
    small = ingest_cohort(make_cohort, tmp / "alerts", 12, 12, "per-patient",
                          f"sqlite:///{tmp / 'alerts.sqlite'}")
    deliver = prepare_alert_emails(small, tmp / "outbox")
    sent: list[int] = []
    seconds = best_of(1, lambda: sent.append(deliver()))
    figures["seconds_per_alert_email"] = seconds / max(1, sent[0])
    return figures


def test_no_threefold_regression(make_cohort, tmp_path: Path) -> None:
    calib = min(calibration() for _ in range(3))
    figures = _figures(make_cohort, tmp_path)
    ratios = {name: seconds / calib for name, seconds in figures.items()}
    if os.environ.get("CTDNA_BENCH_RECORD") == "1":
        BASELINE.write_text(json.dumps({
            "recorded": date.today().isoformat(), "calibration_seconds": calib,
            "seconds": figures, "ratios": ratios}, indent=2) + "\n")
        pytest.skip(f"baseline recorded in {BASELINE}")
    recorded = json.loads(BASELINE.read_text())["ratios"]
    slow = {name: (ratio, recorded[name]) for name, ratio in ratios.items()
            if name in recorded and ratio > TOLERANCE * recorded[name]}
    assert not slow, "regressed more than 3x (ratio now, recorded): " + ", ".join(
        f"{name} {now:.2f} vs {then:.2f}" for name, (now, then) in slow.items())
