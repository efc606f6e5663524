"""Text-level VCF validation: what htslib parses leniently, checked before anything is stored.

pysam/htslib is a parser, not a validator (``../shared/reference/engineering-notes.md``
§2.4: it iterated ~90 % of the EBI vcf-validator suite's invalid files without raising; an
INFO Integer ``DP=abc`` silently becomes ``None``). This module reads the file's text once
and checks it against the VCF 4.2/4.3 specification with whole-column (vectorised) pandas
operations, never a Python loop per record for the common checks:

* header: ``##fileformat``, every meta line's ``key=value`` / ``<...>`` syntax, INFO/FORMAT
  definitions (ID, Number, Type, quoted Description, order) and the specification's
  reserved keys (Number and Type), ALT/contig/SAMPLE/PEDIGREE/META lines, the ``#CHROM``
  line (columns, unique sample names);
* body: column count, CHROM, POS, ID, REF/ALT alphabet and REF ≠ ALT, QUAL, FILTER syntax,
  INFO and FORMAT values against their Number and Type, genotypes (syntax, allele range,
  ploidy vs Number=G fields), sort order and duplicate records (after trimming shared
  bases, so ``TAT>TGT`` at 100 duplicates ``A>G`` at 101).

Each defect is a :class:`Finding`. It is *fatal* (the file is rejected, nothing stored) when
it lies in something ctdna reads — CHROM/POS/REF/ALT/FILTER, the INFO/FORMAT fields of the
VAF chain in the plasma column, GT, the sample columns — and a *warning* naming the defect
when it lies in a part ctdna does not read (QUAL, unread INFO keys, pedigree lines, other
samples...), so that real files such as TSO500's undeclared INFO keys keep loading
(issue #10 item 5). Warnings are aggregated per field and defect (one line, the first record
and a count), never one per record.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from math import comb
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd

# -- the specification's reserved keys (VCF 4.3 §1.6.1 tables 1-2, §3 SV keys) ------------
RESERVED_INFO: dict[str, tuple[str, str]] = {
    "AA": ("1", "String"), "AC": ("A", "Integer"), "AD": ("R", "Integer"),
    "ADF": ("R", "Integer"), "ADR": ("R", "Integer"), "AF": ("A", "Float"),
    "AN": ("1", "Integer"), "BQ": ("1", "Float"), "CIGAR": ("A", "String"),
    "DB": ("0", "Flag"), "DP": ("1", "Integer"), "END": ("1", "Integer"),
    "H2": ("0", "Flag"), "H3": ("0", "Flag"), "MQ": ("1", "Float"), "MQ0": ("1", "Integer"),
    "NS": ("1", "Integer"), "SOMATIC": ("0", "Flag"),
    "VALIDATED": ("0", "Flag"), "1000G": ("0", "Flag"),
    "IMPRECISE": ("0", "Flag"), "NOVEL": ("0", "Flag"), "SVTYPE": ("1", "String"),
    "CIPOS": ("2", "Integer"), "CIEND": ("2", "Integer"),
}
RESERVED_FORMAT: dict[str, tuple[str, str]] = {
    "AD": ("R", "Integer"), "ADF": ("R", "Integer"), "ADR": ("R", "Integer"),
    "DP": ("1", "Integer"), "EC": ("A", "Integer"), "FT": ("1", "String"),
    "GL": ("G", "Float"), "GP": ("G", "Float"), "GQ": ("1", "Integer"),
    "GT": ("1", "String"), "HQ": ("2", "Integer"), "MQ": ("1", "Integer"),
    "PL": ("G", "Integer"), "PQ": ("1", "Integer"), "PS": ("1", "Integer"),
    "GLE": ("G", "String"),
}
#: Reserved keys whose values are counts or frequencies and so cannot be negative.
_NON_NEGATIVE = {"AC", "AN", "DP", "MQ0", "NS", "END", "AF", "AD", "ADF", "ADR", "BQ", "MQ",
                 "GQ", "EC", "HQ", "PL"}
_TYPES = {"Integer", "Float", "Flag", "Character", "String"}
_NUMBER_RE = re.compile(r"^(?:\d+|[ARG.])$")
_KEY_RE = re.compile(r"^(?:[A-Za-z_][0-9A-Za-z_.]*|1000G)$")
_META_KEY_RE = re.compile(r"^[A-Za-z][0-9A-Za-z_.-]*$")
_FIELD_RE = re.compile(
    r'\s*([A-Za-z_][0-9A-Za-z_.]*)=("(?:[^"\\]|\\.)*"|\[[^\]]*\]|[^,"][^,]*|)\s*(,|$)')
_ALT_PREFIXES = ("DEL", "INS", "DUP", "INV", "CNV", "BND")
# The specification allows '*' after the first character; EBI's validator (and every real
# reference) does not, and a '*' contig would collide with the '*' allele notation.
_CONTIG_RE = r"^[0-9A-Za-z!#$%&+./:;?@^_|~-][0-9A-Za-z!#$%&+./:;=?@^_|~-]*$"
_CHROM_RE = r"^(?:[0-9A-Za-z!#$%&+./:;?@^_|~-][0-9A-Za-z!#$%&+./:;=?@^_|~-]*|<[^<>\s,*]+>)$"
_CONTIG_RE_42 = r"^[0-9A-Za-z!#$%&+./:;?@^_|~-][0-9A-Za-z!#$%&*+./:;=?@^_|~-]*$"  # 4.2 spec
_CHROM_RE_42 = r"^(?:[0-9A-Za-z!#$%&+./:;?@^_|~-][0-9A-Za-z!#$%&*+./:;=?@^_|~-]*|<[^<>\s,]+>)$"
_FORMAT_KEY_42 = re.compile(r"^[A-Za-z][0-9A-Za-z]*$")  # VCF 4.2 §1.4.2: alphanumeric
_BASES = r"[ACGTNacgtn]+"
_ALT_ALLELE = (rf"(?:{_BASES}|\*|<[^<>,\s]+>|{_BASES}[\[\]][^\[\]\s,]+:\d+[\[\]]"
               rf"|[\[\]][^\[\]\s,]+:\d+[\[\]]{_BASES}|\.{_BASES}|{_BASES}\.)")
_ALT_RE = rf"^(?:\.|{_ALT_ALLELE}(?:,{_ALT_ALLELE})*)$"
_INT = r"[+-]?\d+"
_FLOAT = r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|[Ii]nf(?:inity)?|NaN|nan)"
_VALUE_RE = {"Integer": rf"^(?:\.|{_INT})$", "Float": rf"^(?:\.|{_FLOAT})$",
             "Character": r"^.$"}
_GT_RE = r"^(?:\.|\d+)(?:[/|](?:\.|\d+))*$"
_CHROM_HEADER = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]


@dataclass
class Finding:
    """One defect: where (``"header line N"`` or a 1-based record number), which field,
    what, whether it is fatal, and how many records share it."""

    record: str | int
    field: str
    message: str
    fatal: bool
    count: int = 1
    kind: str = ""  # the message without the offending value (for aggregation)

    def warning(self) -> str:
        """One line for the ingest report (record and field named, count when > 1)."""
        where = f"record {self.record}" if isinstance(self.record, int) else self.record
        more = f" ({self.count} records)" if self.count > 1 else ""
        return (f"invalid VCF, tolerated because ctdna does not read it: {where}: field "
                f"{self.field}: {self.message}{more}")


@dataclass
class HeaderInfo:
    """What the body checks need from the header text."""

    version: str
    info: dict[str, tuple[str, str]] = field(default_factory=dict)  # declared (Number, Type)
    formats: dict[str, tuple[str, str]] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    has_format: bool = False
    body: list[str] = field(default_factory=list)
    n_records: int = 0  # non-blank body lines
    first_body_line: int = 0  # 1-based physical line of the first record
    # Set by check_body for the reader's column path (pipeline.io.vcf_columns, issue #11):
    # the records split into columns (blank lines removed), the INFO keys and the FORMAT
    # layouts that occur. The reader drops ``table`` once it has read it.
    table: np.ndarray | None = None
    n_blank: int = 0
    info_keys: set[str] = field(default_factory=set)
    format_layouts: list[str] = field(default_factory=list)
    plasma_values: dict[str, np.ndarray] = field(default_factory=dict)  # key -> per record


def read_text(path: Path) -> str | None:
    """The file's text (plain or BGZF/gzip), or None for BCF / undecodable data (htslib
    reads and types BCF itself; corrupt data is reported by the pysam open)."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error):
        return None
    if raw[:3] == b"BCF":
        return None
    return raw.decode("utf-8", errors="replace")


