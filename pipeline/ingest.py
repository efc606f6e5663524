"""Ingestion: manifest → validate → read → recognise → store, atomically per sample.

One bad manifest row (unreadable file, malformed VCF, unknown build) is rejected with a
one-line reason while the good rows proceed; nothing of a rejected sample is stored.

Batches, not rows (issue #11 item 1): every file is read and validated once per batch
whatever number of manifest rows point at it (:func:`pipeline.io.read_variant_files`),
recognition runs once over all the batch's calls, and the store writes the batch in bulk
(:meth:`pipeline.store.repository.Store.ingest_samples`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import Settings
from pipeline.errors import InputError, ManifestError
from pipeline.faults import fault_point
from pipeline.io import ReadRequest, ReadResult, read_variant_files
from pipeline.io.manifest import ManifestRow, RowRejection, read_manifest, read_therapies
from pipeline.io.profiles import known_profiles, load_profile, search_path
from pipeline.io.result import DrawLevel
from pipeline.knowledge import KnowledgeBase
from pipeline.progress import Progress, resolve
from pipeline.schema import CALL_COLUMNS, group_positions, take_rows
from pipeline.store.repository import PreparedSample, Store

#: float32 tolerance: htslib stores AF=0.01 as 0.009999999776 (engineering-notes §2.1).
VAF_TOLERANCE = 1e-6


@dataclass(frozen=True)
class IngestWarning:
    """A tolerated defect or caveat in one sample's input, stored with the sample.

    One shared structure for every source of warnings (VCF reader, table profiles): the
    ingest report lists them (``--json`` ``warnings``) and the run summary prints them.
    """

    path: str
    message: str
    sample_id: str | None = None

    def one_line(self) -> str:
        sample = f"sample {self.sample_id}: " if self.sample_id else ""
        return f"{self.path}: {sample}{self.message}".replace("\n", " ")

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "warning": self.message,
                **({"sample_id": self.sample_id} if self.sample_id else {})}


@dataclass
class IngestReport:
    """What happened to each sample of a batch (``ctdna ingest --json``)."""

    ingested: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    amended: list[str] = field(default_factory=list)
    rejected: list[RowRejection] = field(default_factory=list)
    therapies: int = 0
    patients: set[str] = field(default_factory=set)  # patients whose data changed
    warnings: list[IngestWarning] = field(default_factory=list)

    def merge(self, other: IngestReport) -> None:
        self.ingested += other.ingested
        self.unchanged += other.unchanged
        self.amended += other.amended
        self.rejected += other.rejected
        self.therapies += other.therapies
        self.patients |= other.patients
        self.warnings += other.warnings

    def to_json(self) -> dict[str, Any]:
        """Contract shape; ``amended`` samples are listed under ``ingested`` too."""
        return {
            "ingested": self.ingested + self.amended,
            "unchanged": self.unchanged,
            "rejected": [{"path": r.path, "error": r.error, **({"sample_id": r.sample_id}
                          if r.sample_id else {})} for r in self.rejected],
            "amended": self.amended,
            "therapy_rows": self.therapies,
            "warnings": [w.to_json() for w in self.warnings],
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
    return lod_from_depth(row, float(depths.median()) if len(depths) else None, settings)


def lod_from_depth(
    row: ManifestRow, median_depth: float | None, settings: Settings
) -> tuple[float, str, float | None]:
    """:func:`choose_lod` given the draw's median depth (computed batch-wise by ingest)."""
    if row.lod_vaf is not None:
        return row.lod_vaf, "manifest", median_depth
    known = {name.lower() for name in settings.assays}
    if row.assay and row.assay.strip().lower() in known:
        return settings.assay(row.assay).lod_vaf, "assay", median_depth
    if median_depth:
        return min(1.0, settings.lod.min_alt_reads / median_depth), "depth", median_depth
    return settings.assay(None).lod_vaf, "default", median_depth


