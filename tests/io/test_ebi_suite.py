"""Issue #10 item 5: the EBI vcf-validator suite through the real ingest (SQLite store).

Every file is one manifest row (the suite's folder is an allow-listed root, issue #10 item
4); each ends in exactly one outcome, taken from the ingest report:

* ``rejected``: one line naming file, record (or header line) and field; nothing stored;
* ``warned``: stored, with a warning naming the defect ("invalid VCF, tolerated because
  ctdna does not read it: <record>: field <field>: ...");
* ``silent``: stored without a word about a defect.

Targets: none of the 407 invalid files silent, >= 95 % of them rejected-with-location or
warned, with the named field matching what the file tests (its name says: body_alt -> ALT,
meta_info -> INFO...); 0 of the 51 valid files rejected; no traceback (any exception other
than a typed input error fails the test).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from pipeline.ingest import ingest_manifest
from pipeline.knowledge import load_knowledge_base
from pipeline.store.repository import Store

from .conftest import realdata_dir

SUITE = realdata_dir() / "EBIvariation__vcf-validator"
DEFECT_WARNING = "invalid VCF, tolerated because ctdna does not read it"

#: What each kind of invalid file tests (from its name) -> the field a good message names.
EXPECTED_FIELD = [
    (r"body_alt", r"^ALT"), (r"body_chrom", r"^CHROM"), (r"body_pos", r"^POS"),
    (r"body_ref", r"^REF"), (r"body_qual", r"^QUAL"), (r"body_filter", r"^FILTER"),
    (r"body_id", r"^ID"), (r"body_info", r"^INFO"), (r"body_format", r"^FORMAT"),
    (r"body_sample", r"^(FORMAT|#CHROM|columns)"), (r"body_samples_ploidy", r"^FORMAT/"),
    (r"body_duplicated", r"^ALT"), (r"body_unsorted", r"^POS"),
    (r"body_contiguous", r"^CHROM"), (r"body_no_newline", r"^end of file"),
    (r"meta_info", r"^INFO"), (r"meta_format", r"^FORMAT"), (r"meta_alt", r"^ALT"),
    (r"meta_contig", r"^contig"), (r"meta_sample", r"^SAMPLE"),
    (r"meta_pedigreedb", r"^pedigreeDB"), (r"meta_pedigree", r"^PEDIGREE"),
    (r"meta_meta", r"^META"), (r"meta_assembly", r"^assembly"), (r"header", r"^#CHROM"),
    (r"fileformat", r"^fileformat"), (r"meta_\d", r"."), (r"empty", None),
]


def _first_sample(path: Path) -> str:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("#CHROM"):
            cols = line.split("\t")
            return cols[9] if len(cols) > 9 and cols[9] else ""
    return ""


def _fields(message: str) -> list[str]:
    return re.findall(r": field (.+?): ", message)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, tuple[str, list[str]]]:
    if not SUITE.is_dir():
        pytest.skip("EBI vcf-validator suite not present in shared/realdata")
    from pipeline.config import load_settings

    folder = tmp_path_factory.mktemp("ebi")
    config = folder / "config.yaml"
    config.write_text(f"ingest:\n  allowed_roots: [{SUITE}]\n")
    settings = load_settings(config, env={})
    files = sorted(SUITE.glob("v4.*/*/*.vcf"))
    ids = {f"E{n:04d}": path for n, path in enumerate(files)}
    rows = [f"{sid},P{sid},2025-01-{1 + n % 28:02d},{path},GRCh38,{_first_sample(path)}"
            for n, (sid, path) in enumerate(ids.items())]
    manifest = folder / "manifest.csv"
    manifest.write_text("sample_id,patient_id,collection_date,path,genome_build,vcf_sample\n"
                        + "\n".join(rows) + "\n")
    store = Store(f"sqlite:///{folder / 'store.sqlite'}")
    try:
        report = ingest_manifest(manifest, store, settings, load_knowledge_base())
    finally:
        store.dispose()
    result: dict[Path, tuple[str, list[str]]] = {}
    for rejection in report.rejected:
        result[ids[rejection.sample_id]] = ("rejected", [rejection.error])
    warned: dict[str, list[str]] = {}
    for warning in report.warnings:
        warned.setdefault(warning.sample_id or "", []).append(warning.message)
    for sid in report.ingested:
        defects = [w for w in warned.get(sid, []) if w.startswith(DEFECT_WARNING)]
        result[ids[sid]] = ("warned", defects) if defects else ("silent", [])
    assert len(result) == len(files) == 458
    return result


@pytest.mark.realdata
def test_ebi_suite_figures(outcomes: dict[Path, tuple[str, list[str]]]) -> None:
    invalid = {p: o for p, o in outcomes.items() if p.parent.name == "failed"}
    valid = {p: o for p, o in outcomes.items() if p.parent.name == "passed"}
    assert (len(invalid), len(valid)) == (407, 51)
    counts = Counter(kind for kind, _ in invalid.values())
    # Measured on this suite (see docs/input-formats.md); any change must be deliberate.
    assert counts == {"rejected": 112, "warned": 295}, counts
    assert counts["silent"] == 0
    assert Counter(kind for kind, _ in valid.values())["rejected"] == 0, [
        (p.name, o) for p, o in valid.items() if o[0] == "rejected"]


@pytest.mark.realdata
def test_ebi_rejections_are_one_line_with_location(
        outcomes: dict[Path, tuple[str, list[str]]]) -> None:
    for path, (kind, messages) in outcomes.items():
        if kind != "rejected":
            continue
        (error,) = messages
        assert error.startswith(str(path.resolve())) and "\n" not in error
        assert re.search(r": (record \d+|header line \d+|header): ", error), error


@pytest.mark.realdata
def test_ebi_messages_name_the_field_under_test(
        outcomes: dict[Path, tuple[str, list[str]]]) -> None:
    named, missed = 0, []
    invalid = {p: o for p, o in outcomes.items() if p.parent.name == "failed"}
    for path, (_kind, messages) in invalid.items():
        pattern = next(rx for key, rx in EXPECTED_FIELD if re.search(key, path.name))
        fields = [f for m in messages for f in _fields(m)]
        if (pattern is None and _kind == "rejected") or any(re.search(pattern or "^$", f)
                                                          for f in fields):
            named += 1
        else:
            missed.append((path.parent.parent.name, path.name, messages[:1]))
    print(f"EBI invalid files naming the field under test: {named}/{len(invalid)}; "
          f"missed: {missed}")
    assert named / len(invalid) >= 0.95, (named, missed)
    # Measured: the 2 misses are v4.2 pedigree files rejected for their missing final
    # newline (a real defect, just not the one their name tests).
    assert named == 405, missed
