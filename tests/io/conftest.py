"""Shared helpers for the reader tests: real-data location and an independent VCF text parser.

The text parser deliberately shares no code with ``pipeline.io``: expected values are computed
from the raw text so that the reader is checked against an independent reading.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "io"


def realdata_dir() -> Path:
    env = os.environ.get("CTDNA_REALDATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "realdata"


@pytest.fixture
def realdata() -> Path:
    folder = realdata_dir()
    if not folder.is_dir():
        pytest.skip("shared/realdata not present")
    return folder


def text_records(path: Path, sample: str | None = None) -> list[dict]:
    """Data lines of a VCF as dicts (CHROM, POS, REF, ALT list, FILTER, INFO dict, sample
    FORMAT dict), parsed from the raw text."""
    opener = gzip.open if path.suffix == ".gz" else open
    samples: list[str] = []
    out = []
    with opener(path, "rt") as handle:
        for line in handle:
            if line.startswith("##"):
                continue
            fields = line.rstrip("\n").split("\t")
            if line.startswith("#CHROM"):
                samples = fields[9:]
                continue
            info = {}
            for item in fields[7].split(";"):
                key, _, value = item.partition("=")
                info[key] = value
            rec = {"CHROM": fields[0], "POS": int(fields[1]), "ID": fields[2], "REF": fields[3],
                   "ALT": fields[4].split(","), "FILTER": fields[6], "INFO": info}
            if sample is not None:
                keys = fields[8].split(":")
                values = fields[9 + samples.index(sample)].split(":")
                rec["FMT"] = dict(zip(keys, values, strict=False))
            out.append(rec)
    return out