# -- header --------------------------------------------------------------------------------
def _structured(value: str) -> tuple[list[tuple[str, str]], str | None]:
    """``<k=v,...>`` → ordered pairs, or a problem description."""
    if not value.endswith(">"):
        return [], "structured line not closed with '>'"
    inner = value[1:-1]
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(inner):
        match = _FIELD_RE.match(inner, pos)
        if not match or match.end() == pos:
            return pairs, f"malformed key=value list near {inner[pos:pos + 30]!r}"
        pairs.append((match.group(1), match.group(2)))
        pos = match.end()
    if not pairs:
        return pairs, "empty structured line"
    return pairs, None


def _definition_problem(kind: str, pairs: list[tuple[str, str]], version: str = "4.3"
                        ) -> str | None:
    keys = [k for k, _ in pairs]
    values = dict(pairs)
    # VCF 4.2 PEDIGREE lines are <Derived=..,Original=..> (bcbio writes them): no ID there.
    needs_id = kind in {"INFO", "FORMAT", "FILTER", "ALT", "contig", "SAMPLE", "META"} or (
        kind == "PEDIGREE" and version >= "4.3")
    if needs_id and (not keys or keys[0] != "ID"):
        return "ID missing or not the first field"
    if "ID" not in values:
        return None
    if kind in {"INFO", "FORMAT"}:
        if keys[:4] != ["ID", "Number", "Type", "Description"]:
            return "fields must start ID, Number, Type, Description in this order"
    elif "Number" in values and "Type" in values and keys.index("Number") > keys.index("Type"):
        return "Number must come before Type"
    if "Number" in values and not _NUMBER_RE.match(values["Number"]):
        return f"Number={values['Number']} is not an integer, A, R, G or '.'"
    if "Type" in values and values["Type"] not in _TYPES:
        return f"Type={values['Type']} is not one of {', '.join(sorted(_TYPES))}"
    if kind == "FORMAT" and values.get("Type") == "Flag":
        return "FORMAT fields cannot be Type=Flag"
    if "Description" in values and not values["Description"].startswith('"'):
        return "Description must be in double quotes"
    if kind in {"INFO", "FORMAT"} and not _KEY_RE.match(values["ID"]):
        return f"ID {values['ID']!r} is not a valid key"
    if kind == "ALT":
        if (":" in values["ID"] or version < "4.3") and values["ID"].split(":")[0] not in (
                _ALT_PREFIXES):
            return f"ALT ID {values['ID']!r} does not start with {'/'.join(_ALT_PREFIXES)}"
        if re.search(r"[\s,<>]", values["ID"]):
            return f"ALT ID {values['ID']!r} contains whitespace, ',' or angle brackets"
    contig_re = _CONTIG_RE_42 if version < "4.3" else _CONTIG_RE
    if kind in {"contig", "SAMPLE"} and not re.match(contig_re, values["ID"]):
        return f"ID {values['ID']!r} has characters the specification forbids"
    if kind == "contig" and "length" in values and not values["length"].isdigit():
        return f"length={values['length']} is not a whole number"
    if kind == "META" and "Values" in values and not re.match(r"^\[.*\]$", values["Values"]):
        return "Values must be in square brackets"
    if kind == "SAMPLE" and version < "4.3":
        if "Genomes" not in values:
            return "VCF 4.2 SAMPLE lines need a Genomes field"
        quoted = [k for k, v in pairs if k != "Description" and v.startswith('"')]
        if quoted:
            return f"only Description may be quoted, not {quoted[0]}"
    if kind == "PEDIGREE":
        bad = [v for k, v in pairs if k != "ID" and not re.match(r"^[0-9A-Za-z_.-]+$", v)]
        if bad:
            return f"value {bad[0]!r} has characters the specification forbids"
    return None