def detected_mask(calls: pd.DataFrame, lod_vaf: float | np.ndarray,
                  min_alt_reads: int, reported: bool | np.ndarray = False) -> np.ndarray:
    """Which calls count as detected in this draw (vectorised).

    PASS (or no filter applied), and for SNV/MNV/indel/unclassified calls: alt reads (when
    known) at least ``min_alt_reads`` and, under the assay's ``lod_floor`` detection policy,
    a VAF (when known) at or above the draw's LoD. Where ``reported`` (the assay's policy
    ``reported``, #9 item 4: a vendor report) every reported call is a detection whatever
    the LoD; the LoD then only says what a non-detect means. CNV and fusion calls are taken
    as the caller reports them (their abundance is not a VAF). ``lod_vaf`` and
    ``reported`` are one value, or one per row when a whole batch is checked at once.
    """
    if calls.empty:
        return np.zeros(0, dtype=bool)
    passed = calls["filter"].fillna("PASS").isin(["PASS", "."]).to_numpy()
    small = calls["variant_type"].isin(["snv", "mnv", "indel", "unclassified"]).to_numpy()
    vaf = calls["vaf"].to_numpy(dtype="float64", na_value=np.nan)
    alt_reads = pd.to_numeric(calls["alt_reads"], errors="coerce").to_numpy(dtype="float64",
                                                                            na_value=np.nan)
    vaf_ok = np.isnan(vaf) | (vaf >= lod_vaf - VAF_TOLERANCE) | reported
    reads_ok = np.isnan(alt_reads) | (alt_reads >= min_alt_reads)
    # Issue #10 item 5: a small variant counts as detected only with evidence (a VAF or read
    # counts), and never when the caller genotyped this draw homozygous reference (GT 0/0).
    evidence = ~np.isnan(vaf) | ~np.isnan(alt_reads)
    gt_ref = (calls["gt_ref"].eq(True).to_numpy(dtype=bool) if "gt_ref" in calls
              else np.zeros(len(calls), dtype=bool))
    return passed & ~gt_ref & (~small | (vaf_ok & reads_ok & evidence))


def _content_hash(row: ManifestRow, calls: pd.DataFrame, file_format: str,
                  level: DrawLevel | None = None, canonical: str | None = None) -> str:
    """SHA-256 of what was delivered for this draw plus the manifest metadata.

    VCF: the file's bytes (a multi-sample file is disambiguated by ``vcf_sample``).
    Tables: the rows selected for this ``sample_id`` (a shared table may gain other
    samples' rows without changing this draw), as their canonical CSV (``canonical`` when
    the caller has it already, see :func:`_canonical_csvs`).
    """
    digest = hashlib.sha256()
    if file_format == "vcf":
        with row.path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    else:
        if canonical is None:
            canonical = _canonical_csv(calls)
        digest.update(canonical.encode())
    meta: dict[str, Any] = {
        "patient_id": row.patient_id,
        "collection_date": row.collection_date.isoformat() if row.collection_date else None,
        "vcf_sample": row.vcf_sample, "genome_build": row.genome_build, "lod_vaf": row.lod_vaf,
        "assay": row.assay, "tumor_fraction": row.tumor_fraction, "profile": row.profile,
        "sample_id": row.sample_id,
    }
    # Added only when present, so that the hashes of samples stored before these existed
    # stay the same (re-ingest stays a no-op).
    if row.anchor_date is not None:
        meta["anchor_date"] = row.anchor_date.isoformat()
    if level is not None:
        meta["level"] = [level.value, level.unit, level.lod, level.call]
    digest.update(json.dumps(meta, sort_keys=True).encode())
    return digest.hexdigest()


def _canonical_csv(calls: pd.DataFrame) -> str:
    """The canonical text a table draw's hash covers: its contract columns as CSV."""
    return calls.reindex(columns=list(CALL_COLUMNS)).to_csv(index=False)


def _canonical_csvs(calls: pd.DataFrame, owner: np.ndarray, wanted: np.ndarray
                    ) -> dict[int, str]:
    """:func:`_canonical_csv` of each wanted owner's rows, from one ``to_csv`` of them all.

    ``calls`` holds the batch's draws one after another (``owner[i]`` is row i's draw);
    ``wanted`` flags the draws to serialise (the tables). One ``to_csv`` per draw cost
    about 1.5 ms (issue #11 item 1: the per-sample fixed cost). A CSV row depends on its
    own values only, so the whole text split into lines gives each draw's rows exactly as
    its own ``to_csv`` would; when a value holds a line break (a quoted multi-line cell)
    the lines cannot be split by row and each draw is serialised on its own.
    """
    draws = np.flatnonzero(wanted)
    rows = np.flatnonzero(wanted[owner]) if len(owner) else np.zeros(0, dtype=np.intp)
    text = _canonical_csv(calls.take(rows))
    lines = text.split("\n")
    if len(lines) != len(rows) + 2:  # header, one line a row, "" after the last newline
        return {int(j): _canonical_csv(calls.take(np.flatnonzero(owner == j)))
                for j in draws}
    header = lines[0]
    counts = np.bincount(owner[rows], minlength=len(wanted))
    ends = np.cumsum(counts[draws])
    out = {}
    for j, end, count in zip(draws.tolist(), ends.tolist(), counts[draws].tolist(),
                             strict=True):
        out[j] = "\n".join([header, *lines[1 + end - count:1 + end]]) + "\n"
    return out


