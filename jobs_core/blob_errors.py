"""Errors of the Azure SDK as the store's errors (``errors.py``):

- Transient: connection errors, timeouts, an answer that broke off (also wrapped by the SDK's
  download), and HTTP 408, 429, 500, 502, 503, 504 (``TRANSIENT_STATUS``). The SDK's
  ``ExponentialRetry`` retries connection errors, timeouts, 408 and every 5xx but 501/505
  (``blob_store.RETRY_TOTAL`` times, about 1 s, 4 s, 10 s apart); once it gives up, the
  adapter raises ``TransientStoreError``. The SDK does not
  retry 429 (Azure Storage throttles with 503 ``ServerBusy`` / 500 ``OperationTimedOut``); a
  429 is raised as ``TransientStoreError`` at once.
  Caution: the SDK also retries ``append_block`` after a 5xx or a lost response, so a block
  can be committed twice (at-least-once): records must be safe to replay.
- 404 → ``BlobNotFoundError`` (``read``, ``set_metadata``); ``read_claim`` answers None and
  ``delete`` answers False. A missing container is a ``StoreError`` (call ``ensure_container``).
- A failed condition (412 ``ConditionNotMet``, 409 ``BlobAlreadyExists``) →
  ``ConcurrencyConflictError``; never retried here.
- 409 ``BlockCountExceedsLimit`` → ``BlockLimitError``.
- Anything else → ``StoreError`` whose message holds the status and the service's error code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import (
    AzureError,
    DecodeError,
    HttpResponseError,
    IncompleteReadError,
    ServiceRequestError,
    ServiceResponseError,
)

from .errors import (
    BlobNotFoundError,
    BlockLimitError,
    ConcurrencyConflictError,
    StoreError,
    TransientStoreError,
)

TRANSIENT_STATUS: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying (besides connection errors and timeouts)."""

_CONFLICT_409_CODES = frozenset({"BlobAlreadyExists"})


def error_code(err: AzureError) -> str:
    code = getattr(err, "error_code", None)
    if not code:
        response = getattr(err, "response", None)
        headers = getattr(response, "headers", None) or {}
        code = headers.get("x-ms-error-code")
    return str(getattr(code, "value", code) or "")  # StorageErrorCode members -> their text


def status_of(err: AzureError) -> int | None:
    status = getattr(err, "status_code", None)
    return status if isinstance(status, int) else None


def translate_error(err: AzureError, op: str, name: str) -> StoreError:
    """The ``StoreError`` subclass for an SDK error (see the module docstring)."""
    status = status_of(err)
    code = error_code(err)
    first_line = (str(err.message or err).strip().splitlines() or [""])[0]
    text = f"{op} {name!r}: {status or type(err).__name__} {code}".rstrip() + f": {first_line}"
    if _broke_off(err):
        return TransientStoreError(text)
    if status == 404 and code != "ContainerNotFound":
        return BlobNotFoundError(text)
    if status == 412 or (status == 409 and code in _CONFLICT_409_CODES):
        return ConcurrencyConflictError(text)
    if status == 409 and code == "BlockCountExceedsLimit":
        return BlockLimitError(text)
    if status in TRANSIENT_STATUS:
        return TransientStoreError(text)
    return StoreError(text)


def _broke_off(err: BaseException | None, depth: int = 0) -> bool:
    """A connection that failed or broke off mid-answer, also as the SDK wraps it: after its
    own retries of a download, it raises ``HttpResponseError(error)`` with no status around
    the read error (or around "Download stream interrupted.", an error with the answer's 2xx
    status), which read as a permanent ``StoreError``."""
    if err is None or depth > 3:
        return False
    if isinstance(err, ServiceRequestError | ServiceResponseError | IncompleteReadError |
                  DecodeError):
        return True
    status = status_of(err) if isinstance(err, AzureError) else None
    if isinstance(err, HttpResponseError) and status is not None and 200 <= status < 300:
        return True
    return _broke_off(getattr(err, "inner_exception", None) or err.__cause__, depth + 1)


@contextmanager
def translated(op: str, name: str) -> Iterator[None]:
    try:
        yield
    except AzureError as err:
        raise translate_error(err, op, name) from err


def is_not_found(err: HttpResponseError) -> bool:
    return status_of(err) == 404 and error_code(err) != "ContainerNotFound"
