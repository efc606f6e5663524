"""Whole-file column path of the VCF reader for plain small-variant files (issue #11 item 1).

The record extractor in :mod:`pipeline.io.vcf` defines what ctdna reads from a VCF: it asks
pysam for every field of every record, which costs about 25 µs a record in Python objects
(a 200,000-record file: 5 s of 7.6 s). Most ctDNA VCFs are *plain*: one plasma column,
biallelic SNVs/MNVs/indels written in A/C/G/T/N, and the first two steps of the VAF chain
(``FORMAT/AF``, else ``FORMAT/AD``) with ``FORMAT/DP`` and ``GT``. For such a file the same
values are taken here, column-wise with numpy, from the record table the text validation
(:func:`pipeline.io.vcf_checks.check_body`) has already split; pysam still opens the file
(header, build, sample choice, caller) and still iterates every record, so a file htslib
cannot parse is refused exactly as before.

Equivalence is the rule, not an approximation: :func:`column_calls` returns ``None`` (the
record extractor then reads the file and raises or warns as it always did) whenever a file
is not plain or any row would need a decision the record path makes — a value ``.`` where a
VAF is needed, a count that is negative, not a whole number or beyond htslib's int32, an
allele-depth sum above DP, a VAF outside 0-1, an AF that is not one float. Both paths give
identical frames on every VCF of the test suites and ``../shared/realdata``
(``tests/io/test_vcf_columns.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.io.vcf_checks import HeaderInfo, matching, per_unique, split_fields

#: FORMAT keys the column path handles (the first steps of the VAF chain, depth, genotype).
PLAIN_FORMAT = frozenset({"GT", "AD", "AF", "DP"})
_UPPER_BASES = re.compile(r"^[ACGTN]+$")
_COUNT = re.compile(r"^\d{1,9}$")  # below htslib's int32 bound; no sign, no decimals
_AD_PAIR = re.compile(r"^\d{1,9},\d{1,9}$")
_INT32_MAX = 2**31 - 1
#: INFO keys the record extractor reads only when FORMAT gave no VAF, depth or alt reads.
_INFO_FALLBACKS = frozenset({"AF", "DP", "TDP", "TVAF", "DP4"})


def _filter_text(value: str) -> str:
    """``PASS`` or the filter names joined by ';' — as pysam's ``rec.filter.keys()``
    gives them to :func:`pipeline.io.vcf._filter_text` (duplicates collapsed, order kept)."""
    names = [n for n in dict.fromkeys(value.split(";")) if n != "."]
    if not names or names == ["PASS"]:
        return "PASS"
    return ";".join(n for n in names if n != "PASS")


def _gt_is_ref(value: str) -> bool:
    """Fully called homozygous reference (``0/0``, ``0|0``, ``0``), as
    :func:`pipeline.io.vcf._genotype_is_ref` decides it from pysam's allele indexes."""
    alleles = re.split(r"[/|]", value)
    return bool(value) and all(a.isdigit() and int(a) == 0 for a in alleles)


def _float_or_nan(value: str) -> float:
    """The number as Python (and htslib, before its float32 cast) parses it; NaN if none."""
    try:
        return float(value)
    except ValueError:
        return float("nan")


def _eligible(hdr: HeaderInfo, sample: str | None, read_info: Iterable[str],
              read_format: Iterable[str], formats: dict[str, tuple[str, str]],
              varscan_ad: bool) -> bool:
    """Whether the file is plain (module docstring), decided from the header and the keys
    and FORMAT layouts that occur."""
    if hdr.table is None or hdr.n_blank or not hdr.has_format or sample not in hdr.samples:
        return False
    if (hdr.info_keys & set(read_info)) - _INFO_FALLBACKS:
        return False  # SVTYPE, MATEID/PARID, CSQ/ANN, CN... : the record path reads them
    used = {key for layout in hdr.format_layouts for key in layout.split(":")}
    if (used & set(read_format)) - PLAIN_FORMAT:
        return False
    declared = {"AF": ("Float",), "AD": ("Integer",), "DP": ("Integer",)}
    for key, types in declared.items():
        if key in used and (key not in formats or formats[key][1] not in types):
            return False  # undeclared (read as text by pysam) or declared String
    if "AF" in used and formats["AF"][0] in {"R", "G"}:
        return False
    return not varscan_ad


