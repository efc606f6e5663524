"""Where the Prefect API comes from: a configured server, or a temporary local one.

Issue #12 item 1: on a fresh machine Prefect's temporary (ephemeral) server needs 25-76 s
to start (first database migrations, no bytecode yet) but Prefect waits only 20 s, so the
first ``ctdna demo`` / ``ctdna run`` failed with an "internal error".  Here the temporary
server is started explicitly, before the flow, with a longer start-up timeout that applies
to it alone (a configured ``PREFECT_API_URL`` is never touched), and a failure becomes one
actionable line with its own exit status (:class:`pipeline.errors.PrefectUnavailableError`).
"""

from __future__ import annotations

import os

from pipeline.errors import PrefectUnavailableError

#: Seconds the temporary server may take to start (Prefect's own default is 20 s).
EPHEMERAL_STARTUP_TIMEOUT_S = 300
_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"

_HOW_TO_START = ("start one with `prefect server start` and set "
                 "PREFECT_API_URL=http://127.0.0.1:4200/api (see docs/deployment.md)")


def api_url_configured() -> bool:
    """True when a Prefect API URL is configured (environment or active Prefect profile)."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def ensure_local_api() -> None:
    """Make sure a Prefect API is available for an in-process flow run.

    With ``PREFECT_API_URL`` configured nothing is done (the server is the operator's).
    Otherwise Prefect's temporary server is started now, waiting up to
    ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (default here: 300 s) instead of
    Prefect's 20 s.

    Raises
    ------
    PrefectUnavailableError
        When the temporary server does not answer in time or exits.
    """
    if api_url_configured():
        return
    timeout = int(os.environ.get(_TIMEOUT_ENV) or EPHEMERAL_STARTUP_TIMEOUT_S)
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the same singleton Prefect's clients use later
    try:
        server.start(timeout=timeout)
    except Exception as exc:  # Prefect raises RuntimeError / httpx errors here
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise PrefectUnavailableError(
            f"the temporary Prefect server did not start within {timeout} s ({reason}); "
            f"raise {_TIMEOUT_ENV} or {_HOW_TO_START}"
        ) from exc


def require_api_for_serve() -> None:
    """``ctdna serve`` needs a real Prefect server: schedules on a temporary one vanish.

    Raises
    ------
    PrefectUnavailableError
        When ``PREFECT_API_URL`` is not set.
    """
    if not api_url_configured():
        raise PrefectUnavailableError(
            "ctdna serve needs a Prefect server (PREFECT_API_URL is not set): "
            + _HOW_TO_START
        )
