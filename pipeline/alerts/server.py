"""The acknowledgement endpoint behind the signed links (``ctdna ack-server``; issue #14).

Standard library only (``http.server``): one small page, no login, no session.

* ``GET <any prefix>/<token>``: verifies the link and shows the alert (reference, tier, rule,
  care team, when sent; no patient identifier) with a form and an **Acknowledge** button.
  Opening the link does *not* acknowledge: mail security scanners fetch links in incoming
  mail, and must not acknowledge a critical result nobody has read. The first opening is
  recorded as ``delivered``.
* ``POST <any prefix>/<token>`` (form: optional ``name`` and ``note``) records the
  acknowledgement and shows a page saying so, by whom and when.
* Refused links get a page and a status: 403 forged, 410 expired or already used, 404 an
  alert this store does not hold. ``GET /healthz`` answers ``ok``.

The token never reaches the log (the request line is logged without its path). Serve it
behind the hospital's TLS reverse proxy; ``notify.ack.base_url`` is the public URL.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy.engine import Engine

from pipeline.alerts.ack import confirm_link, open_link
from pipeline.alerts.signing import ack_secret
from pipeline.config import Settings
from pipeline.errors import AckLinkError, InputError
from pipeline.notify.message import TIER_WORDS

MAX_FORM_BYTES = 16_384
_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'",
}
_STYLE = ("body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}"
          "th{text-align:left;padding-right:1em}input,textarea{width:100%}"
          "button{font-size:1.1em;padding:.4em 1.2em}")


def _page(title: str, body: str) -> bytes:
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{body}</body></html>").encode()


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value is not None else "-"


def _alert_table(alert: dict[str, Any]) -> str:
    rows = [("Alert reference", alert["ref"]),
            ("Tier", TIER_WORDS.get(alert["tier"], alert["tier"])),
            ("Rule", alert["rule_id"] or "status change"),
            ("Care team", alert["care_team"] or "-"), ("Sent", _when(alert["sent_at"])),
            ("State", alert["state"])]
    if alert["acknowledged_at"] is not None:
        rows.append(("Acknowledged", f"by {alert['acknowledged_by']}, "
                                     f"{_when(alert['acknowledged_at'])}"))
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


def confirmation_page(alert: dict[str, Any], recipient: str) -> bytes:
    """The GET page: the alert and the form that acknowledges it (POST to the same URL)."""
    already = ("<p><strong>Already acknowledged</strong>; you can add your own "
               "acknowledgement.</p>") if alert["acknowledged_at"] is not None else ""
    form = (
        "<form method=\"post\">"
        "<p><label>Your name or role (default: "
        f"{html.escape(recipient)})<br><input name=\"name\" maxlength=\"256\"></label></p>"
        "<p><label>Note (optional)<br><textarea name=\"note\" rows=\"3\" maxlength=\"2000\">"
        "</textarea></label></p>"
        "<p><button type=\"submit\">Acknowledge</button></p></form>"
    )
    return _page(f"Acknowledge alert {alert['ref']}",
                 "<p>Please confirm that you have seen this alert and that it is being "
                 "acted on. The details are in the email and the patient's report.</p>"
                 + _alert_table(alert) + already + form)


def done_page(alert: dict[str, Any]) -> bytes:
    """The POST page: the acknowledgement as recorded."""
    return _page(f"Alert {alert['ref']} acknowledged",
                 f"<p>Acknowledged by <strong>{html.escape(str(alert['acknowledged_by']))}"
                 f"</strong> on {_when(alert['acknowledged_at'])}. Thank you; you can close "
                 "this page.</p>" + _alert_table(alert))


def refusal_page(error: AckLinkError) -> bytes:
    """The page of a refused link (forged, expired, reused, unknown alert)."""
    return _page("Link not accepted",
                 f"<p>{html.escape(str(error))}.</p><p>Nothing was recorded. To acknowledge "
                 "the alert, use the newest email about it or run <code>ctdna ack ALERT_ID "
                 "--by NAME</code>, or contact the lab.</p>")


class AckHandler(BaseHTTPRequestHandler):
    """Request handler; the server carries ``engine``, ``settings`` and ``clock``."""

    server: AckServer
    server_version = "ctdna-ack"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        # The path holds a single-use credential: log the method and the status only.
        status = args[1] if len(args) > 1 else "-"
        sys.stderr.write(f"{self.log_date_time_string()} {self.command} ack {status}\n")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        for name, value in _HEADERS.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _token(self) -> str | None:
        path = urlsplit(self.path).path.rstrip("/")
        token = path.rsplit("/", 1)[-1]
        return token or None

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/healthz":
            self._send(HTTPStatus.OK, b"ok")
            return
        token = self._token()
        if token is None:
            self._send(HTTPStatus.NOT_FOUND, _page("Not found", "<p>No such page.</p>"))
            return
        try:
            view = open_link(self.server.engine, token, self.server.settings,
                             now=self.server.clock())
        except AckLinkError as exc:
            self._send(exc.http_status, refusal_page(exc))
            return
        self._send(HTTPStatus.OK, confirmation_page(view.alert, view.claims.recipient))

    def do_POST(self) -> None:
        token = self._token()
        length = int(self.headers.get("Content-Length") or 0)
        if token is None or length > MAX_FORM_BYTES:
            self._send(HTTPStatus.BAD_REQUEST, _page("Bad request", "<p>Bad request.</p>"))
            return
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        name = (form.get("name") or [""])[0]
        note = (form.get("note") or [""])[0]
        try:
            result = confirm_link(self.server.engine, token, self.server.settings,
                                  name=name, note=note, now=self.server.clock())
        except AckLinkError as exc:
            self._send(exc.http_status, refusal_page(exc))
            return
        except InputError as exc:
            self._send(HTTPStatus.BAD_REQUEST,
                       _page("Not recorded", f"<p>{html.escape(exc.message)}</p>"))
            return
        self._send(HTTPStatus.OK, done_page(result.state))


class AckServer(ThreadingHTTPServer):
    """The acknowledgement HTTP server (one thread per request)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], engine: Engine, settings: Settings,
                 clock: Callable[[], datetime] | None = None) -> None:
        ack_secret(settings)  # refuse to start without a usable secret (ConfigError)
        self.engine = engine
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        super().__init__(address, AckHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"
