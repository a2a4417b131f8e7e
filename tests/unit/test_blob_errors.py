"""How storage answers read as the store's errors, and what the request counter calls them."""

from __future__ import annotations

import pytest
from azure.core.exceptions import (
    DecodeError,
    HttpResponseError,
    IncompleteReadError,
    ServiceRequestError,
)

from jobs_core.blob_errors import TRANSIENT_STATUS, translate_error
from jobs_core.errors import (
    BlobNotFoundError,
    BlockLimitError,
    ConcurrencyConflictError,
    StoreError,
    TransientStoreError,
)
from jobs_core.request_counter import operation_name


def _http_error(status: int, code: str) -> HttpResponseError:
    err = HttpResponseError(message=f"{status} {code}\nRequestId:1")
    err.status_code = status
    err.error_code = code
    return err


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (404, "BlobNotFound", BlobNotFoundError),
        (404, "ContainerNotFound", StoreError),
        (412, "ConditionNotMet", ConcurrencyConflictError),
        (412, "AppendPositionConditionNotMet", ConcurrencyConflictError),
        (409, "BlobAlreadyExists", ConcurrencyConflictError),
        (409, "BlockCountExceedsLimit", BlockLimitError),
        (409, "LeaseAlreadyPresent", StoreError),
        (403, "AuthorizationPermissionMismatch", StoreError),
        *[(status, "X", TransientStoreError) for status in sorted(TRANSIENT_STATUS)],
    ],
)
def test_translate_error(status: int, code: str, expected: type[StoreError]) -> None:
    err = translate_error(_http_error(status, code), "append", "s/a")
    assert type(err) is expected
    assert f"{status} {code}" in str(err)
    assert "RequestId" not in str(err)  # first line of the service message only


def test_connection_failures_are_transient() -> None:
    assert type(translate_error(ServiceRequestError("refused"), "read", "x")) is (
        TransientStoreError
    )


def test_a_download_that_broke_off_is_transient_also_as_the_sdk_wraps_it() -> None:
    """After its own retries of a chunk, the SDK raises ``HttpResponseError(error)``: no
    status, the read error inside (or "Download stream interrupted.", an error carrying the
    answer's 2xx status). Both read as a permanent ``StoreError``."""
    reset = IncompleteReadError("Connection reset by peer")
    wrapped = HttpResponseError(reset, error=reset)
    interrupted = HttpResponseError(message="Download stream interrupted.")
    interrupted.status_code = 206
    for err in (wrapped, interrupted, HttpResponseError(DecodeError("x"), error=DecodeError("x"))):
        assert type(translate_error(err, "read", "x")) is TransientStoreError, err
    assert type(translate_error(HttpResponseError("odd"), "read", "x")) is StoreError


@pytest.mark.parametrize(
    ("method", "url", "headers", "expected"),
    [
        ("PUT", "http://h/a/c/b?comp=appendblock", {}, "append"),
        ("PUT", "http://h/a/c/b?comp=metadata", {}, "set_metadata"),
        ("PUT", "http://h/a/c/b", {"x-ms-blob-type": "AppendBlob"}, "create"),
        ("PUT", "http://h/a/c?restype=container", {}, "create_container"),
        ("HEAD", "http://h/a/c/b", {}, "get_properties"),
        ("GET", "http://h/a/c?restype=container&comp=list&prefix=p", {}, "list"),
        ("GET", "http://h/a/c/b", {"x-ms-range": "bytes=0-1"}, "read"),
        ("DELETE", "http://h/a/c/b", {}, "delete"),
        ("PUT", "http://h/a/c/b?comp=lease", {}, "other:PUT"),
    ],
)
def test_operation_names(method: str, url: str, headers: dict[str, str], expected: str) -> None:
    assert operation_name(method, url, headers) == expected
