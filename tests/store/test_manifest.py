"""Manifest and therapy-history validation (one tiny fixture per defect, written in tmp)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipeline.errors import ManifestError
from pipeline.io.manifest import is_manifest, is_therapy_history, read_manifest, read_therapies

HEADER = "sample_id,patient_id,collection_date,path,lod_vaf,tumor_fraction\n"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def variant_file(tmp_path: Path) -> Path:
    return _write(tmp_path, "s1.csv", "sample_id,gene,variant_type\n")


def test_good_rows_proceed_when_one_is_bad(tmp_path: Path, variant_file: Path) -> None:
    manifest = _write(tmp_path, "m.csv", HEADER
                      + "S1,P1,2025-01-02,s1.csv,,\n"
                      + "S2,P1,2025-02-30,s1.csv,,\n"
                      + "S3,P1,2025-03-01,missing.vcf,,\n"
                      + "S4,P1,2025-03-01,s1.csv,1.5,\n"
                      + "S5,P1,2025-03-01,s1.csv,,abc\n")
    result = read_manifest(manifest)
    assert [r.sample_id for r in result.rows] == ["S1"]
    assert result.rows[0].collection_date == date(2025, 1, 2)
    assert result.rows[0].path == variant_file.resolve()
    errors = {r.sample_id: r.error for r in result.rejected}
    assert "line 3" in errors["S2"] and "collection_date" in errors["S2"]
    assert "field path" in errors["S3"] and "does not exist" in errors["S3"]
    assert "lod_vaf" in errors["S4"] and "outside 0-1" in errors["S4"]
    assert "tumor_fraction" in errors["S5"] and "not a number" in errors["S5"]
    for error in errors.values():
        assert str(manifest) in error and "\n" not in error


def test_duplicated_sample_id_rejects_both(tmp_path: Path, variant_file: Path) -> None:
    manifest = _write(tmp_path, "m.csv", HEADER + "S1,P1,2025-01-02,s1.csv,,\n"
                      "S1,P1,2025-02-02,s1.csv,,\nS2,P1,2025-02-02,s1.csv,,\n")
    result = read_manifest(manifest)
    assert [r.sample_id for r in result.rows] == ["S2"]
    assert len(result.rejected) == 2
    assert all("appears 2 times (lines 2, 3)" in r.error for r in result.rejected)


def test_missing_required_column(tmp_path: Path) -> None:
    manifest = _write(tmp_path, "m.csv", "sample_id,patient_id,path\nS1,P1,x\n")
    with pytest.raises(ManifestError, match=r"missing required column.*collection_date"):
        read_manifest(manifest)


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_manifest(tmp_path: Path, content: str) -> None:
    with pytest.raises(ManifestError, match="empty"):
        read_manifest(_write(tmp_path, "m.csv", content))


def test_detection_of_manifest_and_therapy_headers(tmp_path: Path) -> None:
    assert is_manifest(_write(tmp_path, "m.csv", HEADER))
    assert not is_therapy_history(_write(tmp_path, "m2.csv", HEADER))
    therapy = _write(tmp_path, "t.csv", "patient_id,drug,start_date\n")
    assert is_therapy_history(therapy) and not is_manifest(therapy)


def test_therapies_numbered_and_validated(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.csv", "patient_id,drug,start_date,end_date\n"
                  "P1,Lorlatinib,2025-09-01,\nP1,alectinib,2025-01-01,2025-08-31\n")
    frame = read_therapies(path)
    assert frame[["drug", "line"]].values.tolist() == [["alectinib", 1], ["lorlatinib", 2]]


@pytest.mark.parametrize(("row", "message"), [
    ("P1,alectinib,2025-13-01,", "start_date"),
    ("P1,alectinib,2025-02-01,2025-01-01", "before start_date"),
    ("P1,,2025-02-01,", "field drug"),
])
def test_bad_therapy_rows_reject_the_file(tmp_path: Path, row: str, message: str) -> None:
    path = _write(tmp_path, "t.csv", "patient_id,drug,start_date,end_date\n"
                  "P2,crizotinib,2024-01-01,\n" + row + "\n")
    with pytest.raises(ManifestError, match=message) as info:
        read_therapies(path)
    assert "line 3" in str(info.value)
