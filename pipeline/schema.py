"""Column contracts shared by the layers.

Readers (``pipeline.io``) return a *calls* frame per sample; the knowledge base adds
recognition columns; the store keeps *observations* (calls + sample context).
Units: every ``vaf`` is a fraction in [0, 1] (never percent), NaN when the caller gave
no usable abundance. Percent exists only at the edges (vendor tables, reports) and is
always declared there.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd

#: Variant types of the contract (``../shared/spec/interfaces.md``), plus ``sv`` for
#: structural records that are not recognised as a fusion or CNV, and ``unclassified`` for a
#: vendor row its profile cannot type (``TP53 Splice``; kept with a warning, #9 item 4).
VARIANT_TYPES = ("snv", "mnv", "indel", "cnv", "fusion", "sv", "unclassified")

#: Knowledge-base categories written to ``observations.category``.
CATEGORIES = (
    "alk_resistance",  # ALK kinase-domain resistance mutation
    "bypass",  # ALK-independent resistance (MET amp, KRAS/NRAS, MAP2K1, ...)
    "driver",  # the ALK fusion itself (truncal marker)
    "transformation",  # TP53 / RB1: small-cell transformation markers
    "chip",  # clonal haematopoiesis genes: excluded from the ctDNA level
    "other",
)

#: Columns of the frame every reader returns (one row per ALT allele / CNV / fusion call).
CALL_COLUMNS: dict[str, str] = {
    "record_index": "int64",  # 1-based record (VCF) or data line (table) number, for errors
    "chrom": "object",  # as written in the file ("chr2" or "2"); None for table rows without it
    "pos": "Int64",  # 1-based, as in the VCF
    "ref": "object",
    "alt": "object",  # one allele; symbolic (<DUP>) and breakend strings kept verbatim
    "variant_type": "object",  # one of VARIANT_TYPES
    "gene": "object",  # gene symbol from annotation/table, else None (knowledge base fills)
    "protein_change": "object",  # raw HGVS p. / short protein name from annotation/table
    "vaf": "float64",  # fraction 0-1, NaN when unknown
    "vaf_source": "object",  # e.g. FORMAT/AF, FORMAT/AD, strelka_tier1, FORMAT/FREQ(percent)
    "alt_reads": "Int64",
    "depth": "Int64",
    "filter": "object",  # "PASS" or the filter names joined by ";"
    "copy_number": "float64",  # plasma/absolute copy number for CNV rows
    "fusion_partner": "object",  # 5' partner gene for fusion rows (EML4, ...)
    "mate_chrom": "object",  # breakend mate for BND/INV rows
    "mate_pos": "Int64",
    "annotation": "object",  # raw CSQ/ANN entries joined by "," (for audit and recognition)
}

#: Columns the knowledge base adds (``pipeline.knowledge.recognize``).
RECOGNITION_COLUMNS: dict[str, str] = {
    "gene": "object",
    "alteration": "object",  # G1202R, G1202del, T1151dup, amplification, EML4-ALK fusion
    "category": "object",  # one of CATEGORIES
    "kb_id": "object",  # knowledge-base entry id, None when not in the knowledge base
}


def empty_calls() -> pd.DataFrame:
    """Return an empty calls frame with the contract's columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in CALL_COLUMNS.items()})


def conform_calls(frame: pd.DataFrame) -> pd.DataFrame:
    """Add missing contract columns and coerce dtypes, keeping extra columns.

    Parameters
    ----------
    frame
        A reader's raw output.

    Returns
    -------
    pandas.DataFrame
        The frame with every column of :data:`CALL_COLUMNS`, in contract order first.
    """
    # Built column by column into a new frame (no copy of the input, no re-index): a
    # 200,000-record VCF spent 0.2 s here copying and re-converting columns that already
    # had their contract dtype (issue #11 item 1).
    n = len(frame)
    data: dict[str, Any] = {}
    for column, dtype in CALL_COLUMNS.items():
        if column not in frame.columns:
            data[column] = np.full(n, None, dtype=object)
            continue
        values = frame[column]
        if dtype == "object":
            data[column] = none_for_missing(values)
        elif str(values.dtype) == dtype:
            data[column] = values.array
        elif dtype == "float64":
            data[column] = pd.to_numeric(values, errors="coerce").astype("float64").array
        elif dtype == "Int64":
            data[column] = pd.to_numeric(values, errors="coerce").astype("Int64").array
        else:  # int64
            data[column] = pd.to_numeric(values, errors="coerce").fillna(0).astype(
                "int64").array
    for column in frame.columns:
        if column not in CALL_COLUMNS:
            data[column] = frame[column].array
    return pd.DataFrame(data, index=pd.RangeIndex(n), copy=False)


def none_for_missing(values: pd.Series) -> np.ndarray:
    """An object array with every missing value (NaN, NaT, pd.NA, None) as None."""
    out = values.to_numpy(dtype=object)
    missing = pd.isna(out)
    if missing.any():
        out = out.copy()  # never write into the caller's frame
        out[missing] = None
    return out


def take_rows(frame: pd.DataFrame, positions: np.ndarray | None) -> pd.DataFrame:
    """The rows at ``positions`` (None: no row) as a frame indexed 0..n-1.

    The frame itself when ``positions`` are all its rows in order (a batch of one draw);
    else one ``take`` re-indexed in place: ``take(...).reset_index(drop=True)`` copied
    every row twice (0.2 s for a 200,000-row draw, and about 1 ms for each small draw of a
    batch; issue #11 item 1).
    """
    if positions is None:
        rows = frame.iloc[0:0].copy()
    elif len(positions) == len(frame) and isinstance(frame.index, pd.RangeIndex) and (
            frame.index.start == 0 and frame.index.step == 1) and np.array_equal(
            positions, np.arange(len(frame))):
        return frame
    else:
        rows = frame.take(positions)
    rows.index = pd.RangeIndex(len(rows))
    return rows


def group_positions(keys: pd.Series | np.ndarray) -> dict[Hashable, np.ndarray]:
    """Row positions of each distinct key, in first-seen order (missing keys left out).

    One groupby instead of one scan per key (issue #11); the positions are ``np.intp``
    arrays, ready for ``DataFrame.take`` / ``iloc``.
    """
    series = keys if isinstance(keys, pd.Series) else pd.Series(keys)
    groups = series.groupby(series, sort=False).indices
    return {k: np.asarray(v, dtype=np.intp) for k, v in groups.items()}


def vaf_in_range(vaf: pd.Series, tolerance: float = 1e-6) -> np.ndarray:
    """Boolean mask: VAF is NaN or within [0, 1] (float32 tolerance, see pysam notes)."""
    values = vaf.to_numpy(dtype="float64", na_value=np.nan)
    return np.isnan(values) | ((values >= -tolerance) & (values <= 1 + tolerance))
