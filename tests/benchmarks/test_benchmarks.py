"""Full-size benchmarks of issue #11 (``make bench``); figures go to docs/performance.md.

Sizes: ``CTDNA_BENCH_PATIENTS`` (default 1,000; the issue's cohort is 10,000) patients x 12
draws for evaluate; 60 vs 240 one-file-per-sample draws for the per-sample ingest cost; a
200,000-record bgzipped VCF, side by side with ``bcftools query`` when it is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.benchmarks.workloads import (
    evaluate_all,
    ingest_cohort,
    per_sample_cost,
    prepare_alert_emails,
)

pytestmark = pytest.mark.benchmark
PATIENTS = int(os.environ.get("CTDNA_BENCH_PATIENTS", "1000"))


def test_per_sample_ingest_cost(make_cohort, tmp_path: Path, benchmark) -> None:
    cost = benchmark.pedantic(per_sample_cost, args=(make_cohort, tmp_path, 60, 240),
                              rounds=1, iterations=1)
    benchmark.extra_info["seconds_per_sample"] = cost
    print(f"\nper-sample ingest cost: {1000 * cost:.1f} ms (slope 60 -> 240 files)")


def test_shared_table_ingest(make_cohort, tmp_path: Path, benchmark) -> None:
    """100 patients x 12 draws, every manifest row pointing at one table (1,200 rows)."""
    folder = tmp_path / "shared"
    make_cohort.write_cohort(folder, 100, 12, "single", 11, __import__("datetime").date(
        2026, 12, 1))

    def run() -> None:
        db = tmp_path / "shared.sqlite"
        db.unlink(missing_ok=True)
        ingest_cohort(make_cohort, folder, 100, 12, "single", f"sqlite:///{db}")

    benchmark.pedantic(run, rounds=1, iterations=1)


def test_vcf_200k_read(make_cohort, tmp_path: Path, benchmark) -> None:
    from pipeline.io import read_variant_file

    path = make_cohort.write_big_vcf(tmp_path, 200_000, 11)
    result = benchmark.pedantic(
        lambda: read_variant_file(path, sample_id="BIG-1", genome_build="GRCh38"),
        rounds=1, iterations=1)
    assert len(result.calls) == 200_000
    if shutil.which("bcftools"):
        start = time.perf_counter()
        subprocess.run(["bcftools", "query", "-f",
                        "%CHROM\t%POS\t%REF\t%ALT\t%FILTER\t[%AD\t%AF\t%DP]\n", str(path)],
                       check=True, stdout=subprocess.DEVNULL)
        reference = time.perf_counter() - start
        benchmark.extra_info["bcftools_query_seconds"] = reference
        print(f"\nbcftools query of the same fields: {reference:.2f} s")


def test_evaluate_cohort(make_cohort, tmp_path: Path, benchmark) -> None:
    store = ingest_cohort(make_cohort, tmp_path / "cohort", PATIENTS, 12, "per-patient",
                          f"sqlite:///{tmp_path / 'cohort.sqlite'}")
    count = benchmark.pedantic(evaluate_all, args=(store,), rounds=1, iterations=1)
    assert count == PATIENTS


def test_alert_email_write_path(make_cohort, tmp_path: Path, benchmark) -> None:
    store = ingest_cohort(make_cohort, tmp_path / "alerts", 120, 12, "per-patient",
                          f"sqlite:///{tmp_path / 'alerts.sqlite'}")
    deliver = prepare_alert_emails(store, tmp_path / "outbox")
    sent = benchmark.pedantic(deliver, rounds=1, iterations=1)
    benchmark.extra_info["emails"] = sent
    print(f"\n{sent} alert emails written")
    assert sent > 0
