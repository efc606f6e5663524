"""The reader result shared by the VCF and table readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

import pandas as pd

#: Units of a draw-level value (#9 item 7): fractions 0-1 for the first two, molecules/mL.
LEVEL_UNITS = ("tumor_fraction", "mean_vaf", "mtm_per_ml")


@dataclass(frozen=True)
class DrawLevel:
    """One draw's sample-level result (tumor-informed MRD, tumor fraction assays).

    Attributes
    ----------
    value
        Fraction 0-1 for ``tumor_fraction``/``mean_vaf``, molecules per mL for
        ``mtm_per_ml``; None when not reported or not detected (a non-detect is "below this
        draw's LoD", never zero).
    unit
        One of :data:`LEVEL_UNITS`.
    lod
        The draw's limit of detection in the same unit, None when not reported.
    call
        ``positive``/``negative`` as the assay reported it (or derived from value and LoD),
        None when neither is known.
    """

    value: float | None
    unit: str
    lod: float | None
    call: Literal["positive", "negative"] | None


@dataclass
class ReadResult:
    """What :func:`pipeline.io.read_variant_file` returns for one sample.

    Attributes
    ----------
    calls
        One row per ALT allele / CNV / fusion call, columns of
        :data:`pipeline.schema.CALL_COLUMNS` (plus ``cnv_kind``); ``vaf`` is a fraction 0-1.
    genome_build
        ``"GRCh37"`` or ``"GRCh38"``.
    vcf_sample
        The sample column read (None for sites-only VCFs and tables).
    caller
        Caller or vendor profile that produced the file (``mutect2``, ``strelka``,
        ``guardant360``, ``canonical`` ...), ``unknown`` when not recognisable.
    file_format
        ``"vcf"`` (VCF or BCF) or ``"table"``.
    n_records
        Data records (VCF) or data rows (table, this sample's rows) read from the file,
        including records that yielded no call (ALT ``.`` reference records, mate breakends,
        non-detect rows).
    warnings
        Tolerated oddities, one sentence each (undeclared INFO keys, missing contig lines ...).
    assay
        The profile's assay (configs ``assays``) for when the manifest names none.
    collection_date
        The draw's date from a relative-date profile and its anchor (None otherwise).
    level
        The draw-level value of a draw-level profile (None otherwise).
    """

    calls: pd.DataFrame
    genome_build: str
    vcf_sample: str | None
    caller: str
    file_format: Literal["vcf", "table"]
    n_records: int
    warnings: list[str] = field(default_factory=list)
    assay: str | None = None
    collection_date: date | None = None
    level: DrawLevel | None = None
