"""Every malformed-input kind of issue #2 raises InvalidVariantFileError naming record/field."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pysam
import pytest

from pipeline.errors import InvalidVariantFileError
from pipeline.io import read_variant_file

from .conftest import FIXTURES


def _read(path: Path, **kw):
    kw.setdefault("genome_build", "GRCh38")
    return read_variant_file(path, sample_id="S1", **kw)


@pytest.mark.parametrize(
    ("fixture", "record", "field", "kw"),
    [
        ("af_high_midstream.vcf", "record 2", None, {}),
        ("af_missing.vcf", "record 1", "FORMAT/AF", {}),
        ("af_integer_type.vcf", "header", "FORMAT/AF", {}),
        ("ad_dp_contradiction.vcf", "record 1", "FORMAT/AD", {}),
        ("vaf_above_one.vcf", "record 1", "FORMAT/AF", {}),
        ("negative_count.vcf", "record 1", "FORMAT/AD", {}),
        ("freq_unparseable.vcf", "record 1", "FORMAT/FREQ", {"vcf_sample": "TUMOR"}),
        ("ambiguous_multisample.vcf", "header", "vcf_sample", {}),
        ("rejected_header.vcf", "header", None, {}),
        ("table_vaf_and_percent.csv", "line 2", "vaf_percent", {}),
        ("table_percent_over_100.csv", "line 3", "vaf_percent", {}),
        ("table_bad_number.tsv", "line 3", "alt_reads", {}),
        ("table_unknown_type.csv", "line 2", "variant_type", {}),
        ("table_unit_undeclared.csv", "header", "AF", {}),
    ],
)
def test_fixture_rejected_with_location(fixture: str, record: str, field: str | None,
                                        kw: dict) -> None:
    path = FIXTURES / fixture
    with pytest.raises(InvalidVariantFileError) as info:
        _read(path, **kw)
    err = info.value
    assert err.path == str(path) and err.record == record
    if field is not None:
        assert err.field == field
    assert "\n" not in str(err) and str(err).startswith(str(path))


def test_ambiguous_multisample_lists_columns() -> None:
    with pytest.raises(InvalidVariantFileError, match="DRAW1, DRAW2"):
        _read(FIXTURES / "ambiguous_multisample.vcf")
    with pytest.raises(InvalidVariantFileError, match="not found; columns are: DRAW1, DRAW2"):
        _read(FIXTURES / "ambiguous_multisample.vcf", vcf_sample="PLASMA")
    result = _read(FIXTURES / "ambiguous_multisample.vcf", vcf_sample="DRAW2")
    assert result.calls.loc[0, "vaf"] == pytest.approx(0.02, abs=1e-6)


def test_zero_byte_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.vcf"
    empty.write_bytes(b"")
    with pytest.raises(InvalidVariantFileError, match="0 bytes"):
        _read(empty)


def _bgzip(src: Path, dest: Path) -> None:
    with src.open("rb") as fin, pysam.BGZFile(str(dest), "wb") as fout:  # type: ignore[attr-defined]
        fout.write(fin.read())


def test_truncated_bgzf(tmp_path: Path) -> None:
    good = tmp_path / "good.vcf.gz"
    _bgzip(FIXTURES / "multiallelic.vcf", good)
    assert len(_read(good).calls) == 3
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(good.read_bytes()[:-28])  # drop the 28-byte BGZF EOF block
    with pytest.raises(InvalidVariantFileError, match=r"truncated|EOF"):
        _read(cut)


def test_plain_gzip_is_rejected_with_hint(tmp_path: Path) -> None:
    plain = tmp_path / "plain.vcf.gz"
    with (FIXTURES / "multiallelic.vcf").open("rb") as fin, gzip.open(plain, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    with pytest.raises(InvalidVariantFileError, match="bgzip"):
        _read(plain)


def test_bcf_is_read(tmp_path: Path) -> None:
    src = pysam.VariantFile(str(FIXTURES / "breakends_sites_only.vcf"))
    bcf = tmp_path / "calls.bcf"
    with pysam.VariantFile(str(bcf), "wb", header=src.header) as out:
        for rec in src:
            out.write(rec)
    src.close()
    result = _read(bcf)
    assert result.file_format == "vcf" and len(result.calls) == 3
    assert result.calls.loc[0, "mate_pos"] == 42295554


def test_multiallelic_and_filters() -> None:
    calls = _read(FIXTURES / "multiallelic.vcf").calls
    assert calls["alt"].tolist() == ["C", "CGCA", "T"]
    assert calls["alt_reads"].tolist() == [30, 20, 50]
    assert calls["vaf"].tolist() == pytest.approx([0.01, 0.0067, 0.025], abs=1e-6)
    assert calls["filter"].tolist() == ["REJECT", "REJECT", "PASS"]  # dedup; '.' -> PASS
    assert calls["record_index"].tolist() == [1, 1, 2]


def test_breakends_single_and_mates() -> None:
    result = _read(FIXTURES / "breakends_sites_only.vcf")
    calls = result.calls
    assert calls["alt"].tolist() == ["G]chr2:42295554]", "T.", ".A"]
    assert calls.loc[0, "mate_chrom"] == "chr2" and calls.loc[0, "mate_pos"] == 42295554
    assert calls["mate_chrom"].iloc[1:].isna().all()
    assert result.n_records == 4


def test_pysam_verbosity_restored() -> None:
    before = pysam.set_verbosity(3)
    pysam.set_verbosity(before)
    with pytest.raises(InvalidVariantFileError):
        _read(FIXTURES / "af_high_midstream.vcf")
    assert pysam.set_verbosity(before) == before


# The EBI vcf-validator suite: tests/io/test_ebi_suite.py (through the real ingest).