def _url_problem(value: str) -> str | None:
    url = value[1:-1] if value.startswith("<") and value.endswith(">") else value
    parsed = urlparse(url)
    if not url:
        return "empty URL"
    if parsed.scheme in {"http", "https", "ftp"}:
        host = parsed.hostname or ""
        if not host or (not re.search(r"[A-Za-z]", host) and not re.match(
                r"^\d+\.\d+\.\d+\.\d+$", host)):
            return f"URL {url!r} has no valid host"
    return None


def check_header(text: str, read_info: Iterable[str], read_format: Iterable[str]
                 ) -> tuple[HeaderInfo | None, list[Finding]]:
    """Check the meta lines and the ``#CHROM`` line.

    Parameters
    ----------
    text
        The whole file's text.
    read_info, read_format
        INFO / FORMAT keys ctdna reads: defects in their definitions are fatal.
    """
    read_i, read_f = set(read_info), set(read_format)
    findings: list[Finding] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if "\r" in text:  # (one C search; a per-line test cost 15 ms per 200,000 records)
        lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    first = lines[0] if lines else ""
    match = re.match(r"^##fileformat=VCFv(4\.[0-5])$", first)
    if not match:
        return None, [Finding("header line 1", "fileformat",
                              f"first line must be ##fileformat=VCFv4.x, not {first[:40]!r}",
                              True)]
    hdr = HeaderInfo(version=match.group(1))
    seen: dict[tuple[str, str], int] = {}
    chrom_at = None
    for n, line in enumerate(lines[1:], start=2):
        where = f"header line {n}"
        if line.startswith("#CHROM") or (line.startswith("#") and not line.startswith("##")):
            chrom_at = n
            break
        if not line.startswith("##"):
            findings.append(Finding(where, "meta", "line before #CHROM does not start with "
                                    "'##' (a stray or broken line)", False))
            continue
        key, eq, value = line[2:].partition("=")
        if not eq or not value.strip() or value.strip() in {"<>"}:
            findings.append(Finding(where, key or "meta", "meta line is not a key=value pair "
                                    "(or its value is empty)", False))
            continue
        if not _META_KEY_RE.match(key):
            findings.append(Finding(where, key, "meta key is not a valid name", False))
            continue
        if key in {"assembly", "pedigreeDB"}:
            problem = _url_problem(value)
            if problem:
                findings.append(Finding(where, key, problem, False))
            continue
        if not value.startswith("<"):
            continue
        pairs, problem = _structured(value)
        problem = problem or _definition_problem(key, pairs, hdr.version)
        values = dict(pairs)
        ident = values.get("ID", "")
        label = f"{key}/{ident}" if ident else key
        fatal = (key == "INFO" and ident in read_i) or (key == "FORMAT" and ident in read_f)
        if problem:
            findings.append(Finding(where, label, problem, fatal))
            continue
        if key in {"INFO", "FORMAT"}:
            if (key, ident) in seen:
                findings.append(Finding(where, label, f"defined twice (also line "
                                        f"{seen[key, ident]})", fatal))
            seen[key, ident] = n
        if key in {"INFO", "FORMAT"}:
            number, typ = values["Number"], values["Type"]
            (hdr.info if key == "INFO" else hdr.formats)[ident] = (number, typ)
            reserved = (RESERVED_INFO if key == "INFO" else RESERVED_FORMAT).get(ident)
            if reserved and (number, typ) != reserved and not (
                    reserved[0] in {"A", "R", "G"} and number == "."):
                # Reserved-key mismatches are tolerated (ctdna's own type checks in vcf.py
                # reject what it cannot use): LoFreq declares INFO/AF Number=1, VarScan
                # FORMAT/AD Number=1.
                findings.append(Finding(where, label, f"declared Number={number} Type={typ}; "
                                        f"the specification reserves Number={reserved[0]} "
                                        f"Type={reserved[1]}", False))
    if chrom_at is None:
        findings.append(Finding("header", "#CHROM", "no #CHROM header line", True))
        return None, findings
    columns = lines[chrom_at - 1].split("\t")
    where = f"header line {chrom_at}"
    if columns[:8] != _CHROM_HEADER:
        findings.append(Finding(where, "#CHROM", "the column line must start "
                                + "<TAB>".join(_CHROM_HEADER), True))
        return None, findings
    if len(columns) > 8:
        if columns[8] != "FORMAT":
            findings.append(Finding(where, "#CHROM", "9th column must be FORMAT", True))
            return None, findings
        hdr.has_format = True
        hdr.samples = columns[9:]
        if not hdr.samples:
            findings.append(Finding(where, "#CHROM", "FORMAT column without sample columns",
                                    True))
        dupes = sorted({s for s in hdr.samples if hdr.samples.count(s) > 1})
        if dupes:
            findings.append(Finding(where, "#CHROM", f"sample names not unique: "
                                    f"{', '.join(dupes)}", True))
    hdr.body = lines[chrom_at:]
    hdr.n_records = sum(map(bool, map(str.strip, hdr.body)))
    hdr.first_body_line = chrom_at + 1
    if text and not text.endswith("\n"):
        last = len(hdr.body) if hdr.body else "header"
        findings.append(Finding(last if isinstance(last, int) else f"header line {chrom_at}",
                                "end of file", "last line has no newline: the file may be "
                                "truncated", True))
    return hdr, findings