def prepare_sample(row: ManifestRow, settings: Settings, kb: KnowledgeBase) -> PreparedSample:
    """Read, validate and annotate one draw; raises :class:`InputError` on bad input."""
    prepared = prepare_samples([row], settings, kb)[0]
    if isinstance(prepared, InputError):
        raise prepared
    return prepared


#: Manifest rows prepared and stored together; bounds the memory of one batch.
BATCH_ROWS = 5000


def prepare_samples(rows: list[ManifestRow], settings: Settings,
                    kb: KnowledgeBase) -> list[PreparedSample | InputError]:
    """Read, validate and annotate a batch of draws (see the module docstring).

    Returns
    -------
    list
        Aligned with ``rows``: the sample ready to store, or the :class:`InputError` that
        rejects it (one bad row never stops the good ones).
    """
    reads = read_variant_files([
        ReadRequest(row.path, row.sample_id, row.vcf_sample, row.genome_build, row.profile,
                    row.anchor_date)
        for row in rows
    ], profile_dirs=search_path(settings.profiles_dir))
    # Per draw: the date (manifest, or anchor + the table's relative day) and the assay (the
    # manifest's, else the profile's, #9 item 4); the content hash keeps the row as given.
    given = list(rows)
    rows = list(rows)
    days: dict[int, date] = {}  # k -> the draw's resolved date (never None past this loop)
    for k, read in enumerate(reads):
        if isinstance(read, ReadResult):
            try:
                day = _draw_date(rows[k], read.collection_date)
            except InputError as exc:
                reads[k] = exc
                continue
            days[k] = day
            rows[k] = replace(rows[k], collection_date=day, assay=rows[k].assay or read.assay)
    out: list[PreparedSample | InputError | None] = [
        r if isinstance(r, InputError) else None for r in reads]
    good = [k for k, r in enumerate(reads) if isinstance(r, ReadResult)]
    ok = [r for r in reads if isinstance(r, ReadResult)]
    if not ok:
        return [o for o in out if o is not None]
    calls = pd.concat([r.calls for r in ok], ignore_index=True)
    owner = np.repeat(np.arange(len(ok)), [len(r.calls) for r in ok])
    canonical = _canonical_csvs(calls, owner, np.array([r.file_format != "vcf" for r in ok],
                                                       dtype=bool))
    calls["_owner"] = owner
    depths = pd.to_numeric(calls["depth"], errors="coerce").to_numpy(dtype="float64",
                                                                     na_value=np.nan)
    positive = depths > 0
    medians = pd.Series(depths[positive]).groupby(owner[positive]).median()
    lods = [lod_from_depth(rows[k], (float(medians[j]) if j in medians.index else None),
                           settings) for j, k in enumerate(good)]
    # One recognition call per (build, CNV unit) over the whole batch (issue #11 item 1).
    keys = [(r.genome_build, settings.assay(rows[k].assay).cnv_kind) for r, k in zip(ok, good,
                                                                                    strict=True)]
    row_keys = pd.Series([keys[j] for j in owner], dtype=object) if len(owner) else \
        pd.Series([], dtype=object)
    parts = []
    for key in dict.fromkeys(keys):
        mask = (row_keys == key).to_numpy(dtype=bool) if len(keys) > 1 else slice(None)
        parts.append(kb.annotate(calls[mask], key[0], cnv_kind=key[1]))
    annotated = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    row_owner = annotated["_owner"].to_numpy()
    lod_per_row = np.array([lods[j][0] for j in range(len(good))], dtype="float64")[row_owner]
    reported = np.array([settings.assay(rows[k].assay).detection == "reported" for k in good],
                        dtype=bool)[row_owner]
    annotated["detected"] = detected_mask(annotated, lod_per_row,
                                          settings.rules.min_alt_reads_detected, reported)
    annotated["category"] = annotated["category"].fillna("other")
    annotated = annotated.drop(columns="_owner")
    positions = group_positions(row_owner)
    for j, k in enumerate(good):
        result, row = ok[j], rows[k]
        lod_vaf, lod_source, median_depth = lods[j]
        observations = take_rows(annotated, positions.get(j))
        level = result.level
        out[k] = PreparedSample(
            sample_id=row.sample_id, patient_id=row.patient_id,
            collection_date=days[k], care_team=row.care_team,
            source_path=str(row.path),
            content_sha256=_content_hash(given[k], result.calls, result.file_format, level,
                                         canonical.get(j)),
            file_format=result.file_format, vcf_sample=result.vcf_sample,
            caller=result.caller, genome_build=result.genome_build, assay=row.assay,
            lod_vaf=lod_vaf, lod_source=lod_source, tumor_fraction=row.tumor_fraction,
            median_depth=median_depth, n_records=int(result.n_records), kb_version=kb.version,
            observations=observations, warnings=list(result.warnings),
            level_value=level.value if level else None,
            level_unit=level.unit if level else None,
            level_lod=level.lod if level else None,
            level_call=level.call if level else None,
        )
    done = [o for o in out if o is not None]
    assert len(done) == len(rows)  # every row ends prepared or rejected
    return done


