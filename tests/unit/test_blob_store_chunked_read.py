"""``AzureBlobStore.read`` over 4 MiB: one ranged GET per 4 MiB up to the first GET's size, on a
stand-in for the SDK's blob client (Azure's answers, which Azurite does not give)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from jobs_core.blob_store import MAX_GET_SIZE, AzureBlobStore
from jobs_core.errors import TransientStoreError

CREATED = datetime(2026, 12, 4, tzinfo=UTC)


class _Blob:
    """A blob of ``size`` bytes; ``replace_with`` bytes after the first GET (deleted and created
    again, smaller)."""

    def __init__(self, size: int, replace_with: int) -> None:
        self.data, self.created, self.replace_with, self.gets = b"x" * size, CREATED, \
            replace_with, 0

    async def download_blob(self, offset: int, length: int) -> Any:
        self.gets += 1
        if self.gets == 2:
            self.data, self.created = b"y" * self.replace_with, CREATED + timedelta(seconds=1)
        if offset >= len(self.data):  # Azure: a range starting past the end
            err = HttpResponseError(message="The range specified is invalid for the current "
                                            "size of the resource.")
            err.status_code, err.error_code = 416, "InvalidRange"
            raise err
        part = self.data[offset:offset + length]
        props = SimpleNamespace(
            content_range=f"bytes {offset}-{offset + len(part) - 1}/{len(self.data)}",
            creation_time=self.created, metadata={}, append_blob_committed_block_count=1)

        async def readall() -> bytes:
            return part

        return SimpleNamespace(readall=readall, properties=props)


class _Container:
    def __init__(self, blob: _Blob) -> None:
        self.blob = blob

    def get_blob_client(self, name: str) -> _Blob:
        return self.blob


@pytest.mark.parametrize("smaller", [MAX_GET_SIZE + 10, 10])
async def test_a_blob_created_again_meanwhile_fails_the_read_as_transient(smaller: int) -> None:
    """The commit promises a transient error for a blob deleted and created again between the
    GETs (told by its creation time). Re-created smaller than where the next GET starts, Azure
    answers that GET with 416 InvalidRange, which read as a permanent StoreError."""
    blob = _Blob(2 * MAX_GET_SIZE + 5, replace_with=smaller)
    store = AzureBlobStore(_Container(blob))  # type: ignore[arg-type]
    with pytest.raises(TransientStoreError, match="replaced while it was read"):
        await store.read("shards/s000/b.jsonl")
    assert blob.gets == 2