# -- body ----------------------------------------------------------------------------------
# Speed: every check runs on the *distinct* values of a column (pd.factorize, C hashing),
# then maps back to records with numpy indexing; VCF columns repeat heavily (FILTER, FORMAT,
# REF/ALT of SNVs, INFO keys), so the Python work is per distinct value, not per record.
_INT_RE = re.compile(rf"^{_INT}$")
_DIGITS = re.compile(r"[0-9]+")
_VALUE_FULL = {typ: re.compile(rx) for typ, rx in _VALUE_RE.items()}
_CIGAR_RE = re.compile(r"^(?:\d+[MIDNSHP=X])+$")
_GT_FULL = re.compile(_GT_RE)
_ALT_FULL = re.compile(_ALT_RE)
AMBIGUOUS_ALT = r"^[ACGTNacgtn](?:/[ACGTNacgtn])+$"
_AMBIGUOUS = re.compile(AMBIGUOUS_ALT)


def _bad(values: pd.Series | np.ndarray, ok: Callable[[Any], bool],
         all_good: re.Pattern[str] | None = None) -> np.ndarray:
    """Boolean mask of rows whose value fails ``ok(value) -> bool``, evaluated once per
    distinct value.

    ``all_good``, a pattern that a value can only match when ``ok`` accepts it, is first
    tried on all distinct values at once (one C regex search over their joined text, issue
    #11: counts and frequencies are nearly all distinct); only when some value does not
    match is ``ok`` called per value.
    """
    return _bad_distinct(*pd.factorize(np.asarray(values, dtype=object)), ok, all_good)


def _bad_distinct(codes: np.ndarray, uniques: np.ndarray, ok: Callable[[Any], bool],
                  all_good: re.Pattern[str] | None = None) -> np.ndarray:
    """:func:`_bad` of values already factorized into ``codes`` and ``uniques``."""
    if not len(codes):
        return np.zeros(0, dtype=bool)
    if all_good is not None and all_match(uniques, all_good):
        return np.zeros(len(codes), dtype=bool)
    good = np.fromiter((bool(ok(u)) for u in uniques), dtype=np.bool_, count=len(uniques))
    return np.logical_not(good[codes])


def all_match(values: np.ndarray, pattern: re.Pattern[str]) -> bool:
    """Whether every string (none holds a newline) matches ``pattern`` in full."""
    joined = "\n".join(values)
    if joined.count("\n") != len(values) - 1 or "\r" in joined:
        return False
    return re.search(rf"^(?!(?:{pattern.pattern})$)", joined, re.MULTILINE) is None


def split_fields(values: np.ndarray | list[str], sep: str, width: int,
                 joined: str | None = None) -> np.ndarray | None:
    """Rows x ``width`` fields of ``sep``-separated strings, split by pandas' C parser (a
    Python ``str.split`` per record cost ~1 s on 200,000 records, issue #11); None when the
    text does not suit it (a carriage return, fewer rows back), and the caller splits.
    ``joined`` is ``"\\n".join(values)`` when the caller has it already."""
    joined = "\n".join(values) if joined is None else joined
    if "\r" in joined or not len(values):
        return None
    try:
        # dtype=object keeps the parser's own str cells (dtype=str re-passes every cell
        # through astype(str): 50 ms per 200,000 records, issue #11 item 1); a row with
        # fewer fields gets NaN cells, which every caller excludes or overwrites.
        frame = pd.read_csv(io.StringIO(joined), sep=sep, header=None, names=list(range(width)),
                            dtype=object, na_filter=False, quoting=csv.QUOTE_NONE,
                            skip_blank_lines=False, engine="c")
    except (ValueError, pd.errors.ParserError):
        return None
    if len(frame) != len(values):
        return None
    return frame.to_numpy(dtype=object)


