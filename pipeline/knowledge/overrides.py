"""A lab's own knowledge-base additions and corrections (issue #13 item 5).

The override folder (config ``knowledge.overrides_dir`` or ``CTDNA_KB_OVERRIDES``) lives in
the lab's config folder, never in the shipped ``configs/knowledge``. It may hold:

``override.yaml``
    ``lab`` (who), ``curator``, ``reviewed_on`` (YYYY-MM-DD), ``reason`` and ``manifest``: a
    partial manifest deep-merged over the shipped one. Mappings merge key by key; lists of
    mappings with an ``id`` (``sources``) merge by id; any other list replaces the shipped
    list. ``version``/``released`` cannot be overridden: the version label is computed.
``alterations.tsv`` / ``activity.tsv``
    Rows with the shipped columns; a row replaces the shipped row with the same ``kb_id``
    (activity: same ``kb_id`` and ``drug``) or adds a new one.

The merged manifest is validated by the same schema as the shipped one (unknown keys are
errors) and the KB version becomes ``<shipped version>+lab.<sha8>``, the first 8 hex digits
of the SHA-256 of the override files, so every assessment records which lab knowledge it used.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import KnowledgeBaseError

OVERRIDE_FILES = ("override.yaml", "alterations.tsv", "activity.tsv")


class LabOverride(BaseModel):
    """Schema of ``override.yaml`` (unknown keys rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lab: str = Field(..., min_length=1, description="Lab or site name")
    curator: str = Field(..., min_length=1, description="Who reviewed this override")
    reviewed_on: str = Field(..., pattern=r"^\d{4}-\d{2}-\d{2}$")
    reason: str = Field(..., min_length=1, description="Why the lab deviates from the shipped KB")
    manifest: dict[str, Any] = Field(default_factory=dict)


def override_fingerprint(folder: Path) -> str:
    """``lab.<sha8>`` over the names and bytes of the override files present."""
    digest = hashlib.sha256()
    for name in OVERRIDE_FILES:
        path = folder / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"lab.{digest.hexdigest()[:8]}"


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base.get(key), value) if key in base else value
        return merged
    if (isinstance(base, list) and isinstance(override, list)
            and all(isinstance(x, dict) and "id" in x for x in [*base, *override])):
        by_id = {x["id"]: x for x in base}
        for item in override:
            by_id[item["id"]] = _merge(by_id[item["id"]], item) if item["id"] in by_id else item
        return list(by_id.values())
    return override


def _replace_rows(shipped: pd.DataFrame, lab: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    kept = shipped.merge(lab[key].drop_duplicates(), on=key, how="left", indicator=True)
    kept = kept[kept["_merge"] == "left_only"].drop(columns="_merge")
    return pd.concat([kept, lab], ignore_index=True)


def apply_overrides(folder: Path, manifest: dict[str, Any], alterations: pd.DataFrame,
                    activity: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame,
                                                     pd.DataFrame, str]:
    """Merge the lab override folder over the shipped data.

    Returns
    -------
    tuple
        ``(manifest, alterations, activity, label)``; ``label`` is ``lab.<sha8>``.

    Raises
    ------
    KnowledgeBaseError
        Missing folder, no override file in it, invalid ``override.yaml`` (naming the field),
        an attempt to set ``version``/``released``, or a merged manifest the schema rejects.
    """
    from pipeline.knowledge.data import read_manifest, read_tsv, validate_manifest

    if not folder.is_dir():
        raise KnowledgeBaseError(f"{folder}: knowledge-base override folder not found")
    present = [name for name in OVERRIDE_FILES if (folder / name).is_file()]
    if not present:
        raise KnowledgeBaseError(f"{folder}: no override file ({', '.join(OVERRIDE_FILES)})")
    unexpected = sorted(p.name for p in folder.iterdir()
                        if p.is_file() and p.name not in OVERRIDE_FILES
                        and not p.name.startswith("."))
    if unexpected:
        raise KnowledgeBaseError(f"{folder}: unexpected files {unexpected} (allowed: "
                                 f"{', '.join(OVERRIDE_FILES)})")
    yaml_path = folder / "override.yaml"
    if yaml_path.is_file():
        try:
            spec = LabOverride.model_validate(read_manifest(yaml_path))
        except ValidationError as exc:
            first = exc.errors()[0]
            field_name = ".".join(str(p) for p in first["loc"])
            raise KnowledgeBaseError(f"{yaml_path}: field {field_name}: {first['msg']}") from None
        for key in ("version", "released"):
            if key in spec.manifest:
                raise KnowledgeBaseError(f"{yaml_path}: field manifest.{key}: cannot be "
                                         "overridden (the lab label is added to the version)")
        manifest = _merge(manifest, spec.manifest)
        validate_manifest(manifest, f"{yaml_path} (merged over the shipped manifest)")
    if (folder / "alterations.tsv").is_file():
        lab = read_tsv(folder / "alterations.tsv", "alterations")
        alterations = _replace_rows(alterations, lab, ["kb_id"])
    if (folder / "activity.tsv").is_file():
        lab = read_tsv(folder / "activity.tsv", "activity")
        activity = _replace_rows(activity, lab, ["kb_id", "drug"])
    return manifest, alterations, activity, override_fingerprint(folder)
