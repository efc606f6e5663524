"""Per-draw facts of a table: relative collection dates and draw-level values.

Both are read from the rows of one draw (``sample_id``) after the profile has been applied:

* ``relative_date`` (issue #12 item 5): study exports and vendor extracts often give the
  collection day relative to a per-patient anchor (Guardant ``Blood.Collection.Date`` = days
  since the first draw; post-surgery MRD ``TestDate`` = months after surgery). The draw's
  date is ``anchor + offset``; the anchor is the manifest's ``anchor_date`` or a table column.
* ``level`` (issue #9 item 7): tumor-informed MRD and tumor-fraction assays report one value
  per draw (tumor fraction, mean VAF, MTM/mL, positive/negative) instead of variants.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import parse_iso_date
from pipeline.errors import InvalidVariantFileError
from pipeline.io.profiles import DAYS_PER_MONTH, Profile
from pipeline.io.result import DrawLevel


def _single(values: pd.Series, column: str, frame: pd.DataFrame, path: Path) -> object:
    """The one value a draw's rows agree on (None when all are missing)."""
    present = values.dropna()
    distinct = pd.unique(present)
    if len(distinct) > 1:
        line = int(frame.loc[present.index[present != distinct[0]][0], "_line"])
        raise InvalidVariantFileError(
            f"rows of one draw disagree ({distinct[0]!r} vs {distinct[1]!r})",
            path=path, record=f"line {line}", field=column,
        )
    return distinct[0] if len(distinct) else None


def _number(value: object, column: str, frame: pd.DataFrame, path: Path) -> float | None:
    if value is None:
        return None
    try:
        number = float(str(value))
    except ValueError:
        number = float("nan")
    if not np.isfinite(number) or number < 0:
        line = int(frame.loc[frame[column] == value, "_line"].iloc[0])
        raise InvalidVariantFileError(f"not a non-negative number: {value!r}", path=path,
                                      record=f"line {line}", field=column)
    return number


def draw_date(rows: pd.DataFrame, prof: Profile, path: Path,
              anchor: date | None) -> date | None:
    """The draw's collection date from a ``relative_date`` profile, else None.

    Parameters
    ----------
    rows
        The draw's rows (profile applied).
    anchor
        The manifest's per-patient ``anchor_date``; a profile ``anchor_column`` is used when
        the manifest gives none, and both must agree when both are given.

    Returns
    -------
    datetime.date or None
        None when the profile has no ``relative_date``, or when no anchor is known (the
        manifest's ``collection_date`` then stands alone).

    Raises
    ------
    InvalidVariantFileError
        Missing column, non-numeric or disagreeing offsets/anchors within the draw.
    """
    spec = prof.get("relative_date")
    if not spec or rows.empty:
        return None
    column = spec["column"]
    if column not in rows.columns:
        raise InvalidVariantFileError(f"relative_date column {column!r} missing",
                                      path=path, record="header", field=column)
    offset = _number(_single(rows[column], column, rows, path), column, rows, path)
    table_anchor = None
    if spec.get("anchor_column"):
        col = spec["anchor_column"]
        if col not in rows.columns:
            raise InvalidVariantFileError(f"anchor column {col!r} missing", path=path,
                                          record="header", field=col)
        value = _single(rows[col], col, rows, path)
        if value is not None:
            line = int(rows["_line"].iloc[0])
            table_anchor = parse_iso_date(str(value), path=path, record=f"line {line}",
                                          field=col, kind=InvalidVariantFileError)
    if anchor is not None and table_anchor is not None and anchor != table_anchor:
        raise InvalidVariantFileError(
            f"manifest anchor_date {anchor} disagrees with the table's {table_anchor}",
            path=path, field=spec["anchor_column"])
    base = anchor or table_anchor
    if base is None or offset is None:
        return None
    days = offset * DAYS_PER_MONTH if spec.get("unit") == "months" else offset
    return base + timedelta(days=round(days))


def draw_level(rows: pd.DataFrame, prof: Profile, path: Path) -> DrawLevel | None:
    """The draw-level value of a ``level`` profile (units converted to fractions).

    A reported value of 0 is a non-detect: stored as no value with a negative call (a
    non-detect means "below this draw's LoD", never zero).

    Raises
    ------
    InvalidVariantFileError
        Missing column, non-numeric or disagreeing values, an unknown call spelling, or a
        fraction above 1.
    """
    spec = prof["level"]
    if rows.empty:
        return None
    for key in ("value_column", "lod_column", "call_column"):
        col = spec.get(key)
        if col and col not in rows.columns:
            raise InvalidVariantFileError(f"level {key} {col!r} missing", path=path,
                                          record="header", field=col)
    scale = {"percent": 0.01}.get(spec["value_scale"], 1.0)
    value_col = spec["value_column"]
    value = _number(_single(rows[value_col], value_col, rows, path), value_col, rows, path)
    lod = spec.get("lod")
    if spec.get("lod_column"):
        col = spec["lod_column"]
        lod = _number(_single(rows[col], col, rows, path), col, rows, path)
    value = value * scale if value is not None else None
    lod = lod * scale if lod is not None else None
    if spec["kind"] != "mtm_per_ml":
        for number, col in ((value, value_col), (lod, spec.get("lod_column") or "lod")):
            if number is not None and number > 1 + 1e-9:
                raise InvalidVariantFileError(
                    f"{number:g} above 1 after conversion ({spec['value_scale']}); check "
                    "value_scale", path=path, record=f"line {int(rows['_line'].iloc[0])}",
                    field=col)
    call = None
    if spec.get("call_column"):
        col = spec["call_column"]
        raw = _single(rows[col], col, rows, path)
        if raw is not None:
            call = spec["call_values"].get(str(raw))
            if call is None:
                raise InvalidVariantFileError(
                    f"unknown call {raw!r} (profile call_values: "
                    f"{', '.join(spec['call_values'])})", path=path,
                    record=f"line {int(rows['_line'].iloc[0])}", field=col)
    if call is None and value is not None:
        call = "positive" if value > 0 and (lod is None or value >= lod) else "negative"
    if value == 0:
        value = None
    return DrawLevel(value=value, unit=spec["kind"], lod=lod, call=call)
