"""Configuration: shipped YAML defaults + a lab's override file + environment.

Resolution order (later wins): ``configs/defaults.yaml`` shipped with ctdna, then the
file given by ``--config`` or ``CTDNA_CONFIG`` (deep-merged), then environment variables
(``CTDNA_DB_URL``, ``CTDNA_SMTP_*``, ``CTDNA_MAIL_FROM``, ``CTDNA_OUTBOX``,
``CTDNA_REPORTS_DIR``, ``CTDNA_KB_OVERRIDES``, ``CTDNA_PROFILES_DIR``). The merged mapping is
validated by the pydantic schema below; unknown keys are errors, so a typo in a threshold name
never passes silently.

Every assessment and report records :attr:`Settings.version` and
:meth:`Settings.fingerprint` so that an alert can be reproduced with the exact config.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.errors import ConfigError, InputError
from pipeline.yamlio import load_yaml

Fraction = float  # a number in [0, 1]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AssaySettings(_Strict):
    """Defaults for one assay (selected by the manifest's ``assay`` column)."""

    lod_vaf: Fraction = Field(0.005, ge=0, le=1, description="Limit of detection, VAF fraction")
    description: str = ""
    cnv_kind: Literal["plasma_cn", "absolute_cn", "fold_change", "log2_ratio"] = Field(
        "plasma_cn", description="What copy_number values from this assay mean"
    )
    met_amp_min_tumor_fraction: Fraction | None = Field(
        None,
        ge=0,
        le=1,
        description="Below this tumor fraction an absent CNV call is not evaluable "
        "(FoundationOne Liquid CDx: 21.7% TF for CN amplification, Woodhouse 2020)",
    )
    detection: Literal["reported", "lod_floor"] = Field(
        "lod_floor",
        description="What makes a call a detection (#9 item 4). 'reported': every call the "
        "vendor or caller reported and did not filter is detected, whatever the default LoD "
        "(the LoD then only says what a non-detect means: below this draw's LoD). "
        "'lod_floor': small-variant calls below the draw's LoD are not counted as detected "
        "(raw caller output that reports noise below the validated LoD)",
    )


class LodSettings(_Strict):
    """How a draw's limit of detection is chosen when the manifest gives none."""

    min_alt_reads: int = Field(
        5, ge=1, description="LoD from depth = min_alt_reads / median depth of the draw"
    )
    default_assay: str = "default"


class RulesSettings(_Strict):
    """Thresholds, windows and confirmation of the rule set (clinical-evidence.md section 6)."""

    baseline_window_days: int = Field(
        14, ge=0, description="Baseline: last draw <= N days before start"
    )
    baseline_after_start_days: int = Field(
        0, ge=0, description="A draw up to N days after the start still counts as baseline"
    )
    confirm_min_days: int = Field(14, ge=0, description="Confirmation draw at least N days later")
    confirm_max_days: int = Field(90, ge=1, description="... and at most N days later")
    early_window_start_week: float = Field(3, ge=0)
    early_window_end_week: float = Field(10, ge=0)
    clearance_by_week: float = Field(10, ge=0, description="E1: clearance by week 10 (ctMoniTR)")
    deep_decrease: Fraction = Field(0.90, ge=0, le=1, description="E2: >= 90% decrease")
    partial_decrease: Fraction = Field(0.50, ge=0, le=1, description="E3: < 50% decrease fails")
    second_landmark_start_week: float = Field(12, ge=0, description="E4 window start")
    second_landmark_end_week: float = Field(16, ge=0, description="E4 window end")
    rise_from_nadir_fold: float = Field(10.0, gt=1, description="P2/P3: >= 1-log rise")
    never_cleared_warning_fold: float = Field(2.0, gt=1, description="P3 warning: >= 2x rise")
    urgent_level_ceiling: Fraction = Field(
        0.10, gt=0, le=1,
        description="P1/P3: a single draw at or above this level (fraction) asks for an urgent "
        "confirmatory draw (#9 item 3)",
    )
    emerging_min_vaf: Fraction = Field(
        0.005, ge=0, le=1, description="P4: absolute floor (VAF fraction) of an emerging clone"
    )
    emerging_rise_fold: float = Field(
        2.0, gt=1, description="P4: rise of an emerging clone from its first detection"
    )
    emerging_single_draw_vaf: Fraction = Field(
        0.02, ge=0, le=1,
        description="P4: a new clone first seen at or above this VAF on one draw is a WARNING",
    )
    min_alt_reads_detected: int = Field(
        2, ge=1, description="A call with fewer supporting reads is not 'detected'"
    )
    significance_alpha: Fraction = Field(
        0.05, gt=0, lt=1, description="Fisher exact test on read counts between draws"
    )
    met_pcn_warning: float = Field(2.1, gt=0, description="R3: MET plasma CN reporting floor")
    met_pcn_failure: float = Field(2.7, gt=0, description="R3: MET plasma CN >= 2.7 (PMC10552597)")
    met_fold_change_warning: float = Field(1.3, gt=0, description="R3 for fold-change assays")
    met_fold_change_failure: float = Field(2.0, gt=0)
    met_absolute_cn_failure: float = Field(
        5.0, gt=0, description="R3 for absolute-CN assays: NGS gene copy number >= 5 (EHO 2021)"
    )
    chip_genes: tuple[str, ...] = Field(
        (),
        description="EXTRA clonal-haematopoiesis genes of this lab, added to the knowledge "
        "base's chip_genes (the single list, issue #13); remove a gene via a KB override",
    )
    high_risk_baseline_genes: tuple[str, ...] = Field(
        ("TP53",), description="B2: a baseline mutation in these genes is a high-risk profile"
    )
    high_risk_fusion_variant_pattern: str = Field(
        r"(?i)\b(?:v|variant\s*)3[ab]?\b",
        description="B2: regex on the fusion alteration text naming EML4-ALK variant 3",
    )

    @field_validator("chip_genes", "high_risk_baseline_genes", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        # A bare string would otherwise become a tuple of its letters ("DNMT3A" -> D, N, ...;
        # issue #10 item 8): the shape must be a list of gene symbols.
        if value is None:
            return value
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"must be a list of gene symbols, got {type(value).__name__} "
                             f"{value!r:.40}")
        if not all(isinstance(v, str) for v in value):
            raise ValueError("must be a list of gene symbols (strings)")
        return tuple(v.upper() for v in value)

    @model_validator(mode="after")
    def _consistent(self) -> RulesSettings:
        # Windows and thresholds that contradict each other would make a rule unreachable
        # or fire on every draw; refuse them at load time (clinical-evidence.md section 6).
        pairs = (
            ("confirm_min_days", "confirm_max_days"),
            ("early_window_start_week", "early_window_end_week"),
            ("second_landmark_start_week", "second_landmark_end_week"),
            ("partial_decrease", "deep_decrease"),
            ("never_cleared_warning_fold", "rise_from_nadir_fold"),
            ("met_pcn_warning", "met_pcn_failure"),
            ("met_fold_change_warning", "met_fold_change_failure"),
        )
        for low, high in pairs:
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} ({getattr(self, low)}) must not exceed {high}")
        try:
            re.compile(self.high_risk_fusion_variant_pattern)
        except re.error as exc:
            raise ValueError(f"high_risk_fusion_variant_pattern is not a regex: {exc}") from exc
        return self