def ingest_rows(rows: list[ManifestRow], store: Store, settings: Settings, kb: KnowledgeBase,
                *, amend: bool = False, run_id: str | None = None,
                progress: Progress | None = None) -> IngestReport:
    """Ingest validated manifest rows in batches (each sample still atomic)."""
    report = IngestReport()
    steps = resolve(progress)
    steps.start("ingest", len(rows))
    for start in range(0, len(rows), BATCH_ROWS):
        batch = rows[start:start + BATCH_ROWS]
        prepared = prepare_samples(batch, settings, kb)
        ready = [p for p in prepared if isinstance(p, PreparedSample)]
        stored = iter(store.ingest_samples(ready, amend=amend, run_id=run_id))
        fault_point("mid_ingest")  # test hook (pipeline/faults.py); no-op in production
        rejections = []
        for row, outcome in zip(batch, prepared, strict=True):
            action = outcome if isinstance(outcome, InputError) else next(stored)
            if isinstance(action, InputError):
                rejection = RowRejection(str(row.path), action.one_line(), row.sample_id,
                                         row.line)
                report.rejected.append(rejection)
                rejections.append((rejection.path, rejection.error, row.sample_id))
                continue
            getattr(report, action).append(row.sample_id)
            if action != "unchanged":
                report.patients.add(row.patient_id)
                # outcome is a PreparedSample here: an InputError was rejected above
                sample_warnings = [] if isinstance(outcome, InputError) else outcome.warnings
                report.warnings += [IngestWarning(str(row.path), w, row.sample_id)
                                    for w in sample_warnings]
        store.record_rejections(rejections, run_id=run_id)
        steps.advance(len(batch))
    steps.finish()
    return report


def ingest_manifest(manifest: str | Path, store: Store, settings: Settings, kb: KnowledgeBase,
                    *, amend: bool = False, sample_ids: set[str] | None = None,
                    run_id: str | None = None,
                    progress: Progress | None = None) -> IngestReport:
    """Validate a manifest, then ingest each valid row (optionally only ``sample_ids``)."""
    parsed = read_manifest(manifest, allowed_roots=settings.ingest.allowed_roots)
    rows = [r for r in parsed.rows if sample_ids is None or r.sample_id in sample_ids]
    check_profiles(rows, settings)
    report = ingest_rows(rows, store, settings, kb, amend=amend, run_id=run_id,
                         progress=progress)
    for rejection in parsed.rejected:
        if sample_ids is None or rejection.sample_id in sample_ids:
            report.rejected.append(rejection)
            store.record_rejection(path=rejection.path, error=rejection.error,
                                   sample_id=rejection.sample_id, run_id=run_id)
    return report


def check_profiles(rows: list[ManifestRow], settings: Settings) -> None:
    """Validate every profile the batch names before anything is stored.

    A broken profile file (unknown key, bad value) is the lab's configuration, not one bad
    row: the whole batch is refused (exit 2, nothing half-stored). Unknown names stay
    per-row rejections (#12 item 5).

    Raises
    ------
    ProfileError
        Naming the profile file and the key.
    """
    folders = search_path(settings.profiles_dir)
    for name in sorted({r.profile for r in rows if r.profile}):
        if name in known_profiles(folders):
            load_profile(name, folders)


def _draw_date(row: ManifestRow, from_table: date | None) -> date:
    """The manifest's collection_date, or anchor + the table's relative day (#12 item 5);
    both given must agree."""
    if from_table is not None and row.collection_date is not None \
            and from_table != row.collection_date:
        raise ManifestError(
            f"collection_date {row.collection_date} disagrees with anchor_date + the table's "
            f"relative day ({from_table})", path=row.manifest_path, record=f"line {row.line}",
            field="collection_date")
    found = from_table or row.collection_date
    if found is None:
        raise ManifestError(
            "collection_date is empty and the file gives no relative day for this draw (only "
            "a table whose profile declares relative_date can date a draw from anchor_date)",
            path=row.manifest_path, record=f"line {row.line}", field="collection_date")
    return found


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
