"""Issue #10 items 4 and 5: manifest paths stay inside the batch (or allow-listed roots),
quarantine copies only batch files, and stored identifiers obey the same limits on SQLite
and PostgreSQL. Real files, real symlinks, real `ctdna ingest` subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.errors import ConfigError
from pipeline.inbox import quarantine, scan_inbox
from pipeline.io.manifest import TEXT_LIMITS, read_manifest, read_therapies
from pipeline.store import models

HEADER = "sample_id,patient_id,collection_date,path,genome_build\n"
VCF = ("##fileformat=VCFv4.2\n##contig=<ID=2,length=242193529>\n"
       '##FORMAT=<ID=AF,Number=A,Type=Float,Description="VAF">\n'
       "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tPLASMA\n"
       "2\t29443695\t.\tC\tT\t.\tPASS\t.\tAF\t0.02\n")


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    """An inbox with one batch folder holding a good VCF, and a secret outside the inbox."""
    inbox = tmp_path / "inbox" / "batch-1"
    inbox.mkdir(parents=True)
    (inbox / "good.vcf").write_text(VCF)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "shadow.vcf").write_text(VCF)
    return inbox


def _manifest(folder: Path, rows: list[str]) -> Path:
    path = folder / "manifest.csv"
    path.write_text(HEADER + "".join(f"{r}\n" for r in rows), encoding="utf-8")
    return path


def test_traversal_absolute_and_escaping_symlink_refused(batch: Path) -> None:
    secret = batch.parent.parent / "secret" / "shadow.vcf"
    (batch / "link.vcf").symlink_to(secret)
    (batch / "linkdir").symlink_to(secret.parent, target_is_directory=True)
    (batch / "inner.vcf").symlink_to(batch / "good.vcf")  # a link that stays inside is fine
    manifest = _manifest(batch, [
        "S1,P1,2025-01-02,good.vcf,GRCh38",
        "S2,P1,2025-01-03,../../secret/shadow.vcf,GRCh38",
        "S3,P1,2025-01-04,../../../../../../../../etc/shadow,GRCh38",
        f"S4,P1,2025-01-05,{secret},GRCh38",
        "S5,P1,2025-01-06,link.vcf,GRCh38",
        "S6,P1,2025-01-07,linkdir/shadow.vcf,GRCh38",
        "S7,P1,2025-01-08,inner.vcf,GRCh38",
    ])
    result = read_manifest(manifest)
    assert [r.sample_id for r in result.rows] == ["S1", "S7"]
    assert result.rows[1].path == (batch / "good.vcf").resolve()
    errors = {r.sample_id: r.error for r in result.rejected}
    assert set(errors) == {"S2", "S3", "S4", "S5", "S6"}
    for sample, error in errors.items():
        line = int(sample[1:]) + 1
        assert error.startswith(f"{manifest}: line {line}: field path: ")
        assert "outside the batch folder" in error and "\n" not in error
    assert "absolute path" in errors["S4"] and "symlink" in errors["S5"]
    assert "symlink" in errors["S6"]


def test_allowed_roots_accept_outside_folders_including_via_symlink(batch: Path) -> None:
    secret_dir = batch.parent.parent / "secret"
    (batch / "shared").symlink_to(secret_dir, target_is_directory=True)
    manifest = _manifest(batch, [
        f"S1,P1,2025-01-02,{secret_dir / 'shadow.vcf'},GRCh38",
        "S2,P1,2025-01-03,shared/shadow.vcf,GRCh38",
        "S3,P1,2025-01-04,../../../../../../etc/hostname,GRCh38",
    ])
    result = read_manifest(manifest, allowed_roots=[str(secret_dir)])
    assert [r.sample_id for r in result.rows] == ["S1", "S2"]
    assert [r.sample_id for r in result.rejected] == ["S3"]


def test_allowed_roots_config_schema(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(f"ingest:\n  allowed_roots: [{tmp_path}]\n")
    assert load_settings(good, env={}).ingest.allowed_roots == [str(tmp_path)]
    for text in ("ingest:\n  allowed_roots: [relative/dir]\n",
                 "ingest:\n  allowed_root: [/data]\n"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match="allowed_root"):
            load_settings(bad, env={})


def test_cli_ingest_refuses_traversal_stores_the_rest(batch: Path, tmp_path: Path) -> None:
    manifest = _manifest(batch, ["S1,P1,2025-01-02,good.vcf,GRCh38",
                                 "S2,P1,2025-01-03,../../../../../../../../etc/shadow,GRCh38"])
    env = {**os.environ, "CTDNA_DB_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}"}
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "ingest", "--manifest",
                          str(manifest), "--json"], capture_output=True, text=True, env=env,
                         timeout=240)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    report = json.loads(out.stdout)
    assert report["ingested"] == ["S1"]
    (rejected,) = report["rejected"]
    assert rejected["error"].startswith(f"{manifest}: line 3: field path: ")
    assert "etc/shadow" in rejected["error"]


def test_scan_refuses_symlinked_csv_outside_inbox(batch: Path, tmp_path: Path) -> None:
    outside = _manifest(tmp_path / "secret", ["S1,P1,2025-01-02,shadow.vcf,GRCh38"])
    (batch / "evil.csv").symlink_to(outside)
    good = _manifest(batch, ["S2,P1,2025-01-02,good.vcf,GRCh38"])
    scan = scan_inbox(batch.parent, None)
    assert scan.manifests == [good]
    (refused,) = scan.rejected
    assert refused.path == str(batch / "evil.csv") and "outside the inbox" in refused.error


def test_quarantine_copies_only_files_inside_the_batch(batch: Path, tmp_path: Path) -> None:
    qdir = tmp_path / "quarantine"
    secret = batch.parent.parent / "secret" / "shadow.vcf"
    (batch / "link.vcf").symlink_to(secret)
    inside = quarantine(batch / "good.vcf", "bad", qdir, root=batch)
    assert inside.read_text() == VCF
    for source in (secret, batch / "link.vcf"):
        target = quarantine(source, "refused", qdir, root=batch)
        assert not target.exists()
        assert "not copied" in (target.parent / f"{source.name}.error.txt").read_text()
    assert secret.read_text() == VCF and (batch / "good.vcf").read_text() == VCF


def test_text_limits_match_the_store_columns() -> None:
    columns = {("samples", "sample_id"): "sample_id", ("patients", "patient_id"): "patient_id",
               ("patients", "care_team"): "care_team", ("samples", "vcf_sample"): "vcf_sample",
               ("samples", "assay"): "assay", ("therapy_lines", "drug"): "drug"}
    for (table, column), key in columns.items():
        assert models.metadata.tables[table].c[column].type.length == TEXT_LIMITS[key]


@pytest.mark.parametrize(("value", "needle"), [
    ("P" * 65, "65 characters; at most 64"),
    ("P\x001", "NUL byte"),
    ("P\x1b[31m", "control character U+001B"),
    ("P\u2028X", "control character U+2028"),
])
def test_bad_identifiers_rejected_without_echo(batch: Path, value: str, needle: str) -> None:
    manifest = _manifest(batch, [f'S1,"{value}",2025-01-02,good.vcf,GRCh38',
                                 "S2,P2,2025-01-02,good.vcf,GRCh38"])
    result = read_manifest(manifest)
    assert [r.sample_id for r in result.rows] == ["S2"]
    (rejected,) = result.rejected
    assert rejected.error.startswith(f"{manifest}: line 2: field patient_id: ")
    assert needle in rejected.error and value not in rejected.error
    therapies = batch / "therapies.csv"
    therapies.write_text(f'patient_id,drug,start_date\n"{value}",alectinib,2024-01-01\n')
    with pytest.raises(Exception, match="field patient_id") as info:
        read_therapies(therapies)
    assert needle in str(info.value)


def test_identifier_limits_identical_on_sqlite_and_postgresql(batch: Path, store, settings
                                                              ) -> None:
    from pipeline.ingest import ingest_manifest
    from pipeline.knowledge import load_knowledge_base

    longest = "P" * TEXT_LIMITS["patient_id"]
    manifest = _manifest(batch, [f"{'S' * TEXT_LIMITS['sample_id']},{longest},2025-01-02,"
                                 "good.vcf,GRCh38",
                                 f"S2,{longest}X,2025-01-02,good.vcf,GRCh38",
                                 "S3,P\x00,2025-01-02,good.vcf,GRCh38"])
    report = ingest_manifest(manifest, store, settings, load_knowledge_base())
    assert report.ingested == ["S" * TEXT_LIMITS["sample_id"]]
    assert sorted(r.sample_id for r in report.rejected) == ["S2", "S3"]
