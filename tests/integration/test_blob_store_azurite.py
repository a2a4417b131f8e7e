"""Adapter-specific tests for ``AzureBlobStore`` on Azurite: request counts, big reads, retries."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from azure.core.pipeline.policies import AsyncHTTPPolicy
from azure.storage.blob.aio import ContainerClient

from jobs_core import blob_store
from jobs_core.blob_store import AzureBlobStore
from jobs_core.errors import (
    BlobNotFoundError,
    ConcurrencyConflictError,
    StoreError,
    TransientStoreError,
)
from jobs_core.request_counter import RequestCounter, operation_name
from jobs_core.storage_settings import StorageSettings
from tests import azurite as azurite_helpers

MiB = 1024 * 1024


def counted(store: AzureBlobStore) -> RequestCounter:
    assert store.counter is not None
    store.counter.reset()
    return store.counter


# --- request counts (Azurite) ---------------------------------------------------------------


@pytest.mark.azurite
async def test_request_counts_per_operation(azurite_store: AzureBlobStore) -> None:
    store = azurite_store
    counter = counted(store)
    await store.append("s/a", b"x" * 100, create_metadata={"k": "v"})
    # append_block (404) + create_append_blob (If-None-Match: *) + append_block
    assert counter.snapshot() == {"append": 2, "create": 1}

    counter.reset()
    await store.append("s/a", b"y" * 100, create_metadata={})
    assert counter.snapshot() == {"append": 1}

    counter.reset()
    assert (await store.read("s/a")).size == 200
    assert counter.snapshot() == {"read": 1}

    counter.reset()
    assert (await store.read("s/a", 150)).data == b"y" * 50
    assert counter.snapshot() == {"read": 1}

    counter.reset()
    assert (await store.read("s/a", 200)).data == b""
    assert counter.snapshot() == {"read": 1}

    counter.reset()
    assert len(await store.list("s/")) == 1
    assert counter.snapshot() == {"list": 1}

    counter.reset()
    await store.set_metadata("s/a", {"k": "w"})
    assert counter.snapshot() == {"set_metadata": 1}

    counter.reset()
    etag = await store.write_claim("c/1", {"owner": "a"}, etag=None)
    assert counter.snapshot() == {"create": 1}

    counter.reset()
    assert await store.read_claim("c/1") is not None
    assert await store.read_claim("c/none") is None
    assert counter.snapshot() == {"get_properties": 2}

    counter.reset()
    await store.write_claim("c/1", {"owner": "b"}, etag=etag)
    with pytest.raises(ConcurrencyConflictError):
        await store.write_claim("c/1", {"owner": "c"}, etag=etag)
    assert counter.snapshot() == {"set_metadata": 2}  # a lost condition is not retried

    counter.reset()
    await store.delete("c/1")
    await store.delete("c/1")
    assert counter.snapshot() == {"delete": 2}
    assert counter.total == 2


@pytest.mark.azurite
async def test_blobs_over_4_mib_read_back_intact(azurite_store: AzureBlobStore) -> None:
    store = azurite_store
    blocks = [bytes([i]) * (2 * MiB + 123) for i in range(1, 4)]  # ~6 MiB in 3 blocks
    for block in blocks:
        await store.append("s/big", block, create_metadata={"big": "1"})
    counter = counted(store)
    whole = await store.read("s/big")
    assert whole.data == b"".join(blocks)
    assert whole.size == sum(map(len, blocks))
    assert whole.metadata == {"big": "1"}
    assert counter.snapshot() == {"read": 2}  # GETs of at most 4 MiB

    counter.reset()
    offset = 2 * len(blocks[0]) + 7  # a tail under 4 MiB: one GET
    tail = await store.read("s/big", offset)
    assert tail.data == b"".join(blocks)[offset:]
    assert counter.snapshot() == {"read": 1}


class _AppendBeforeSecondGet(AsyncHTTPPolicy):  # type: ignore[type-arg]
    """A pipeline policy: before the reader's second GET of a blob, another process appends
    to it (what a live shard meets while a cold reader fetches it in 4 MiB pieces)."""

    def __init__(self, writer: AzureBlobStore, blob: str) -> None:
        super().__init__()
        self.writer, self.blob, self.gets = writer, blob, 0

    async def send(self, request: Any) -> Any:
        http = request.http_request
        if operation_name(http.method, http.url, http.headers) == "read" \
                and http.url.split("?")[0].endswith("/" + self.blob):
            self.gets += 1
            if self.gets == 2:
                await self.writer.append(self.blob, b"late", create_metadata={})
        return await self.next.send(request)


@pytest.mark.azurite
async def test_a_read_over_4_mib_is_not_failed_by_an_append_meanwhile(
    azurite: azurite_helpers.Azurite, azurite_store: AzureBlobStore,
) -> None:
    """A blob over 4 MiB is read in several GETs. The SDK's chunked download sent the first
    answer's ETag with the later ones (If-Match), so an append in between (a live shard takes
    one every few milliseconds) failed the read with 412: a ConcurrencyConflictError from a
    read, which the in-memory store never raises, and a cold GET or planner could not read a
    busy blob. The read answers the blob as of its first GET."""
    writer = azurite_store
    blocks = [bytes([i]) * (2 * MiB + 5) for i in range(1, 4)]
    for block in blocks:
        await writer.append("s/busy", block, create_metadata={"k": "v"})
    hook = _AppendBeforeSecondGet(writer, "s/busy")
    settings = azurite_helpers.settings(azurite, writer.container_name)
    options = AzureBlobStore.client_options(settings)
    options["_additional_pipeline_policies"] = [hook]
    assert settings.connection_string is not None
    async with AzureBlobStore(ContainerClient.from_connection_string(
            settings.connection_string, settings.container, **options)) as reader:
        whole = await reader.read("s/busy")
        assert hook.gets == 2
        assert (whole.data, whole.size) == (b"".join(blocks), sum(map(len, blocks)))
        assert (whole.metadata, whole.block_count) == ({"k": "v"}, 3)
        tail = await reader.read("s/busy", 7)  # from an offset, over 4 MiB too
        assert tail.data == b"".join(blocks)[7:] + b"late"
        assert tail.size == sum(map(len, blocks)) + 4
    assert (await writer.read("s/busy", whole.size)).data == b"late"


@pytest.mark.azurite
async def test_error_mapping_on_azurite(azurite_store: AzureBlobStore) -> None:
    store = azurite_store
    await store.write_claim("c/block-blob", {}, etag=None)
    with pytest.raises(StoreError, match="InvalidBlobType") as info:
        await store.append("c/block-blob", b"x", create_metadata={})
    assert type(info.value) is StoreError
    with pytest.raises(BlobNotFoundError, match="404 BlobNotFound"):
        await store.set_metadata("c/missing", {})


@pytest.mark.azurite
async def test_missing_container_is_not_a_missing_blob(azurite: azurite_helpers.Azurite) -> None:
    settings = azurite_helpers.settings(azurite, azurite_helpers.unique_container("missing"))
    async with AzureBlobStore.from_settings(settings) as store:
        with pytest.raises(StoreError, match="ContainerNotFound") as info:
            await store.read("x")
        assert not isinstance(info.value, BlobNotFoundError)
        await store.ensure_container()
        await store.ensure_container()  # idempotent
        assert await store.list("") == []
        await store._container.delete_container()


# --- retries and error mapping (no Azurite) -------------------------------------------------


async def test_connection_errors_are_retried_then_transient(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(blob_store, "RETRY_INITIAL_BACKOFF_S", 0)
    monkeypatch.setattr(blob_store, "RETRY_INCREMENT_BASE_S", 0)
    monkeypatch.setattr(blob_store, "RETRY_JITTER_S", 0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    endpoint = f"http://127.0.0.1:{port}/{azurite_helpers.ACCOUNT_NAME}"
    settings = StorageSettings(
        container="jobs", connection_string=azurite_helpers.connection_string(endpoint)
    )
    counter = RequestCounter()
    async with AzureBlobStore.from_settings(settings, counter=counter) as store:
        with pytest.raises(TransientStoreError):
            await store.read_claim("c/1")
    assert counter.snapshot() == {"get_properties": 1 + blob_store.RETRY_TOTAL}


async def test_a_storage_account_that_stops_answering_is_given_up_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that accepts the connection and never answers (a stalled account): each try
    ends at READ_TIMEOUT_S, and the request fails as transient (503) after RETRY_TOTAL retries.
    (With the SDK's defaults it waited 60 s a try: a GET hung for minutes.) Scaled down here."""
    for name in ("RETRY_INITIAL_BACKOFF_S", "RETRY_INCREMENT_BASE_S", "RETRY_JITTER_S"):
        monkeypatch.setattr(blob_store, name, 0)
    monkeypatch.setattr(blob_store, "READ_TIMEOUT_S", 0.3)
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # kept open, never written to

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}/{azurite_helpers.ACCOUNT_NAME}"
    settings = StorageSettings(
        container="jobs", connection_string=azurite_helpers.connection_string(endpoint)
    )
    counter = RequestCounter()
    try:
        async with AzureBlobStore.from_settings(settings, counter=counter) as store:
            started = time.monotonic()
            with pytest.raises(TransientStoreError):
                await store.read_claim("c/1")
            took = time.monotonic() - started
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert counter.snapshot() == {"get_properties": 1 + blob_store.RETRY_TOTAL}
    assert took < 30  # 4 tries of 0.3 s; unbounded, each would have waited 60 s


