"""The longitudinal store on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import threading
from datetime import date

import pandas as pd
import pytest

from pipeline.errors import AmendRequiredError
from pipeline.store.repository import PreparedSample, Store


def _prepared(sample_id: str = "S1", sha: str = "a" * 64, vaf: float = 0.012,
              patient: str = "P1", n: int = 2) -> PreparedSample:
    observations = pd.DataFrame({
        "record_index": range(1, n + 1), "chrom": ["2"] * n,
        "pos": [29443613 + i for i in range(n)],
        "ref": ["C"] * n, "alt": ["T"] * n, "variant_type": ["snv"] * n,
        "gene": ["ALK"] * n, "alteration": ["G1202R"] + [None] * (n - 1),
        "category": ["alk_resistance"] + ["other"] * (n - 1),
        "kb_id": ["ALK_G1202R"] + [None] * (n - 1),
        "protein_change": [None] * n, "vaf": [vaf] + [float("nan")] * (n - 1),
        "vaf_source": ["FORMAT/AF"] * n,
        "alt_reads": pd.array([24] + [None] * (n - 1), dtype="Int64"),
        "depth": pd.array([2000] * n, dtype="Int64"), "filter": ["PASS"] * n,
        "detected": [True] * n, "copy_number": [float("nan")] * n,
        "fusion_partner": [None] * n, "mate_chrom": [None] * n,
        "mate_pos": pd.array([None] * n, dtype="Int64"),
    })
    return PreparedSample(
        sample_id=sample_id, patient_id=patient, collection_date=date(2025, 3, 1),
        care_team="team-a", source_path="/data/S1.vcf", content_sha256=sha, file_format="vcf",
        vcf_sample="TUMOR", caller="mutect2", genome_build="GRCh37", assay=None, lod_vaf=0.005,
        lod_source="default", tumor_fraction=None, median_depth=2000.0, n_records=n,
        kb_version="test", observations=observations,
    )


def test_ingest_then_identical_is_noop(store: Store) -> None:
    assert store.ingest_sample(_prepared()) == "ingested"
    assert store.ingest_sample(_prepared()) == "unchanged"
    frame = store.observations_frame(["P1"])
    assert len(frame) == 2
    row = frame.iloc[0]
    assert row["vaf"] == pytest.approx(0.012)
    assert row["alt_reads"] == 24
    assert row["collection_date"] == date(2025, 3, 1)
    assert pd.isna(frame.iloc[1]["vaf"])  # unknown VAF stays NULL, never 0
    actions = store.ingest_history("S1")["action"].tolist()
    assert actions == ["ingested", "unchanged"]


def test_changed_content_needs_amend_and_keeps_history(store: Store) -> None:
    store.ingest_sample(_prepared())
    with pytest.raises(AmendRequiredError, match="--amend"):
        store.ingest_sample(_prepared(sha="b" * 64, vaf=0.02))
    assert store.observations_frame(["P1"]).iloc[0]["vaf"] == pytest.approx(0.012)
    assert store.ingest_sample(_prepared(sha="b" * 64, vaf=0.02), amend=True) == "amended"
    versions = store.sample_versions("S1")
    assert versions["version"].tolist() == [1, 2]
    assert versions["is_current"].tolist() == [False, True]
    assert versions["superseded_at"].notna().tolist() == [True, False]
    current = store.observations_frame(["P1"])
    assert current.iloc[0]["vaf"] == pytest.approx(0.02)
    assert len(current) == 2  # only the current version's observations


def test_failure_mid_sample_stores_nothing(store: Store) -> None:
    bad = _prepared()
    # a category of NULL violates NOT NULL on insert: the whole sample must roll back
    bad.observations.loc[1, "category"] = None
    with pytest.raises(Exception):  # noqa: B017 - the driver's IntegrityError type differs
        store.ingest_sample(bad)
    assert store.samples_frame().empty
    assert store.observations_frame().empty


def test_bulk_insert_many_observations(store: Store) -> None:
    assert store.ingest_sample(_prepared(n=5000)) == "ingested"
    assert len(store.observations_frame(["P1"])) == 5000


def test_concurrent_ingest_of_same_sample_stores_one(db_url: str) -> None:
    stores = [Store(db_url) for _ in range(4)]
    results: list[str] = []
    errors: list[BaseException] = []

    def work(s: Store) -> None:
        try:
            results.append(s.ingest_sample(_prepared()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == ["ingested", "unchanged", "unchanged", "unchanged"]
    assert len(stores[0].samples_frame()) == 1
    assert len(stores[0].observations_frame()) == 2
    for s in stores:
        s.dispose()


def test_therapies_replace_per_patient(store: Store) -> None:
    first = pd.DataFrame({"patient_id": ["P1", "P1"], "line": [1, 2],
                          "drug": ["alectinib", "lorlatinib"],
                          "start_date": [date(2025, 1, 1), date(2025, 9, 1)],
                          "end_date": [date(2025, 8, 31), None]})
    store.replace_therapies(first, "t.csv")
    store.replace_therapies(first.iloc[:1], "t2.csv")
    frame = store.therapies_frame(["P1"])
    assert frame["line"].tolist() == [1]
    assert frame.iloc[0]["end_date"] == date(2025, 8, 31)


def test_assessment_roundtrip(store: Store) -> None:
    store.ingest_sample(_prepared())
    payload = {"patient_id": "P1", "as_of": "2025-04-01", "status": "WARNING",
               "therapy": {"drug": "alectinib", "line": 1, "start_date": "2025-01-01"},
               "alerts": [], "config_version": "c", "kb_version": "k",
               "pipeline_version": "0.1.0"}
    store.save_assessment(payload, sample_pks=[1])
    frame = store.assessments_frame("P1", latest_only=True)
    assert frame.iloc[0]["status"] == "WARNING"
    assert frame.iloc[0]["payload"]["therapy"]["drug"] == "alectinib"


def test_assessments_saved_in_bulk_keep_their_order(store: Store) -> None:
    # #11 item 2: a cohort's assessments are stored in one multi-row INSERT ... RETURNING;
    # each returned id must be that of its own payload (the ids feed the alert ledger).
    for n in range(1, 4):
        store.ingest_sample(_prepared(f"S{n}", sha=str(n) * 64, patient=f"P{n}"))
    payloads = [{"patient_id": f"P{n}", "as_of": "2025-04-01",
                 "status": ("OPTIMAL", "WARNING", "FAILURE")[n - 1], "therapy": None,
                 "alerts": [], "config_version": "c", "kb_version": "k",
                 "pipeline_version": "0.1.0", "reevaluate_on": f"2025-04-0{n + 1}"}
                for n in (3, 1, 2)]
    earlier = store.save_assessments([(dict(payloads[1], status="OPTIMAL"), [1])])
    ids = store.save_assessments([(p, [1]) for p in payloads])
    assert min(ids) > earlier[0]  # new rows, not the one stored before
    assert len(set(ids)) == 3 and store.save_assessments([]) == []
    frame = store.assessments_frame(latest_only=True).set_index("id")
    for assessment_id, payload in zip(ids, payloads, strict=True):
        row = frame.loc[assessment_id]
        assert row["patient_id"] == payload["patient_id"] and row["payload"] == payload
        assert row["status"] == payload["status"]


def test_columns_no_row_fills_are_left_out_and_read_back_missing(store: Store) -> None:
    # The bulk insert leaves out nullable columns that are empty in every row (issue #11
    # item 1: SQLite bound a NULL per row and column); they must read back missing, and a
    # column filled in only some rows must keep its values and its gaps.
    bare = _prepared("S1", patient="P1")
    bare.observations["gene"] = None
    bare.observations["alt_reads"] = pd.array([None, None], dtype="Int64")
    cnv = _prepared("S2", sha="c" * 64, patient="P2")
    cnv.observations["copy_number"] = [7.5, float("nan")]
    cnv.observations["mate_chrom"] = [None, "12"]
    assert store.ingest_sample(bare) == "ingested"  # alone: gene, alt_reads... left out
    assert store.ingest_samples([cnv]) == ["ingested"]
    one = store.observations_frame(["P1"])
    assert one["gene"].isna().all() and one["alt_reads"].isna().all()
    assert one["copy_number"].isna().all() and one["mate_pos"].isna().all()
    assert one["vaf"].iloc[0] == pytest.approx(0.012) and one["depth"].tolist() == [2000, 2000]
    two = store.observations_frame(["P2"])
    assert two["copy_number"].iloc[0] == 7.5 and pd.isna(two["copy_number"].iloc[1])
    assert two["mate_chrom"].iloc[0] is None and two["mate_chrom"].iloc[1] == "12"
    assert two["gene"].tolist() == ["ALK", "ALK"]
