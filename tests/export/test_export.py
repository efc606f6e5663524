"""``ctdna export`` (#14 item 4): TSV/CSV round trip, formula safety, JSON Schema, FHIR.

Real stores (SQLite and PostgreSQL) filled by the real ingest of the demo inbox; the CLI
runs as a subprocess for the exit-status cases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from pipeline.config import load_settings
from pipeline.export import export
from pipeline.export.data import RENAMED, ExportData
from pipeline.export.jsondoc import SCHEMA_VERSION, schema, validate
from pipeline.export.tabular import read_table, safe_cell, unsafe_cell, writer
from pipeline.ingest import ingest_manifest, ingest_therapies
from pipeline.knowledge import load_knowledge_base
from pipeline.store.repository import Store

AS_OF = date(2026, 12, 1)
CTDNA = [sys.executable, "-m", "pipeline.cli"]


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


def _demo_store(tmp_path: Path, db_url: str, kb):
    from pipeline.demo.data import write_demo_inbox

    inbox, config = write_demo_inbox(tmp_path / "demo", date(2026, 11, 21))
    batch = inbox / "batch-001"
    settings = load_settings(config, env={})
    store = Store(db_url)
    ingest_manifest(batch / "manifest.csv", store, settings, kb)
    ingest_therapies(batch / "therapies.csv", store)
    return store, settings, config


@pytest.fixture
def demo_store(tmp_path: Path, db_url: str, kb):
    store, settings, config = _demo_store(tmp_path, db_url, kb)
    yield store, settings, config
    store.dispose()


def test_tsv_round_trip_equals_the_store(demo_store, kb, tmp_path):
    store, settings, _ = demo_store
    out = tmp_path / "out"
    written = export(store, settings, kb, out, fmt="tsv", as_of=AS_OF)
    assert sorted(p.name for p in written) == ["alerts.tsv", "assessments.tsv",
                                               "observations.tsv"]
    back = read_table(out / "observations.tsv")
    stored = store.observations_frame().rename(columns=RENAMED)
    assert len(back) == len(stored) > 0
    assert list(back["sample_id"]) == list(stored["sample_id"])
    # every value equals the store's, typed back (floats exactly: VAF as a fraction 0-1)
    for column in back.columns:
        want, got = stored[column].reset_index(drop=True), back[column]
        if pd.api.types.is_bool_dtype(want):
            got = got.map({"True": True, "False": False}).astype(bool)
        elif pd.api.types.is_integer_dtype(want):
            got = pd.to_numeric(got).astype(want.dtype)
        elif pd.api.types.is_float_dtype(want):
            got = pd.to_numeric(got).astype("float64")
        else:
            want = want.map(lambda v: None if v is None or (isinstance(v, float) and v != v)
                            else str(v))
            got = got.astype(object).where(got.notna(), None)
        pd.testing.assert_series_equal(got, want, check_names=False, obj=column)
    assert back["vaf_fraction"].astype(float).max() <= 1.0
    assessments = read_table(out / "assessments.tsv")
    assert set(assessments["status"]) <= {"OPTIMAL", "WARNING", "FAILURE", "NOT_EVALUABLE"}
    alerts = read_table(out / "alerts.tsv")
    assert {"rule_id", "tier", "draws_used", "config_version", "kb_version"} <= set(alerts)
    assert not alerts["alterations"].fillna("").str.contains("None").any()


def test_formula_like_text_is_escaped_and_numbers_stay_numbers(tmp_path):
    assert safe_cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)" and safe_cell("L858R") == "L858R"
    assert unsafe_cell("'=1+1") == "=1+1" and unsafe_cell("'quoted") == "'quoted"
    frame = pd.DataFrame({"patient_id": ["P1", "P2"], "protein_change": ["=cmd|'/c calc'!A0",
                                                                         "-2+3"],
                          "copy_number": [-0.4, 2.5]})
    data = ExportData(frame, [], {}, datetime.now(UTC), "0", "c", "k")
    out = tmp_path / "x"
    out.mkdir()
    writer("csv")(data, out, ("observations",))
    raw = (out / "observations.csv").read_text(encoding="utf-8").splitlines()
    assert raw[1].startswith("P1,'=cmd") and raw[2] == "P2,'-2+3,2.5"
    assert raw[1].endswith(",-0.4")  # a negative number is not text: no prefix
    back = read_table(out / "observations.csv")
    assert list(back["protein_change"]) == ["=cmd|'/c calc'!A0", "-2+3"]


def test_json_export_validates_against_the_published_schema(demo_store, kb, tmp_path):
    store, settings, _ = demo_store
    export(store, settings, kb, tmp_path, fmt="json", as_of=AS_OF)
    doc = json.loads((tmp_path / "export.json").read_text(encoding="utf-8"))
    assert doc["schema_version"] == SCHEMA_VERSION
    validate(doc)
    assert doc["kb_version"] == str(kb.version)
    assert all(0 <= o["vaf_fraction"] <= 1 for o in doc["observations"]
               if o["vaf_fraction"] is not None)
    evaluated = {a["patient_id"]: a for a in doc["assessments"]}
    assert set(evaluated) == set(store.patient_ids())
    # a document that breaks the schema is refused (a VAF in percent, an unknown field)
    broken = json.loads(json.dumps(doc))
    broken["observations"][0]["vaf_fraction"] = 6.2
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    broken = dict(doc, extra_field=1)
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    assert schema()["$schema"].endswith("2020-12/schema")


def test_fhir_bundle_validates_and_follows_genomics_reporting(demo_store, kb, tmp_path):
    from fhir.resources.R4B.bundle import Bundle

    store, settings, _ = demo_store
    export(store, settings, kb, tmp_path, fmt="fhir", as_of=AS_OF)
    text = (tmp_path / "export.fhir.json").read_text(encoding="utf-8")
    bundle = Bundle.model_validate_json(text)  # parses back: valid resources
    kinds = [e.resource.__resource_type__ for e in bundle.entry]
    patients = store.patient_ids()
    assert kinds.count("DiagnosticReport") == len(patients)
    reports = [e.resource for e in bundle.entry
               if e.resource.__resource_type__ == "DiagnosticReport"]
    urls = {e.fullUrl for e in bundle.entry}
    for report in reports:
        assert report.code.coding[0].code == "51969-4"
        assert all(r.reference in urls for r in report.result)  # results resolve in the bundle
        if report.conclusion.startswith("FAILURE"):
            assert "early-switch review by a clinician" in report.conclusion
    issues = [e.resource for e in bundle.entry if e.resource.__resource_type__ ==
              "DetectedIssue"]
    assert issues and all(i.patient.identifier.value in patients for i in issues)
    variants = [e.resource for e in bundle.entry if e.resource.__resource_type__ ==
                "Observation"]
    assert all(v.code.coding[0].code == "69548-6" for v in variants)
    vafs = [c.valueQuantity.value for v in variants for c in v.component or []
            if c.code.coding[0].code == "81258-6"]
    assert vafs and all(0 < float(x) <= 1 for x in vafs)
    assert '"name"' not in text and "Patient/" not in text  # pseudonymous IDs only


def _run(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop("CTDNA_DEBUG", None)
    return subprocess.run([*CTDNA, "export", "--db", db, *args], capture_output=True,
                          text=True, env=env, timeout=240)


def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, kb):
    db_url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    store, _, config = _demo_store(tmp_path, db_url, kb)
    store.dispose()
    out = tmp_path / "out"
    cases = [
        (["--patient", "NOPE-9", "--out", str(out)], "unknown patient 'NOPE-9'"),
        (["--as-of", "2026-13-01", "--out", str(out)], "field --as-of"),
        (["--format", "xlsx", "--out", str(out)], "unknown export format 'xlsx'"),
        (["--what", "draws", "--out", str(out)], "unknown table 'draws'"),
    ]
    for args, expected in cases:
        result = _run(*args, "--config", str(config), db=db_url)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.stderr
        assert not out.exists() or not any(out.iterdir())
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    result = _run("--out", str(a_file), "--config", str(config), db=db_url)
    assert result.returncode == 2 and "is not a folder" in result.stderr
    assert a_file.read_text() == "x"
