"""Ingestion: manifest → validate → read → recognise → store, atomically per sample.

One bad manifest row (unreadable file, malformed VCF, unknown build) is rejected with a
one-line reason while the good rows proceed; nothing of a rejected sample is stored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import Settings
from pipeline.errors import InputError
from pipeline.io import read_variant_file
from pipeline.io.manifest import ManifestRow, RowRejection, read_manifest, read_therapies
from pipeline.knowledge import KnowledgeBase
from pipeline.schema import CALL_COLUMNS
from pipeline.store.repository import PreparedSample, Store

#: float32 tolerance: htslib stores AF=0.01 as 0.009999999776 (engineering-notes §2.1).
VAF_TOLERANCE = 1e-6


@dataclass
class IngestReport:
    """What happened to each sample of a batch (``ctdna ingest --json``)."""

    ingested: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    amended: list[str] = field(default_factory=list)
    rejected: list[RowRejection] = field(default_factory=list)
    therapies: int = 0
    patients: set[str] = field(default_factory=set)  # patients whose data changed

    def merge(self, other: IngestReport) -> None:
        self.ingested += other.ingested
        self.unchanged += other.unchanged
        self.amended += other.amended
        self.rejected += other.rejected
        self.therapies += other.therapies
        self.patients |= other.patients

    def to_json(self) -> dict[str, Any]:
        """Contract shape; ``amended`` samples are listed under ``ingested`` too."""
        return {
            "ingested": self.ingested + self.amended,
            "unchanged": self.unchanged,
            "rejected": [{"path": r.path, "error": r.error, **({"sample_id": r.sample_id}
                          if r.sample_id else {})} for r in self.rejected],
            "amended": self.amended,
            "therapy_rows": self.therapies,
        }


def choose_lod(
    row: ManifestRow, calls: pd.DataFrame, settings: Settings
) -> tuple[float, str, float | None]:
    """The draw's limit of detection (fraction), its source, and the median depth.

    Precedence: manifest ``lod_vaf`` → the assay's default in configs (when the manifest
    names a configured assay) → from depth (``lod.min_alt_reads`` / median depth, the
    Poisson-limited floor of a draw) → the default assay.
    """
    depths = pd.to_numeric(calls.get("depth", pd.Series(dtype="float64")), errors="coerce")
    depths = depths[depths > 0]
    median_depth = float(depths.median()) if len(depths) else None
    if row.lod_vaf is not None:
        return row.lod_vaf, "manifest", median_depth
    known = {name.lower() for name in settings.assays}
    if row.assay and row.assay.strip().lower() in known:
        return settings.assay(row.assay).lod_vaf, "assay", median_depth
    if median_depth:
        return min(1.0, settings.lod.min_alt_reads / median_depth), "depth", median_depth
    return settings.assay(None).lod_vaf, "default", median_depth


def detected_mask(calls: pd.DataFrame, lod_vaf: float, min_alt_reads: int) -> np.ndarray:
    """Which calls count as detected in this draw (vectorised).

    PASS (or no filter applied), and for SNV/MNV/indel calls: VAF (when known) at or above
    the draw's LoD, and alt reads (when known) at least ``min_alt_reads``. CNV and fusion
    calls are taken as the caller reports them (their abundance is not a VAF).
    """
    if calls.empty:
        return np.zeros(0, dtype=bool)
    passed = calls["filter"].fillna("PASS").isin(["PASS", "."]).to_numpy()
    small = calls["variant_type"].isin(["snv", "mnv", "indel"]).to_numpy()
    vaf = calls["vaf"].to_numpy(dtype="float64", na_value=np.nan)
    alt_reads = pd.to_numeric(calls["alt_reads"], errors="coerce").to_numpy(dtype="float64",
                                                                            na_value=np.nan)
    vaf_ok = np.isnan(vaf) | (vaf >= lod_vaf - VAF_TOLERANCE)
    reads_ok = np.isnan(alt_reads) | (alt_reads >= min_alt_reads)
    return passed & (~small | (vaf_ok & reads_ok))


def _content_hash(row: ManifestRow, calls: pd.DataFrame, file_format: str) -> str:
    """SHA-256 of what was delivered for this draw plus the manifest metadata.

    VCF: the file's bytes (a multi-sample file is disambiguated by ``vcf_sample``).
    Tables: the rows selected for this ``sample_id`` (a shared table may gain other
    samples' rows without changing this draw).
    """
    digest = hashlib.sha256()
    if file_format == "vcf":
        with row.path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    else:
        canonical = calls.reindex(columns=list(CALL_COLUMNS)).to_csv(index=False)
        digest.update(canonical.encode())
    meta = {
        "patient_id": row.patient_id, "collection_date": row.collection_date.isoformat(),
        "vcf_sample": row.vcf_sample, "genome_build": row.genome_build, "lod_vaf": row.lod_vaf,
        "assay": row.assay, "tumor_fraction": row.tumor_fraction, "profile": row.profile,
        "sample_id": row.sample_id,
    }
    digest.update(json.dumps(meta, sort_keys=True).encode())
    return digest.hexdigest()


def prepare_sample(row: ManifestRow, settings: Settings, kb: KnowledgeBase) -> PreparedSample:
    """Read, validate and annotate one draw; raises :class:`InputError` on bad input."""
    result = read_variant_file(
        row.path, sample_id=row.sample_id, vcf_sample=row.vcf_sample,
        genome_build=row.genome_build, profile=row.profile, settings=settings,
    )
    calls = result.calls
    assay = settings.assay(row.assay)
    annotated = kb.annotate(calls, result.genome_build, cnv_kind=assay.cnv_kind)
    lod_vaf, lod_source, median_depth = choose_lod(row, calls, settings)
    annotated = annotated.assign(
        detected=detected_mask(annotated, lod_vaf, settings.rules.min_alt_reads_detected),
    )
    annotated["category"] = annotated["category"].fillna("other")
    return PreparedSample(
        sample_id=row.sample_id, patient_id=row.patient_id,
        collection_date=row.collection_date, care_team=row.care_team,
        source_path=str(row.path), content_sha256=_content_hash(row, calls, result.file_format),
        file_format=result.file_format, vcf_sample=result.vcf_sample, caller=result.caller,
        genome_build=result.genome_build, assay=row.assay, lod_vaf=lod_vaf,
        lod_source=lod_source, tumor_fraction=row.tumor_fraction, median_depth=median_depth,
        n_records=int(result.n_records), kb_version=kb.version, observations=annotated,
    )


def ingest_rows(rows: list[ManifestRow], store: Store, settings: Settings, kb: KnowledgeBase,
                *, amend: bool = False, run_id: str | None = None) -> IngestReport:
    """Ingest validated manifest rows one sample at a time (each atomic)."""
    report = IngestReport()
    for row in rows:
        try:
            prepared = prepare_sample(row, settings, kb)
            action = store.ingest_sample(prepared, amend=amend, run_id=run_id)
        except InputError as exc:
            rejection = RowRejection(str(row.path), exc.one_line(), row.sample_id, row.line)
            report.rejected.append(rejection)
            store.record_rejection(path=rejection.path, error=rejection.error,
                                   sample_id=row.sample_id, run_id=run_id)
            continue
        getattr(report, action).append(row.sample_id)
        if action != "unchanged":
            report.patients.add(row.patient_id)
    return report


def ingest_manifest(manifest: str | Path, store: Store, settings: Settings, kb: KnowledgeBase,
                    *, amend: bool = False, sample_ids: set[str] | None = None,
                    run_id: str | None = None) -> IngestReport:
    """Validate a manifest, then ingest each valid row (optionally only ``sample_ids``)."""
    parsed = read_manifest(manifest)
    rows = [r for r in parsed.rows if sample_ids is None or r.sample_id in sample_ids]
    report = ingest_rows(rows, store, settings, kb, amend=amend, run_id=run_id)
    for rejection in parsed.rejected:
        if sample_ids is None or rejection.sample_id in sample_ids:
            report.rejected.append(rejection)
            store.record_rejection(path=rejection.path, error=rejection.error,
                                   sample_id=rejection.sample_id, run_id=run_id)
    return report


def ingest_therapies(path: str | Path, store: Store) -> IngestReport:
    """Validate a therapy history (all or nothing) and store it."""
    therapies = read_therapies(path)
    report = IngestReport(therapies=store.replace_therapies(therapies, str(path)))
    report.patients |= set(therapies["patient_id"].astype(str))
    return report


def recognise_stored(observations: pd.DataFrame, settings: Settings,
                     kb: KnowledgeBase) -> pd.DataFrame:
    """``observation_id, gene, alteration, category, kb_id`` of stored observations as
    ``kb`` recognises them (per genome build and assay; nothing is written)."""
    updated = []
    for (build, assay_name), group in observations.groupby(["genome_build", "assay"],
                                                           dropna=False, sort=False):
        assay = settings.assay(assay_name if isinstance(assay_name, str) else None)
        calls = group.drop(columns=["alteration", "category", "kb_id"])
        annotated = kb.annotate(calls, str(build), cnv_kind=assay.cnv_kind)
        updated.append(annotated[["observation_id", "gene", "alteration", "category", "kb_id"]])
    frame = pd.concat(updated, ignore_index=True)
    frame["category"] = frame["category"].fillna("other")
    return frame


def reannotate(store: Store, settings: Settings, kb: KnowledgeBase,
               patient_ids: list[str] | None = None) -> int:
    """Re-run recognition on stored observations after a knowledge-base change."""
    observations = store.observations_frame(patient_ids)
    if observations.empty:
        return 0
    return store.update_annotations(recognise_stored(observations, settings, kb))
