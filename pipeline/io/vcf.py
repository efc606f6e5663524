"""VCF/BCF reader: the only pysam user in ctdna.

pysam/htslib is a parser, not a validator (``../shared/reference/engineering-notes.md`` §2.4:
it iterated ~90 % of EBI's invalid files without raising), so this module adds its own header
pre-flight and per-record checks, and wraps every pysam failure, at open and mid-iteration,
into :class:`~pipeline.errors.InvalidVariantFileError` naming the file, record and field.

VAF precedence (one chain, first usable source wins; ``vaf_source`` records which):

1. ``FORMAT/AF`` of the plasma sample (Mutect2, VarDict, SAGE);
2. ``FORMAT/AD`` alt / sum(AD) (Number=R allele depths);
3. caller-specific fields: Strelka tier-1 counts (``strelka_tier1``: ``{ALT}U`` /
   (``{REF}U`` + ``{ALT}U``) for SNVs, TIR/(TAR+TIR) for indels), TSO500/Pisces
   ``FORMAT/VF`` (Float), VarScan ``FORMAT/FREQ`` (a percent, ``48.7%`` → 0.487),
   MuTect1 ``FORMAT/FA``, freeBayes ``FORMAT/AO``/``RO``;
4. ``INFO/TVAF`` (PCGR), ``INFO/AF`` (sites-only or single-sample files only: in a
   multi-sample file INFO/AF is a cohort allele frequency, not this sample's VAF).

Structural records: Manta ``FORMAT/PR``/``SR`` give a read-fraction proxy ``manta_PR_SR``.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pysam

from pipeline.errors import InvalidVariantFileError
from pipeline.io.build import REFERENCE_KEYS, resolve_build
from pipeline.io.result import ReadResult
from pipeline.io.vcf_checks import (
    AMBIGUOUS_ALT,
    Finding,
    HeaderInfo,
    check_body,
    check_header,
    read_text,
)
from pipeline.io.vcf_columns import ColumnCalls, column_calls
from pipeline.schema import conform_calls

#: float32 tolerance for VAF bounds (htslib stores floats as float32: 0.01 → 0.0099999998).
VAF_TOLERANCE = 1e-6

#: sum(AD) may exceed FORMAT/DP by max(:data:`AD_DP_ABS_TOLERANCE` reads,
#: :data:`AD_DP_REL_TOLERANCE` x DP) before the record is rejected. Callers count DP and AD on
#: differently filtered read sets: GATK4 usually has sum(AD) <= DP, but MuTect1 (vcf2maf
#: ``test_mutect.vcf``) reports sum(AD) up to 20 % or 10 reads above DP. Only a gross excess,
#: the signature of swapped or corrupted columns, is a defect.
AD_DP_REL_TOLERANCE = 0.25
AD_DP_ABS_TOLERANCE = 10


def _depth_exceeded(count: int, depth: int) -> bool:
    """True when ``count`` reads exceed ``depth`` beyond the documented tolerance."""
    return count > depth + max(AD_DP_ABS_TOLERANCE, AD_DP_REL_TOLERANCE * depth)


# Fields ctdna reads, with the value kind they must hold. "vaf": fraction; "count": reads;
# "number": any real; "text": string.
_FORMAT_FIELDS: dict[str, str] = {
    "AF": "vaf",
    "AD": "count",
    "DP": "count",
    "VF": "vaf",
    "FA": "vaf",
    "FREQ": "percent",
    "RD": "count",
    "AO": "count",
    "RO": "count",
    "AU": "count",
    "CU": "count",
    "GU": "count",
    "TU": "count",
    "TAR": "count",
    "TIR": "count",
    "PR": "count",
    "SR": "count",
    "CN": "number",
    "FC": "number",
}
_INFO_FIELDS: dict[str, str] = {
    "AF": "vaf",
    "TVAF": "vaf",
    "DP": "count",
    "TDP": "count",
    "DP4": "count",
    "CN": "number",
    "SVTYPE": "text",
    "MATEID": "text",
    "PARID": "text",
    "CSQ": "text",
    "ANN": "text",
    "ANT": "text",
}
_ALLOWED_TYPES = {
    "vaf": {"Float", "String"},
    "percent": {"Float", "String"},
    "count": {"Integer", "String"},
    "number": {"Float", "Integer", "String"},
    "text": {"String"},
}

_AMBIGUOUS_ALT = re.compile(AMBIGUOUS_ALT)
_BND_RE = re.compile(r"^([^\[\]]*)([\[\]])(.+)\2([^\[\]]*)$")
_TIER_BASES = {"A": "AU", "C": "CU", "G": "GU", "T": "TU"}
_CALLER_NAMES = (
    ("mutect2", "mutect2"),
    ("mutect", "mutect1"),
    ("strelka", "strelka"),
    ("vardict", "vardict"),
    ("varscan", "varscan"),
    ("lofreq", "lofreq"),
    ("sage", "sage"),
    ("gridss", "gridss"),
    ("manta", "manta"),
    ("craft", "tso500_craft"),
    ("pisces", "tso500"),
    ("freebayes", "freebayes"),
)


@dataclass
class _Header:
    """Pre-flight summary of the header (what ctdna needs from it)."""

    samples: list[str]
    info: dict[str, tuple[str, str]]  # ID -> (Number, Type) as declared at open
    formats: dict[str, tuple[str, str]]
    csq_fields: list[str] | None = None
    ann_fields: list[str] | None = None
    varscan_ad: bool = False  # AD declared Number=1 next to RD: VarScan's alt-read count
    vf_is_vaf: bool = True  # FORMAT/VF Float (Pisces) vs Integer (GRIDSS fragment count)
    warnings: list[str] = field(default_factory=list)


class _RecordError(Exception):
    """A per-record defect, turned into InvalidVariantFileError with the record number."""

    def __init__(self, message: str, field_name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field_name = field_name


@contextlib.contextmanager
def _quiet_htslib() -> Iterator[None]:
    """Silence htslib's stderr warnings narrowly (pysam#1303: not catchable otherwise).

    The problems htslib warns about are surfaced as structured warnings or errors by this
    module; the previous verbosity is restored even when reading fails.
    """
    previous = pysam.set_verbosity(0)
    try:
        yield
    finally:
        pysam.set_verbosity(previous)


def _bad(path: Path, message: str, record: str | int | None = None, fld: str | None = None):
    return InvalidVariantFileError(message, path=path, record=record, field=fld)


def _open(path: Path) -> pysam.VariantFile:
    try:
        return pysam.VariantFile(str(path), "r")
    except NotImplementedError as exc:
        raise _bad(
            path, f"gzip without BGZF blocks cannot be read; recompress with bgzip ({exc})",
            "header",
        ) from None
    except (OSError, ValueError) as exc:
        text = re.sub(r"file `b'[^`]*'` ", "", str(exc)).replace(str(path), "file")
        if "EOF marker" in text:
            raise _bad(path, "truncated BGZF file (no EOF marker)", "header") from None
        raise _bad(path, f"not a readable VCF/BCF header ({text})", "header") from None


def _header_lines(vf: pysam.VariantFile) -> tuple[dict[str, int | None], list[str], str | None]:
    """Contig lengths, reference/assembly texts and ``##tumor_sample`` from the header."""
    contigs: dict[str, int | None] = {}
    for name, contig in vf.header.contigs.items():
        contigs[str(name)] = contig.length
    texts: list[str] = []
    tumor: str | None = None
    for rec in vf.header.records:
        key = (rec.key or "").lower()
        if rec.type == "CONTIG":
            assembly = rec.get("assembly")
            if assembly:
                texts.append(str(assembly))
        elif rec.type == "GENERIC":
            value = rec.value or ""
            if key in REFERENCE_KEYS:
                texts.append(value)
            elif key == "tumor_sample":
                tumor = value.strip()
    return contigs, texts, tumor


