"""Signed, single-use acknowledgement links (issue #14 item 2).

A link is ``<notify.ack.base_url>/<token>``, the token being
``v1.<payload>.<signature>`` (base64url, no padding):

* ``payload``: compact JSON ``{"a": alert ref, "r": recipient, "e": expiry (Unix seconds),
  "n": nonce (128 random bits)}``;
* ``signature``: HMAC-SHA256 of the ``v1.<payload>`` text with the lab's secret.

Nothing in the token is secret (an alert reference is random and carries no patient data);
what the signature prevents is forging a link for another alert, recipient or expiry. The
nonce makes every link distinct and single-use: the acknowledgement it records stores the
nonce in a unique column (:func:`pipeline.store.alerts.record_event`).

The secret comes from ``CTDNA_ACK_SECRET`` or the Prefect Secret block named in
``notify.ack.secret_block`` (mirroring ``notify.smtp.password_block``), never from YAML.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from pipeline.config import Settings
from pipeline.errors import AckLinkError, ConfigError

VERSION = "v1"
ENV_SECRET = "CTDNA_ACK_SECRET"
#: Shortest secret accepted, in bytes (HMAC-SHA256 keys below 128 bits are guessable).
MIN_SECRET_BYTES = 16


@dataclass(frozen=True)
class LinkClaims:
    """What a verified token says.

    Attributes
    ----------
    alert_ref
        The alert reference (ledger ``ref``).
    recipient
        Who the link was sent to (the message's ``To`` addresses).
    expires_at
        End of validity (UTC).
    nonce
        The link's random single-use identifier.
    """

    alert_ref: str
    recipient: str
    expires_at: datetime
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@lru_cache(maxsize=8)
def _block_secret(name: str) -> str:
    # One Prefect API call per process and block, not one per email.
    from pipeline.notify.secrets import secret_from_block

    try:
        return secret_from_block(name)
    except ConfigError as exc:
        raise ConfigError(exc.message, field="notify.ack.secret_block") from exc


def ack_secret(settings: Settings, env: dict[str, str] | None = None) -> bytes:
    """The link-signing secret: ``CTDNA_ACK_SECRET``, else ``notify.ack.secret_block``.

    Raises
    ------
    ConfigError
        No secret is configured, the block cannot be read, or the secret is shorter than
        :data:`MIN_SECRET_BYTES`.
    """
    environ = os.environ if env is None else env
    value = environ.get(ENV_SECRET) or None
    field = ENV_SECRET
    if value is None and settings.notify.ack.secret_block:
        value = _block_secret(settings.notify.ack.secret_block)
        field = "notify.ack.secret_block"
    if value is None:
        raise ConfigError(f"no acknowledgement-link secret: set {ENV_SECRET} or name a Prefect "
                          "Secret block in notify.ack.secret_block", field="notify.ack")
    secret = value.encode("utf-8")
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"the acknowledgement-link secret is shorter than {MIN_SECRET_BYTES} "
                          "bytes; use e.g. `python -c 'import secrets; "
                          "print(secrets.token_urlsafe(32))'`", field=field)
    return secret


def _sign(secret: bytes, text: str) -> str:
    return _b64(hmac.new(secret, text.encode("ascii"), hashlib.sha256).digest())


def make_token(alert_ref: str, recipient: str, secret: bytes, *, expires_at: datetime,
               nonce: str | None = None) -> str:
    """A signed token for ``alert_ref`` sent to ``recipient``, valid until ``expires_at``."""
    payload = {"a": alert_ref, "r": recipient, "e": int(expires_at.timestamp()),
               "n": nonce or _b64(secrets.token_bytes(16))}
    head = f"{VERSION}.{_b64(json.dumps(payload, separators=(',', ':')).encode('utf-8'))}"
    return f"{head}.{_sign(secret, head)}"


def verify_token(token: str, secret: bytes, *, now: datetime | None = None) -> LinkClaims:
    """Check a token's signature and expiry; its claims.

    Raises
    ------
    AckLinkError
        ``forged`` (malformed, other version, bad signature) or ``expired``. Reuse is checked
        against the store by the caller (:mod:`pipeline.alerts.ack`).
    """
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise AckLinkError("this link is not a valid acknowledgement link", reason="forged")
    head = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_sign(secret, head), parts[2]):
        raise AckLinkError("this link is not a valid acknowledgement link", reason="forged")
    try:
        data = json.loads(_unb64(parts[1]))
        claims = LinkClaims(alert_ref=str(data["a"]), recipient=str(data["r"]),
                            expires_at=datetime.fromtimestamp(int(data["e"]), UTC),
                            nonce=str(data["n"]))
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        # A correctly signed but unreadable payload: only a defect or a leaked secret.
        raise AckLinkError("this link is not a valid acknowledgement link",
                           reason="forged") from exc
    at = now or datetime.now(UTC)
    if at >= claims.expires_at:
        raise AckLinkError(
            f"this link expired on {claims.expires_at:%Y-%m-%d %H:%M} UTC; acknowledge with "
            f"`ctdna ack {claims.alert_ref} --by NAME` or ask the lab", reason="expired")
    return claims


def ack_link(alert_id: str, recipient: str, settings: Settings, *,
             now: datetime | None = None, env: dict[str, str] | None = None) -> str | None:
    """The signed acknowledgement link of one alert for one recipient (for the email body).

    Parameters
    ----------
    alert_id
        The alert reference (ledger ``ref``; in a digest, each item's own ref).
    recipient
        Who the message goes to (its ``To`` addresses, comma-separated): recorded with the
        acknowledgement when the person gives no name.
    settings
        ``notify.ack`` is read.
    now
        When the email is built (UTC); the link is valid ``notify.ack.link_valid_hours``.
    env
        Environment for ``CTDNA_ACK_SECRET`` (default ``os.environ``).

    Returns
    -------
    str or None
        ``<notify.ack.base_url>/<token>``; ``None`` when no ``base_url`` is configured
        (acknowledgement then by ``ctdna ack`` only).

    Raises
    ------
    ConfigError
        ``base_url`` is set but no usable secret is (see :func:`ack_secret`).
    """
    base = settings.notify.ack.base_url
    if not base:
        return None
    at = now or datetime.now(UTC)
    expires = at + timedelta(hours=settings.notify.ack.link_valid_hours)
    token = make_token(alert_id, recipient, ack_secret(settings, env), expires_at=expires)
    return f"{base.rstrip('/')}/{token}"


def ack_links(alert_ids: list[str] | tuple[str, ...], recipient: str, settings: Settings, *,
              now: datetime | None = None) -> dict[str, str]:
    """Alert ref -> signed link, one per item of a message (a digest); ``{}`` when
    ``notify.ack.base_url`` is unset. The email builder's single call (see :func:`ack_link`).
    """
    links = {ref: ack_link(ref, recipient, settings, now=now) for ref in alert_ids}
    return {ref: url for ref, url in links.items() if url is not None}