@dataclass
class ColumnCalls:
    """The column path's result: ``columns`` hold the rows of the records where ``plain``
    is True (one call per record); the reader hands every other record to the record
    extractor as htslib yields it."""

    plain: np.ndarray  # bool per record (1-based record n is plain[n - 1])
    columns: dict[str, Any]


def column_calls(hdr: HeaderInfo, sample: str | None, read_info: Iterable[str],
                 read_format: Iterable[str], formats: dict[str, tuple[str, str]],
                 varscan_ad: bool) -> ColumnCalls | None:
    """The calls of a file's plain records, column-wise; None when the file is not plain.

    Parameters
    ----------
    hdr
        The text header after :func:`~pipeline.io.vcf_checks.check_body` (its ``table``).
    sample
        The plasma column chosen by the reader.
    read_info, read_format
        INFO / FORMAT keys the record extractor would read.
    formats
        FORMAT declarations as htslib read them at open: ``ID -> (Number, Type)``.
    varscan_ad
        VarScan's ``AD`` (alt reads, Number=1): not plain.

    Returns
    -------
    ColumnCalls or None
        The plain records' columns, with the same values and dtypes as the record
        extractor's (``vaf`` a fraction 0-1 from the float32 htslib stores), and which
        records they are.
    """
    read_info = set(read_info)
    if not _eligible(hdr, sample, read_info, read_format, formats, varscan_ad):
        return None
    assert hdr.table is not None and sample is not None
    table = hdr.table
    n = len(table)
    values = {key: hdr.plasma_values.get(key, np.full(n, ".", dtype=object))
              for key in PLAIN_FORMAT}
    # Multi-allelic, symbolic, breakend, no-call or lower-case alleles and POS written
    # other than as plain digits go to the record extractor.
    plain = (matching(table[:, 3], _UPPER_BASES) & matching(table[:, 4], _UPPER_BASES)
             & matching(table[:, 1], _COUNT))
    fallbacks = hdr.info_keys & read_info & _INFO_FALLBACKS
    columns, plain = _vaf_columns(table, values, plain, fallbacks)
    return ColumnCalls(plain=plain, columns=columns)


