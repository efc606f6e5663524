"""Generic webhook channel: one JSON POST per digest (Teams / Slack / Mattermost compatible).

The body carries ``text`` (markdown; what Slack and Mattermost incoming webhooks and Teams
connector cards display) and a structured ``ctdna`` object for machine receivers (an EHR
inbox, a ticketing system); see docs/notifications.md for an example. Chat channels are
read by more people than a care team's mailbox, so by default the payload says no more than
an email subject (tier, references, rule IDs, report link); ``include_summary: true`` adds
the headline and rule titles, ``include_patient_id: true`` the pseudonymous ID.

Exactly once: the digest's Message-ID, fixed at enqueue, is sent as ``Idempotency-Key``
and inside the body on every attempt, so a receiver can drop the one re-send that the
crash window (delivered, then killed before the ledger recorded it) allows.

Outcomes: 2xx = delivered; 408, 425, 429 and 5xx = transient (retried with backoff);
other 4xx = permanent (dead letter: the URL is gone or the payload refused); no connection
or a timeout = the endpoint is unavailable (its other messages wait for the next run).
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.errors import ConfigError, DeliveryError
from pipeline.notify.channels import ChannelRoute, ChannelType, Receipt
from pipeline.notify.transport import PermanentDeliveryError, TransportUnavailableError

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.notify.digest import Digest

TRANSIENT_STATUS = frozenset({408, 425, 429})


class WebhookOptions(BaseModel):
    """Options of a ``type: webhook`` channel (unknown keys rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(None, description="Endpoint URL (prefer url_env: it holds a token)")
    url_env: str | None = Field(None, description="Environment variable holding the URL")
    timeout_seconds: float = Field(10.0, gt=0, description="Socket timeout, seconds")
    include_patient_id: bool = Field(
        False, description="Put the pseudonymous patient ID into the payload")
    include_summary: bool = Field(
        False, description="Add the assessment headline and rule titles (genes, variants)")

    @model_validator(mode="after")
    def _one_url(self) -> WebhookOptions:
        if bool(self.url) == bool(self.url_env):
            raise ValueError("give exactly one of url, url_env")
        if self.url and not self.url.startswith(("https://", "http://")):
            raise ValueError("url must start with https:// (or http:// for a local receiver)")
        return self


class WebhookChannel:
    """POST each digest as JSON to one URL.

    Parameters
    ----------
    name
        The configured channel name.
    options
        :class:`WebhookOptions`.
    settings
        Resolved settings (subject prefix, test mode).
    env
        Environment for ``url_env`` (default ``os.environ``).
    """

    def __init__(self, name: str, options: WebhookOptions, settings: Settings,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.options = options
        self.settings = settings
        self._env = env

    def session(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def url(self) -> str:
        """The endpoint; raises :class:`ConfigError` when ``url_env`` is unset."""
        if self.options.url:
            return self.options.url
        env = os.environ if self._env is None else self._env
        value = env.get(self.options.url_env or "", "")
        if not value:
            raise ConfigError(f"environment variable {self.options.url_env} is not set",
                              field=f"notify.channels.{self.name}.url_env")
        return value

    def deliver(self, content: Digest, route: ChannelRoute) -> Receipt:
        """POST the digest; see the module docstring for the outcome mapping."""
        from pipeline.notify.message import webhook_payload

        payload = webhook_payload(content, self.settings,
                                  include_patient_id=self.options.include_patient_id,
                                  include_summary=self.options.include_summary)
        request = urllib.request.Request(
            self.url(), data=json.dumps(payload).encode("utf-8"), method="POST",
            headers={"Content-Type": "application/json; charset=utf-8",
                     "Idempotency-Key": content.message_id, "X-Ctdna-Ref": content.ref,
                     "User-Agent": "ctdna-surveillance"})
        where = f"webhook {self.name}"
        try:
            with urllib.request.urlopen(request, timeout=self.options.timeout_seconds) as reply:
                status = int(reply.status)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
            if status in TRANSIENT_STATUS or status >= 500:
                raise DeliveryError(f"{where}: HTTP {status}") from exc
            raise PermanentDeliveryError(f"{where}: HTTP {status} (refused)") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransportUnavailableError(
                f"{where}: {type(reason).__name__}: {' '.join(str(reason).split())}") from exc
        return Receipt(channel=self.name, transport="webhook", message_id=content.message_id,
                       detail=f"HTTP {status}")


def _build(name: str, options: Any, settings: Settings) -> WebhookChannel:
    return WebhookChannel(name, options, settings)


CHANNEL_TYPE = ChannelType(kind="webhook", options_model=WebhookOptions, build=_build)
