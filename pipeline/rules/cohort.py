"""Whole-cohort precomputation for the rule engine (issue #11 item 2).

The rules read one line of one patient at a time. Cutting that line's draws, on-treatment
draws, evaluable draws, baseline row, observations and per-draw levels out of the cohort
frames with boolean masks cost one pandas pass per patient and property (about 0.1-1 ms
each, 50-90 ms per patient). Here every line's rows are placed contiguously once for the
cohort, so that a line's frames are positional slices (views), computed lazily: a rule that
never reads a frame never pays for it.

Every slice holds exactly the rows, row labels, columns and order the per-patient
boolean-mask path gave, so the rules' results are unchanged byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from pandas.api.types import is_extension_array_dtype
from pydantic import TypeAdapter

from pipeline.assessment import DrawLevel

_KEY = ["patient_id", "line"]

#: A row the rules read cells from: a :class:`Row` of the engine's cohort arrays, or a
#: pandas Series (a frame built outside the engine). Both give the same cells.
RowLike: TypeAlias = "Row | pd.Series"


class CohortLines:
    """Every (patient, line) of the cohort as contiguous row ranges of cohort frames.

    Parameters
    ----------
    draws
        ``Kinetics.draws`` (one row per patient, line and draw; baseline first).
    observations
        The cohort observations with the engine's columns (marker keys, masks), or None
        when there are none.
    """

    def __init__(self, draws: pd.DataFrame, observations: pd.DataFrame | None,
                 gates: Mapping[str, Callable[[pd.DataFrame], Any]] | None = None) -> None:
        codes = draws.groupby(_KEY, sort=False).ngroup().to_numpy()
        # Stable: the rows of each line keep their order (baseline first, then by date).
        order = np.argsort(codes, kind="stable")
        self.draws = draws.take(order)
        self._codes = codes[order]
        # No draws at all (as_of before every draw): no lines, not one empty line.
        firsts = (np.flatnonzero(np.r_[True, self._codes[1:] != self._codes[:-1]])
                  if len(self._codes) else np.zeros(0, dtype=np.intp))
        self._group = {
            (str(p), int(ln)): i for i, (p, ln) in enumerate(zip(
                self.draws["patient_id"].to_numpy()[firsts],
                self.draws["line"].to_numpy()[firsts], strict=True))
        }
        n = len(self._group)
        self._draw_bounds = _bounds(self._codes, n)
        role = self.draws["role"].to_numpy()
        treated = role == "on_treatment"
        self.treated = self.draws[treated]
        self._treated_bounds = _bounds(self._codes[treated], n)
        informative = self.treated["informative"].astype(bool).to_numpy()
        self.evaluable = self.treated[informative]
        self._evaluable_bounds = _bounds(self._codes[treated][informative], n)
        self._baseline_pos = _first_positions(self._codes, role == "baseline", n)
        self._levels = _cohort_levels(self.draws, self._codes, n)
        self.observations, self._obs_bounds = _line_observations(
            observations, self.draws, self._codes, n)
        self._mark_new_since_baseline()
        self._gates = {name: self._any_per_line(fn) for name, fn in (gates or {}).items()}
        # Row access without pandas Series (#11 item 2): arrays built on first use.
        self.draw_columns = FrameColumns(self.draws)
        self.evaluable_columns = FrameColumns(self.evaluable)
        self.treated_columns = FrameColumns(self.treated)
        self.observation_columns = (None if self.observations is None
                                    else FrameColumns(self.observations))

    def _line_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """The line (group number) of observation rows (positions in ``observations``)."""
        return np.searchsorted(self._obs_bounds, rows, side="right") - 1

    def _mark_new_since_baseline(self) -> None:
        """Add column ``new_since_baseline`` to the line observations, for the whole cohort.

        True when the row's marker was not detected at the line's baseline draw (the first
        baseline row). The one computation of that test on the engine's path: the line gates
        and ``catalogue.new_detections`` both read this column (#11 item 2).
        """
        obs = self.observations
        if obs is None:
            return
        line = self._line_of_rows(np.arange(len(obs)))
        base_pos = self._baseline_pos[line]
        base_sample = np.where(base_pos >= 0,
                               self.draws["sample_id"].to_numpy()[np.maximum(base_pos, 0)],
                               None)
        at_base = ((obs["sample_id"].to_numpy() == base_sample) & (base_pos >= 0)
                   & obs["detected"].to_numpy(dtype=bool))
        keys = pd.MultiIndex.from_arrays([line, obs["marker_key"].to_numpy()])
        obs["new_since_baseline"] = ~keys.isin(keys[at_base])

    def _any_per_line(self, gate: Callable[[pd.DataFrame], Any]) -> np.ndarray:
        """Per line: does any of its observations meet ``gate`` (one vectorized pass)."""
        n = len(self._obs_bounds) - 1
        obs = self.observations
        if obs is None:
            return np.zeros(n, dtype=bool)
        rows = np.flatnonzero(np.asarray(gate(obs), dtype=bool))
        return np.bincount(self._line_of_rows(rows), minlength=n)[:n] > 0

    def line(self, patient: str, line: int) -> LineParts | None:
        """The line's slices, or None when the line has no draw."""
        group = self._group.get((patient, line))
        return None if group is None else LineParts(self, group)


class LineParts:
    """One line's frames: positional slices of :class:`CohortLines`, built on first use."""

    def __init__(self, cohort: CohortLines, group: int) -> None:
        self._cohort = cohort
        self._group = group

    def _slice(self, frame: pd.DataFrame, bounds: np.ndarray) -> pd.DataFrame:
        start, stop = bounds[self._group], bounds[self._group + 1]
        return frame.iloc[start:stop]

    @cached_property
    def draws(self) -> pd.DataFrame:
        """The line's ``Kinetics.draws`` rows (baseline first), cohort row labels."""
        return self._slice(self._cohort.draws, self._cohort._draw_bounds)

    @cached_property
    def treated(self) -> pd.DataFrame:
        """The line's on-treatment draws."""
        return self._slice(self._cohort.treated, self._cohort._treated_bounds)

    @cached_property
    def evaluable(self) -> pd.DataFrame:
        """The line's informative on-treatment draws (Q1 excluded)."""
        return self._slice(self._cohort.evaluable, self._cohort._evaluable_bounds)

    @cached_property
    def baseline(self) -> Row | None:
        """The line's first baseline row (a provisional reference included), or None."""
        pos = self._cohort._baseline_pos[self._group]
        return None if pos < 0 else self._cohort.draw_columns.row(int(pos))

    def arrays(self, frame: str) -> Columns:
        """The columns of the line's ``frame`` (``draws``, ``treated``, ``evaluable`` or
        ``observations``) as array slices: no pandas frame built (#11 item 2)."""
        columns, start, stop = self._rows_of(frame)
        return Columns(lambda name: columns.array(name)[start:stop], stop - start)

    def row(self, frame: str, position: int) -> Row:
        """Row ``position`` of the line's ``frame`` (negative counts from the end)."""
        columns, start, stop = self._rows_of(frame)
        at = (stop if position < 0 else start) + position
        if not start <= at < stop:
            raise IndexError(f"row {position} of a line with {stop - start} {frame} rows")
        return columns.row(at)

    def _rows_of(self, frame: str) -> tuple[FrameColumns, int, int]:
        """The cohort arrays of ``frame`` and the line's row range in them."""
        cohort = self._cohort
        columns, bounds = {
            "draws": (cohort.draw_columns, cohort._draw_bounds),
            "treated": (cohort.treated_columns, cohort._treated_bounds),
            "evaluable": (cohort.evaluable_columns, cohort._evaluable_bounds),
            "observations": (cohort.observation_columns, cohort._obs_bounds),
        }[frame]
        assert columns is not None, "a line without observations has no observation rows"
        return columns, int(bounds[self._group]), int(bounds[self._group + 1])

    @cached_property
    def observations(self) -> pd.DataFrame | None:
        """The line's observations with ``day`` and ``role``; None when it has none."""
        cohort = self._cohort
        if cohort.observations is None:
            return None
        start, stop = cohort._obs_bounds[self._group], cohort._obs_bounds[self._group + 1]
        if start == stop:
            return None
        frame = cohort.observations.iloc[start:stop]
        # A 0..n-1 index, as the per-line frames always had (no copy of the data: pandas
        # 2.x still takes ``copy``; pandas-stubs already dropped it for pandas 3).
        return frame.set_axis(pd.RangeIndex(stop - start), axis=0,
                              copy=False)  # type: ignore[call-arg]

    @property
    def has_observations(self) -> bool:
        """True when the line has observations (without cutting its frame)."""
        cohort = self._cohort
        return (cohort.observations is not None
                and cohort._obs_bounds[self._group] != cohort._obs_bounds[self._group + 1])

    def meets(self, gate: str) -> bool:
        """True when some observation of the line meets the line gate ``gate``."""
        return bool(self._cohort._gates[gate][self._group])

    @property
    def levels(self) -> list[DrawLevel]:
        """The line's per-draw levels (a fresh list; the DrawLevel objects are shared)."""
        return list(self._cohort._levels[self._group])


class Columns:
    """A frame's columns as arrays (``columns[name]``, see :func:`column_values`) and its
    row count (``len``): what the rules read per line, without building the frame."""

    __slots__ = ("_get", "_length")

    def __init__(self, get: Callable[[str], Any], length: int) -> None:
        self._get = get
        self._length = length

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Columns:
        """The columns of a frame built outside the engine."""
        return cls(lambda name: column_values(frame[name]), len(frame))

    def __getitem__(self, name: str) -> Any:
        return self._get(name)

    def __len__(self) -> int:
        return self._length


def column_values(series: pd.Series) -> Any:
    """A column's values, indexed as ``frame.iloc[i][column]`` gives them.

    Datetime and extension columns: their array yields Timestamps / pd.NA, as a row Series
    holds them; numpy columns: the ndarray (numpy scalars, as a row holds them).
    """
    dtype = series.dtype
    if dtype.kind in "mM" or is_extension_array_dtype(dtype):
        return series.array
    return series.to_numpy()


class FrameColumns:
    """One cohort frame's columns as arrays, each built on first use, for row access.

    ``frame.iloc[i]`` builds a pandas Series (about 0.1 ms) and each of its cells costs a
    few microseconds more; the rules read a handful of rows per line to write findings, so
    on a 10,000-patient cohort that was a large share of the evaluation (#11 item 2). A
    :class:`Row` reads the same cells from these arrays.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.names = frozenset(map(str, frame.columns))
        self._arrays: dict[str, Any] = {}

    def array(self, column: str) -> Any:
        """The column's values, indexed as ``frame.iloc[i][column]`` gives them."""
        values = self._arrays.get(column)
        if values is None:
            values = self._arrays[column] = column_values(self.frame[column])
        return values

    def row(self, position: int) -> Row:
        """Row at ``position`` (0-based, non-negative) of the frame."""
        return Row(self, position)


class Row(Mapping[str, Any]):
    """One row of a cohort frame: the cells ``frame.iloc[position]`` holds, read lazily.

    A read-only mapping with the Series methods the rules use (``row[column]``,
    ``row.get(column, default)``).
    """

    __slots__ = ("_columns", "_position")

    def __init__(self, columns: FrameColumns, position: int) -> None:
        self._columns = columns
        self._position = position

    def __getitem__(self, column: str) -> Any:
        if column not in self._columns.names:
            raise KeyError(column)
        return self._columns.array(column)[self._position]

    def get(self, column: str, default: Any = None) -> Any:
        if column not in self._columns.names:
            return default
        return self._columns.array(column)[self._position]

    def __iter__(self) -> Iterator[str]:
        return iter(map(str, self._columns.frame.columns))

    def __len__(self) -> int:
        return len(self._columns.names)


def _bounds(codes: np.ndarray, n: int) -> np.ndarray:
    """Start offsets of groups ``0..n-1`` in sorted ``codes``, plus the end (length n+1)."""
    return np.searchsorted(codes, np.arange(n + 1), side="left")


def _first_positions(codes: np.ndarray, where: np.ndarray, n: int) -> np.ndarray:
    """Position of the first row of each group with ``where`` True; -1 when none."""
    out = np.full(n, -1, dtype=np.int64)
    positions = np.flatnonzero(where)
    chosen = codes[positions]
    # Reversed assignment: the earliest position of a group is written last and wins.
    out[chosen[::-1]] = positions[::-1]
    return out


def _cohort_levels(draws: pd.DataFrame, codes: np.ndarray, n: int) -> list[list[DrawLevel]]:
    """Every line's per-draw levels as the rules used them (reports and emails read these).

    One pass over the cohort instead of a drop_duplicates and an itertuples per patient
    (#11 item 2): each draw once per role, a provisional reference listed once (as the
    reference), then each sample once per line.
    """
    frame = draws.assign(_g=codes)
    keep = ~frame.duplicated(["_g", "sample_id", "role"]).to_numpy()
    provisional = frame["provisional"].astype(bool).to_numpy()
    keep &= ~((frame["role"].to_numpy() == "on_treatment") & provisional)
    rows = frame[keep]
    rows = rows[~rows.duplicated(["_g", "sample_id"]).to_numpy()]
    out: list[list[DrawLevel]] = [[] for _ in range(n)]
    if not len(rows):
        return out
    # Column-wise conversions, then one validation call for all the rows (#11 item 2:
    # a per-row conversion and model call cost 12 microseconds x 120,000 draws).
    fields = {
        "sample_id": rows["sample_id"].astype(str).tolist(),
        "collection_date": pd.to_datetime(rows["collection_date"]).dt.date.tolist(),
        "day": rows["day"].astype("int64").tolist(),
        "role": rows["role"].tolist(),
        "provisional_reference": rows["provisional"].astype(bool).tolist(),
        "detected": rows["detected"].astype(bool).tolist(),
        "level": _floats_or_none(rows["ctdna_level"]),
        "upper_bound": _floats_or_none(rows["upper_bound"]),
        "unit": rows["level_unit"].astype(str).tolist(),
        "source": rows["level_source"].astype(str).tolist(),
        "markers": [None if m is None or pd.isna(m) else str(m)
                    for m in rows["level_markers"].tolist()],
        "informative": rows["informative"].astype(bool).tolist(),
    }
    names = list(fields)
    levels = _DRAW_LEVELS.validate_python(
        [dict(zip(names, values, strict=True)) for values in zip(*fields.values(),
                                                                   strict=True)])
    for group, level in zip(rows["_g"].tolist(), levels, strict=True):
        out[group].append(level)
    return out


_DRAW_LEVELS = TypeAdapter(list[DrawLevel])


def _floats_or_none(column: pd.Series) -> list[float | None]:
    """float per value, None where missing (NaN)."""
    values = pd.to_numeric(column, errors="coerce").astype("float64").tolist()
    return [None if v != v else v for v in values]


def _line_observations(obs: pd.DataFrame | None, draws: pd.DataFrame, codes: np.ndarray,
                       n: int) -> tuple[pd.DataFrame | None, np.ndarray]:
    """Each line's observations with the draw's ``day`` and ``role``, for the whole cohort.

    One merge and one sort for the cohort (#11 item 2) instead of a concat and a merge per
    patient. Rows come in the order the per-patient path gave them: the line's draws in
    order (a provisional reference, listed twice, counts at its first place and its first
    role), each draw's calls in store order.
    """
    empty = np.zeros(n + 1, dtype=np.int64)
    if obs is None or not len(obs) or not len(draws):
        return None, empty
    placed = draws[["line", "sample_id", "day", "role"]].assign(_g=codes)
    placed["_draw_pos"] = placed.groupby("_g", sort=False).cumcount()
    placed = placed.drop_duplicates(["_g", "sample_id"])
    rows = obs.assign(_obs_pos=np.arange(len(obs)))
    merged = rows.merge(placed, on="sample_id", how="inner")
    merged = merged.sort_values(["_g", "_draw_pos", "_obs_pos"], kind="mergesort")
    bounds = _bounds(merged["_g"].to_numpy(), n)
    merged = merged.drop(columns=["line", "_g", "_draw_pos", "_obs_pos"])
    return merged.reset_index(drop=True), bounds

