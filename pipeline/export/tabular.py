"""TSV / CSV export, safe to open in a spreadsheet (#14 item 4).

Formula injection (OWASP "CSV Injection"): a spreadsheet evaluates a text cell that begins
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula. Every *text* cell
that begins with one of these is written with a leading apostrophe (``'=HYPERLINK(...)``),
which spreadsheets show as text. Numbers are written as numbers (a negative copy-number
log ratio stays ``-0.4``), so only text can carry the prefix; :func:`read_table` removes it,
so a re-read table equals what was exported.

Files: ``observations.tsv``, ``assessments.tsv``, ``alerts.tsv`` (``.csv`` with commas).
Fractions are named ``*_fraction`` (0-1, never percent); an empty cell is a missing value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.export.atomic import write_atomic

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.export.data import ExportData

#: Leading characters a spreadsheet would read as the start of a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SEPARATORS = {"tsv": "\t", "csv": ","}


def safe_cell(value: Any) -> Any:
    """The cell as written: text starting like a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def unsafe_cell(value: str) -> str:
    """Inverse of :func:`safe_cell` for a text cell read back."""
    if value.startswith("'") and value[1:].startswith(FORMULA_START):
        return value[1:]
    return value


def _frame(data: ExportData, what: str) -> pd.DataFrame:
    import pandas as pd

    if what == "observations":
        return data.observations
    rows = data.assessment_rows() if what == "assessments" else data.alert_rows()
    return pd.DataFrame(rows)


def _text(frame: pd.DataFrame, sep: str) -> str:
    import pandas as pd

    buffer = io.StringIO()
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(
                lambda v: None if v is None or (not isinstance(v, str) and pd.isna(v))
                else safe_cell(v if isinstance(v, str) else str(v)))
    out.to_csv(buffer, sep=sep, index=False, lineterminator="\n",
               quoting=csv.QUOTE_MINIMAL, na_rep="")
    return buffer.getvalue()


def writer(fmt: str) -> Callable[[ExportData, Path, tuple[str, ...]], list[Path]]:
    """The writer of one delimited format (``tsv`` or ``csv``)."""
    sep = SEPARATORS[fmt]

    def write(data: ExportData, out: Path, what: tuple[str, ...]) -> list[Path]:
        return [write_atomic(out / f"{name}.{fmt}", _text(_frame(data, name), sep))
                for name in what]

    return write


def read_table(path: Path) -> pd.DataFrame:
    """Read an exported table back (text cells un-escaped; types as pandas infers them)."""
    import pandas as pd

    sep = SEPARATORS[path.suffix.lstrip(".")]
    frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    for column in frame.columns:
        frame[column] = frame[column].map(lambda v: unsafe_cell(v) if isinstance(v, str)
                                          else v)
    return frame
