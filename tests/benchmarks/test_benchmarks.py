"""Full-size benchmarks of issue #11 (``make bench``); figures go to docs/performance.md.

Sizes: ``CTDNA_BENCH_PATIENTS`` (default 1,000; the issue's cohort is 10,000) patients x 12
draws for evaluate; 60 vs 240 one-file-per-sample draws for the per-sample ingest cost; a
200,000-record bgzipped VCF, side by side with ``bcftools query`` when it is installed.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
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


def _whole_process(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole child process, start-up included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_vcf_200k_ingest_vs_bcftools(make_cohort, tmp_path: Path) -> None:
    """Issue #11 item 1: ``ctdna ingest`` of the 200,000-record VCF (fresh SQLite store)
    against ``bcftools query`` of the same fields, whole processes, A/B in turn (3 pairs,
    medians). Skipped when bcftools is not installed (Debian: ``apt-get install bcftools``).
    """
    bcftools = shutil.which("bcftools")
    if bcftools is None:
        pytest.skip("bcftools not installed")
    path = make_cohort.write_big_vcf(tmp_path, 200_000, 11)
    ctdna = str(Path(sys.executable).with_name("ctdna"))
    query = [bcftools, "query", "-f", "%CHROM\t%POS\t%REF\t%ALT\t%FILTER\t[%AD\t%AF\t%DP]\n",
             str(path)]
    a, b = [], []
    for run in range(3):
        db = tmp_path / f"vcf{run}.sqlite"
        a.append(_whole_process([ctdna, "ingest", "--manifest",
                                 str(tmp_path / "big-manifest.csv"), "--db",
                                 f"sqlite:///{db}", "--json"]))
        b.append(_whole_process(query))
    wall_a, cpu_a = statistics.median(w for w, _ in a), statistics.median(c for _, c in a)
    wall_b, cpu_b = statistics.median(w for w, _ in b), statistics.median(c for _, c in b)
    print(f"\nctdna ingest: wall {wall_a:.2f} s, CPU {cpu_a:.2f} s; bcftools query: wall "
          f"{wall_b:.2f} s, CPU {cpu_b:.2f} s; ratio wall {wall_a / wall_b:.1f}x, CPU "
          f"{cpu_a / cpu_b:.1f}x")


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
