"""The reader result shared by the VCF and table readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd


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
    """

    calls: pd.DataFrame
    genome_build: str
    vcf_sample: str | None
    caller: str
    file_format: Literal["vcf", "table"]
    n_records: int
    warnings: list[str] = field(default_factory=list)
