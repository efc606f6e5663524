"""``ctdna kb diff OLD NEW``: what changed between two knowledge-base versions, and which
stored assessments would change (issue #13 item 4).

The data diff compares entries, activity cells and the manifest sections a curator reviews
(drugs, trials, strategies, CHIP genes, sources). The re-evaluation dry run evaluates the
stored patients with the existing use case (:func:`pipeline.service.evaluate_patients`,
``persist=False``: nothing is written) once per knowledge base and lists the patients whose
status, alerts, therapy options or unverified flag differ. Stored observations are first
recognised again with each knowledge base in memory (:func:`pipeline.ingest.recognise_stored`,
the same code ``reannotate`` uses), so new or relabelled entries count too.
"""

from __future__ import annotations

from datetime import date
from typing import Any, cast

import pandas as pd

from pipeline.knowledge import KnowledgeBase


def _rows(frame: pd.DataFrame, key: list[str]) -> dict[str, dict[str, str]]:
    return {" ".join(str(r[k]) for k in key): {str(c): str(v) for c, v in r.items()}
            for r in frame.to_dict("records")}


def _compare(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = []
    for key in sorted(set(old) & set(new)):
        if old[key] != new[key]:
            fields = sorted(f for f in set(old[key]) | set(new[key])
                            if old[key].get(f) != new[key].get(f)) \
                if isinstance(old[key], dict) and isinstance(new[key], dict) else []
            changed.append({"id": key, "fields": fields,
                            "old": {f: old[key].get(f) for f in fields} if fields else old[key],
                            "new": {f: new[key].get(f) for f in fields} if fields else new[key]})
    return {"added": added, "removed": removed, "changed": changed}


def data_diff(old: KnowledgeBase, new: KnowledgeBase) -> dict[str, Any]:
    """Differences in entries, activity, drugs, trials, strategies, CHIP genes and sources."""
    mo, mn = old.data.manifest, new.data.manifest
    curated = ["kb_id", "evidence_label", "citations", "category", "components", "notes"]
    sections = {
        "entries": _compare(_rows(old.data.entries[curated], ["kb_id"]),
                            _rows(new.data.entries[curated], ["kb_id"])),
        "activity": _compare(_rows(old.data.activity, ["kb_id", "drug"]),
                             _rows(new.data.activity, ["kb_id", "drug"])),
        "drugs": _compare(mo["drugs"], mn["drugs"]),
        "trials": _compare(mo.get("trials", {}), mn.get("trials", {})),
        "strategies": _compare(
            {f"{k}: {s['name']}": s for k, v in mo["strategies"].items() for s in v},
            {f"{k}: {s['name']}": s for k, v in mn["strategies"].items() for s in v}),
        "sources": _compare({s["id"]: s for s in mo["sources"]},
                            {s["id"]: s for s in mn["sources"]}),
    }
    sections["chip_genes"] = {
        "added": sorted(set(new.chip_genes) - set(old.chip_genes)),
        "removed": sorted(set(old.chip_genes) - set(new.chip_genes)), "changed": []}
    counts = {k: sum(len(v[x]) for x in ("added", "removed", "changed"))
              for k, v in sections.items()}
    return {"old_version": old.version, "new_version": new.version, "counts": counts,
            **sections}


def _outcome(assessment: Any) -> dict[str, Any]:
    return {
        "status": assessment.status,
        "alerts": sorted(f"{a.rule_id}:{a.tier}" for a in assessment.alerts),
        "therapy_options": sorted({f"{a.rule_id}: {o.name}" for a in assessment.alerts
                                   for o in a.therapy_options}),
        "unverified_knowledge": any(a.unverified_knowledge for a in assessment.alerts),
    }


class _RecognisedStore:
    """Read-only view of a store whose observations are recognised by another KB version."""

    def __init__(self, store: Any, settings: Any, kb: KnowledgeBase) -> None:
        self._store, self._settings, self._kb = store, settings, kb

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def observations_frame(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        from pipeline.ingest import recognise_stored

        frame = self._store.observations_frame(*args, **kwargs)
        if frame.empty:
            return frame
        fresh = recognise_stored(frame, self._settings, self._kb).set_index("observation_id")
        out = frame.copy()
        for column in ("gene", "alteration", "category", "kb_id"):
            out[column] = out["observation_id"].map(fresh[column])
        return out


def reevaluation_dry_run(store: Any, settings: Any, old: KnowledgeBase, new: KnowledgeBase,
                         as_of: date | None = None) -> dict[str, Any]:
    """Evaluate every stored patient with ``old`` and ``new``; nothing is stored.

    Returns
    -------
    dict
        ``patients`` (evaluated), ``changed`` (one row per patient whose outcome differs,
        with ``old``/``new`` status, alerts, therapy options and unverified flag) and the
        ``stored_kb_versions`` of the latest stored assessments.
    """
    from pipeline.service import evaluate_patients

    ids = store.patient_ids()
    if not ids:
        return {"patients": 0, "changed": [], "stored_kb_versions": {}}
    outcomes = []
    for kb in (old, new):
        view = cast(Any, _RecognisedStore(store, settings, kb))
        outcomes.append({r.assessment.patient_id: _outcome(r.assessment)
                         for r in evaluate_patients(view, settings, kb, ids, as_of,
                                                    persist=False)})
    before, after = outcomes
    changed = []
    for pid in sorted(after):
        if before.get(pid) != after[pid]:
            b = before.get(pid) or {}
            fields = [k for k in after[pid] if b.get(k) != after[pid][k]]
            changed.append({"patient_id": pid, "fields": fields,
                            "old": {k: b.get(k) for k in fields},
                            "new": {k: after[pid][k] for k in fields}})
    stored = store.assessments_frame(latest_only=True)
    versions = (stored["kb_version"].value_counts().to_dict()
                if len(stored) and "kb_version" in stored.columns else {})
    return {"patients": len(after), "changed": changed,
            "stored_kb_versions": {str(k): int(v) for k, v in versions.items()}}
