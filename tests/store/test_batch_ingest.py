"""Batch ingest (issue #11 item 1): the batch path gives exactly what the per-sample path
gave, errors stay per sample, and identical re-ingest is decided in one query."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.errors import InputError
from pipeline.ingest import ingest_manifest, prepare_samples
from pipeline.io.manifest import read_manifest
from pipeline.io.table import read_table

TABLE = ("sample_id,gene,variant_type,chrom,pos,ref,alt,fusion_partner,vaf,alt_reads,depth,"
         "copy_number\n")
@pytest.fixture(scope="module")
def kb():
    from pipeline.knowledge import load_knowledge_base

    return load_knowledge_base()


MANIFEST = "sample_id,patient_id,collection_date,path,genome_build,care_team,assay\n"


def _cohort(tmp_path: Path, *, bad_row: bool = False) -> Path:
    """Six draws of three patients: a shared table, one file per draw, a no-call draw."""
    shared = [
        "A1,ALK,fusion,,,,,EML4,0.05,150,3000,",
        "A1,TP53,snv,chr17,7673802,C,T,,0.06,180,3000,",
        "A2,ALK,fusion,,,,,EML4,0.0004,2,3000,",
        "B1,MET,cnv,,,,,,,,,4.2",
        "B2,,,,,,,,,,,",
        "A2,KRAS,snv,chr12,25245350,C,T,,0.0123,37,3000,",
    ]
    if bad_row:
        shared.append("B1,TP53,snv,chr17,7673802,C,T,,1.7,10,3000,")  # VAF > 1
    (tmp_path / "shared.csv").write_text(TABLE + "\n".join(shared) + "\n")
    (tmp_path / "c1.csv").write_text(TABLE + "C1,ALK,snv,chr2,29220747,C,T,,0.003,9,3000,\n")
    (tmp_path / "c2.csv").write_text(TABLE + "C2,ALK,fusion,,,,,EML4,0.02,60,3000,\n")
    rows = [("A1", "PA", "2026-01-05", "shared.csv"), ("A2", "PA", "2026-02-05", "shared.csv"),
            ("B1", "PB", "2026-01-06", "shared.csv"), ("B2", "PB", "2026-03-06", "shared.csv"),
            ("C1", "PC", "2026-01-07", "c1.csv"), ("C2", "PC", "2026-02-07", "c2.csv")]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(MANIFEST + "".join(f"{s},{p},{d},{f},GRCh38,team-a,guardant360\n"
                                           for s, p, d, f in rows))
    return manifest


def test_batch_read_equals_per_sample_read(tmp_path: Path, settings, kb) -> None:
    manifest = _cohort(tmp_path)
    rows = read_manifest(manifest).rows
    batch = prepare_samples(rows, settings, kb)
    for row, prepared in zip(rows, batch, strict=True):
        assert not isinstance(prepared, InputError)
        alone = prepare_samples([row], settings, kb)[0]
        assert not isinstance(alone, InputError)
        assert prepared.content_sha256 == alone.content_sha256
        assert (prepared.lod_vaf, prepared.lod_source, prepared.median_depth) == \
            (alone.lod_vaf, alone.lod_source, alone.median_depth)
        pd.testing.assert_frame_equal(prepared.observations, alone.observations)
        single = read_table(row.path, sample_id=row.sample_id, genome_build="GRCh38")
        assert prepared.n_records == single.n_records
        assert len(prepared.observations) == len(single.calls)
    by_id = {p.sample_id: p for p in batch if not isinstance(p, InputError)}
    assert by_id["B2"].observations.empty  # a draw with no calls is a real result
    assert set(by_id["A2"].observations["gene"]) == {"ALK", "KRAS"}


def test_one_bad_row_rejects_only_its_sample(tmp_path: Path, store, settings, kb) -> None:
    manifest = _cohort(tmp_path, bad_row=True)
    report = ingest_manifest(manifest, store, settings, kb)
    assert sorted(report.ingested) == ["A1", "A2", "B2", "C1", "C2"]
    [rejection] = report.rejected
    assert rejection.sample_id == "B1"
    assert "shared.csv" in rejection.error and "line 8" in rejection.error
    assert "vaf" in rejection.error
    assert store.samples_frame(["PB"])["sample_id"].tolist() == ["B2"]  # nothing of B1
    history = store.ingest_history("B1")
    assert history["action"].tolist() == ["rejected"]


def test_identical_reingest_is_one_query(tmp_path: Path, store, settings, kb) -> None:
    manifest = _cohort(tmp_path)
    first = ingest_manifest(manifest, store, settings, kb)
    assert len(first.ingested) == 6 and not first.rejected
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        again = ingest_manifest(manifest, store, settings, kb)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    assert sorted(again.unchanged) == ["A1", "A2", "B1", "B2", "C1", "C2"]
    lookups = [s for s in statements if "content_sha256" in s and s.lstrip().upper()
               .startswith("SELECT")]
    assert len(lookups) == 1
    assert not any("INSERT INTO observations" in s for s in statements)
    assert len(store.samples_frame()) == 6


def test_changed_content_needs_amend_per_sample(tmp_path: Path, store, settings, kb) -> None:
    manifest = _cohort(tmp_path)
    ingest_manifest(manifest, store, settings, kb)
    (tmp_path / "c2.csv").write_text(TABLE + "C2,ALK,fusion,,,,,EML4,0.03,90,3000,\n")
    report = ingest_manifest(manifest, store, settings, kb)
    assert sorted(report.unchanged) == ["A1", "A2", "B1", "B2", "C1"]
    [rejection] = report.rejected
    assert rejection.sample_id == "C2" and "--amend" in rejection.error
    amended = ingest_manifest(manifest, store, settings, kb, amend=True)
    assert amended.amended == ["C2"]
    versions = store.sample_versions("C2")
    assert versions["version"].tolist() == [1, 2]
    assert versions["is_current"].tolist() == [False, True]


@pytest.mark.parametrize("n_files", [1, 40])
def test_many_rows_share_one_parse(tmp_path: Path, settings, kb, monkeypatch,
                                   n_files: int) -> None:
    """40 manifest rows on one table parse it once (not once per row)."""
    import pipeline.io.table as table

    lines = [f"S{i:02d},TP53,snv,chr17,7673802,C,T,,0.0{i % 9 + 1},{30 + i},3000,"
             for i in range(40)]
    for k in range(n_files):
        part = lines if n_files == 1 else [lines[k]]
        (tmp_path / f"t{k}.csv").write_text(TABLE + "\n".join(part) + "\n")
    (tmp_path / "m.csv").write_text(MANIFEST + "".join(
        f"S{i:02d},P{i},2026-01-05,t{0 if n_files == 1 else i}.csv,GRCh38,,\n"
        for i in range(40)))
    calls: list[Path] = []
    original = table._read_lines
    monkeypatch.setattr(table, "_read_lines", lambda p, o: calls.append(p) or original(p, o))
    prepared = prepare_samples(read_manifest(tmp_path / "m.csv").rows, settings, kb)
    assert all(not isinstance(p, InputError) for p in prepared)
    assert len(calls) == n_files
    assert [len(p.observations) for p in prepared] == [1] * 40


@pytest.mark.filterwarnings("ignore:The behavior of DataFrame concatenation:FutureWarning")
def test_batch_canonical_text_is_each_draws_own() -> None:
    # The content hash of a table draw covers its canonical CSV; the batch writes one CSV
    # for all draws and splits it by row (issue #11 item 1). It must give each draw the
    # very text its own to_csv gives, else stored draws stop re-ingesting as unchanged:
    # quoted commas and quotes, missing values, floats, an empty draw, and a multi-line
    # cell (which cannot be split by line, so every draw is written on its own).
    from pipeline.ingest import _canonical_csv, _canonical_csvs
    from pipeline.schema import conform_calls

    def draw(rows: list[dict]) -> pd.DataFrame:
        return conform_calls(pd.DataFrame(rows))

    first = draw([{"record_index": 1, "gene": "ALK", "vaf": 0.1 + 0.2, "pos": 29443613,
                   "protein_change": 'p.G1202R, "quoted"', "alt_reads": None}])
    empty = draw([])
    third = draw([{"record_index": 2, "gene": "MET", "copy_number": 4.2, "vaf": 1e-05},
                  {"record_index": 3, "gene": None, "vaf": float("nan"), "depth": 3000}])
    multi = draw([{"record_index": 4, "gene": "KRAS", "annotation": "two\nlines"}])
    for frames in ([first, empty, third], [first, multi, third], [third]):
        calls = pd.concat(frames, ignore_index=True)
        owner = np.repeat(np.arange(len(frames)), [len(f) for f in frames])
        wanted = np.ones(len(frames), dtype=bool)
        wanted[-1] = len(frames) == 1  # a draw not wanted (a VCF) gets no text
        texts = _canonical_csvs(calls, owner, wanted)
        assert sorted(texts) == np.flatnonzero(wanted).tolist()
        for j, text in texts.items():
            assert text == _canonical_csv(frames[j])