class CadenceSettings(_Strict):
    """Rule C1: when the next draw is due."""

    first_draw_weeks: tuple[float, float] = (3, 6)
    second_draw_weeks: tuple[float, float] = (8, 10)
    maintenance_interval_weeks: tuple[float, float] = (8, 12)
    after_warning_interval_weeks: float = Field(4, gt=0)
    overdue_grace_days: int = Field(7, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> CadenceSettings:
        # Each window is (earliest, latest) in weeks; C1 reads the first as "due" and the
        # second as "overdue after" (clinical-evidence.md section 6, rule C1).
        for name in ("first_draw_weeks", "second_draw_weeks", "maintenance_interval_weeks"):
            low, high = getattr(self, name)
            if low < 0 or low > high:
                raise ValueError(f"{name} must be (earliest, latest) with 0 <= earliest <= latest")
        if self.first_draw_weeks[1] > self.second_draw_weeks[0]:
            raise ValueError("first_draw_weeks must end before second_draw_weeks starts")
        if self.maintenance_interval_weeks[0] <= 0:
            raise ValueError("maintenance_interval_weeks must be positive")
        return self


class SmtpSettings(_Strict):
    host: str | None = None
    port: int | None = None
    user: str | None = None
    # From CTDNA_SMTP_PASSWORD or a Prefect block, never from YAML (load_settings, #12)
    password: str | None = Field(None, repr=False)
    password_block: str | None = Field(
        None, description="Name of a Prefect Secret block holding the SMTP password")
    credentials_block: str | None = Field(
        None, description="Name of a prefect-email EmailServerCredentials block holding "
        "server, port, TLS mode, user and password (explicit settings win; #12 item 3)")
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    timeout_seconds: float = 30


Tier = Literal["INFO", "WARNING", "FAILURE"]
ALL_TIERS: tuple[Tier, ...] = ("INFO", "WARNING", "FAILURE")


class ChannelConfig(BaseModel):
    """One configured delivery channel besides the built-in ``email`` (issue #14 item 3).

    ``type`` selects the channel module registered in :mod:`pipeline.notify.channels`
    (``webhook``); the remaining keys are that module's options, validated by its own
    pydantic model (unknown keys rejected) when the settings are loaded.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = Field(..., description="Channel type, e.g. 'webhook'")

    def options(self) -> dict[str, Any]:
        """The channel-specific keys (everything but ``type``)."""
        return dict(self.model_extra or {})


class RouteSettings(_Strict):
    """Which channel receives which care teams' notifications of which tiers."""

    channel: str = Field(..., description="'email' or the name of a notify.channels entry")
    care_teams: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Care-team keys of care_teams; '*' = every team, the fallback included")
    tiers: list[Tier] = Field(
        default_factory=lambda: list(ALL_TIERS),
        description="Notification tiers this route carries (INFO = recoveries)")


class AckSettings(_Strict):
    """Signed acknowledgement links in alert emails (issue #14 item 2; docs/notifications.md).

    The HMAC secret is never read from YAML: ``CTDNA_ACK_SECRET`` or the Prefect Secret block
    named in ``secret_block`` (as the SMTP password, issue #12 item 3).
    """

    base_url: str | None = Field(
        None, description="Public URL of `ctdna ack-server` as the care teams reach it, e.g. "
        "https://ctdna.lab.example/ack (links are built as <base_url>/<token>); unset: no "
        "links in emails, acknowledgement by `ctdna ack` only")
    secret_block: str | None = Field(
        None, description="Name of a Prefect Secret block holding the link-signing secret "
        "(env CTDNA_ACK_SECRET wins when set)")
    link_valid_hours: float = Field(
        168, gt=0, description="How long a link stays valid after the email was built, hours")


class TeamEscalation(_Strict):
    """One care team's escalation rule (unset values fall back to ``notify.escalation``)."""

    after_hours: float | None = Field(
        None, gt=0, description="Escalate an unacknowledged FAILURE after this many hours")
    address: str | None = Field(None, description="The team's escalation address")


class EscalationSettings(_Strict):
    """Escalation of unacknowledged FAILURE alerts (issue #14 item 2)."""

    enabled: bool = True
    after_hours: float = Field(
        24, gt=0, description="Default: escalate a FAILURE not acknowledged within this many "
        "hours of being sent (or raised, when never sent)")
    address: str | None = Field(
        None, description="Default escalation address; unset: notify.fallback_address")
    teams: dict[str, TeamEscalation] = Field(
        default_factory=dict, description="Per care team (keys of care_teams)")

    def rule_for(self, care_team: str | None) -> tuple[float, str | None]:
        """(hours, address or None) that apply to ``care_team``."""
        team = self.teams.get(care_team or "")
        hours = team.after_hours if team is not None and team.after_hours else self.after_hours
        address = team.address if team is not None and team.address else self.address
        return hours, address


class NotifySettings(_Strict):
    mail_from: str = "ctdna-surveillance@localhost"
    fallback_address: str = "lab-fallback@localhost"
    ops_address: str = "lab-ops@localhost"
    subject_prefix: str = "[ctDNA surveillance]"
    report_base_url: str | None = Field(
        None, description="Where care teams open reports (e.g. https://lis.example/ctdna/)"
    )
    outbox: str = "outbox"
    max_emails_per_run: int = Field(200, ge=1, description="Safety rail against mass mailing")
    smtp: SmtpSettings = SmtpSettings()
    delivery_retries: int = Field(
        2, ge=0, description="Prefect retries of the delivery task within one run (SMTP is I/O)"
    )
    delivery_retry_delays_seconds: list[float] = Field(
        default_factory=lambda: [10.0, 60.0],
        description="Waits between those retries; alerts still pending go to the next run",
    )
    max_attempts: int = Field(
        8, ge=1, description="Delivery attempts of one notification before the dead letter"
    )
    retry_backoff_minutes: list[float] = Field(
        default_factory=lambda: [5.0, 15.0, 60.0, 240.0, 720.0],
        description="Wait before attempt n+1 after n failures (last value repeats); the "
        "next run after that time retries",
    )
    test_mode: bool = Field(
        False, description="Non-production: 'TEST' subject marker and banner (notes section 4.2.7)"
    )
    reply_to: str | None = Field(None, description="Monitored lab mailbox for replies")
    allowed_domains: list[str] = Field(
        default_factory=list,
        description="Recipient domains allowed (empty: any); notes section 4.2.3",
    )
    delivery_workers: int = Field(
        2, ge=1, le=8,
        description="Messages sent in parallel per run (each worker its own SMTP connection); "
        "a channel's first message of a run is always sent alone",
    )
    channels: dict[str, ChannelConfig] = Field(
        default_factory=dict,
        description="Delivery channels besides the built-in 'email' (issue #14), by name; "
        "see docs/notifications.md",
    )
    routes: list[RouteSettings] = Field(
        default_factory=lambda: [RouteSettings(channel="email")],
        description="Routing per care team and tier; default: every notification by email",
    )

    ack: AckSettings = AckSettings()
    escalation: EscalationSettings = EscalationSettings()

    @model_validator(mode="after")
    def _channels_known(self) -> NotifySettings:
        if "email" in self.channels:
            raise ValueError("'email' is the built-in channel; give the channel another name")
        if self.channels:
            # Lazy import: the channel modules import this module (they read Settings).
            from pipeline.notify.channels import validate_channel_config

            for name, channel in self.channels.items():
                validate_channel_config(name, channel.type, channel.options())
        for route in self.routes:
            if route.channel != "email" and route.channel not in self.channels:
                raise ValueError(f"route to unknown channel {route.channel!r} (configure it "
                                 "under notify.channels)")
        return self


class ScheduleSettings(_Strict):
    cron: str = "0 6 * * 1-5"
    timezone: str = "Europe/Berlin"
    exclusive_runs: bool = Field(
        default=False,
        description="Hold the one slot of the Prefect global concurrency limit "
        "'ctdna-surveillance' for every surveillance and re-evaluation run, whichever "
        "deployment started it (flows/run_lock.py). Off by default: a run killed with -9 "
        "keeps the slot until Prefect's lease service frees it, which held every later run "
        "for minutes in our fault-injection tests (docs/deployment.md)",
    )


class RunSettings(_Strict):
    """How a surveillance flow run spreads its independent work (issue #11 items 5-6).

    Inbox files are ingested, and patient shards' reports written, in parallel through a
    Prefect task runner: ``thread`` (Prefect's ThreadPoolTaskRunner, in the flow's process)
    or ``dask`` (prefect-dask's DaskTaskRunner: a local cluster of ``workers`` processes,
    or the existing Dask scheduler at ``dask_address`` for several hosts).
    """

    task_runner: Literal["thread", "dask"] = "thread"
    workers: int = Field(
        2, ge=1, le=64, description="Threads (thread) or local Dask worker processes (dask), "
        "and the number of patient shards for report writing")
    dask_address: str | None = Field(
        None, description="tcp://host:8786 of a running Dask scheduler (dask only); unset: "
        "a temporary local cluster per run")
    evaluate_processes: int = Field(
        2, ge=1, le=64, description="Processes that evaluate a large cohort in patient "
        "shards (each at least 2,000 patients, never more than the processors available; "
        "pipeline/evaluation.py); 1: in the command's own process")

    @model_validator(mode="after")
    def _address_needs_dask(self) -> RunSettings:
        if self.dask_address and self.task_runner != "dask":
            raise ValueError("dask_address is only used with task_runner: dask")
        return self


class IngestSettings(_Strict):
    """Where manifests may point (issue #10 item 4: confinement)."""

    allowed_roots: list[str] = Field(
        default_factory=list,
        description="Absolute folders, besides each manifest's own folder, that manifest "
        "paths may resolve into (symlinks resolved); everything else is refused",
    )

    @field_validator("allowed_roots")
    @classmethod
    def _absolute(cls, roots: list[str]) -> list[str]:
        for root in roots:
            if not root.strip() or not Path(root).is_absolute():
                raise ValueError(f"{root!r} is not an absolute folder path")
        return roots


class KnowledgeSettings(_Strict):
    """Knowledge-base settings (issue #13 items 4-5)."""

    overrides_dir: str | None = Field(
        None, description="The lab's KB override folder (override.yaml, alterations.tsv, "
        "activity.tsv); env CTDNA_KB_OVERRIDES. Shipped files are never edited"
    )
    audit_max_source_age_years: int = Field(
        5, ge=1, description="ctdna kb audit: flag sources published longer ago than this"
    )


class PathSettings(_Strict):
    reports: str = "reports"
    quarantine: str = "quarantine"


class Settings(_Strict):
    """The validated, resolved configuration."""

    version: str = Field(..., description="Declared config version, printed in every report")
    assays: dict[str, AssaySettings]
    lod: LodSettings = LodSettings()
    rules: RulesSettings = RulesSettings()
    cadence: CadenceSettings = CadenceSettings()
    care_teams: dict[str, list[str]] = Field(default_factory=dict)
    notify: NotifySettings = NotifySettings()
    schedule: ScheduleSettings = ScheduleSettings()
    run: RunSettings = RunSettings()
    paths: PathSettings = PathSettings()
    ingest: IngestSettings = IngestSettings()
    knowledge: KnowledgeSettings = KnowledgeSettings()
    database_url: str | None = None
    profiles_dir: str | list[str] | None = Field(
        None, description="Folder(s) of the lab's table profiles, searched before the shipped "
        "configs/profiles (env CTDNA_PROFILES_DIR overrides; #12 item 5)",
    )

    @model_validator(mode="after")
    def _routes_name_teams(self) -> Settings:
        for route in self.notify.routes:
            unknown = [t for t in route.care_teams if t != "*" and t not in self.care_teams]
            if unknown:
                raise ValueError(f"notify.routes: care team(s) {unknown} not in care_teams")
        return self

    @model_validator(mode="after")
    def _escalation_teams_known(self) -> Settings:
        unknown = sorted(set(self.notify.escalation.teams) - set(self.care_teams))
        if unknown:
            raise ValueError(f"notify.escalation.teams: care team(s) {unknown} not in "
                             "care_teams")
        return self

    def assay(self, name: str | None) -> AssaySettings:
        """Settings of ``name`` (case-insensitive), else of the default assay."""
        if name:
            key = name.strip().lower()
            for assay_name, settings in self.assays.items():
                if assay_name.lower() == key:
                    return settings
        return self.assays.get(self.lod.default_assay, AssaySettings())

    def fingerprint(self) -> str:
        """Short SHA-256 of the resolved configuration (secrets excluded)."""
        data = self.model_dump(mode="json")
        data["notify"]["smtp"]["password"] = None
        # How a run is spread over threads/processes cannot change a result: it must not
        # mark every assessment as made under a new config (#11 item 6). An unset
        # credentials block leaves the fingerprint as it was before the key existed (#12).
        data.pop("run", None)
        if data["notify"]["smtp"].get("credentials_block") is None:
            data["notify"]["smtp"].pop("credentials_block", None)
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def version_label(self) -> str:
        """``<declared version>+<fingerprint>``: what assessments record."""
        return f"{self.version}+{self.fingerprint()}"


def configs_dir() -> Path:
    """Folder of the shipped defaults (repository ``configs/`` or the wheel's copy)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "configs", here / "_configs"):
        if (candidate / "defaults.yaml").is_file():
            return candidate
    raise ConfigError("shipped configs/defaults.yaml not found; is ctdna installed correctly?")


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("config file not found", path=path) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file ({exc.strerror})", path=path) from exc
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"invalid YAML: {problem}", path=path, record=where) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping", path=path)
    return data


def _env_overrides(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if env.get("CTDNA_DB_URL"):
        out["database_url"] = env["CTDNA_DB_URL"]
    smtp: dict[str, Any] = {}
    for key in ("host", "port", "user", "password", "tls"):
        value = env.get(f"CTDNA_SMTP_{key.upper()}")
        if value:
            smtp[key] = value.lower() if key == "tls" else value
    notify: dict[str, Any] = {}
    if smtp:
        notify["smtp"] = smtp
    if env.get("CTDNA_MAIL_FROM"):
        notify["mail_from"] = env["CTDNA_MAIL_FROM"]
    if env.get("CTDNA_OUTBOX"):
        notify["outbox"] = env["CTDNA_OUTBOX"]
    if notify:
        out["notify"] = notify
    if env.get("CTDNA_REPORTS_DIR"):
        out["paths"] = {"reports": env["CTDNA_REPORTS_DIR"]}
    if env.get("CTDNA_KB_OVERRIDES"):
        out["knowledge"] = {"overrides_dir": env["CTDNA_KB_OVERRIDES"]}
    if env.get("CTDNA_PROFILES_DIR"):
        out["profiles_dir"] = [p for p in env["CTDNA_PROFILES_DIR"].split(os.pathsep) if p]
    return out


def load_settings(
    config_file: str | Path | None = None, env: dict[str, str] | None = None
) -> Settings:
    """Load and validate the configuration.

    Parameters
    ----------
    config_file
        A lab override file; when None, ``CTDNA_CONFIG`` is used if set.
    env
        Environment mapping (defaults to ``os.environ``); injectable for tests.

    Raises
    ------
    ConfigError
        Unreadable YAML, unknown keys or out-of-range values, naming the field.
    """
    env = dict(os.environ) if env is None else env
    defaults_path = configs_dir() / "defaults.yaml"
    merged = _read_yaml(defaults_path)
    override_path = config_file or env.get("CTDNA_CONFIG") or None
    source = defaults_path
    if override_path:
        source = Path(override_path)
        lab = _read_yaml(source)
        smtp_yaml = (lab.get("notify") or {}).get("smtp") if isinstance(
            lab.get("notify"), dict) else None
        if isinstance(smtp_yaml, dict) and "password" in smtp_yaml:
            # A password in a plain-text file is readable by anyone who can read configs.
            raise ConfigError(
                "an SMTP password is not accepted in a YAML file; set CTDNA_SMTP_PASSWORD "
                "or save it in a Prefect Secret block (notify.smtp.password_block) or an "
                "EmailServerCredentials block (notify.smtp.credentials_block)",
                path=source, field="notify.smtp.password")
        ack_yaml = (lab.get("notify") or {}).get("ack") if isinstance(
            lab.get("notify"), dict) else None
        if isinstance(ack_yaml, dict) and "secret" in ack_yaml:
            # Whoever holds the secret can forge acknowledgements (issue #14 item 2).
            raise ConfigError(
                "the acknowledgement-link secret is not accepted in a YAML file; set "
                "CTDNA_ACK_SECRET or save it in a Prefect Secret block and name it in "
                "notify.ack.secret_block", path=source, field="notify.ack.secret")
        merged = _deep_merge(merged, lab)
    merged = _deep_merge(merged, _env_overrides(env))
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(first["msg"], path=source, field=field) from exc


def parse_iso_date(
    value: str,
    *,
    path: str | Path | None,
    record: str | int | None,
    field: str,
    kind: type[InputError] | None = None,
) -> date:
    """Parse ``YYYY-MM-DD`` strictly, raising ``kind`` (an :class:`InputError`) naming the field."""
    error_type = kind or InputError

    text = str(value).strip()
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise error_type(
            f"unparseable date {text!r} (expected YYYY-MM-DD)",
            path=path, record=record, field=field,
        ) from None