def _parse_subfields(description: str) -> list[str]:
    """CSQ/ANN subfield names from the header description (VEP ``Format: a|b``; SnpEff
    ``'a | b'``), never hard-coded (field order varies by VEP configuration)."""
    text = description.split("Format:", 1)[1] if "Format:" in description else description
    if ":" in text and "|" not in text.split(":", 1)[0]:
        text = text.split(":", 1)[1]
    text = text.strip().strip("'\"").strip()
    return [part.strip().strip("'\"").strip() for part in text.split("|")]


def _preflight(vf: pysam.VariantFile, path: Path) -> _Header:
    header = vf.header
    info = {k: (str(v.number), str(v.type)) for k, v in header.info.items()}
    formats = {k: (str(v.number), str(v.type)) for k, v in header.formats.items()}
    hdr = _Header(samples=list(header.samples), info=info, formats=formats)
    if hdr.samples and any(not s.strip() for s in hdr.samples):
        raise _bad(path, "empty sample name in the #CHROM line", "header")
    hdr.vf_is_vaf = formats.get("VF", ("", "Float"))[1] in {"Float", "String"}
    for where, declared, wanted in (
        ("FORMAT", formats, _FORMAT_FIELDS),
        ("INFO", info, _INFO_FIELDS),
    ):
        for key, kind in wanted.items():
            if key not in declared:
                continue
            number, typ = declared[key]
            if where == "FORMAT" and key == "VF" and not hdr.vf_is_vaf:
                continue  # GRIDSS: VF is an Integer fragment count, not a VAF
            if typ not in _ALLOWED_TYPES[kind]:
                raise _bad(
                    path,
                    f"declared Type={typ}; ctdna needs {'/'.join(sorted(_ALLOWED_TYPES[kind]))}",
                    "header",
                    f"{where}/{key}",
                )
            if key in {"AF", "VF", "FA", "TVAF", "FREQ"} and number == "G":
                raise _bad(path, "declared Number=G; a VAF is per ALT allele", "header",
                           f"{where}/{key}")
    if "AD" in formats:
        number = formats["AD"][0]
        if number == "1" and "RD" in formats:
            hdr.varscan_ad = True  # VarScan: AD = alt reads, RD = ref reads
        elif number not in {"R", "."}:
            raise _bad(path, f"declared Number={number}; allele depths need Number=R",
                       "header", "FORMAT/AD")
    if "CSQ" in header.info:
        hdr.csq_fields = _parse_subfields(header.info["CSQ"].description or "")
    if "ANN" in header.info:
        hdr.ann_fields = _parse_subfields(header.info["ANN"].description or "")
    if not header.contigs:
        hdr.warnings.append("header declares no ##contig lines (tolerated)")
    return hdr


