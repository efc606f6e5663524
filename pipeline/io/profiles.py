"""Vendor table profiles: schema, search path and loading (issue #12 item 5).

A profile is a YAML file ``<name>.yaml`` that maps a vendor's table onto the canonical
variant table (or, with ``level``, onto draw-level values). Profiles are the lab's own data:
they are looked up by NAME on a search path, the lab's folders first (``profiles_dir`` in the
config, overridden by ``CTDNA_PROFILES_DIR``, ``os.pathsep``-separated), then the shipped
``configs/profiles``, which is always searched (a lab profile of the same name wins).
Every profile is validated by :class:`ProfileSchema` with unknown keys rejected, so a
mistyped key is a one-line error naming the file and the key, not an ignored option.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.config import configs_dir
from pipeline.errors import InputError
from pipeline.yamlio import load_yaml

#: A profile name: a file stem on the search path, never a path (issue #12 item 5).
PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Days per month for ``relative_date.unit: months`` (mean Gregorian month, 365.25 / 12).
DAYS_PER_MONTH = 365.25 / 12


class ProfileError(InputError):
    """A profile file that is unreadable or does not follow :class:`ProfileSchema`."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleIdSpec(_Strict):
    column: str | None = None
    columns: list[str] | None = None
    separator: str = "_"

    @model_validator(mode="after")
    def _one(self) -> SampleIdSpec:
        if bool(self.column) == bool(self.columns):
            raise ValueError("give exactly one of column / columns")
        return self


class SplitSpec(_Strict):
    column: str
    separator: str = ":"
    into: list[str]


class ExtractSpec(_Strict):
    column: str
    pattern: str


class FusionGenesSpec(_Strict):
    column: str
    pattern: str


class TypeRule(_Strict):
    pattern: str
    type: Literal["snv", "mnv", "indel", "cnv", "fusion"]


class TypeRules(_Strict):
    column: str
    rules: list[TypeRule]


class RelativeDateSpec(_Strict):
    """Collection dates given as an offset from a per-patient anchor date.

    The draw's date is ``anchor + offset`` (months are converted with
    :data:`DAYS_PER_MONTH` and rounded to the nearest day). The anchor is the manifest's
    ``anchor_date`` column, or an ISO date column of the table (``anchor_column``).
    """

    column: str = Field(..., description="Table column holding the offset")
    unit: Literal["days", "months"] = "days"
    anchor_column: str | None = Field(None, description="Table column with an ISO anchor date")


