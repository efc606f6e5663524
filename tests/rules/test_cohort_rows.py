"""Rows and columns read from cohort arrays hold the cells pandas gives (#11 item 2).

The rules write findings from ``Row`` objects (``pipeline/rules/cohort.py``) instead of
``frame.iloc[i]`` Series; a value of another type (a numpy datetime instead of a
Timestamp, a Python float instead of numpy's) could change a finding's text or date.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.rules.cohort import Columns, FrameColumns, Row


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "sample_id": ["S1", "S2", "S3"],
        "collection_date": pd.to_datetime(["2025-01-03", "2025-02-03", None]),
        "day": np.array([0, 31, 66], dtype="int64"),
        "ctdna_level": [0.012, np.nan, 0.5],
        "detected": [True, False, True],
        "level_markers": ["TP53 R273H", None, np.nan],
        "alt_reads": pd.array([5, None, 7], dtype="Int64"),
        "assay": pd.array(["a", None, "c"], dtype="string"),
    }, index=[10, 11, 12])  # labels are not positions


def _same(a: object, b: object) -> bool:
    """The same type, and equal or both missing (NaN, NaT, None, pd.NA)."""
    if type(a) is not type(b):
        return False
    if pd.isna(a) or pd.isna(b):
        return bool(pd.isna(a) and pd.isna(b))
    return bool(a == b)


def test_a_row_holds_the_cells_and_types_of_iloc(frame: pd.DataFrame) -> None:
    columns = FrameColumns(frame)
    for position in range(len(frame)):
        row, series = columns.row(position), frame.iloc[position]
        assert isinstance(row, Row) and list(row) == list(series.index) and len(row) == 8
        for name in frame.columns:
            assert _same(row[name], series[name]), (position, name, row[name], series[name])
            assert _same(row.get(name), series.get(name))
        assert row.get("absent", "default") == series.get("absent", "default") == "default"
        with pytest.raises(KeyError):
            row["absent"]


def test_columns_of_a_frame_are_its_values(frame: pd.DataFrame) -> None:
    columns = Columns.of(frame)
    assert len(columns) == 3
    assert isinstance(columns["collection_date"][0], pd.Timestamp)
    assert np.asarray(columns["ctdna_level"], dtype=float)[1] != np.asarray(
        columns["ctdna_level"], dtype=float)[1]  # NaN stays NaN
    assert list(np.asarray(columns["sample_id"])) == ["S1", "S2", "S3"]