def _choose_sample(
    hdr: _Header, vcf_sample: str | None, tumor: str | None, path: Path
) -> str | None:
    """The plasma column: manifest ``vcf_sample``; else the only column; else
    ``##tumor_sample``; else an error listing the columns (interfaces.md, manifest)."""
    columns = ", ".join(hdr.samples) or "(none: sites-only file)"
    if vcf_sample is not None and str(vcf_sample).strip():
        name = str(vcf_sample).strip()
        if name in hdr.samples:
            return name
        raise _bad(path, f"sample column {name!r} not found; columns are: {columns}",
                   "header", "vcf_sample")
    if not hdr.samples:
        return None
    if len(hdr.samples) == 1:
        return hdr.samples[0]
    if tumor and tumor in hdr.samples:
        return tumor
    raise _bad(
        path,
        f"{len(hdr.samples)} sample columns and no usable ##tumor_sample header; set "
        f"vcf_sample in the manifest to one of: {columns}",
        "header",
        "vcf_sample",
    )


def _floats(value: Any, *, percent: bool = False) -> list[float | None]:
    """Numbers from a pysam value (number, tuple, or string when the key is undeclared or
    declared String). Raises ValueError on text that is not a number."""
    if value is None:
        return []
    items = value if isinstance(value, tuple | list) else (
        value.split(",") if isinstance(value, str) else (value,)
    )
    out: list[float | None] = []
    for item in items:
        if item is None:
            out.append(None)
            continue
        if isinstance(item, bool):
            raise ValueError(repr(item))
        if isinstance(item, int | float):
            number = float(item)
        else:
            text = str(item).strip()
            if text in {"", "."}:
                out.append(None)
                continue
            if percent and text.endswith("%"):
                text = text[:-1]
            number = float(text)
        if math.isnan(number):
            raise ValueError("NaN")
        out.append(number / 100.0 if percent else number)
    return out


def _per_alt(values: list[float | None], number: str, n_alt: int, i: int) -> float | None:
    """The value for ALT ``i`` (0-based) of a per-allele field: Number=R has the REF value
    first, Number=A one value per ALT; undeclared / Number=. fields are told apart by length."""
    if not values:
        return None
    if number == "R":
        return values[i + 1] if len(values) == n_alt + 1 else None
    if len(values) == n_alt:
        return values[i]
    if number != "A" and len(values) == n_alt + 1:
        return values[i + 1]
    return None


def _count(value: float | None, fld: str) -> int | None:
    if value is None:
        return None
    if value < 0:
        raise _RecordError(f"negative count {value:g}", fld)
    if not float(value).is_integer():
        raise _RecordError(f"count {value:g} is not a whole number", fld)
    return int(value)


def _genotype_is_ref(smp: Any) -> bool:
    """True when the plasma column's GT is fully called and homozygous reference (``0/0``,
    ``0|0``, ``0``): the caller says this draw does not carry the allele, so the call is
    stored but never counted as detected (issue #10 item 5)."""
    if smp is None:
        return False
    try:
        gt = smp.get("GT")
    except (KeyError, ValueError):
        return False
    return bool(gt) and all(a == 0 for a in gt)


def _filter_text(rec: pysam.VariantRecord) -> str:
    """``PASS`` or the filter names joined by ';' (duplicates such as ``REJECT;REJECT``
    collapsed, order kept). A missing FILTER (``.``) is documented as PASS (architecture.md:
    "FILTER is PASS (or missing)")."""
    names = [str(n) for n in dict.fromkeys(rec.filter.keys())]
    if not names or names == ["PASS"]:
        return "PASS"
    return ";".join(n for n in names if n != "PASS")


def _classify(ref: str, alt: str, svtype: str | None, has_cn: bool) -> str:
    if alt.startswith("<") and alt.endswith(">"):
        inner = alt[1:-1].upper()
        if inner.startswith("CNV") or svtype == "CNV" or has_cn:
            return "cnv"
        return "sv"
    if "[" in alt or "]" in alt:
        return "sv"
    if len(alt) > 1 and (alt.startswith(".") or alt.endswith(".")):
        return "sv"  # single breakend (VCF 4.2 §5.4.9)
    if svtype in {"BND", "INV"}:
        return "sv"
    if svtype == "CNV":
        return "cnv"
    if len(ref) == len(alt):
        return "snv" if len(ref) == 1 else "mnv"
    return "indel"


def parse_breakend(alt: str) -> tuple[str | None, int | None]:
    """Mate contig and 1-based position from VCF bracket notation.

    ``C]chr2:42299000]`` → ``("chr2", 42299000)``; single breakends (``T.``, ``.T``),
    symbolic alleles and malformed text → ``(None, None)`` (never raises). Contig names may
    contain ':' (the position is after the last one).
    """
    match = _BND_RE.match(alt)
    if not match:
        return None, None
    chrom, sep, pos = match.group(3).rpartition(":")
    if not sep or not chrom or not pos.isdigit():
        return None, None
    if chrom.startswith("<") and chrom.endswith(">"):
        chrom = chrom[1:-1]
    return chrom, int(pos)