class LevelSpec(_Strict):
    """Draw-level (sample-level) values: one value per draw instead of variants (#9 item 7)."""

    kind: Literal["tumor_fraction", "mean_vaf", "mtm_per_ml"]
    value_column: str
    value_scale: Literal["fraction", "percent", "per_ml"] = Field(
        ..., description="Unit of value_column: fraction 0-1, percent 0-100 or molecules/mL"
    )
    lod_column: str | None = None
    lod: float | None = Field(None, ge=0, description="Fixed LoD in the value's unit")
    call_column: str | None = None
    call_values: dict[str, Literal["positive", "negative"]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _units(self) -> LevelSpec:
        per_ml = self.kind == "mtm_per_ml"
        if per_ml != (self.value_scale == "per_ml"):
            raise ValueError("value_scale per_ml goes with kind mtm_per_ml only")
        if self.call_column and not self.call_values:
            raise ValueError("call_column needs call_values (e.g. {Pos: positive, Neg: "
                             "negative})")
        return self


class ProfileSchema(_Strict):
    """Every key a profile may set (``docs/input-formats.md``)."""

    name: str | None = None
    description: str = ""
    detect_columns: list[str] = Field(default_factory=list)
    comment_prefix: str = "#"
    delimiter: str | None = "auto"
    genome_build: str | None = None
    assay: str | None = Field(None, description="Assay (configs assays) when the manifest "
                              "names none: selects LoD, detection policy and CNV kind")
    sample_id: SampleIdSpec | None = None
    drop_rows: dict[str, list[str]] = Field(default_factory=dict)
    columns: dict[str, str] = Field(default_factory=dict)
    vaf_column: str | None = None
    vaf_unit: Literal["percent", "fraction"] | None = None
    na_values: list[str] = Field(default_factory=list)
    split: list[SplitSpec] = Field(default_factory=list)
    extract: list[ExtractSpec] = Field(default_factory=list)
    fusion_genes: FusionGenesSpec | None = None
    constants: dict[str, Any] = Field(default_factory=dict)
    values: dict[str, dict[str, str]] = Field(default_factory=dict)
    variant_type_rules: TypeRules | None = None
    untyped_rows: Literal["unclassified", "reject"] = Field(
        "unclassified", description="Rows no variant_type rule matches: stored as "
        "'unclassified' with a warning (the draw is kept), or rejected",
    )
    zero_vaf_is_non_detect: bool = True
    dedupe_fusions: bool = False
    cnv_kind: Literal["plasma_cn", "absolute_cn", "fold_change", "log2_ratio"] = "plasma_cn"
    relative_date: RelativeDateSpec | None = None
    level: LevelSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ProfileSchema:
        if self.vaf_column and not self.vaf_unit:
            raise ValueError("vaf_column needs vaf_unit (percent|fraction)")
        return self


class Profile(dict[str, Any]):
    """A validated profile as a mapping (``name`` set to the file stem)."""

    @property
    def name(self) -> str:
        return str(self.get("name") or "canonical")

    @property
    def path(self) -> str | None:
        return self.get("_path")


CANONICAL = Profile(ProfileSchema(name="canonical").model_dump())


def search_path(dirs: Sequence[str | Path] | str | Path | None = None,
                env: Mapping[str, str] | None = None) -> list[Path]:
    """Profile folders in lookup order: the lab's folders, then the shipped one (always).

    Parameters
    ----------
    dirs
        The config's ``profiles_dir`` (one folder or a list; ``CTDNA_PROFILES_DIR`` already
        applied by :func:`pipeline.config.load_settings`). When None, ``CTDNA_PROFILES_DIR``
        (``os.pathsep``-separated) is read from ``env``, for callers without settings.
    env
        Environment mapping (defaults to ``os.environ``).
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    if dirs is None and environ.get("CTDNA_PROFILES_DIR"):
        dirs = [p for p in environ["CTDNA_PROFILES_DIR"].split(os.pathsep) if p]
    if isinstance(dirs, (str, Path)):
        dirs = [dirs]
    folders = [Path(p).expanduser() for p in (dirs or [])]
    folders.append(configs_dir() / "profiles")
    return list(dict.fromkeys(folders))


def known_profiles(path: Sequence[Path] | None = None) -> list[str]:
    """Names of the profiles on the search path (YAML file stems), sorted."""
    names = {p.stem for folder in (path or search_path()) if folder.is_dir()
             for p in folder.glob("*.yaml")}
    return sorted(names)


def validate_profile_name(name: str, *, path: str | Path | None = None,
                          record: str | None = None) -> str:
    """Refuse anything but a bare profile name (no folders, no ``.yaml``, no ``..``)."""
    text = str(name).strip()
    if not PROFILE_NAME.fullmatch(text) or text.endswith((".yaml", ".yml")) or ".." in text:
        raise InputError(
            f"profile {text!r} is not a profile name; give the name of a profile on the "
            "search path (profiles_dir, CTDNA_PROFILES_DIR, shipped), not a path",
            path=path, record=record, field="profile",
        )
    return text


@lru_cache(maxsize=128)
def _load_file(path: str, mtime_ns: int) -> Profile:
    del mtime_ns  # part of the cache key: an edited profile is re-read
    try:
        data = load_yaml(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"unreadable profile ({str(exc).splitlines()[0]})",
                           path=path) from None
    if not isinstance(data, dict):
        raise ProfileError("profile must be a YAML mapping", path=path)
    try:
        model = ProfileSchema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or None
        message = ("unknown key (not a profile option; see docs/input-formats.md)"
                   if first["type"] == "extra_forbidden" else first["msg"])
        raise ProfileError(message, path=path, field=key) from None
    out = Profile(model.model_dump())
    out["name"] = model.name or Path(path).stem
    out["_path"] = path
    return out


def load_profile(name: str, path: Sequence[Path] | None = None) -> Profile:
    """Load the first ``<name>.yaml`` on the search path.

    Raises
    ------
    InputError
        Not a bare name, or unknown (the message lists the known profiles).
    ProfileError
        The file is unreadable or fails the schema (naming the file and the key).
    """
    if name == "canonical":
        return CANONICAL
    validate_profile_name(name)
    folders = list(path or search_path())
    for folder in folders:
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return _load_file(str(candidate), candidate.stat().st_mtime_ns)
    raise InputError(
        f"unknown table profile {name!r}; known: canonical, "
        f"{', '.join(known_profiles(folders))} (search path: "
        f"{', '.join(str(f) for f in folders)})",
        field="profile",
    )


def load_all(path: Sequence[Path] | None = None) -> list[Profile]:
    """Every profile on the search path (first of each name), validated."""
    folders = list(path or search_path())
    return [load_profile(name, folders) for name in known_profiles(folders)]
