"""FHIR export: one ``Bundle`` after the HL7 Genomics Reporting IG (#14 item 4).

Per assessment a ``DiagnosticReport`` (LOINC 51969-4 "Genetic analysis report"; the tier
and headline as ``conclusion``, the rule engine's config, knowledge-base and pipeline
versions as extensions) whose ``result`` lists one variant ``Observation`` per stored call
of the draws the rules used (LOINC 69548-6 "Genetic variant assessment", Present/Absent;
components gene studied 48018-6, amino-acid change 48005-3, sample VAF 81258-6 as a
fraction 0-1); every alert is a ``DetectedIssue`` implicating those observations.

Why R4B models: ``fhir.resources`` 8 ships R5 by default and R4B (4.3.0) as the closest
release to R4 (4.0.1); R4 itself is only in releases built on pydantic 1, which this
environment (pydantic 2) cannot load. For the resources used here (Bundle,
DiagnosticReport, Observation, DetectedIssue) R4B and R4 have the same elements, so the
JSON is R4-compatible; every resource is validated by parsing it back with the models.

The patient is referenced by the pseudonymous lab ID only (an identifier, no ``Patient``
resource, no name). FAILURE reads "early-switch review by a clinician", never an automatic
change of therapy; unverified knowledge is labelled so.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.assessment import FAILURE_MEANING
from pipeline.export.atomic import write_atomic

if TYPE_CHECKING:
    from pipeline.assessment import Alert, Assessment
    from pipeline.export.data import ExportData

LOINC = "http://loinc.org"
PATIENT_ID_SYSTEM = "urn:ctdna:lab-patient-id"
SAMPLE_ID_SYSTEM = "urn:ctdna:sample-id"
EXTENSION_BASE = "urn:ctdna:fhir:extension:"
VARIANT_PROFILE = ("http://hl7.org/fhir/uv/genomics-reporting/StructureDefinition/variant")
REPORT_PROFILE = ("http://hl7.org/fhir/uv/genomics-reporting/StructureDefinition/"
                  "genomics-report")
_SEVERITY = {"FAILURE": "high", "WARNING": "moderate", "INFO": "low"}
_NAMESPACE = uuid.UUID("6f0c5d1e-2b7a-4c1e-9d55-0a7c1e2b3c4d")


def _urn(*parts: object) -> str:
    """A deterministic ``urn:uuid`` (same input, same id: exports can be diffed)."""
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, '|'.join(map(str, parts)))}"


def _loinc(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code, "display": display}]}


def _subject(patient_id: str) -> dict[str, Any]:
    return {"identifier": {"system": PATIENT_ID_SYSTEM, "value": patient_id}}


def _variant(row: dict[str, Any]) -> dict[str, Any]:
    detected = bool(row["detected"])
    components: list[dict[str, Any]] = []
    if row.get("gene"):
        components.append({"code": _loinc("48018-6", "Gene studied [ID]"),
                           "valueCodeableConcept": {"text": str(row["gene"])}})
    name = row.get("alteration") or row.get("protein_change")
    if name:
        components.append({"code": _loinc("48005-3", "Amino acid change (pHGVS)"),
                           "valueCodeableConcept": {"text": str(name)}})
    vaf = row.get("vaf_fraction")
    if detected and vaf is not None and vaf == vaf:
        components.append({"code": _loinc("81258-6", "Sample variant allelic frequency [NFr]"),
                           "valueQuantity": {"value": round(float(vaf), 6),
                                             "system": "http://unitsofmeasure.org",
                                             "code": "1", "unit": "fraction"}})
    lod = row.get("lod_fraction")
    note = None
    if not detected:
        # a non-detect is "below this draw's LoD", never a VAF of 0
        note = [{"text": "below this draw's limit of detection" + (
            f" ({float(lod):.4g} as a fraction)" if lod is not None and lod == lod else "")}]
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": {"profile": [VARIANT_PROFILE]},
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory"}]}],
        "code": _loinc("69548-6", "Genetic variant assessment"),
        "subject": _subject(str(row["patient_id"])),
        "effectiveDateTime": str(row["collection_date"]),
        "identifier": [{"system": SAMPLE_ID_SYSTEM, "value": str(row["sample_id"])}],
        "valueCodeableConcept": {"coding": [
            {"system": LOINC, "code": "LA9633-4", "display": "Present"} if detected else
            {"system": LOINC, "code": "LA9634-2", "display": "Absent"}]},
        "component": components,
    }
    if note:
        resource["note"] = note
    return resource


def _detected_issue(a: Assessment, alert: Alert, implicated: list[str], index: int,
                    ) -> dict[str, Any]:
    detail = f"{alert.tier}: {alert.title}."
    if alert.tier == "FAILURE":
        detail += f" {FAILURE_MEANING}"
    if alert.suggested_actions:
        detail += " Suggested: " + " ".join(alert.suggested_actions)
    if alert.unverified_knowledge:
        detail += " [UNVERIFIED knowledge: check against the primary source before use]"
    return {
        "resourceType": "DetectedIssue",
        "identifier": [{"system": "urn:ctdna:alert",
                        "value": f"{a.patient_id}:{a.as_of.isoformat()}:{index}"}],
        "status": "final",
        "code": {"coding": [{"system": "urn:ctdna:rule", "code": alert.rule_id,
                             "display": alert.title}]},
        "severity": _SEVERITY.get(alert.tier, "low"),
        "patient": _subject(a.patient_id),
        "identifiedDateTime": a.as_of.isoformat(),
        "implicated": [{"reference": ref} for ref in implicated],
        "evidence": [{"code": [{"text": text}]} for text in alert.evidence],
        "detail": detail,
    }


def _report(data: ExportData, a: Assessment, results: list[str]) -> dict[str, Any]:
    conclusion = a.headline or a.status
    if a.status == "FAILURE":
        conclusion += f" ({FAILURE_MEANING})"
    return {
        "resourceType": "DiagnosticReport",
        "meta": {"profile": [REPORT_PROFILE]},
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                  "code": "GE", "display": "Genetics"}]}],
        "code": _loinc("51969-4", "Genetic analysis report"),
        "subject": _subject(a.patient_id),
        "effectiveDateTime": a.as_of.isoformat(),
        "issued": data.generated_at.isoformat(),
        "result": [{"reference": ref} for ref in results],
        "conclusion": conclusion,
        "extension": [
            {"url": EXTENSION_BASE + "status", "valueString": a.status},
            {"url": EXTENSION_BASE + "config-version", "valueString": a.config_version},
            {"url": EXTENSION_BASE + "kb-version", "valueString": a.kb_version},
            {"url": EXTENSION_BASE + "pipeline-version", "valueString": a.pipeline_version},
            {"url": EXTENSION_BASE + "draws-used", "valueString": ";".join(a.draws_used)},
        ],
    }


def bundle(data: ExportData, what: tuple[str, ...]) -> dict[str, Any]:
    """The export as one FHIR ``Bundle`` (type ``collection``), validated by the models."""
    from fhir.resources.R4B.bundle import Bundle

    entries: list[dict[str, Any]] = []
    obs_by_patient: dict[str, list[dict[str, Any]]] = {}
    for record in data.observations.to_dict("records"):
        row = {str(k): v for k, v in record.items()}
        obs_by_patient.setdefault(str(row["patient_id"]), []).append(row)
    for a in data.assessments:
        used = set(a.draws_used)
        refs: dict[str, list[str]] = {}
        for row in obs_by_patient.get(a.patient_id, []):
            if row["sample_id"] not in used and "observations" not in what:
                continue
            url = _urn("obs", row["patient_id"], row["sample_id"], row.get("record_index"),
                       row.get("gene"), row.get("alteration"))
            refs.setdefault(str(row["sample_id"]), []).append(url)
            entries.append({"fullUrl": url, "resource": _variant(row)})
        if "assessments" in what:
            results = [u for s in a.draws_used for u in refs.get(s, [])]
            entries.append({"fullUrl": _urn("report", a.patient_id, a.as_of),
                            "resource": _report(data, a, list(dict.fromkeys(results)))})
        if "alerts" in what:
            for i, alert in enumerate(a.alerts, start=1):
                implicated = [u for s in alert.draws_used for u in refs.get(s, [])]
                entries.append({"fullUrl": _urn("issue", a.patient_id, a.as_of, i),
                                "resource": _detected_issue(a, alert,
                                                            list(dict.fromkeys(implicated)), i)})
    doc = {"resourceType": "Bundle", "type": "collection",
           "timestamp": data.generated_at.isoformat(), "entry": entries}
    # Validation: the models reject unknown elements, wrong types and bad codes/dates.
    return json.loads(Bundle.model_validate(doc).model_dump_json(exclude_none=True))


def write(data: ExportData, out: Path, what: tuple[str, ...]) -> list[Path]:
    """Write ``export.fhir.json`` (a validated R4-compatible Bundle)."""
    doc = bundle(data, what)
    return [write_atomic(out / "export.fhir.json", json.dumps(doc, indent=2) + "\n")]
