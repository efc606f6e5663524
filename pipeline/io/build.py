"""Genome build: normalise a declared build, or detect it from a VCF header.

The contract (``../shared/spec/interfaces.md``, manifest column ``genome_build``): a build given
by the lab wins; otherwise it is detected from the header (contig lengths first, then the text
of ``##reference`` / ``##assembly`` lines); an undetectable build is an error, never a guess,
because a wrong build silently moves every coordinate onto another gene.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from pipeline.errors import GenomeBuildError

GRCH37 = "GRCh37"
GRCH38 = "GRCh38"

#: Accepted spellings of each build (lower-case), normalised to the contract's two names.
_SPELLINGS: dict[str, str] = {
    "grch37": GRCH37,
    "hg19": GRCH37,
    "b37": GRCH37,
    "hs37d5": GRCH37,
    "grch37.p13": GRCH37,
    "37": GRCH37,
    "grch38": GRCH38,
    "hg38": GRCH38,
    "b38": GRCH38,
    "hs38": GRCH38,
    "grch38.p13": GRCH38,
    "grch38.p14": GRCH38,
    "38": GRCH38,
}

#: Primary-assembly contig lengths (bp) that differ between the builds (UCSC/NCBI tables for
#: GRCh37.p13 and GRCh38.p14). Keys without the "chr" prefix.
CONTIG_LENGTHS: dict[str, dict[str, int]] = {
    GRCH37: {
        "1": 249250621,
        "2": 243199373,
        "3": 198022430,
        "7": 159138663,
        "12": 133851895,
        "17": 81195210,
        "X": 155270560,
    },
    GRCH38: {
        "1": 248956422,
        "2": 242193529,
        "3": 198295559,
        "7": 159345973,
        "12": 133275309,
        "17": 83257441,
        "X": 156040895,
    },
}

# Text markers in ``##reference=`` / ``##assembly=`` values (file names of common FASTAs).
# Bounded so that e.g. "ab37c" does not match "b37".
_TEXT_MARKERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![a-z0-9])(grch38|hg38|hs38(dh)?|b38)(?![0-9])|assembly38", re.I), GRCH38),
    (
        re.compile(r"(?<![a-z0-9])(grch37|hg19|b37|hs37d5|g1k_v37)(?![0-9])", re.I),
        GRCH37,
    ),
)

#: Header keys whose values name the reference FASTA or assembly. ``new_reference_genome`` is
#: written by CrossMap lift-overs (e.g. the TSO500 test file): it names the *target* build.
REFERENCE_KEYS = ("reference", "assembly", "new_reference_genome")


def normalise_build(
    value: str,
    *,
    path: str | Path | None = None,
    record: str | int | None = None,
    field: str = "genome_build",
) -> str:
    """Normalise a declared build spelling to ``GRCh37`` or ``GRCh38``.

    Parameters
    ----------
    value
        ``GRCh37``, ``hg19``, ``b37``, ``GRCh38``, ``hg38`` ... (case-insensitive).
    path, record, field
        Where the value came from, for the error message.

    Raises
    ------
    GenomeBuildError
        Any other spelling (never guessed).
    """
    key = str(value).strip().lower()
    if key in _SPELLINGS:
        return _SPELLINGS[key]
    raise GenomeBuildError(
        f"unknown genome build {value!r} (use GRCh37/hg19/b37 or GRCh38/hg38)",
        path=path,
        record=record,
        field=field,
    )


def build_from_contigs(contig_lengths: Mapping[str, int | None]) -> str | None:
    """Build implied by contig lengths, or None when no diagnostic contig is declared.

    Raises
    ------
    GenomeBuildError
        When diagnostic contigs contradict each other (a mixed or corrupted header).
    """
    votes: set[str] = set()
    for name, length in contig_lengths.items():
        if not length:
            continue
        key = name[3:] if name.lower().startswith("chr") else name
        for build, table in CONTIG_LENGTHS.items():
            if table.get(key) == int(length):
                votes.add(build)
    if len(votes) > 1:
        raise GenomeBuildError("contig lengths match both GRCh37 and GRCh38", record="header")
    return votes.pop() if votes else None


def build_from_text(values: Iterable[str]) -> str | None:
    """Build named in reference/assembly text, or None when nothing is recognisable.

    Raises
    ------
    GenomeBuildError
        When the texts name both builds.
    """
    votes: set[str] = set()
    for text in values:
        for pattern, build in _TEXT_MARKERS:
            if pattern.search(text):
                votes.add(build)
    if len(votes) > 1:
        raise GenomeBuildError(
            "##reference/##assembly lines name both GRCh37 and GRCh38", record="header"
        )
    return votes.pop() if votes else None


def resolve_build(
    declared: str | None,
    *,
    contig_lengths: Mapping[str, int | None],
    reference_texts: Iterable[str],
    path: str | Path | None = None,
) -> str:
    """The build of a VCF: the declared one (checked against contigs), else detected.

    Parameters
    ----------
    declared
        The manifest's ``genome_build`` (any accepted spelling) or None.
    contig_lengths
        ``##contig`` IDs and lengths (bp) from the header.
    reference_texts
        Values of ``##reference``/``##assembly`` lines and contig ``assembly=`` attributes.
    path
        The file, for error messages.

    Raises
    ------
    GenomeBuildError
        Unknown spelling, a declared build contradicted by the contig lengths, conflicting
        header evidence, or no evidence at all.
    """
    try:
        by_contig = build_from_contigs(contig_lengths)
        by_text = build_from_text(reference_texts)
    except GenomeBuildError as exc:
        raise GenomeBuildError(exc.message, path=path, record="header") from None
    if declared is not None and str(declared).strip():
        build = normalise_build(declared, path=path)
        if by_contig is not None and by_contig != build:
            raise GenomeBuildError(
                f"manifest says {build} but the header's contig lengths are {by_contig}",
                path=path,
                record="header",
                field="genome_build",
            )
        return build
    if by_contig is not None and by_text is not None and by_contig != by_text:
        raise GenomeBuildError(
            f"contig lengths say {by_contig} but ##reference says {by_text}",
            path=path,
            record="header",
        )
    detected = by_contig or by_text
    if detected is None:
        raise GenomeBuildError(
            "genome build not declared and not detectable from the header (no GRCh37/GRCh38 "
            "contig lengths or ##reference); set genome_build in the manifest",
            path=path,
            record="header",
        )
    return detected