def _annotation(
    rec: pysam.VariantRecord, hdr: _Header, ref: str, alt: str
) -> tuple[str | None, str | None, str | None]:
    """(raw entries, gene, protein change) from VEP CSQ or SnpEff ANN for one ALT."""
    for key, fields_, gene_key, prot_key, biotype_key in (
        ("CSQ", hdr.csq_fields, "SYMBOL", "HGVSp", "BIOTYPE"),
        ("ANN", hdr.ann_fields, "Gene_Name", "HGVS.p", "Transcript_BioType"),
    ):
        if not fields_:
            continue
        try:
            raw = rec.info.get(key)
        except (KeyError, ValueError):
            raw = None
        if not raw:
            continue
        entries = [raw] if isinstance(raw, str) else [e for e in raw if e]
        index = {name: n for n, name in enumerate(fields_)}
        parsed = [e.split("|") for e in entries]
        if "Allele" in index:
            # VEP writes indel alleles without the shared first base ('-' when empty).
            keys = {alt}
            if ref and alt and ref[0] == alt[0] and len(ref) != len(alt):
                keys.add(alt[1:] or "-")
            chosen = [(e, p) for e, p in zip(entries, parsed, strict=True)
                      if len(p) > index["Allele"] and p[index["Allele"]] in keys]
            if not chosen:
                chosen = list(zip(entries, parsed, strict=True))
        else:
            chosen = list(zip(entries, parsed, strict=True))

        def get(p: list[str], name: str, index: dict[str, int] = index) -> str:
            n = index.get(name)
            return p[n].strip() if n is not None and n < len(p) else ""

        best = next((p for _, p in chosen if get(p, biotype_key) == "protein_coding"),
                    chosen[0][1])
        gene = get(best, gene_key) or None
        protein = unquote(get(best, prot_key)) or None
        if protein and ":" in protein:
            protein = protein.split(":", 1)[1]  # VEP: ENSP00000...:p.Gly1202Arg
        if protein is None:
            aa, position = get(best, "Amino_acids"), get(best, "Protein_position")
            if "/" in aa and position.isdigit():
                before, after = aa.split("/", 1)
                if len(before) == 1 and len(after) == 1:
                    protein = f"{before}{position}{after}"
        return ",".join(e for e, _ in chosen), gene, protein
    return None, None, None


def _detect_caller(vf: pysam.VariantFile, hdr: _Header) -> str:
    texts = []
    for rec in vf.header.records:
        if rec.type == "GENERIC" and (rec.key or "").lower() in {
            "source", "source_version", "mutect version", "content", "cmdline",
        }:
            texts.append(rec.value or "")
        elif rec.type == "GENERIC" and "command" in (rec.key or "").lower():
            texts.append(rec.key or "")
    blob = " ".join(texts).lower()
    for key in (rec.key for rec in vf.header.records if rec.type == "GENERIC"):
        blob += " " + (key or "").lower()
    for needle, name in _CALLER_NAMES:
        if needle in blob:
            return name
    f = hdr.formats
    if {"AU", "CU", "GU", "TU"} <= f.keys() or {"TAR", "TIR"} <= f.keys():
        return "strelka"
    if "FREQ" in f:
        return "varscan"
    if "FA" in f:
        return "mutect1"
    if "VF" in f and hdr.vf_is_vaf:
        return "tso500"
    if "FC" in f:
        return "tso500_craft"
    if {"PR", "SR"} & f.keys():
        return "manta"
    if "TVAF" in hdr.info:
        return "pcgr"
    return "unknown"


