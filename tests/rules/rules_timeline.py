"""Build store frames (observations, samples, therapies) for rule-engine scenario tests.

The frames have exactly the columns of ``Store.observations_frame()``,
``Store.samples_frame()`` and ``Store.therapies_frame()`` (docs/architecture.md), so the
engine is exercised on its real input type. ``detected`` follows the ingest contract:
FILTER PASS, VAF at or above the draw's LoD and alt reads >= ``rules.min_alt_reads_detected``
(default 2) for SNV/MNV/indel calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

OBSERVATION_COLUMNS = [
    "sample_pk", "sample_id", "patient_id", "collection_date", "lod_vaf", "tumor_fraction",
    "assay", "chrom", "pos", "ref", "alt", "gene", "alteration", "variant_type", "category",
    "kb_id", "vaf", "alt_reads", "depth", "filter", "detected", "copy_number", "fusion_partner",
]
SAMPLE_COLUMNS = [
    "sample_pk", "sample_id", "patient_id", "collection_date", "lod_vaf", "lod_source",
    "tumor_fraction", "assay", "median_depth", "n_records", "genome_build",
]
THERAPY_COLUMNS = ["patient_id", "line", "drug", "start_date", "end_date"]

START = date(2025, 1, 6)


def fusion(vaf: float | None, alt_reads: int | None = None, depth: int | None = 2000,
           partner: str = "EML4", alteration: str = "EML4-ALK fusion") -> dict[str, object]:
    """An EML4-ALK fusion call (category 'driver'); reads default to vaf * depth."""
    return _call("ALK", alteration, "driver", vaf, alt_reads, depth, "fusion",
                 fusion_partner=partner)


def snv(gene: str, alteration: str, category: str, vaf: float | None,
        alt_reads: int | None = None, depth: int | None = 2000,
        filter_: str = "PASS") -> dict[str, object]:
    """An SNV call with its knowledge-base category."""
    return _call(gene, alteration, category, vaf, alt_reads, depth, "snv", filter_=filter_)


def cnv(gene: str, copy_number: float, detected: bool = True) -> dict[str, object]:
    """A copy-number call (plasma copy number unless the assay says otherwise)."""
    row = _call(gene, "amplification", "bypass", None, None, None, "cnv")
    row["copy_number"] = copy_number
    row["force_detected"] = detected
    return row


def _call(gene: str, alteration: str, category: str, vaf: float | None,
          alt_reads: int | None, depth: int | None, variant_type: str,
          filter_: str = "PASS", fusion_partner: str | None = None) -> dict[str, object]:
    if alt_reads is None and vaf is not None and depth is not None:
        alt_reads = round(vaf * depth)
    return {
        "gene": gene, "alteration": alteration, "category": category, "vaf": vaf,
        "alt_reads": alt_reads, "depth": depth, "variant_type": variant_type,
        "filter": filter_, "fusion_partner": fusion_partner, "copy_number": None,
    }


@dataclass
class Timeline:
    """One or more patients' draws and lines of therapy, built step by step."""

    min_alt_reads: int = 2
    draws: list[dict[str, object]] = field(default_factory=list)
    calls: list[dict[str, object]] = field(default_factory=list)
    lines: list[dict[str, object]] = field(default_factory=list)

    def therapy(self, patient: str, drug: str, start: date, line: int | None = None,
                end: date | None = None) -> Timeline:
        self.lines.append({"patient_id": patient, "line": line, "drug": drug,
                           "start_date": start, "end_date": end})
        return self

    def draw(self, patient: str, day: int, *calls: dict[str, object], lod: float = 0.005,
             tf: float | None = None, depth: float = 2000.0, assay: str | None = None,
             start: date = START, sample_id: str | None = None) -> str:
        """Add a draw ``day`` days after ``start`` with the given calls; returns sample_id."""
        when = start + timedelta(days=day)
        sid = sample_id or f"{patient}-d{day:+04d}"
        pk = len(self.draws) + 1
        self.draws.append({
            "sample_pk": pk, "sample_id": sid, "patient_id": patient, "collection_date": when,
            "lod_vaf": lod, "lod_source": "manifest", "tumor_fraction": tf, "assay": assay,
            "median_depth": depth, "n_records": len(calls), "genome_build": "GRCh38",
        })
        for i, call in enumerate(calls):
            row = dict(call)
            force = row.pop("force_detected", None)
            vaf, alt = row["vaf"], row["alt_reads"]
            detected = row["filter"] == "PASS"
            if row["variant_type"] in ("snv", "mnv", "indel"):
                if vaf is not None:
                    detected &= vaf >= lod - 1e-6
                if alt is not None:
                    detected &= alt >= self.min_alt_reads
            elif vaf is not None:
                detected &= vaf >= lod - 1e-6
            if force is not None:
                detected = force
            row.update({
                "sample_pk": pk, "sample_id": sid, "patient_id": patient,
                "collection_date": when, "lod_vaf": lod, "tumor_fraction": tf,
                "assay": assay, "chrom": None, "pos": None, "ref": None, "alt": None,
                "kb_id": f"kb-{row['gene']}-{row['alteration']}", "detected": bool(detected),
                "record_index": i + 1,
            })
            self.calls.append(row)
        return sid

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """(observations, samples, therapies) as the store returns them."""
        obs = pd.DataFrame(self.calls, columns=[*OBSERVATION_COLUMNS, "record_index"])
        obs = obs[OBSERVATION_COLUMNS]
        obs["pos"] = obs["pos"].astype("Int64")
        obs["alt_reads"] = obs["alt_reads"].astype("Int64")
        obs["depth"] = obs["depth"].astype("Int64")
        for column in ("vaf", "copy_number", "lod_vaf", "tumor_fraction"):
            obs[column] = obs[column].astype("float64")
        obs["detected"] = obs["detected"].astype(bool)
        samples = pd.DataFrame(self.draws, columns=SAMPLE_COLUMNS)
        samples["tumor_fraction"] = samples["tumor_fraction"].astype("float64")
        therapies = pd.DataFrame(self.lines, columns=THERAPY_COLUMNS)
        return obs, samples, therapies
