"""``JobStore`` on Azure Blob Storage (or Azurite), with ``azure.storage.blob.aio``.

This is the only module of the project that imports ``azure.storage.blob``.

Errors: ``blob_errors.py`` maps the SDK's errors to ``errors.py``'s (transient, not found,
conflict, block limit), and says what the SDK retries.

Reads: GETs are capped at 4 MiB per request (``max_single_get_size`` / ``max_chunk_get_size``):
Azurite fails larger GETs over many blocks (measured: ~20,000 blocks; real Azure serves them).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
)
from azure.storage.blob.aio import BlobClient, ContainerClient, ExponentialRetry

from .blob_errors import error_code, is_not_found, status_of, translate_error, translated
from .errors import (
    BlobNotFoundError,
    ConcurrencyConflictError,
    StoreError,
    TransientStoreError,
)
from .request_counter import RequestCounter
from .storage_settings import StorageSettings
from .store import AppendResult, BlobInfo, ClaimBlob, ReadResult

MAX_GET_SIZE = 4 * 1024 * 1024
RETRY_TOTAL = 3
RETRY_INITIAL_BACKOFF_S = 1
RETRY_INCREMENT_BASE_S = 3
RETRY_JITTER_S = 1
# A storage account that stops answering (a network partition, a stalled front end): the SDK's
# defaults wait 20 s to connect and 60 s for each read, per try, so one request hung for up to
# ~4 minutes (past Azure's 230 s HTTP limit) before it could answer 503. With these, a request
# gives up after 4 tries of at most 5 s + 10 s and their back-off: WORST_CASE_REQUEST_S. The
# read timeout is between socket reads (a 4 MiB GET that keeps flowing is not cut); an append
# cut by it is an ambiguous write, which the core resolves by reading back (I1).
CONNECTION_TIMEOUT_S = 5
READ_TIMEOUT_S = 10
# (ExponentialRetry counts the retry before it sleeps: initial + base**1 + jitter first, so
# 5 s, 11 s and 29 s at most: ~105 s in all)
WORST_CASE_REQUEST_S = (RETRY_TOTAL + 1) * (CONNECTION_TIMEOUT_S + READ_TIMEOUT_S) + sum(
    RETRY_INITIAL_BACKOFF_S + RETRY_INCREMENT_BASE_S ** n + RETRY_JITTER_S
    for n in range(1, RETRY_TOTAL + 1))

def _quoted(etag: str | None) -> str:
    """ETags in the header form (``"0x..."``): listings give them without quotes."""
    if not etag:
        raise StoreError("the storage service returned no ETag")
    return etag if etag.startswith('"') else f'"{etag}"'


class AzureBlobStore:
    """A ``JobStore`` over one blob container.

    Build it with ``from_settings`` (then ``await ensure_container()``), or ``await open(...)``
    which does both. ``counter`` (a ``RequestCounter``) counts the requests sent, if given.
    """

    def __init__(
        self,
        container: ContainerClient,
        *,
        counter: RequestCounter | None = None,
        credential: Any = None,
    ) -> None:
        self._container = container
        self._credential = credential  # closed with the store (async identity credential)
        self.counter = counter

    # --- construction ---------------------------------------------------------------------

    @staticmethod
    def client_options(
        settings: StorageSettings, counter: RequestCounter | None = None
    ) -> dict[str, Any]:
        """Keyword arguments for the SDK client (retry policy, timeouts, GET sizes, API version)."""
        options: dict[str, Any] = {
            "connection_timeout": CONNECTION_TIMEOUT_S,
            "read_timeout": READ_TIMEOUT_S,
            "max_single_get_size": MAX_GET_SIZE,
            "max_chunk_get_size": MAX_GET_SIZE,
            "retry_policy": ExponentialRetry(
                initial_backoff=RETRY_INITIAL_BACKOFF_S,
                increment_base=RETRY_INCREMENT_BASE_S,
                retry_total=RETRY_TOTAL,
                random_jitter_range=RETRY_JITTER_S,
            ),
        }
        if counter is not None:
            # per_call_policies / per_retry_policies are ignored by the blob clients.
            options["_additional_pipeline_policies"] = [counter]
        if settings.api_version:
            options["api_version"] = settings.api_version
        return options

    @classmethod
    def from_settings(
        cls, settings: StorageSettings, *, counter: RequestCounter | None = None
    ) -> AzureBlobStore:
        """A store for ``settings.container``: connection string (Azurite / development) or
        account URL plus managed identity (``ManagedIdentityCredential`` when a client id is
        set, else ``DefaultAzureCredential``). Sends no request: ``await ensure_container()``
        next (or use ``open``)."""
        options = cls.client_options(settings, counter)
        if settings.connection_string:
            client = ContainerClient.from_connection_string(
                settings.connection_string, settings.container, **options
            )
            return cls(client, counter=counter)
        from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

        credential: Any = (
            ManagedIdentityCredential(client_id=settings.client_id)
            if settings.client_id
            else DefaultAzureCredential()
        )
        assert settings.account_url is not None  # StorageSettings checks it
        client = ContainerClient(
            settings.account_url, settings.container, credential=credential, **options
        )
        return cls(client, counter=counter, credential=credential)

    @classmethod
    async def open(
        cls, settings: StorageSettings, *, counter: RequestCounter | None = None
    ) -> AzureBlobStore:
        """``from_settings`` then ``ensure_container``."""
        store = cls.from_settings(settings, counter=counter)
        try:
            await store.ensure_container()
        except BaseException:
            await store.close()
            raise
        return store

    @property
    def container_name(self) -> str:
        return str(self._container.container_name)

    async def ensure_container(self) -> None:
        """Create the container unless it exists (one request)."""
        try:
            await self._container.create_container()
        except ResourceExistsError:
            return
        except AzureError as err:
            raise translate_error(err, "create_container", self.container_name) from err

    def _blob(self, name: str) -> BlobClient:
        return self._container.get_blob_client(name)

    # --- JobStore -------------------------------------------------------------------------

    async def append(
        self, name: str, data: bytes, *, create_metadata: dict[str, str]
    ) -> AppendResult:
        """One ``append_block``; on 404, create the blob only if it is still missing
        (``If-None-Match: *``, so a concurrent creator's blocks are never truncated) and
        append again: 3 requests for the first append to a new blob, 1 otherwise."""
        blob = self._blob(name)
        try:
            response = await blob.append_block(data)
        except HttpResponseError as err:
            if not is_not_found(err):
                raise translate_error(err, "append", name) from err
            await self._create_append_blob(blob, name, create_metadata)
            with translated("append", name):
                response = await blob.append_block(data)
        except AzureError as err:
            raise translate_error(err, "append", name) from err
        offset = int(str(response["blob_append_offset"]))
        return AppendResult(
            offset=offset,
            size=offset + len(data),
            block_count=int(str(response["blob_committed_block_count"])),
        )

    async def _create_append_blob(
        self, blob: BlobClient, name: str, metadata: dict[str, str]
    ) -> None:
        try:
            await blob.create_append_blob(
                metadata=metadata, match_condition=MatchConditions.IfMissing
            )
        except ResourceExistsError:
            return  # a concurrent creator won; its metadata stands
        except HttpResponseError as err:
            if status_of(err) == 412 or error_code(err) == "BlobAlreadyExists":
                return
            raise translate_error(err, "create", name) from err
        except AzureError as err:
            raise translate_error(err, "create", name) from err

    async def read(self, name: str, offset: int = 0) -> ReadResult:
        """One ranged GET per 4 MiB from ``offset`` to the end.

        For ``offset > 0`` the GET starts one byte early and drops that byte, so reading at
        ``offset == size`` is an ordinary 1-byte read (Azure may answer a range starting at the
        end with 416 ``InvalidRange``, Azurite with an empty 206). A range past the end falls
        back to a HEAD for the size and metadata.

        The data, size, metadata and block count are the blob's as of the first GET: each
        further 4 MiB is a GET of its own, up to that size, without ``If-Match``. (The SDK's
        chunked download sends the first response's ETag with every later chunk, so a blob
        over 4 MiB that took an append meanwhile, as a live shard does every few
        milliseconds, failed the read with 412 ``ConditionNotMet``: a
        ``ConcurrencyConflictError`` from a read. An append blob only grows, so the bytes
        before that size never change; a blob deleted and created again meanwhile is told
        by its creation time and fails as transient.)"""
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        blob = self._blob(name)
        start = offset - 1 if offset > 0 else 0
        try:
            first = await blob.download_blob(offset=start, length=MAX_GET_SIZE)
            body = bytearray(await first.readall())
        except HttpResponseError as err:
            if status_of(err) != 416:
                raise translate_error(err, "read", name) from err
            return await self._read_past_end(blob, name)
        except AzureError as err:
            raise translate_error(err, "read", name) from err
        if offset > 0 and not body:
            return await self._read_past_end(blob, name)
        size = _total_size(first.properties, start + len(body))
        created = first.properties.creation_time
        while start + len(body) < size:
            at = start + len(body)
            try:
                part = await blob.download_blob(offset=at, length=min(MAX_GET_SIZE, size - at))
                chunk = await part.readall()
            except HttpResponseError as err:
                if status_of(err) != 416:  # (416: created again smaller than ``at``, on Azure)
                    raise translate_error(err, "read", name) from err
                chunk = b""
            except AzureError as err:
                raise translate_error(err, "read", name) from err
            if not chunk or part.properties.creation_time != created:
                raise TransientStoreError(
                    f"read {name!r}: the blob was replaced while it was read (at {at} of "
                    f"{size} bytes)")
            body += chunk
        return ReadResult(
            data=bytes(body[1:] if offset > 0 else body),
            size=size,
            metadata=_meta(first.properties.metadata),
            block_count=_blocks(first.properties),
        )

    async def _read_past_end(self, blob: BlobClient, name: str) -> ReadResult:
        with translated("read", name):
            props = await blob.get_blob_properties()
        return ReadResult(data=b"", size=int(props.size), metadata=_meta(props.metadata),
                          block_count=_blocks(props))

    async def list(self, prefix: str) -> list[BlobInfo]:
        """All blobs named ``prefix...`` with metadata, sorted by name (one request per page
        of up to 5,000)."""
        found: list[BlobInfo] = []
        with translated("list", prefix):
            async for item in self._container.list_blobs(
                name_starts_with=prefix, include=["metadata"]
            ):
                found.append(
                    BlobInfo(
                        name=item.name,
                        size=int(item.size or 0),
                        etag=_quoted(item.etag),
                        metadata=_meta(item.metadata),
                    )
                )
        found.sort(key=lambda info: info.name)
        return found

    async def stat(self, name: str) -> BlobInfo:
        """One HEAD request (``x-ms-blob-committed-block-count`` is sent for append blobs
        only; List Blobs does not return it)."""
        with translated("stat", name):
            props = await self._blob(name).get_blob_properties()
        count = props.append_blob_committed_block_count
        return BlobInfo(name=name, size=int(props.size or 0), etag=_quoted(props.etag),
                        metadata=_meta(props.metadata),
                        block_count=None if count is None else int(count))

    async def set_metadata(self, name: str, metadata: dict[str, str]) -> None:
        with translated("set_metadata", name):
            await self._blob(name).set_blob_metadata(metadata)

    async def read_claim(self, name: str) -> ClaimBlob | None:
        """One HEAD request; None when the blob does not exist."""
        try:
            props = await self._blob(name).get_blob_properties()
        except HttpResponseError as err:
            if is_not_found(err):
                return None
            raise translate_error(err, "read_claim", name) from err
        except AzureError as err:
            raise translate_error(err, "read_claim", name) from err
        return ClaimBlob(etag=_quoted(props.etag), metadata=_meta(props.metadata))

    async def write_claim(self, name: str, metadata: dict[str, str], *, etag: str | None) -> str:
        """``etag=None``: create an empty block blob only if absent (one PUT, ``If-None-Match:
        *``). Otherwise replace its metadata if its ETag is still ``etag`` (one PUT,
        ``If-Match``). A failed condition, or a missing blob when an ETag was given, raises
        ``ConcurrencyConflictError``."""
        blob = self._blob(name)
        try:
            if etag is None:
                response = await blob.upload_blob(b"", metadata=metadata, overwrite=False)
            else:
                response = await blob.set_blob_metadata(
                    metadata, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except HttpResponseError as err:
            failed = translate_error(err, "write_claim", name)
            if etag is not None and isinstance(failed, BlobNotFoundError):
                failed = ConcurrencyConflictError(f"{failed} (the claim blob is gone)")
            raise failed from err
        except AzureError as err:
            raise translate_error(err, "write_claim", name) from err
        return _quoted(response.get("etag"))

    async def delete(self, name: str, *, if_match: str | None = None) -> bool:
        """One DELETE (``If-Match: <etag>`` with ``if_match``). False when the blob is missing
        (also after an SDK retry of a DELETE that had succeeded: the service then answers 404).
        With ``if_match``, a failed condition or a missing blob raises
        ``ConcurrencyConflictError`` (Azurite answers 412 for a missing blob; a 404 is mapped
        the same way so that both services behave alike)."""
        condition: dict[str, Any] = {}
        if if_match is not None:
            condition = {"etag": _quoted(if_match),
                         "match_condition": MatchConditions.IfNotModified}
        try:
            await self._blob(name).delete_blob(**condition)
        except HttpResponseError as err:
            if is_not_found(err):
                if if_match is not None:
                    raise ConcurrencyConflictError(f"delete {name!r}: 404: the blob is gone") \
                        from err
                return False
            raise translate_error(err, "delete", name) from err
        except AzureError as err:
            raise translate_error(err, "delete", name) from err
        return True

    async def close(self) -> None:
        """Close the HTTP client and the credential (if this store made one)."""
        try:
            await self._container.close()
        finally:
            if self._credential is not None:
                await self._credential.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _total_size(props: Any, default: int) -> int:
    """The blob's whole size from a ranged GET (``Content-Range: bytes a-b/size``)."""
    total = str(getattr(props, "content_range", None) or "").rpartition("/")[2]
    return int(total) if total.isdigit() else default


def _blocks(props: Any) -> int | None:
    """``x-ms-blob-committed-block-count``: sent with a GET or HEAD of an append blob."""
    count = getattr(props, "append_blob_committed_block_count", None)
    return None if count is None else int(count)


def _meta(metadata: Mapping[str, str | None] | None) -> dict[str, str]:
    """Metadata as written: the service lists an empty value as None."""
    return {k: v or "" for k, v in (metadata or {}).items()}
