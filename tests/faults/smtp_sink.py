"""A real SMTP sink (aiosmtpd on 127.0.0.1) with scripted faults (issue #10 fault suite).

Modes for the DATA phase, taken from ``script`` in order (then ``default``):

* ``ok``: store and answer 250;
* ``store-then-500``: store the message, then answer ``500`` (a relay that accepted the
  mail but reports an error; the sender cannot know it was stored);
* ``store-then-drop``: store the message, then drop the connection without any answer;
* ``451``: answer ``451`` (temporary) without storing;
* ``554``: answer ``554`` (permanent rejection) without storing.

``refuse()`` stops the listener so that connections are refused; ``start()`` restarts it on
the same port.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class FaultyHandler:
    script: list[str] = field(default_factory=list)
    default: str = "ok"
    stored: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _next(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mode = self._next()
        if mode in ("451", "554"):
            return {"451": "451 4.3.0 temporary failure (simulated)",
                    "554": "554 5.7.1 transaction failed (simulated)"}[mode]
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        with self.lock:
            self.stored.append(msg)
        if mode == "store-then-500":
            return "500 5.0.0 internal error after queueing (simulated)"
        if mode == "store-then-drop":
            server.transport.abort()
            return "250 never seen"
        return "250 OK"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FaultySink:
    """The sink; ``handler.stored`` holds every message the relay kept."""

    def __init__(self, handler: FaultyHandler | None = None) -> None:
        self.handler = handler or FaultyHandler()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> FaultySink:
        controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        try:
            controller.start()
        except BaseException:
            controller.stop(no_assert=True)
            raise
        self.controller = controller
        return self

    def refuse(self) -> None:
        if self.controller is not None:
            self.controller.stop(no_assert=True)
            self.controller = None

    stop = refuse

    def by_ref(self) -> dict[str, set[str]]:
        """Alert reference -> set of Message-IDs it was stored under (ops mail excluded).

        A digest carries several alerts (``X-Ctdna-Items``, issue #14); each of them maps
        to the digest's Message-ID.
        """
        out: dict[str, set[str]] = {}
        for msg in self.handler.stored:
            items = str(msg.get("X-Ctdna-Items") or msg.get("X-Ctdna-Ref") or "")
            for ref in filter(None, (r.strip() for r in items.split(","))):
                out.setdefault(ref, set()).add(str(msg["Message-ID"]))
        return out

    def digests(self) -> list[EmailMessage]:
        """The alert messages stored (ops mail excluded), in arrival order."""
        return [m for m in self.handler.stored if m.get("X-Ctdna-Ref")]

    def ops_messages(self) -> list[EmailMessage]:
        return [m for m in self.handler.stored if "[ops]" in str(m["Subject"])]
