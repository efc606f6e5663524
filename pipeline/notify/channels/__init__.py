"""Delivery channels as plugins (issue #14 item 3).

A channel delivers one rendered digest (:class:`pipeline.notify.digest.Digest`) along one
route and returns a :class:`Receipt`, or raises :class:`pipeline.errors.DeliveryError`
(transient: retried with backoff), :class:`~pipeline.notify.transport.PermanentDeliveryError`
(dead letter) or :class:`~pipeline.notify.transport.TransportUnavailableError` (the channel
is down: the rest of its messages wait for the next run; other channels carry on).

Channels are registered in one list, :data:`CHANNEL_TYPES`. The built-in ``email`` channel
(SMTP relay or ``.eml`` outbox) is always configured; every other channel is an entry of
``notify.channels`` whose ``type`` names a registered module. Adding a channel = one module
exposing ``CHANNEL_TYPE`` + its name in :data:`CHANNEL_TYPES` + config (docs/notifications.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from email.message import EmailMessage

    from pipeline.config import Settings
    from pipeline.notify.digest import Digest
    from pipeline.notify.transport import SendResult, Transport

EMAIL = "email"


@dataclass(frozen=True)
class ChannelRoute:
    """Where one digest goes on one channel.

    Attributes
    ----------
    channel
        The configured channel name (``email`` or a ``notify.channels`` key).
    care_team
        The patient's care team (``None``: none).
    targets
        Email: the validated recipient addresses. Other channels: empty (the channel's
        own endpoint is the target).
    fallback
        True when the team's own recipients could not be used (fallback address).
    warnings
        PHI-free routing warnings (team names and addresses only).
    """

    channel: str
    care_team: str | None
    targets: tuple[str, ...] = ()
    fallback: bool = False
    warnings: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Receipt:
    """What a channel reports for one accepted message (no PHI).

    Attributes
    ----------
    channel
        Configured channel name.
    transport
        Mechanism: ``smtp``, ``eml``, ``webhook``.
    message_id
        The digest's Message-ID (the idempotency key of non-email channels).
    refused
        Recipients refused while others were accepted (email).
    detail
        ``.eml`` file written, or ``HTTP <status>`` of a webhook.
    """

    channel: str
    transport: str
    message_id: str
    refused: tuple[str, ...] = ()
    detail: str | None = None


class Channel(Protocol):
    """The channel interface: ``deliver(content, route) -> receipt``."""

    name: str

    def deliver(self, content: Digest, route: ChannelRoute) -> Receipt:
        """Deliver one digest or raise :class:`pipeline.errors.DeliveryError`."""
        ...

    def session(self) -> contextlib.AbstractContextManager[None]:
        """Keep a connection open across several ``deliver`` calls (may do nothing)."""
        ...


@dataclass(frozen=True)
class ChannelType:
    """A registered channel module.

    Attributes
    ----------
    kind
        The ``type`` value in ``notify.channels``.
    options_model
        Pydantic model of the channel's options (``extra="forbid"``).
    build
        ``(name, options, settings) -> Channel``.
    """

    kind: str
    options_model: type[BaseModel]
    build: Callable[[str, Any, Settings], Channel]


def _registered() -> dict[str, ChannelType]:
    # The one list of channel modules (lazy: config validation imports this package).
    from pipeline.notify.channels import webhook

    return {t.kind: t for t in (webhook.CHANNEL_TYPE,)}


def validate_channel_config(name: str, kind: str, options: dict[str, Any]) -> BaseModel:
    """Validate one ``notify.channels`` entry; the parsed options.

    Raises
    ------
    ValueError
        Unknown type, unknown key or bad value (pydantic turns it into the config error
        naming ``notify.channels``).
    """
    types = _registered()
    if kind not in types:
        raise ValueError(f"channel {name!r}: unknown type {kind!r} (known: "
                         f"{', '.join(sorted(types))})")
    try:
        return types[kind].options_model.model_validate(options)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"channel {name!r}: {where}: {first['msg']}") from None


class EmailChannel:
    """The built-in email channel over a transport (SMTP relay or ``.eml`` outbox)."""

    def __init__(self, transport: Transport, settings: Settings, name: str = EMAIL) -> None:
        self.name = name
        self.transport = transport
        self.settings = settings
        self._send: Callable[[EmailMessage], SendResult] | None = None

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Reuse SMTP connections for the whole run when the transport supports it."""
        opener = getattr(self.transport, "session", None)
        if not callable(opener):
            yield
            return
        with opener() as send:
            self._send = send
            try:
                yield
            finally:
                self._send = None

    def deliver(self, content: Digest, route: ChannelRoute) -> Receipt:
        """Render ``content`` as one MIME message to ``route.targets`` and send it."""
        from pipeline.notify.message import build_digest_email

        message = build_digest_email(content, list(route.targets), self.settings)
        result = (self._send or self.transport.send)(message)
        return Receipt(channel=self.name, transport=self.transport.name,
                       message_id=result.message_id, refused=result.refused,
                       detail=result.location)


def channels_from_settings(settings: Settings, *, transport: Transport | None = None,
                           outbox: str | Path | None = None) -> dict[str, Channel]:
    """Every configured channel, by name (``email`` first).

    Parameters
    ----------
    settings
        Resolved settings (``notify.channels``, SMTP / outbox).
    transport
        The email transport to use; default from settings
        (:func:`pipeline.notify.transport.transport_from_settings`).
    outbox
        ``.eml`` folder overriding ``notify.outbox`` when no SMTP host is set.
    """
    from pipeline.notify.transport import transport_from_settings

    email = transport if transport is not None else transport_from_settings(
        settings, outbox=outbox)
    channels: dict[str, Channel] = {EMAIL: EmailChannel(email, settings)}
    types = _registered()
    for name, config in settings.notify.channels.items():
        kind = types[config.type]
        channels[name] = kind.build(name, kind.options_model.model_validate(config.options()),
                                    settings)
    return channels


@contextlib.contextmanager
def open_sessions(channels: dict[str, Channel]) -> Iterator[None]:
    """Open every channel's session for one delivery run (closed in reverse order)."""
    with contextlib.ExitStack() as stack:
        for channel in channels.values():
            stack.enter_context(channel.session())
        yield