class _Extractor:
    """Turns pysam records into column lists (one pass, no per-row DataFrames)."""

    def __init__(self, hdr: _Header, sample: str | None) -> None:
        self.hdr = hdr
        self.sample_index = hdr.samples.index(sample) if sample is not None else None
        self.info_af_ok = len(hdr.samples) <= 1
        f, i = hdr.formats, hdr.info
        self.declared_vaf_sources = [
            name for name, ok in (
                ("FORMAT/AF", "AF" in f),
                ("FORMAT/AD", "AD" in f and not hdr.varscan_ad),
                ("FORMAT/AU..TU", {"AU", "CU", "GU", "TU"} <= f.keys()),
                ("FORMAT/TIR", {"TAR", "TIR"} <= f.keys()),
                ("FORMAT/VF", "VF" in f and hdr.vf_is_vaf),
                ("FORMAT/FREQ", "FREQ" in f),
                ("FORMAT/FA", "FA" in f),
                ("FORMAT/AO", {"AO", "RO"} <= f.keys()),
                ("INFO/TVAF", "TVAF" in i),
                ("INFO/AF", "AF" in i and self.info_af_ok),
            ) if ok
        ]
        self.columns: dict[str, list[Any]] = {name: [] for name in (
            "record_index", "chrom", "pos", "ref", "alt", "variant_type", "gene",
            "protein_change", "vaf", "vaf_source", "alt_reads", "depth", "filter",
            "copy_number", "cnv_kind", "mate_chrom", "mate_pos", "annotation", "gt_ref",
        )}
        self.seen_mates: set[str] = set()
        self.n_no_call = 0
        self.n_mates = 0
        self.n_no_reads = 0
        self.n_no_vaf = 0

    # -- field access -------------------------------------------------------------------
    def _fmt(self, smp: Any, key: str, *, percent: bool = False) -> list[float | None]:
        if smp is None:
            return []
        try:
            value = smp.get(key)
        except (KeyError, ValueError):
            return []
        try:
            return _floats(value, percent=percent)
        except (ValueError, TypeError):
            raise _RecordError(f"unparseable number {value!r}", f"FORMAT/{key}") from None

    def _info(self, rec: pysam.VariantRecord, key: str) -> list[float | None]:
        try:
            value = rec.info.get(key)
        except (KeyError, ValueError):
            return []
        try:
            return _floats(value)
        except (ValueError, TypeError):
            raise _RecordError(f"unparseable number {value!r}", f"INFO/{key}") from None

    def _info_text(self, rec: pysam.VariantRecord, key: str) -> list[str]:
        try:
            value = rec.info.get(key)
        except (KeyError, ValueError):
            return []
        if value is None or isinstance(value, bool):
            return []
        items = value if isinstance(value, tuple | list) else str(value).split(",")
        return [str(v) for v in items if v not in (None, "", ".")]

    def _number(self, where: str, key: str) -> str:
        table = self.hdr.formats if where == "FORMAT" else self.hdr.info
        return table.get(key, (".", "String"))[0]

    # -- one record ---------------------------------------------------------------------
    def add(self, rec: pysam.VariantRecord, index: int) -> None:
        alts = rec.alts
        if not alts or all(a in {".", "*", "<*>", "<NON_REF>"} for a in alts):
            self.n_no_call += 1  # reference / no-call record (TSO500 ALT '.'): not a call
            return
        rec_id = rec.id
        if rec_id is not None and rec_id in self.seen_mates:
            self.n_mates += 1  # second breakend of a pair already reported
            return
        partners = self._info_text(rec, "MATEID") + self._info_text(rec, "PARID")
        self.seen_mates.update(partners)
        smp = rec.samples[self.sample_index] if self.sample_index is not None else None
        ref = rec.ref or ""
        n_alt = len(alts)
        svtype_values = self._info_text(rec, "SVTYPE")
        svtype = svtype_values[0].upper() if svtype_values else None

        # Record-level counts (validated once per record).
        ad = self._fmt(smp, "AD")
        dp_fmt = self._fmt(smp, "DP")
        depth_fmt = _count(dp_fmt[0], "FORMAT/DP") if dp_fmt else None
        ad_counts = [_count(v, "FORMAT/AD") for v in ad]
        ad_usable = (
            not self.hdr.varscan_ad and len(ad_counts) == n_alt + 1
            and all(v is not None for v in ad_counts)
        )
        ad_sum = sum(v for v in ad_counts if v is not None) if ad_usable else None
        if ad_sum is not None and depth_fmt is not None and _depth_exceeded(ad_sum, depth_fmt):
            raise _RecordError(
                f"sum of allele depths {ad_sum} exceeds depth DP={depth_fmt} (tolerance "
                f"max({AD_DP_ABS_TOLERANCE} reads, {AD_DP_REL_TOLERANCE:.0%}))",
                "FORMAT/AD",
            )
        gt_ref = _genotype_is_ref(smp)
        cn_fmt = self._fmt(smp, "CN")
        cn_info = self._info(rec, "CN")
        fc_fmt = self._fmt(smp, "FC")
        has_cn = any(v is not None for v in cn_fmt + cn_info + fc_fmt)
        filt = _filter_text(rec)

        for i, alt in enumerate(alts):
            if alt in {".", "*", "<*>", "<NON_REF>"} or _AMBIGUOUS_ALT.match(alt):
                continue  # no call, or VarScan's 'A/T' (warned by vcf_checks)
            vtype = _classify(ref, alt, svtype, has_cn)
            vaf: float | None = None
            source: str | None = None
            alt_reads: int | None = None
            depth: int | None = depth_fmt
            copy_number: float | None = None
            cnv_kind: str | None = None
            mate_chrom: str | None = None
            mate_pos: int | None = None
            if vtype in {"sv", "cnv"} or svtype is not None:
                pr = [_count(v, "FORMAT/PR") for v in self._fmt(smp, "PR")]
                sr = [_count(v, "FORMAT/SR") for v in self._fmt(smp, "SR")]
                if len(pr) == 2 or len(sr) == 2:
                    pairs = [p for p in (pr, sr) if len(p) == 2 and None not in p]
                    ref_n = sum(p[0] for p in pairs)  # type: ignore[misc]
                    alt_n = sum(p[1] for p in pairs)  # type: ignore[misc]
                    if ref_n + alt_n > 0:
                        vaf, source = alt_n / (ref_n + alt_n), "manta_PR_SR"
                        alt_reads, depth = alt_n, ref_n + alt_n
                if vtype == "sv":
                    mate_chrom, mate_pos = parse_breakend(alt)
            if vtype == "cnv":
                for values, kind, name in (
                    (cn_fmt, "absolute_cn", "FORMAT/CN"),
                    (cn_info, "absolute_cn", "INFO/CN"),
                    (fc_fmt, "fold_change", "FORMAT/FC"),
                ):
                    value = next((v for v in values if v is not None), None)
                    if value is not None:
                        if value < 0:
                            raise _RecordError(f"negative copy number {value:g}", name)
                        copy_number, cnv_kind = value, kind
                        break
            elif vtype in {"snv", "mnv", "indel"} and source is None:
                vaf, source, alt_reads, depth = self._small_vaf(
                    rec, smp, ref, alt, i, n_alt, ad_counts if ad_usable else None, ad_sum,
                    depth_fmt,
                )
                if vaf is None:
                    if depth == 0:
                        self.n_no_reads += 1  # no reads in the plasma column at this site
                        continue
                    if self.declared_vaf_sources:
                        raise _RecordError(
                            "no usable VAF for this allele (value missing or '.')",
                            self.declared_vaf_sources[0],
                        )
                    self.n_no_vaf += 1
            if vaf is not None:
                if not (math.isfinite(vaf) and -VAF_TOLERANCE <= vaf <= 1 + VAF_TOLERANCE):
                    raise _RecordError(f"VAF {vaf:g} outside 0-1", source)
                vaf = min(max(vaf, 0.0), 1.0)
            if alt_reads is not None and depth is not None and _depth_exceeded(alt_reads, depth):
                raise _RecordError(f"alt reads {alt_reads} exceed depth {depth}", "FORMAT/DP")
            annotation, gene, protein = _annotation(rec, self.hdr, ref, alt)
            if gene is None and vtype in {"cnv", "sv"}:
                names = self._info_text(rec, "ANT") or self._info_text(rec, "GENE")
                gene = names[0] if names else None
            c = self.columns
            c["record_index"].append(index)
            c["chrom"].append(rec.chrom)
            c["pos"].append(rec.pos)
            c["ref"].append(ref)
            c["alt"].append(alt)
            c["variant_type"].append(vtype)
            c["gene"].append(gene)
            c["protein_change"].append(protein)
            c["vaf"].append(vaf)
            c["vaf_source"].append(source)
            c["alt_reads"].append(alt_reads)
            c["depth"].append(depth)
            c["filter"].append(filt)
            c["copy_number"].append(copy_number)
            c["cnv_kind"].append(cnv_kind)
            c["mate_chrom"].append(mate_chrom)
            c["mate_pos"].append(mate_pos)
            c["annotation"].append(annotation)
            c["gt_ref"].append(gt_ref)

    def _small_vaf(
        self,
        rec: pysam.VariantRecord,
        smp: Any,
        ref: str,
        alt: str,
        i: int,
        n_alt: int,
        ad: list[int | None] | None,
        ad_sum: int | None,
        depth: int | None,
    ) -> tuple[float | None, str | None, int | None, int | None]:
        """The documented VAF chain for one SNV/MNV/indel allele (module docstring)."""
        vaf: float | None = None
        source: str | None = None
        alt_reads: int | None = ad[i + 1] if ad is not None else None
        if depth is None and ad_sum is not None:
            depth = ad_sum
        if smp is not None:
            af = _per_alt(self._fmt(smp, "AF"), self._number("FORMAT", "AF"), n_alt, i)
            if af is not None:
                vaf, source = af, "FORMAT/AF"
            if vaf is None and ad is not None and ad_sum:
                vaf, source = ad[i + 1] / ad_sum, "FORMAT/AD"  # type: ignore[operator]
            if self.hdr.varscan_ad:
                alt_reads = _count(next(iter(self._fmt(smp, "AD")), None), "FORMAT/AD")
            if vaf is None or alt_reads is None:
                tier = self._strelka(smp, ref, alt)
                if tier is not None:
                    t_alt, t_total = tier
                    alt_reads = t_alt if alt_reads is None else alt_reads
                    depth = t_total if depth is None else depth
                    if vaf is None and t_total > 0:
                        vaf, source = t_alt / t_total, "strelka_tier1"
            if vaf is None and self.hdr.vf_is_vaf:
                value = _per_alt(self._fmt(smp, "VF"), self._number("FORMAT", "VF"), n_alt, i)
                if value is not None:
                    vaf, source = value, "FORMAT/VF"
            if vaf is None:
                value = _per_alt(self._fmt(smp, "FREQ", percent=True), "A", n_alt, i)
                if value is not None:
                    vaf, source = value, "FORMAT/FREQ(percent)"
            if vaf is None:
                value = _per_alt(self._fmt(smp, "FA"), self._number("FORMAT", "FA"), n_alt, i)
                if value is not None:
                    vaf, source = value, "FORMAT/FA"
            if vaf is None or alt_reads is None:
                ao = [_count(v, "FORMAT/AO") for v in self._fmt(smp, "AO")]
                ro = [_count(v, "FORMAT/RO") for v in self._fmt(smp, "RO")]
                if len(ao) == n_alt and len(ro) == 1 and None not in ao and ro[0] is not None:
                    total = ro[0] + sum(ao)  # type: ignore[arg-type]
                    alt_reads = ao[i] if alt_reads is None else alt_reads
                    depth = total if depth is None else depth
                    if vaf is None and total > 0:
                        vaf, source = ao[i] / total, "FORMAT/AO"  # type: ignore[operator]
        if vaf is None:
            value = _per_alt(self._info(rec, "TVAF"), self._number("INFO", "TVAF"), n_alt, i)
            if value is not None:
                vaf, source = value, "INFO/TVAF"
        if vaf is None and self.info_af_ok:
            value = _per_alt(self._info(rec, "AF"), self._number("INFO", "AF"), n_alt, i)
            if value is not None:
                vaf, source = value, "INFO/AF"
        if depth is None:
            for key in ("TDP", "DP") if self.info_af_ok else ("TDP",):
                values = self._info(rec, key)
                if values and values[0] is not None:
                    depth = _count(values[0], f"INFO/{key}")
                    break
        if alt_reads is None and n_alt == 1:
            dp4 = [_count(v, "INFO/DP4") for v in self._info(rec, "DP4")]
            if len(dp4) == 4 and None not in dp4:
                alt_reads = dp4[2] + dp4[3]  # type: ignore[operator]  # alt fwd + alt rev
        return vaf, source, alt_reads, depth

    def _strelka(self, smp: Any, ref: str, alt: str) -> tuple[int, int] | None:
        """Strelka tier-1 (alt, ref + alt) counts, as the Strelka user guide defines the
        somatic VAF ("Somatic variant allele frequencies"): SNVs tier-1 ``{ALT}U`` /
        (``{REF}U`` + ``{ALT}U``), indels ``TIR`` / (``TAR`` + ``TIR``). Reads of the two
        other bases are neither ref nor alt support, so they stay out of the denominator
        (issue #10 item 8: dividing by all four counts biased VAFs ~4 % low)."""
        if len(ref) == 1 and len(alt) == 1 and alt.upper() in _TIER_BASES:
            if ref.upper() not in _TIER_BASES:
                return None
            tiers = {}
            for base in {ref.upper(), alt.upper()}:
                key = _TIER_BASES[base]
                values = self._fmt(smp, key)
                if not values or values[0] is None:
                    return None
                tiers[base] = _count(values[0], f"FORMAT/{key}")
            t_alt, t_ref = tiers[alt.upper()], tiers[ref.upper()]
            return t_alt, t_ref + t_alt  # type: ignore[operator,return-value]
        tar, tir = self._fmt(smp, "TAR"), self._fmt(smp, "TIR")
        if tar and tir and tar[0] is not None and tir[0] is not None:
            t_alt = _count(tir[0], "FORMAT/TIR")
            t_ref = _count(tar[0], "FORMAT/TAR")
            return t_alt, t_alt + t_ref  # type: ignore[operator,return-value]
        return None