def _counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(int64 counts, present mask, parseable mask) of '.' or whole non-negative numbers."""
    present = values != "."
    ok = np.ones(len(values), dtype=bool)
    ok[present] = matching(values[present], _COUNT)
    counts = np.zeros(len(values), dtype=np.int64)
    counts[present & ok] = values[present & ok].astype(np.int64)
    return counts, present & ok, ok


def _vaf_columns(table: np.ndarray, values: dict[str, np.ndarray], plain: np.ndarray,
                 fallbacks: set[str]) -> tuple[dict[str, Any], np.ndarray]:
    """``FORMAT/AF`` else ``FORMAT/AD`` (alt / sum), depth ``FORMAT/DP`` else sum(AD), with
    the record extractor's checks; a record any of them would stop or that needs a later
    step of the chain is marked not plain (the record extractor decides and says so)."""
    n = len(table)
    depth_fmt, has_dp, plain_dp = _counts(values["DP"])
    ad_cells = values["AD"]
    ad_usable = ad_cells != "."
    ad_ok = np.ones(n, dtype=bool)
    ad_ok[ad_usable] = matching(ad_cells[ad_usable], _AD_PAIR)
    ad_usable &= ad_ok
    ad = np.zeros((n, 2), dtype=np.int64)
    if ad_usable.any():
        pairs = split_fields(ad_cells[ad_usable], ",", 2)
        ad[ad_usable] = (pairs if pairs is not None else np.array(
            [c.split(",") for c in ad_cells[ad_usable]], dtype=object)).astype(np.int64)
    ad_sum = ad.sum(axis=1)
    plain = plain & plain_dp & ad_ok & (ad.max(axis=1) <= _INT32_MAX) & (
        depth_fmt <= _INT32_MAX)
    # The record path stops at "sum of allele depths ... exceeds depth".
    plain &= ~(ad_usable & has_dp & _exceeds(ad_sum, depth_fmt))
    af_cells = values["AF"]
    has_af = af_cells != "."
    vaf = np.full(n, np.nan)
    af = per_unique(af_cells[has_af], _float_or_nan, np.float64)
    vaf[has_af] = af.astype(np.float32).astype(np.float64)  # htslib keeps float32
    plain &= ~(has_af & ~np.isfinite(vaf))  # unparseable, several values, NaN, infinite
    from_ad = ~has_af & ad_usable & (ad_sum > 0)
    vaf[from_ad] = ad[from_ad, 1] / ad_sum[from_ad]
    # No usable VAF (no reads, or a later step of the chain) and VAF outside 0-1.
    plain &= np.isfinite(vaf) & (vaf >= -1e-6) & (vaf <= 1 + 1e-6)
    depth = np.where(has_dp, depth_fmt, ad_sum)
    has_depth = has_dp | ad_usable
    plain &= ~(ad_usable & has_depth & _exceeds(ad[:, 1], depth))
    if fallbacks & {"DP", "TDP"}:
        plain &= has_depth  # depth would come from INFO
    if "DP4" in fallbacks:
        plain &= ad_usable  # alt reads would come from INFO/DP4
    keep = np.flatnonzero(plain)
    columns = _assemble(table[keep], {k: v[keep] for k, v in values.items()},
                        np.clip(vaf[keep], 0.0, 1.0), has_af[keep], ad[keep],
                        ad_usable[keep], depth[keep], has_depth[keep], keep + 1)
    return columns, plain


def _exceeds(count: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """:func:`pipeline.io.vcf._depth_exceeded`, element-wise."""
    from pipeline.io.vcf import AD_DP_ABS_TOLERANCE, AD_DP_REL_TOLERANCE

    return count > depth + np.maximum(AD_DP_ABS_TOLERANCE, AD_DP_REL_TOLERANCE * depth)


def _nullable(values: np.ndarray, present: np.ndarray) -> pd.arrays.IntegerArray:
    """Counts as the contract's nullable ``Int64`` (missing where not ``present``)."""
    return pd.arrays.IntegerArray(values.astype(np.int64), ~present)


def _assemble(table: np.ndarray, values: dict[str, np.ndarray], vaf: np.ndarray,
              has_af: np.ndarray, ad: np.ndarray, ad_usable: np.ndarray, depth: np.ndarray,
              has_depth: np.ndarray, record_index: np.ndarray) -> dict[str, Any]:
    n = len(table)
    ref, alt = table[:, 3], table[:, 4]
    ref_len = per_unique(ref, len, np.int64)
    alt_len = per_unique(alt, len, np.int64)
    # Object arrays filled by assignment: np.where's string arrays cast to object cost
    # 20 ms per 200,000 records (issue #11 item 1).
    vtype = np.full(n, "indel", dtype=object)
    vtype[(ref_len == alt_len) & (ref_len == 1)] = "snv"
    vtype[(ref_len == alt_len) & (ref_len != 1)] = "mnv"
    vaf_source = np.full(n, "FORMAT/AD", dtype=object)
    vaf_source[has_af] = "FORMAT/AF"
    none = np.full(n, None, dtype=object)
    return {
        "record_index": record_index.astype(np.int64),
        "chrom": table[:, 0],
        "pos": pd.arrays.IntegerArray(table[:, 1].astype(np.int64), np.zeros(n, dtype=bool)),
        "ref": ref,
        "alt": alt,
        "variant_type": vtype,
        "gene": none,
        "protein_change": none,
        "vaf": vaf,
        "vaf_source": vaf_source,
        "alt_reads": _nullable(ad[:, 1], ad_usable),
        "depth": _nullable(depth, has_depth),
        "filter": per_unique(table[:, 6], _filter_text, object),
        "copy_number": none,
        "cnv_kind": none,
        "mate_chrom": none,
        "mate_pos": none,
        "annotation": none,
        "gt_ref": per_unique(values["GT"], _gt_is_ref, bool),
    }
