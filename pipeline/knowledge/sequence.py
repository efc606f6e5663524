"""Sequence helpers: codon translation (IUPAC-aware), complement, protein-name normalisation.

Pure functions on strings and pandas Series; no knowledge-base data here. The IUPAC-aware
translation table lets the codon table keep a base that the cited data do not fix as an
ambiguity code (``GGY``): a mutated codon is translated only when every expansion agrees
(alk-knowledge.md 1.7 rule 4: match on codon + translated amino acid).
"""

from __future__ import annotations

import itertools
import re

import pandas as pd

_BASES = "TCAG"
_AAS = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
#: Standard genetic code, DNA codons on the coding strand -> one-letter amino acid (``*`` stop).
CODON_TABLE: dict[str, str] = {
    a + b + c: _AAS[16 * i + 4 * j + k]
    for i, a in enumerate(_BASES)
    for j, b in enumerate(_BASES)
    for k, c in enumerate(_BASES)
}

IUPAC: dict[str, str] = {
    "A": "A", "C": "C", "G": "G", "T": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT",
    "K": "GT", "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT",
}

_COMPLEMENT = str.maketrans("ACGTRYSWKMBDHVN", "TGCAYRSWMKVHDBN")


def complement(seq: str) -> str:
    """Complement (not reverse) of an IUPAC DNA string."""
    return seq.upper().translate(_COMPLEMENT)


def reverse_complement(seq: str) -> str:
    """Reverse complement of an IUPAC DNA string."""
    return complement(seq)[::-1]


def translate_iupac(codon: str) -> str:
    """Translate one coding-strand codon that may contain IUPAC codes.

    Returns the one-letter amino acid when every expansion agrees, ``"X"`` otherwise.
    """
    options = [IUPAC.get(b, "") for b in codon.upper()]
    if len(options) != 3 or not all(options):
        return "X"
    aas = {CODON_TABLE["".join(p)] for p in itertools.product(*options)}
    return aas.pop() if len(aas) == 1 else "X"


#: Every 3-letter IUPAC string -> amino acid or "X" (3,375 keys), for vectorised ``Series.map``.
IUPAC_CODON_TABLE: dict[str, str] = {
    "".join(c): translate_iupac("".join(c)) for c in itertools.product(IUPAC, repeat=3)
}


def iupac_contains(code: str, base: str) -> bool:
    """True when the IUPAC ``code`` admits the concrete ``base``."""
    return base.upper() in IUPAC.get(code.upper(), "")


THREE_TO_ONE: dict[str, str] = {
    "Ala": "A", "Arg": "R", "Asn": "N", "Asp": "D", "Cys": "C", "Gln": "Q", "Glu": "E",
    "Gly": "G", "His": "H", "Ile": "I", "Leu": "L", "Lys": "K", "Met": "M", "Phe": "F",
    "Pro": "P", "Ser": "S", "Thr": "T", "Trp": "W", "Tyr": "Y", "Val": "V", "Ter": "*",
    "Xaa": "X", "Sec": "U",
}
_THREE_RE = re.compile("|".join(sorted(THREE_TO_ONE, key=len, reverse=True)))
_HGVSP_RE = re.compile(
    r"(?:(?P<tx>(?:ENSP|ENST|NP_|NM_|XP_)[0-9A-Za-z_.]*)\s*:\s*)?"
    r"(?:p\.)?\(?(?P<body>[A-Z][A-Za-z0-9_*=?]*(?:del|dup|ins[A-Za-z*]*|fs\*?\d*|\*|=)?)\)?$"
)


def protein_to_short(text: object) -> tuple[str | None, str | None]:
    """Normalise one protein-change string to a short one-letter name.

    Accepts VEP ``ENSP00000389048.3:p.Gly1202Arg``, SnpEff ``p.Gly1202Arg``, ``p.G1202R``,
    ``G1202R``, ``p.(Gly1202Arg)``, ``p.Thr1151_Leu1152insThr`` (-> ``T1151_L1152insT``),
    ``p.Gly12=``.

    Returns
    -------
    tuple
        ``(short, transcript)``; ``(None, None)`` when the string is not a protein change.
    """
    if text is None or (isinstance(text, float) and text != text):
        return None, None
    raw = str(text).strip()
    if not raw or raw in {".", "-", "p.?", "p.="}:
        return None, None
    match = _HGVSP_RE.match(raw.replace(" ", ""))
    if match is None:
        return None, None
    body = match.group("body")
    short = _THREE_RE.sub(lambda m: THREE_TO_ONE[m.group(0)], body)
    if not re.match(r"^[A-Z*]\d+", short):
        return None, None
    return short, match.group("tx")


def normalise_protein_series(values: pd.Series) -> pd.DataFrame:
    """Vectorised :func:`protein_to_short` over unique values.

    Returns a frame aligned with ``values`` with columns ``short`` and ``transcript``.
    """
    clean = values.astype("object").mask(values.isna(), None)
    uniques = pd.unique(clean.dropna())
    parsed = {u: protein_to_short(u) for u in uniques}
    short = clean.map(lambda v: parsed[v][0] if v in parsed else None)
    tx = clean.map(lambda v: parsed[v][1] if v in parsed else None)
    return pd.DataFrame({"short": short, "transcript": tx}, index=values.index)


_SHORT_RE = re.compile(r"^(?P<ref>[A-Z*])(?P<pos>\d+)(?P<rest>.*)$")


def split_short(short: str) -> tuple[str, int, str] | None:
    """Split ``G1202R`` into ``("G", 1202, "R")``; None when not of that form."""
    match = _SHORT_RE.match(short)
    if match is None:
        return None
    return match.group("ref"), int(match.group("pos")), match.group("rest")


def shift_protein_position(short: str, delta: int) -> str:
    """Shift the first residue number of a short protein name by ``delta`` (isoform mapping).

    Only the leading residue is shifted; every residue number inside the name (``_L1152``) is
    shifted too so ranges stay consistent.
    """
    return re.sub(r"(?<=[A-Z*])(\d+)", lambda m: str(int(m.group(1)) + delta), short)