def _raise_fatal(path: Path, findings: list[Finding]) -> None:
    """Raise the first fatal finding (header first, then the lowest record)."""
    fatal = [f for f in findings if f.fatal]
    if fatal:
        first = min(fatal, key=lambda f: (isinstance(f.record, int), f.record
                                          if isinstance(f.record, int) else 0))
        raise _bad(path, first.message, first.record, first.field)


def _read_info(extractor: _Extractor) -> set[str]:
    """INFO keys this file's calls are read from (INFO/AF and DP only where they describe
    this sample: sites-only or single-sample files)."""
    keys = {k for k in _INFO_FIELDS if k not in {"AF", "DP"}}
    return keys | ({"AF", "DP"} if extractor.info_af_ok else set())


def _read_format(hdr: _Header) -> set[str]:
    keys = {*_FORMAT_FIELDS, "GT"}
    return keys if hdr.vf_is_vaf else keys - {"VF"}


def _evidence_warnings(frame: pd.DataFrame, sample: str | None) -> list[str]:
    """Calls stored but never counted as detected (issue #10 item 5), said out loud."""
    if frame.empty:
        return []
    small = frame["variant_type"].isin(["snv", "mnv", "indel"])
    no_evidence = small & frame["vaf"].isna() & frame["alt_reads"].isna()
    out = []
    if no_evidence.any():
        out.append(f"{int(no_evidence.sum())} calls without a VAF or read counts (first: "
                   f"record {int(frame.loc[no_evidence, 'record_index'].iloc[0])}): stored, "
                   "not counted as detected")
    gt_ref = frame["gt_ref"].astype(bool)
    if gt_ref.any():
        out.append(f"{int(gt_ref.sum())} calls whose genotype in sample {sample!r} is "
                   f"homozygous reference (first: record "
                   f"{int(frame.loc[gt_ref, 'record_index'].iloc[0])}): stored, not counted "
                   "as detected")
    return out


