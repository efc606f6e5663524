"""Email transports: SMTP relay (smtplib) or an ``.eml`` outbox folder.

The external contract (interfaces.md) configures SMTP with ``CTDNA_SMTP_HOST``, ``_PORT``,
``_USER``, ``_PASSWORD``, ``_TLS`` (``starttls|ssl|none``) and ``CTDNA_MAIL_FROM``; with no
SMTP host, messages are written as ``.eml`` files to the outbox. We call :mod:`smtplib`
directly instead of ``prefect-email`` because the latter's task returns (and may persist) the
whole MIME message, body included (engineering-notes.md sections 1.9 and 4.3).

TLS uses :func:`ssl.create_default_context`, i.e. certificate and host-name verification on
(section 4.2.4). A failure raises :class:`pipeline.errors.DeliveryError`; when the relay as a
whole is unreachable the subclass :class:`TransportUnavailableError` tells the ledger to stop
trying further messages in this run (they stay pending for the next run).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import smtplib
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Protocol

from pipeline.config import Settings, SmtpSettings
from pipeline.errors import ConfigError, DeliveryError
from pipeline.notify.message import new_message, sender_domain

_DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}


class TransportUnavailableError(DeliveryError):
    """The relay cannot be reached or refuses the session (every message would fail)."""


class PermanentDeliveryError(DeliveryError):
    """The relay rejected this message for good (RFC 5321 5xx on sender, recipients or
    data, e.g. ``554 transaction failed``): retrying cannot help, so the ledger moves it to
    the dead letter and tells ops instead of retrying forever (issue #10 item 2)."""


#: Reply codes that reject the message itself. 500-504 are protocol/command errors (a relay
#: that stored the message and then answered 500 must not lose it), so they stay transient.
PERMANENT_CODES = frozenset({521, 541, 550, 551, 552, 553, 554, 556})


def _is_permanent(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = {code for code, _ in exc.recipients.values()}
        return bool(codes) and codes <= PERMANENT_CODES
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code in PERMANENT_CODES


@dataclass(frozen=True)
class SendResult:
    """Outcome of one accepted message.

    Attributes
    ----------
    message_id
        The ``Message-ID`` header of the message sent.
    refused
        Recipients the relay refused while accepting the others (the message is sent).
    location
        Where an ``.eml`` file was written (outbox transport only).
    """

    message_id: str
    refused: tuple[str, ...] = field(default_factory=tuple)
    location: str | None = None


class Transport(Protocol):
    """What the ledger needs from a transport."""

    name: str

    def send(self, message: EmailMessage) -> SendResult:
        """Send one message or raise :class:`DeliveryError`."""
        ...


def _ensure_message_id(message: EmailMessage) -> str:
    if not message.get("Message-ID"):
        message["Message-ID"] = make_msgid(domain=sender_domain(str(message.get("From", ""))))
    return str(message["Message-ID"])


class SmtpTransport:
    """Deliver through an SMTP relay: one connection per message, or reused in a session.

    ``with transport.session() as send:`` yields a ``send(message)`` that keeps one open
    connection per thread for the whole block (issue #11 item 3: a TLS handshake and login
    per message were a large share of a run's delivery time), at most
    :attr:`max_per_connection` messages each; any failure drops that connection and the next
    message opens a new one. Every connection of the session is closed when the block ends.
    :meth:`send` alone opens and closes a connection per message.

    Parameters
    ----------
    smtp
        ``settings.notify.smtp``: host, port (default 465 for ``ssl``, 587 for ``starttls``,
        25 for ``none``), user/password (login only when a user is set), tls mode and the
        socket timeout in seconds.
    ssl_context
        TLS context; default verifies certificates and host names. Tests may pass their own.

    Raises
    ------
    ConfigError
        No host, or a login configured over an unencrypted connection (the password would
        cross the network in clear).
    """

    name = "smtp"

    def __init__(self, smtp: SmtpSettings, *, ssl_context: ssl.SSLContext | None = None) -> None:
        if not smtp.host:
            raise ConfigError("no SMTP host configured", field="notify.smtp.host")
        if smtp.user and smtp.tls == "none":
            raise ConfigError(
                "refusing SMTP login without TLS (the password would be sent in clear); "
                "use starttls or ssl",
                field="notify.smtp.tls",
            )
        self.smtp = smtp
        self.max_per_connection = 100
        self.host = smtp.host
        self.port = smtp.port or _DEFAULT_PORTS[smtp.tls]
        self.ssl_context = ssl_context
        self.password = smtp.password
        if self.password is None and smtp.password_block:
            from pipeline.notify.secrets import secret_from_block

            self.password = secret_from_block(smtp.password_block)

    def _context(self) -> ssl.SSLContext:
        return self.ssl_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        timeout = self.smtp.timeout_seconds
        if self.smtp.tls == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=timeout, context=self._context()
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=timeout)
        try:
            client.ehlo()
            if self.smtp.tls == "starttls":
                client.starttls(context=self._context())
                client.ehlo()
            if self.smtp.user:
                client.login(self.smtp.user, self.password or "")
        except BaseException:
            _quietly_close(client)
            raise
        return client

    def _open(self) -> smtplib.SMTP:
        """A new connection, relay problems mapped to :class:`TransportUnavailableError`."""
        where = f"{self.host}:{self.port}"
        try:
            return self._connect()
        except smtplib.SMTPAuthenticationError as exc:
            raise TransportUnavailableError(
                f"SMTP {where}: authentication failed ({exc.smtp_code})"
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportUnavailableError(f"SMTP {where}: {_describe(exc)}") from exc

    def _transmit(self, client: smtplib.SMTP, message: EmailMessage) -> SendResult:
        """Send on an open connection; failures mapped to the delivery error types."""
        message_id = _ensure_message_id(message)
        where = f"{self.host}:{self.port}"
        try:
            refused = client.send_message(message)
        except smtplib.SMTPServerDisconnected as exc:
            raise TransportUnavailableError(f"SMTP {where}: {_describe(exc)}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            kind = PermanentDeliveryError if _is_permanent(exc) else DeliveryError
            raise kind(f"SMTP {where}: {_describe(exc)}") from exc
        return SendResult(message_id=message_id, refused=tuple(sorted(refused)))

    def send(self, message: EmailMessage) -> SendResult:
        """Send ``message`` to the addresses in its ``To``/``Cc``/``Bcc`` headers.

        Returns
        -------
        SendResult
            The Message-ID and any recipients refused while others were accepted.

        Raises
        ------
        TransportUnavailableError
            Connection, TLS, greeting or authentication failure, or a dropped connection
            (the relay is unusable).
        PermanentDeliveryError
            The relay rejected this message for good (5xx, see :data:`PERMANENT_CODES`).
        DeliveryError
            The relay rejected this message for now (4xx, 500-504).
        """
        client = self._open()
        try:
            return self._transmit(client, message)
        finally:
            _quietly_close(client)

    @contextlib.contextmanager
    def session(self) -> Iterator[Callable[[EmailMessage], SendResult]]:
        """Yield a ``send(message)`` reusing one connection per thread until the block ends."""
        pool = _ConnectionPool(self)
        try:
            yield pool.send
        finally:
            pool.close()


class _ConnectionPool:
    """Open SMTP connections of one session, one per thread (workers send in parallel)."""

    def __init__(self, transport: SmtpTransport) -> None:
        self.transport = transport
        self.lock = threading.Lock()
        self.clients: dict[int, tuple[smtplib.SMTP, int]] = {}

    def _take(self) -> smtplib.SMTP:
        key = threading.get_ident()
        with self.lock:
            client, count = self.clients.pop(key, (None, 0))
        if client is not None and count >= self.transport.max_per_connection:
            _quietly_close(client)
            client, count = None, 0
        if client is None:
            client, count = self.transport._open(), 0
        with self.lock:
            self.clients[key] = (client, count + 1)
        return client

    def send(self, message: EmailMessage) -> SendResult:
        client = self._take()
        try:
            return self.transport._transmit(client, message)
        except BaseException:
            # After a failure the connection's state is unknown: the next message reconnects.
            with self.lock:
                self.clients.pop(threading.get_ident(), None)
            _quietly_close(client)
            raise

    def close(self) -> None:
        with self.lock:
            clients, self.clients = list(self.clients.values()), {}
        for client, _count in clients:
            _quietly_close(client)


def _quietly_close(client: smtplib.SMTP) -> None:
    # QUIT after a failure may itself fail; the message outcome is already decided.
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()


def _describe(exc: BaseException) -> str:
    """One line, no message content: SMTP code and server text, or the OS error."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        return f"all recipients refused (codes {codes})"
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        return f"{exc.smtp_code} {' '.join(text.split())}"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


class EmlOutboxTransport:
    """Write each message as an RFC 5322 ``.eml`` file (CRLF line endings) to a folder.

    Used when no SMTP host is configured (interfaces.md). Files are written atomically: to a
    temporary file in the same folder, flushed and fsynced, then renamed, so a reader (or a
    mail gateway picking files up) never sees a half-written message. Files are created with
    mode 0600 because bodies carry the pseudonymous patient ID.

    Parameters
    ----------
    folder
        The outbox folder; created when missing.
    """

    name = "eml"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def send(self, message: EmailMessage) -> SendResult:
        """Write ``message`` to ``<folder>/<UTC time>-<ref>-<random>.eml``.

        Raises
        ------
        DeliveryError
            The folder cannot be created or written.
        """
        message_id = _ensure_message_id(message)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        label = str(message.get("X-Ctdna-Ref") or "ops")
        label = "".join(c for c in label if c.isalnum() or c == "-") or "msg"
        name = f"{stamp}-{label}-{secrets.token_hex(3)}.eml"
        data = message.as_bytes(policy=policy.SMTP)
        tmp_name: str | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".eml")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            target = self.folder / name
            os.replace(tmp_name, target)
            tmp_name = None
        except OSError as exc:
            raise DeliveryError(
                f"{self.folder}: cannot write .eml ({exc.strerror or type(exc).__name__})"
            ) from exc
        finally:
            if tmp_name is not None and os.path.exists(tmp_name):
                os.unlink(tmp_name)
        return SendResult(message_id=message_id, location=str(target))


def transport_from_settings(settings: Settings, *, outbox: str | Path | None = None
                            ) -> SmtpTransport | EmlOutboxTransport:
    """SMTP when ``notify.smtp.host`` or ``credentials_block`` is set, else the outbox.

    Blocks named in ``notify.smtp`` are read here, from the Prefect API
    (:func:`pipeline.notify.secrets.resolve_smtp`).

    Parameters
    ----------
    settings
        Resolved settings.
    outbox
        Outbox folder overriding ``notify.outbox`` (``ctdna run --outbox DIR``); only used
        when no SMTP host is configured.
    """
    from pipeline.notify.secrets import resolve_smtp, smtp_configured

    if smtp_configured(settings.notify.smtp):
        return SmtpTransport(resolve_smtp(settings.notify.smtp))
    return EmlOutboxTransport(outbox if outbox is not None else settings.notify.outbox)


def send_ops_message(settings: Settings, transport: Transport, subject: str, body: str
                     ) -> SendResult:
    """Mail a pipeline/operations message (run failed, routing fell back) to ``ops_address``.

    The caller must keep PHI out: counts, run IDs, care-team names and alert references only
    (engineering-notes.md section 4.3). The subject is reduced to one line.

    Parameters
    ----------
    settings
        ``notify.ops_address``, ``mail_from``, ``subject_prefix`` and ``test_mode`` are read.
    transport
        Where to send it.
    subject
        Short description, e.g. ``"nightly run failed"``.
    body
        Plain text.

    Raises
    ------
    DeliveryError
        The transport failed.
    """
    prefix = " ".join(settings.notify.subject_prefix.split())
    marker = "[TEST] " if settings.notify.test_mode else ""
    line = " ".join(subject.split())
    msg = new_message(settings, [settings.notify.ops_address], f"{marker}{prefix} [ops] {line}")
    msg.set_content(body if body.endswith("\n") else body + "\n")
    return transport.send(msg)
