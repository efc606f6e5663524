"""Readers and writers: the only layer that touches variant files (and the only pysam user).

:func:`read_variant_file` dispatches on content first (BGZF/gzip magic, BCF magic,
``##fileformat=VCF``) and on the extension second, then returns a :class:`ReadResult` whose
``calls`` frame follows :data:`pipeline.schema.CALL_COLUMNS` (VAF always a fraction).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, InvalidVariantFileError
from pipeline.io.result import ReadResult

__all__ = ["ReadRequest", "ReadResult", "read_variant_file", "read_variant_files",
           "sniff_format"]

_VCF_EXTENSIONS = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf", ".bcf.gz")
_TABLE_EXTENSIONS = (".csv", ".tsv", ".txt", ".tab", ".csv.gz", ".tsv.gz", ".txt.gz")


def _is_bgzf(head: bytes) -> bool:
    """BGZF = gzip member with the 'BC' extra subfield (SAM spec §4.1)."""
    return (
        len(head) >= 18 and head[:2] == b"\x1f\x8b" and bool(head[3] & 4)
        and head[12:14] == b"BC"
    )


def sniff_format(path: str | Path) -> tuple[str, str]:
    """Classify a variant file by content, then by extension.

    Returns
    -------
    tuple[str, str]
        ``(kind, compression)``: kind ``"vcf"`` (VCF or BCF) or ``"table"``; compression
        ``"none"``, ``"bgzf"`` or ``"gzip"`` (plain gzip, not BGZF).

    Raises
    ------
    InvalidVariantFileError
        Missing, unreadable or 0-byte file, or content that is neither VCF/BCF nor text.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(65536)
    except FileNotFoundError:
        raise InvalidVariantFileError("variant file not found", path=path) from None
    except OSError as exc:
        raise InvalidVariantFileError(f"cannot read file ({exc.strerror})", path=path) from None
    if not head:
        raise InvalidVariantFileError("empty file (0 bytes)", path=path, record="header")
    compression = "none"
    text = head
    if head[:2] == b"\x1f\x8b":
        compression = "bgzf" if _is_bgzf(head) else "gzip"
        try:
            text = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 4096)
        except zlib.error:
            raise InvalidVariantFileError(
                "corrupt gzip/BGZF data", path=path, record="header"
            ) from None
    name = path.name.lower()
    if text.startswith(b"BCF") or text.startswith(b"##fileformat=VCF"):
        return "vcf", compression
    if name.endswith(_VCF_EXTENSIONS):
        return "vcf", compression
    if name.endswith(_TABLE_EXTENSIONS):
        return "table", compression
    if b"\x00" in text[:4096]:
        raise InvalidVariantFileError(
            "binary content that is neither VCF/BCF nor a text table", path=path,
            record="header",
        )
    return "table", compression


def read_variant_file(
    path: str | Path,
    *,
    sample_id: str,
    vcf_sample: str | None = None,
    genome_build: str | None = None,
    profile: str | None = None,
    settings: Any = None,
) -> ReadResult:
    """Read one sample's calls from a VCF/BCF or a CSV/TSV variant table.

    Parameters
    ----------
    path
        The variant file (read in place, never modified).
    sample_id
        The manifest's sample_id; selects this sample's rows of a shared table (ignored for
        VCFs, where ``vcf_sample`` selects the column).
    vcf_sample
        The plasma column of a multi-sample VCF (see :func:`pipeline.io.vcf.read_vcf`).
    genome_build
        Declared build (``GRCh37``/``hg19``/``b37``/``GRCh38``/``hg38``) or None to detect.
    profile
        Vendor table profile name (``configs/profiles/<name>.yaml``) or None to detect.
    settings
        :class:`pipeline.config.Settings`; reserved for assay-specific reading options
        (currently unused by the readers).

    Returns
    -------
    ReadResult
        Calls frame (VAF fraction 0-1, ``vaf_source`` recorded) and file metadata.

    Raises
    ------
    InvalidVariantFileError
        Unreadable, malformed or ambiguous input, naming file, record/line and field.
    GenomeBuildError
        Build unknown, contradictory or not detectable.
    """
    del settings  # accepted for the internal contract; no reader option depends on it yet
    kind, compression = sniff_format(path)
    if kind == "vcf":
        if compression == "gzip":
            raise InvalidVariantFileError(
                "plain gzip (not BGZF) cannot be read by htslib; recompress with "
                "`bgzip` (pysam#536)",
                path=path,
                record="header",
            )
        from pipeline.io.vcf import read_vcf

        return read_vcf(path, vcf_sample=vcf_sample, genome_build=genome_build)
    from pipeline.io.table import read_table

    opener = gzip.open if compression != "none" else None
    return read_table(
        path, sample_id=sample_id, profile=profile, genome_build=genome_build, opener=opener
    )


@dataclass(frozen=True)
class ReadRequest:
    """One sample to read (the reader-relevant fields of a manifest row)."""

    path: Path
    sample_id: str
    vcf_sample: str | None = None
    genome_build: str | None = None
    profile: str | None = None


def read_variant_files(requests: Sequence[ReadRequest]) -> list[ReadResult | InputError]:
    """Read a batch of samples; each file is sniffed and (for tables) parsed once.

    Tables go through :func:`pipeline.io.table.read_tables` (one parse per file, one
    validation pass per table layout, issue #11 item 1); VCF/BCF files are read per
    request by :func:`read_variant_file`.

    Returns
    -------
    list
        Aligned with ``requests``: a :class:`ReadResult`, or the :class:`InputError`
        rejecting that sample (raised for nobody: one bad sample never stops the others).
    """
    from pipeline.io.table import TableRequest, read_tables

    results: list[ReadResult | InputError | None] = [None] * len(requests)
    sniffed: dict[Path, tuple[str, str] | InputError] = {}
    tables: list[tuple[int, TableRequest]] = []
    for i, req in enumerate(requests):
        if req.path not in sniffed:
            try:
                sniffed[req.path] = sniff_format(req.path)
            except InputError as exc:
                sniffed[req.path] = exc
        kind = sniffed[req.path]
        if isinstance(kind, InputError):
            results[i] = kind
        elif kind[0] == "table":
            opener = gzip.open if kind[1] != "none" else None
            tables.append((i, TableRequest(req.path, req.sample_id, req.profile,
                                           req.genome_build, opener)))
        else:
            try:
                results[i] = read_variant_file(req.path, sample_id=req.sample_id,
                                               vcf_sample=req.vcf_sample,
                                               genome_build=req.genome_build,
                                               profile=req.profile)
            except InputError as exc:
                results[i] = exc
    for (i, _), result in zip(tables, read_tables([t for _, t in tables]), strict=True):
        results[i] = result
    done = [r for r in results if r is not None]
    assert len(done) == len(requests)  # every request ends as a result or an error
    return done