async def test_worst_case_request_counts_the_back_off_the_sdk_sleeps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """WORST_CASE_REQUEST_S against the SDK's own ExponentialRetry: its retry count is 1 at the
    first sleep (initial + base**1 + jitter = 5 s, then 11 s, then 29 s: 45 s in all), not 0.
    The sleeps are recorded at their longest (jitter at its top), not slept."""
    import random

    from azure.storage.blob._shared.policies_async import AsyncStorageRetryPolicy

    slept: list[float] = []

    async def record(self: AsyncStorageRetryPolicy, settings: dict, transport: object) -> None:
        slept.append(self.get_backoff_time(settings))

    monkeypatch.setattr(AsyncStorageRetryPolicy, "sleep", record)
    monkeypatch.setattr(random.Random, "uniform", lambda self, low, high: high)
    tries = (blob_store.RETRY_TOTAL + 1) * (blob_store.CONNECTION_TIMEOUT_S
                                            + blob_store.READ_TIMEOUT_S)
    worst = blob_store.WORST_CASE_REQUEST_S
    monkeypatch.setattr(blob_store, "READ_TIMEOUT_S", 0.2)
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    endpoint = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/" \
        f"{azurite_helpers.ACCOUNT_NAME}"
    settings = StorageSettings(
        container="jobs", connection_string=azurite_helpers.connection_string(endpoint)
    )
    try:
        async with AzureBlobStore.from_settings(settings) as store:
            with pytest.raises(TransientStoreError):
                await store.read_claim("c/1")
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert len(slept) == blob_store.RETRY_TOTAL
    assert tries + sum(slept) <= worst


def test_a_stalled_storage_request_ends_well_within_the_http_limit() -> None:
    """The defaults bound one storage request (4 tries of 5 s to connect + 10 s to read, and
    the back-off between them) far below Azure's 230 s HTTP limit."""
    options = AzureBlobStore.client_options(
        StorageSettings(container="jobs", account_url="https://a.blob.core.windows.net"))
    assert (options["connection_timeout"], options["read_timeout"]) == \
        (blob_store.CONNECTION_TIMEOUT_S, blob_store.READ_TIMEOUT_S)
    assert blob_store.WORST_CASE_REQUEST_S <= 120
