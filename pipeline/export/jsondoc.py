"""JSON export, validated against the published JSON Schema before it is written (#14 item 4).

The document carries ``schema_version`` (semantic versioning: a new optional field is a
minor version, a removed or retyped field a major one); the schema is
``pipeline/export/schemas/export-v1.schema.json`` (shipped with the package). Each
assessment is exactly the object ``ctdna evaluate --json`` prints (the contract in
``spec/interfaces.md``), so a consumer of one reads the other.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.export.atomic import write_atomic

if TYPE_CHECKING:
    from pipeline.export.data import ExportData

SCHEMA_VERSION = "1.0.0"
SCHEMA_PATH = Path(__file__).with_name("schemas") / "export-v1.schema.json"


@cache
def schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of the export document."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def _plain(value: Any) -> Any:
    import pandas as pd

    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if not isinstance(value, str | bool) and pd.isna(value):
        return None
    return value


def document(data: ExportData, what: tuple[str, ...]) -> dict[str, Any]:
    """The export document (plain JSON types), not yet validated."""
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": data.generated_at.isoformat(),
        "pipeline_version": data.pipeline_version,
        "config_version": data.config_version,
        "kb_version": data.kb_version,
    }
    if "observations" in what:
        doc["observations"] = [{k: _plain(v) for k, v in row.items()}
                               for row in data.observations.to_dict("records")]
    if "assessments" in what:
        doc["assessments"] = [a.contract_json() for a in data.assessments]
    if "alerts" in what:
        doc["alerts"] = [{k: _plain(v) for k, v in row.items()} for row in data.alert_rows()]
    return doc


def validate(doc: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``doc`` does not match the schema."""
    import jsonschema

    jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)


def write(data: ExportData, out: Path, what: tuple[str, ...]) -> list[Path]:
    """Validate, then write ``export.json``."""
    doc = document(data, what)
    validate(doc)  # never publish a document that breaks the published schema
    return [write_atomic(out / "export.json", json.dumps(doc, indent=2, ensure_ascii=False)
                         + "\n")]