def _merge_columns(records: dict[str, list[Any]], columns: ColumnCalls | None
                   ) -> dict[str, Any]:
    """The record extractor's and the column path's calls in record order (the column path
    gives one call per record; the extractor's calls of one record stay in ALT order)."""
    if columns is None:
        return records
    if not records["record_index"]:
        return columns.columns
    order = np.argsort(np.concatenate([columns.columns["record_index"],
                                       np.asarray(records["record_index"])]), kind="stable")
    return {name: np.concatenate([np.asarray(columns.columns[name], dtype=object),
                                  np.asarray(values, dtype=object)])[order].tolist()
            for name, values in records.items()}


def _records_not_in(plain: Any, add: Any) -> Any:
    """``add`` for the records the column path did not take (``plain[n - 1]`` False)."""
    def add_other(rec: pysam.VariantRecord, n: int) -> None:
        if n > len(plain) or not plain[n - 1]:
            add(rec, n)  # (more records than the text: the reader re-reads them all)
    return add_other


def _iterate(vf: pysam.VariantFile, path: Path, text_hdr: HeaderInfo | None,
             findings: list[Finding], add: Any) -> int:
    """Iterate htslib's records, handing each to ``add(rec, n)`` (None: parse only); the
    count of records. Every htslib or extractor failure names the 1-based record."""
    n = 0
    records = iter(vf)
    while True:
        try:
            rec = next(records)
        except StopIteration:
            break
        except (OSError, ValueError) as exc:
            if text_hdr is not None and n == text_hdr.n_records:
                break  # htslib stops at trailing blank lines (warned above)
            known = [f for f in findings if f.record == n + 1]
            if known:  # a defect the text checks tolerated, but htslib cannot parse
                raise _bad(path, f"{known[0].message} (htslib cannot parse the "
                           "record)", n + 1, known[0].field) from None
            raise _bad(path, f"unreadable record ({exc})", n + 1) from None
        n += 1
        if add is None:
            continue
        try:
            add(rec, n)
        except _RecordError as exc:
            raise _bad(path, exc.message, n, exc.field_name) from None
        except (ValueError, TypeError, KeyError, IndexError, OSError) as exc:
            raise _bad(path, f"cannot interpret record ({exc})", n) from None
    return n


