"""Typed errors. Library code raises these; the CLI maps them to exit codes.

Every error that concerns an input names the file, the record (or line) and the field,
so that a lab bioinformatician can fix the input without reading a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
#: ``ctdna run``: everything valid was processed, but some alert notifications were not
#: delivered (deferred for a later run, or dead-lettered). Issue #10 item 3.
EXIT_UNDELIVERED = 3
#: Prefect's API could not be reached or its temporary server did not start (issue #12).
EXIT_ORCHESTRATOR_UNAVAILABLE = 5
#: ``ctdna doctor``: at least one check failed (issue #12 item 4).
EXIT_CHECKS_FAILED = 4


class CtdnaError(Exception):
    """Base class of every error ctdna raises on purpose."""

    exit_code = EXIT_FAILURE


class InputError(CtdnaError):
    """Bad input from the lab: one clear line, exit status 2.

    Parameters
    ----------
    message
        What is wrong, in words a lab scientist understands.
    path
        The offending file, when there is one.
    record
        Where in the file: ``"record 12"``, ``"line 4"``, ``"header"``.
    field
        The field or column concerned (``"FORMAT/AF"``, ``"collection_date"``).
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        record: str | int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.record = f"record {record}" if isinstance(record, int) else record
        self.field = field
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """Render ``file: record: field: message`` on one line, skipping unknown parts."""
        parts = [p for p in (self.path, self.record) if p]
        if self.field:
            parts.append(f"field {self.field}")
        parts.append(self.message)
        return ": ".join(parts).replace("\n", " ")


class InvalidVariantFileError(InputError):
    """A VCF/BCF or variant table that cannot be read or fails validation."""


class ManifestError(InputError):
    """A sample manifest or therapy history that cannot be used."""


class GenomeBuildError(InputError):
    """The genome build is unknown or cannot be detected (never guessed)."""


class ConfigError(InputError):
    """An invalid configuration file or environment override."""


class KnowledgeBaseError(CtdnaError):
    """The knowledge base data are inconsistent (a defect in shipped data)."""


class AmendRequiredError(InputError):
    """Changed content under an existing sample_id without ``--amend``."""


class NotFoundError(InputError):
    """A requested patient, sample or file does not exist."""


class StoreError(CtdnaError):
    """The longitudinal store cannot be reached or migrated."""


class DeliveryError(CtdnaError):
    """An alert email could not be delivered (retryable: the alert stays pending)."""


class OrchestratorUnavailableError(CtdnaError):
    """Prefect's API is not configured when it must be, or its temporary server did not start.

    Exit status 5: nothing was ingested or sent; start a Prefect server and retry.
    """

    exit_code = EXIT_ORCHESTRATOR_UNAVAILABLE


class AckLinkError(CtdnaError):
    """A signed acknowledgement link that must be refused (issue #14 item 2).

    Parameters
    ----------
    message
        What is wrong, safe to show on the page (no secret, no token content).
    reason
        ``forged`` (bad signature or malformed), ``expired``, ``reused`` or ``unknown``
        (a valid signature for an alert this store does not hold).
    """

    #: HTTP status of each reason on the acknowledgement page.
    HTTP_STATUS: ClassVar[dict[str, int]] = {
        "forged": 403, "expired": 410, "reused": 410, "unknown": 404}

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(message)

    @property
    def http_status(self) -> int:
        return self.HTTP_STATUS.get(self.reason, 403)