def _explode_unique(values: np.ndarray, sep: str) -> tuple[np.ndarray, np.ndarray]:
    """(row index, item) of every ``sep``-separated item, splitting each distinct value
    once (INFO columns repeat: all '.' in many files)."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    parts = [u.split(sep) for u in uniques]
    sizes = np.array([len(p) for p in parts], dtype=np.int64)
    flat = np.array([item for p in parts for item in p] or [""], dtype=object)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    per_row = sizes[codes]
    rows = np.repeat(np.arange(len(codes)), per_row)
    offsets = np.arange(int(per_row.sum())) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    return rows, flat[np.repeat(starts[codes], per_row) + offsets]


def _char_counts(values: np.ndarray, char: str, raw: np.ndarray | None = None
                 ) -> np.ndarray:
    """Occurrences of the ASCII ``char`` in each string (none contains a newline), counted
    on the UTF-8 bytes with numpy (``raw``: the bytes of ``"\\n".join(values)``, when at
    hand)."""
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    if raw is None:
        raw = np.frombuffer("\n".join(values).encode("utf-8"), dtype=np.uint8)
    line = np.searchsorted(np.flatnonzero(raw == 10), np.flatnonzero(raw == ord(char)))
    return np.bincount(line, minlength=len(values)).astype(np.int64)


def _cell_values(cells: np.ndarray, n_fields: np.ndarray, width: int) -> list[np.ndarray]:
    """Per FORMAT key, the cells' values ('.' where a cell stops before the key, as htslib
    reads a missing trailing field)."""
    matrix = split_fields(cells, ":", width) if (n_fields <= width).all() else None
    if matrix is None:
        split = [c.split(":") for c in cells]
        return [np.array([s[k] if k < len(s) else "." for s in split], dtype=object)
                for k in range(width)]
    out = []
    for k in range(width):
        values = matrix[:, k].copy()
        values[n_fields <= k] = "."
        out.append(values)
    return out


def per_unique(values: np.ndarray, fn: Callable[[Any], Any], dtype: Any = "int64"
               ) -> np.ndarray:
    """``fn`` of each value as an array of ``dtype``, called once per distinct value."""
    codes, uniques = pd.factorize(values)
    out = np.fromiter((fn(u) for u in uniques), dtype=dtype, count=len(uniques))
    return out[codes]


def matching(values: np.ndarray, pattern: re.Pattern[str]) -> np.ndarray:
    """Boolean mask of the values ``pattern`` matches (per distinct value; one C regex
    search when all match, :func:`_bad`)."""
    return ~_bad(values, _matcher(pattern), pattern)


def _matcher(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda v: pattern.match(v) is not None


class _Collector:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def add(self, bad: np.ndarray, records: np.ndarray, fld: str, message: str, fatal: bool,
            values: np.ndarray | Callable[[int], Any] | None = None) -> None:
        """Record one defect kind from a boolean mask over rows (first row named).

        ``values`` are the rows' values, or a function giving the value of one row (so a
        value that must be built, such as ``chrom:pos``, is built for the named row only).
        """
        bad = np.asarray(bad, dtype=bool)
        if not bad.any():
            return
        first = int(np.argmax(bad))
        text = message
        if callable(values):
            text = f"{message}: {str(values(first))[:60]!r}"
        elif values is not None:
            text = f"{message}: {str(np.asarray(values, dtype=object)[first])[:60]!r}"
        self.findings.append(Finding(int(np.asarray(records)[first]), fld, text, fatal,
                                     int(bad.sum()), message))

    def merged(self) -> list[Finding]:
        """One finding per (field, defect, fatality): first record, summed count."""
        out: dict[tuple[str, str, bool], Finding] = {}
        for f in self.findings:
            key = (f.field, f.kind or f.message, f.fatal)
            kept = out.get(key)
            if kept is None:
                out[key] = f
                continue
            first = f if isinstance(f.record, int) and isinstance(kept.record, int) and (
                f.record < kept.record) else kept
            out[key] = Finding(first.record, first.field, first.message, first.fatal,
                               kept.count + f.count, first.kind)
        return list(out.values())


def _value_ok(typ: str, key: str) -> Callable[[str], bool]:
    pattern = _VALUE_FULL.get(typ)
    cigar = key == "CIGAR"
    non_negative = key in _NON_NEGATIVE and typ in {"Integer", "Float"}

    def ok(value: str) -> bool:
        for item in value.split(","):
            if item == ".":
                continue
            if pattern is not None and not pattern.match(item):
                return False
            if cigar and not _CIGAR_RE.match(item):
                return False
            if non_negative and item.lstrip().startswith("-"):
                return False
        return True
    return ok


def _value_pattern(typ: str, key: str) -> re.Pattern[str] | None:
    """A whole-value pattern as strict as :func:`_value_ok` for numbers (one item regex,
    '.' allowed, comma-separated, no sign '-' for non-negative keys); None otherwise."""
    if typ not in {"Integer", "Float"} or key == "CIGAR":
        return None
    item = _INT if typ == "Integer" else _FLOAT
    if key in _NON_NEGATIVE:
        item = r"\+?" + item.removeprefix("[+-]?")
    one = rf"(?:\.|{item})"
    return re.compile(rf"{one}(?:,{one})*")


def _count_values(typ: str) -> Callable[[str], int]:
    if typ == "String":  # commas inside a quoted string do not separate values
        return lambda v: re.sub(r'"[^"]*"', "", v).count(",") + 1
    return lambda v: v.count(",") + 1


def _check_key(col: _Collector, key: str, values: np.ndarray, has_value: np.ndarray,
               records: np.ndarray, n_alt: np.ndarray, ploidy: np.ndarray | None, where: str,
               definition: tuple[str, str] | None, fatal: bool) -> None:
    """Number/Type checks of one INFO or FORMAT key over all its occurrences."""
    fld = f"{where}/{key}"
    if definition is None:
        return  # undeclared and not reserved: read as text (reported by vcf.py)
    number, typ = definition
    if typ == "Flag":  # EBI's suite accepts DB=0 / DB=1, not DB=2
        col.add(has_value & ~np.isin(values, ["0", "1"]), records, fld,
                "a Flag takes no value", fatal, values)
        return
    if where == "INFO":
        col.add(~has_value, records, fld, f"Type={typ} needs a value", fatal)
    present = has_value & (values != ".")
    if number in {"A", "R", "G"}:
        present &= n_alt > 0  # ALT '.': per-allele counts are not defined
    if not present.any():
        return
    vals, recs, alts = values[present], records[present], n_alt[present]
    codes, uniques = pd.factorize(vals)  # once, for the count and the type checks
    if typ == "String":
        counts = np.fromiter(map(_count_values(typ), uniques), dtype=np.int64,
                             count=len(uniques))[codes]
    else:  # commas counted with numpy, once per distinct value
        counts = (_char_counts(uniques, ",") + 1)[codes]
    if number.isdigit():
        expected = np.full(len(vals), int(number))
    elif number == "A":
        expected = alts
    elif number == "R":
        expected = alts + 1
    elif number == "G" and ploidy is not None:
        plo = ploidy[present]
        expected = np.array([comb(int(a) + int(p), int(p)) if p > 0 else c
                             for a, p, c in zip(alts, plo, counts, strict=True)])
    else:
        expected = counts
    col.add(counts != expected, recs, fld, f"Number={number} expects a different count of "
            "values", fatal, vals)
    col.add(_bad_distinct(codes, uniques, _value_ok(typ, key), _value_pattern(typ, key)),
            recs, fld,
            f"value is not of Type={typ} (or a negative count)", fatal, vals)


def check_body(hdr: HeaderInfo, sample: str | None, read_info: Iterable[str],
               read_format: Iterable[str]) -> list[Finding]:
    """Check every record (column-wise, per distinct value) against the header and spec.

    Parameters
    ----------
    hdr
        From :func:`check_header`.
    sample
        The plasma column ctdna reads (its FORMAT defects are fatal; other columns warn).
    read_info, read_format
        INFO / FORMAT keys ctdna reads.
    """
    col = _Collector()
    lines = np.asarray(hdr.body, dtype=object)
    if not len(lines):
        return []
    # The records' text is joined once and shared by the tab count and the split (issue #11).
    joined = "\n".join(hdr.body)
    raw = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
    n_tabs = _char_counts(lines, "\t", raw)
    # Only a line starting with a control, space or non-ASCII character can be blank
    # (``str.strip`` empties it); those few are tested one by one.
    starts = np.r_[0, np.flatnonzero(raw == 10) + 1]
    first = np.full(len(lines), 10, dtype=np.uint8)
    inside = starts < len(raw)
    first[inside] = raw[starts[inside]]
    maybe = np.flatnonzero((first <= 32) | (first >= 128))
    blank = np.zeros(len(lines), dtype=bool)
    blank[maybe] = [not ln.strip() for ln in lines[maybe]]
    hdr.n_blank = int(blank.sum())
    if blank.any():
        col.findings.append(Finding(int(np.argmax(blank)) + 1, "line",
                                    "empty line among the records (skipped)", False,
                                    int(blank.sum())))
        lines, n_tabs = lines[~blank], n_tabs[~blank]
        joined = "\n".join(lines)
    if not len(lines):
        return col.findings
    records = np.arange(1, len(lines) + 1)
    width = 8 + (1 + len(hdr.samples) if hdr.has_format else 0)
    n_cols = n_tabs + 1
    col.add(n_cols != width, records, "columns",
            f"wrong number of tab-separated columns (the #CHROM line has {width})", True)
    if col.findings and col.findings[-1].fatal:
        return col.findings
    table = split_fields(lines, "\t", width, joined)
    if table is None:
        table = np.array([ln.split("\t") for ln in lines], dtype=object)
    hdr.table = table
    chrom, pos, ids, ref, alt, qual, filt, info = (table[:, i] for i in range(8))
    v42 = hdr.version < "4.3"
    col.add(_bad(chrom, _matcher(re.compile(_CHROM_RE_42 if v42 else _CHROM_RE))), records,
            "CHROM", "contig name has characters the specification forbids", True, chrom)
    position = _positions(pos)
    col.add(np.isnan(position) | (position < 0) | (position % 1 != 0), records, "POS",
            "not a non-negative whole number", True, pos)
    col.add(_bad(ref, _matcher(re.compile(rf"^{_BASES}$"))), records, "REF",
            "must be one or more of A, C, G, T, N", True, ref)
    ambiguous = _bad(alt, lambda a: _AMBIGUOUS.match(a) is None)
    # VarScan writes ambiguous calls as 'A/T' (vcf2maf's real test_varscan.vcf): not one
    # allele, so vcf.py skips the record; said out loud, the rest of the file is read.
    col.add(ambiguous, records, "ALT", "'X/Y' is not one allele (VarScan ambiguous call); "
            "record skipped", False, alt)
    col.add(_bad(alt, _matcher(_ALT_FULL)) & ~ambiguous, records, "ALT",
            "not a base string, '*', '.', <SYMBOLIC> or breakend allele", True, alt)
    n_alt = per_unique(alt, lambda a: 0 if a == "." else a.count(",") + 1)
    multi = n_alt > 1
    same = ref == alt
    if multi.any():
        same[multi] = [r.upper() in a.upper().split(",") for r, a in
                       zip(ref[multi], alt[multi], strict=True)]
    if (~multi).any():
        same[~multi] |= per_unique(ref[~multi], str.upper, "object") == per_unique(
            alt[~multi], str.upper, "object")
    col.add(same, records, "ALT", "an ALT allele equals REF", True, alt)
    col.add(_bad(ids, lambda i: i == "." or (re.match(r"^[^\s;]+(?:;[^\s;]+)*$", i)
                                             is not None and len(set(i.split(";")))
                                             == i.count(";") + 1)),
            records, "ID", "IDs must be '.' or distinct ';'-separated names without "
            "whitespace", False, ids)
    col.add(_bad(qual, lambda q: q == "." or (re.match(rf"^{_FLOAT}$", q) is not None
                                              and not q.startswith("-"))),
            records, "QUAL", "not a non-negative number", False, qual)
    col.add(_bad(filt, _matcher(re.compile(
        r"^(?:PASS|\.|[^\s;.][^\s;]*(?:;[^\s;.][^\s;]*)*)$"))), records, "FILTER",
        "must be PASS, '.' or ';'-separated filter names without whitespace", True, filt)
    col.add(_bad(filt, lambda f: "0" not in f.split(";")), records, "FILTER",
            "'0' is reserved and cannot be a filter name", True, filt)
    col.add(_bad(filt, lambda f: len(set(f.split(";"))) == f.count(";") + 1), records,
            "FILTER", "a filter name is repeated", False, filt)
    _check_info(col, info, records, n_alt, hdr, set(read_info))
    if hdr.has_format and hdr.samples:
        _check_samples(col, table, records, hdr, sample, n_alt, set(read_format))
    _check_order(col, chrom, position, ref, alt, records)
    return col.merged()


def _positions(pos: np.ndarray) -> np.ndarray:
    """POS as float (NaN where it is not a number); plain digits, the common case, are
    decided by one regex search and converted by numpy (to_numeric cost 65 ms per 200,000
    records, issue #11)."""
    if all_match(pos, _DIGITS):
        try:
            return pos.astype(np.int64).astype(float)
        except OverflowError:  # beyond int64: pandas decides, as for any other text
            pass
    return pd.to_numeric(pd.Series(pos), errors="coerce").to_numpy(dtype=float)


def _check_info(col: _Collector, info: np.ndarray, records: np.ndarray, n_alt: np.ndarray,
                hdr: HeaderInfo, read_info: set[str]) -> None:
    col.add(_bad(info, lambda i: i == "." or "" not in i.split(";")), records, "INFO",
            "empty entry (stray ';')", False, info)
    rows, pair_values = _explode_unique(info, ";")
    keep = (pair_values != "") & (pair_values != ".")
    rows, pair_values = rows[keep], pair_values[keep]
    if not len(rows):
        return
    codes, uniques = pd.factorize(pair_values)
    split = [u.partition("=") for u in uniques]
    hdr.info_keys = {s[0] for s in split}
    keys = np.array([s[0] for s in split], dtype=object)[codes]
    vals = np.array([s[2] for s in split], dtype=object)[codes]
    has = np.array([s[1] == "=" for s in split], dtype=bool)[codes]
    frame = pd.DataFrame({"row": rows, "key": keys})
    dup = frame.duplicated(["row", "key"]).to_numpy()
    for key in pd.unique(keys[dup]):
        where = dup & (keys == key)
        col.add(where, records[rows], f"INFO/{key}", "key appears twice in one record",
                key in read_info)
    for key, idx in frame.groupby("key", sort=False).indices.items():
        key = str(key)
        if not _KEY_RE.match(key):
            col.add(np.ones(len(idx), bool), records[rows[idx]], f"INFO/{key}",
                    "key is not a valid name", False)
            continue
        _check_key(col, key, vals[idx], has[idx], records[rows[idx]], n_alt[rows[idx]], None,
                   "INFO", hdr.info.get(key) or RESERVED_INFO.get(key), key in read_info)


def _check_samples(col: _Collector, table: np.ndarray, records: np.ndarray, hdr: HeaderInfo,
                   sample: str | None, n_alt: np.ndarray, read_format: set[str]) -> None:
    fmt = table[:, 8]
    key_re = _FORMAT_KEY_42 if hdr.version < "4.3" else _KEY_RE
    col.add(_bad(fmt, lambda f: all(key_re.match(k) for k in f.split(":"))), records,
            "FORMAT", "empty or invalid key name", False, fmt)
    col.add(_bad(fmt, lambda f: len(set(f.split(":"))) == f.count(":") + 1), records,
            "FORMAT", "a key is repeated", True, fmt)
    col.add(_bad(fmt, lambda f: "GT" not in f.split(":") or f.startswith("GT")), records,
            "FORMAT", "GT must be the first key", False, fmt)
    format_codes, formats = pd.factorize(fmt)
    hdr.format_layouts = [str(layout) for layout in formats]
    for j, name in enumerate(hdr.samples):
        chosen = name == sample
        where = f"plasma sample {name!r}" if chosen else "other samples"
        fatal_keys = read_format if chosen else set()
        column = table[:, 9 + j]
        for code, layout in enumerate(formats):
            keys = layout.split(":")
            rows = np.flatnonzero(format_codes == code)
            cells = column[rows]
            n_fields = _char_counts(cells, ":") + 1
            too_many = (n_fields > len(keys)) & (cells != ".")
            col.add(too_many, records[rows], f"FORMAT ({where})",
                    "more values than FORMAT keys", chosen, cells)
            split = _cell_values(cells, n_fields, len(keys))
            ploidy = None
            for k, key in enumerate(keys):
                values = split[k]
                if chosen:
                    hdr.plasma_values.setdefault(key, np.full(len(column), ".", dtype=object))[
                        rows] = values
                if key == "GT":
                    fatal = chosen and "GT" in read_format
                    col.add(_bad(values, _matcher(_GT_FULL)), records[rows],
                            f"FORMAT/GT ({where})",
                            "not a genotype (allele indexes joined by / or |)", fatal, values)
                    top = per_unique(values, lambda g: max(
                        (int(x) for x in re.findall(r"\d+", g)), default=0))
                    alts = n_alt[rows]
                    col.add((top > alts) & (alts > 0), records[rows], f"FORMAT/GT ({where})",
                            "allele index beyond the ALT alleles", fatal, values)
                    ploidy = per_unique(values, lambda g: g.count("/") + g.count("|") + 1)
                    continue
                if not key_re.match(key):
                    continue
                definition = hdr.formats.get(key) or RESERVED_FORMAT.get(key)
                if chosen and definition is None and key in read_format:
                    # Tolerated (vcf2maf's real Strelka1 file has no ##FORMAT for TAR/TIR):
                    # vcf.py still parses the values strictly as numbers.
                    col.add(values != ".", records[rows], f"FORMAT/{key}", "a field ctdna "
                            "reads is not declared in the header (no ##FORMAT line; its "
                            "values were parsed as numbers)", False, values)
                _check_key(col, key, values, np.ones(len(values), bool), records[rows],
                           n_alt[rows], ploidy, "FORMAT", definition, key in fatal_keys)


def _check_order(col: _Collector, chrom: np.ndarray, position: np.ndarray, ref: np.ndarray,
                 alt: np.ndarray, records: np.ndarray) -> None:
    contig = per_unique(chrom, lambda c: c.strip("<>"), "object")
    same = np.r_[False, contig[1:] == contig[:-1]]
    col.add(same & np.r_[False, position[1:] < position[:-1]], records, "POS",
            "records not sorted by position (read anyway)", False,
            lambda i: float(position[i]))
    starts = pd.Series(contig[~same])
    reopened = np.zeros(len(contig), dtype=bool)
    reopened[np.flatnonzero(~same)[starts.duplicated().to_numpy()]] = True
    col.add(reopened, records, "CHROM", "contig's records are not contiguous (read anyway)",
            False, chrom)
    # Duplicates after trimming the bases REF and ALT share (the same variant written twice,
    # or inside a multi-allelic record): counted twice otherwise. SNVs need no trimming.
    simple = (per_unique(ref, len) == 1) & (per_unique(alt, len) == 1) & ~np.isnan(position)
    keys = pd.DataFrame({"record": records[simple], "chrom": contig[simple],
                         "pos": position[simple], "ref": ref[simple], "alt": alt[simple]})
    extra = []
    for rec, c, p, r, alts in zip(records[~simple], contig[~simple], position[~simple],
                                  ref[~simple], alt[~simple], strict=True):
        for a in alts.split(","):
            if p != p or not re.fullmatch(r"[ACGTNacgtn]+", a):
                continue
            rr, aa, pp = r.upper(), a.upper(), p
            while len(rr) > 1 and len(aa) > 1 and rr[-1] == aa[-1]:
                rr, aa = rr[:-1], aa[:-1]
            while len(rr) > 1 and len(aa) > 1 and rr[0] == aa[0]:
                rr, aa, pp = rr[1:], aa[1:], pp + 1
            extra.append((rec, c, pp, rr, aa))
    if extra:  # (without them the keys are already in record order)
        keys = pd.concat([keys, pd.DataFrame(extra, columns=keys.columns)], ignore_index=True)
        keys = keys.sort_values("record", kind="stable")
    dup = keys.duplicated(["chrom", "pos", "ref", "alt"]).to_numpy()
    key_chrom, key_pos = keys["chrom"].to_numpy(), keys["pos"].to_numpy()
    col.add(dup, keys["record"].to_numpy(), "ALT", "the same variant as an earlier record "
            "(after trimming shared bases)", True,
            lambda i: f"{key_chrom[i]}:{int(key_pos[i])}")