def read_vcf(
    path: str | Path,
    *,
    vcf_sample: str | None = None,
    genome_build: str | None = None,
    column_path: bool = True,
) -> ReadResult:
    """Read a VCF 4.0-4.4 / BCF file (plain or BGZF, indexed or not) into a calls frame.

    Parameters
    ----------
    path
        The variant file. Read in place, never modified.
    vcf_sample
        The plasma sample column (manifest ``vcf_sample``); when None: the only column,
        else ``##tumor_sample``, else an error listing the columns.
    genome_build
        The manifest's build (any accepted spelling); when None it is detected.
    column_path
        Read plain small-variant files column-wise (:mod:`pipeline.io.vcf_columns`, same
        result); False forces the record extractor (the tests compare the two).

    Returns
    -------
    ReadResult
        One row per ALT allele (multi-allelic records split), CNV or SV call.

    Raises
    ------
    InvalidVariantFileError
        Unreadable or invalid content, naming the record (1-based) and field.
    GenomeBuildError
        Build unknown, contradicted or undetectable.
    """
    path = Path(path)
    warnings: list[str] = []
    text = read_text(path)
    text_hdr, findings = (None, []) if text is None else check_header(
        text, _INFO_FIELDS, [*_FORMAT_FIELDS, "GT"])
    del text  # the header keeps the record lines; the whole text is not needed (memory)
    _raise_fatal(path, findings)
    with _quiet_htslib():
        try:
            vf = _open(path)
        except InvalidVariantFileError:
            if findings:  # htslib refused the header: name the defect found in its text
                first = findings[0]
                raise _bad(path, first.message, first.record, first.field) from None
            raise
        try:
            hdr = _preflight(vf, path)
            contigs, texts, tumor = _header_lines(vf)
            build = resolve_build(genome_build, contig_lengths=contigs,
                                  reference_texts=texts, path=path)
            sample = _choose_sample(hdr, vcf_sample, tumor, path)
            caller = _detect_caller(vf, hdr)
            extractor = _Extractor(hdr, sample)
            if text_hdr is not None:
                findings += check_body(text_hdr, sample, _read_info(extractor),
                                       _read_format(hdr))
                text_hdr.body = []  # checked and split into text_hdr.table (memory, #11)
                _raise_fatal(path, findings)
            declared_info = set(vf.header.info.keys())
            declared_format = set(vf.header.formats.keys())
            columns = None if text_hdr is None or not column_path else column_calls(
                text_hdr, sample, _read_info(extractor), _read_format(hdr), hdr.formats,
                hdr.varscan_ad)
            if text_hdr is not None:
                text_hdr.table = None  # read: free the split records (peak memory, #11)
                text_hdr.plasma_values = {}
            # htslib still parses every record (the same refusals); the records the column
            # path did not take go to the record extractor, in order.
            n = _iterate(vf, path, text_hdr, findings, extractor.add if columns is None
                         else None if columns.plain.all()
                         else _records_not_in(columns.plain, extractor.add))
            if columns is not None and n != len(columns.plain):
                columns = None  # htslib saw other records than the text: read them all
                extractor = _Extractor(hdr, sample)
                vf.close()
                vf = _open(path)
                n = _iterate(vf, path, text_hdr, findings, extractor.add)
            undeclared_info = sorted(set(vf.header.info.keys()) - declared_info)
            undeclared_format = sorted(set(vf.header.formats.keys()) - declared_format)
        finally:
            vf.close()
    warnings.extend(hdr.warnings)
    warnings.extend(f.warning() for f in findings)
    if undeclared_info:
        warnings.append(f"INFO keys not declared in the header (tolerated, read as text): "
                        f"{', '.join(undeclared_info)}")
    if undeclared_format:
        warnings.append(f"FORMAT keys not declared in the header (read as text): "
                        f"{', '.join(undeclared_format)}")
    if extractor.n_no_call:
        warnings.append(f"{extractor.n_no_call} reference/no-call records (ALT '.') skipped")
    if extractor.n_mates:
        warnings.append(f"{extractor.n_mates} mate breakend records merged into their pair")
    if extractor.n_no_reads:
        warnings.append(f"{extractor.n_no_reads} alleles with no reads in sample {sample!r} "
                        "skipped")
    if extractor.n_no_vaf:
        warnings.append(f"{extractor.n_no_vaf} calls without any VAF field (vaf left empty)")
    frame = pd.DataFrame(_merge_columns(extractor.columns, columns))
    warnings.extend(_evidence_warnings(frame, sample))
    return ReadResult(
        calls=conform_calls(frame),
        genome_build=build,
        vcf_sample=sample,
        caller=caller,
        file_format="vcf",
        n_records=n,
        warnings=warnings,
    )
