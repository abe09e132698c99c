"""The project's exceptions: one root, one subclass per kind of fault.

Kept free of any other project import so every layer (blocks, stores, habitats, pools,
stages, flows) can raise and catch them without an import cycle. Callers catch
``XtractError`` for "anything this project refused or could not do"; the subclasses say
which part failed. Messages name the thing at fault (a field, a path, a collection) and
never a secret. Extractors keep their own ``extractors.base.ExtractorError`` so they stay
free of the rest of the project.
"""

from __future__ import annotations


class XtractError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigurationError(XtractError, ValueError):
    """A block, option or argument cannot be used as given (the message names the field)."""


class CredentialsError(ConfigurationError):
    """Globus credentials are missing, malformed or rejected (never includes the secret)."""


class CrawlError(XtractError, RuntimeError):
    """A crawl (or a spool it wrote) could not be read or completed."""


class TransferError(XtractError):
    """A Globus transfer or delete task did not succeed; carries the task id and the service's reason."""

    def __init__(self, message: str, *, task_id: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.code = code


class TransferFailed(TransferError):
    """The task ended FAILED (or was refused at submission)."""


class TransferTimeout(TransferError):
    """The task did not finish within the deadline and was cancelled."""


class DownloadError(XtractError):
    """A file could not be fetched (after retries); names the file, never a credential."""


class ChecksumMismatch(DownloadError):
    """The bytes received do not match the checksum the source published; the copy was deleted."""


class ComputeError(XtractError):
    """A remote extraction engine (Globus Compute, a Dask cluster) could not run a batch or went away."""


class PayloadTooLarge(ComputeError, ValueError):
    """A task's arguments exceed the compute service's payload limit even for one group."""

    def __init__(self, message: str, group_id: str | None = None) -> None:
        super().__init__(message)
        self.group_id = group_id


class TaskLost(ComputeError):
    """A task was abandoned: its executor was restarted or its worker went away before it returned."""


class OffloadError(XtractError):
    """The metadata could not be copied or transferred to its destination."""


class SearchError(XtractError):
    """The local search index cannot answer (missing, or a query it cannot parse)."""


class IndexMissing(SearchError):
    """No search index in this metadata directory yet."""


class QuerySyntaxError(SearchError):
    """The query cannot be parsed."""


class SearchIngestError(XtractError):
    """Globus Search refused or failed an ingest."""


class MetadataDirError(XtractError, ValueError):
    """A metadata directory is missing, unreadable or breaks the output contract."""


class LockHeld(XtractError):
    """Another run holds the lock on this endpoint's state in the metadata directory."""


class ClientError(XtractError, RuntimeError):
    """An XtractClient call cannot be answered (unknown crawl id, a run that could not start, ...)."""
