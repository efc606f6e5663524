"""Care-team routing: who receives a patient's alert emails.

Recipients come from the role-based distribution lists in ``settings.care_teams`` (never
free-text addresses passed as parameters), each address validated and, when
``notify.allowed_domains`` is set, checked against that allow-list
(engineering-notes.md section 4.2.3). An unknown or missing care team, or a team with no
usable address, is routed to ``notify.fallback_address`` so that a clinical alert is never
silently dropped, and an operations warning is returned for the caller to log and mail to ops.
Warnings name care teams and addresses only, never a patient (they go to the ops mailbox).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.notify.channels import EMAIL, ChannelRoute

# A deliberately plain addr-spec check (local@domain.tld, no display names, no spaces, no
# quoted local parts): distribution lists are configured by the lab, so anything fancier is far
# more likely a typo than a legitimate address.
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$")


@dataclass(frozen=True)
class Route:
    """The resolved recipients of one patient's notifications.

    Attributes
    ----------
    recipients
        Validated addresses, de-duplicated, in configuration order.
    care_team
        The care-team key that was asked for (``None`` when the patient has none).
    fallback
        True when the recipients are the fallback address instead of the team's list.
    warnings
        Operations warnings (no PHI): unknown team, invalid or disallowed addresses.
    """

    recipients: tuple[str, ...]
    care_team: str | None
    fallback: bool
    warnings: tuple[str, ...] = field(default_factory=tuple)


def address_problem(address: str, allowed_domains: list[str] | tuple[str, ...] = ()) -> str | None:
    """Say what is wrong with one recipient address, or ``None`` when it is usable.

    Parameters
    ----------
    address
        A bare addr-spec such as ``thoracic-a@hospital.example``.
    allowed_domains
        Domains allowed (case-insensitive, exact match of the part after ``@``); empty: any.

    Returns
    -------
    str or None
        A short reason (``"not a valid address"``, ``"domain not allowed"``) or ``None``.
    """
    text = address.strip()
    if not _ADDRESS.match(text):
        return "not a valid address"
    if allowed_domains:
        domain = text.rsplit("@", 1)[1].lower()
        if domain not in {d.strip().lower() for d in allowed_domains}:
            return "domain not allowed"
    return None


def resolve_recipients(care_team: str | None, settings: Settings) -> Route:
    """Recipients of a patient's alerts for ``care_team``.

    Parameters
    ----------
    care_team
        The patient's care-team key (manifest column ``care_team``), or ``None``.
    settings
        Resolved settings; ``care_teams`` and ``notify`` are read.

    Returns
    -------
    Route
        The team's validated addresses, or the fallback address with a warning when the team
        is missing, unknown or has no usable address. Invalid addresses are skipped with a
        warning (the rest of the team still receives the alert).

    Raises
    ------
    ConfigError
        When the fallback address itself is unusable: then no alert could be delivered at all.
    """
    notify = settings.notify
    allowed = notify.allowed_domains
    warnings: list[str] = []
    valid: list[str] = []
    team = care_team.strip() if care_team and care_team.strip() else None

    if team is None:
        warnings.append("patient has no care team; alerts routed to the fallback address")
    elif team not in settings.care_teams:
        warnings.append(
            f"care team {team!r} is not configured in care_teams; "
            "alerts routed to the fallback address"
        )
    else:
        for address in settings.care_teams[team]:
            problem = address_problem(address, allowed)
            if problem:
                warnings.append(f"care team {team!r}: address {address!r} skipped ({problem})")
            elif address.strip().lower() not in {v.lower() for v in valid}:
                valid.append(address.strip())
        if not valid:
            warnings.append(
                f"care team {team!r} has no usable address; alerts routed to the fallback address"
            )

    if valid:
        return Route(tuple(valid), team, False, tuple(warnings))

    problem = address_problem(notify.fallback_address, allowed)
    if problem:
        raise ConfigError(
            f"fallback address {notify.fallback_address!r} is unusable ({problem})",
            field="notify.fallback_address",
        )
    return Route((notify.fallback_address.strip(),), team, True, tuple(warnings))


def channels_for(care_team: str | None, tier: str, settings: Settings
                 ) -> tuple[list[str], str | None]:
    """The channels that carry a ``tier`` notification of ``care_team`` (``notify.routes``).

    Returns
    -------
    (list of str, str or None)
        Channel names in route order, and a PHI-free warning when no route matched: a
        notification is never dropped, it then goes by email (team list or fallback).
    """
    team = care_team.strip() if care_team and care_team.strip() else None
    names: list[str] = []
    for route in settings.notify.routes:
        if tier in route.tiers and ("*" in route.care_teams or team in route.care_teams) \
                and route.channel not in names:
            names.append(route.channel)
    if names:
        return names, None
    return [EMAIL], (f"no notify.routes entry carries {tier} notifications of care team "
                     f"{team!r}; sent by email")


def resolve_route(channel: str, care_team: str | None, settings: Settings, *,
                  targets: tuple[str, ...] | None = None) -> ChannelRoute:
    """Where ``channel`` delivers ``care_team``'s notifications.

    Email resolves the team's distribution list (:func:`resolve_recipients`, with fallback
    and warnings), or ``targets`` when given (e.g. an escalation list; each address is
    validated, an unusable one skipped with a warning, none left: the fallback); any other
    channel delivers to its own configured endpoint.

    Raises
    ------
    ConfigError
        Email only: the fallback address is unusable.
    """
    if channel == EMAIL and targets is not None:
        allowed = settings.notify.allowed_domains
        valid = tuple(a.strip() for a in targets if address_problem(a, allowed) is None)
        warnings = tuple(f"address {a!r} skipped ({address_problem(a, allowed)})"
                         for a in targets if address_problem(a, allowed) is not None)
        if valid:
            return ChannelRoute(channel=EMAIL, care_team=care_team, targets=valid,
                                warnings=warnings)
        fallback = resolve_recipients(None, settings)
        return ChannelRoute(channel=EMAIL, care_team=care_team, targets=fallback.recipients,
                            fallback=True, warnings=(*warnings, "no usable escalation "
                                                     "address; routed to the fallback address"))
    if channel == EMAIL:
        route = resolve_recipients(care_team, settings)
        return ChannelRoute(channel=EMAIL, care_team=route.care_team, targets=route.recipients,
                            fallback=route.fallback, warnings=route.warnings)
    team = care_team.strip() if care_team and care_team.strip() else None
    return ChannelRoute(channel=channel, care_team=team)
