"""The storage operations the scheduler needs, as a small Protocol.

Two objects live in storage:
- shard logs: append blobs holding JSON-lines records (see ``records.py``);
- claims: tiny blobs whose metadata says which executor owns a slot (see ``claims.py``).

Adapters: ``memory_store.InMemoryStore`` (tests, single process) and
``blob_store.AzureBlobStore`` (Azure Storage / Azurite). Both pass ``tests/contract``.
Errors an adapter raises are the ones in ``errors.py``: ``BlobNotFoundError``,
``ConcurrencyConflictError`` (409/412 on a conditional write: a signal, never retried blindly),
``BlockLimitError`` (the 50,000-block limit), ``TransientStoreError`` (retried inside the adapter
first; raised only once retries are exhausted) and ``StoreError`` for anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class BlobInfo:
    name: str
    size: int
    etag: str
    metadata: dict[str, str] = field(default_factory=dict)
    # committed blocks of an append blob: set by ``stat`` only (List Blobs does not return it)
    block_count: int | None = None


@dataclass(frozen=True, slots=True)
class AppendResult:
    offset: int  # where the block starts
    size: int  # blob size after the append
    block_count: int  # committed blocks after the append


@dataclass(frozen=True, slots=True)
class ReadResult:
    data: bytes  # bytes from the requested offset to the end (may be empty)
    size: int  # total blob size at the time of the read
    metadata: dict[str, str]
    block_count: int | None = None  # committed blocks then (append blobs; None: not sent)


@dataclass(frozen=True, slots=True)
class ClaimBlob:
    etag: str
    metadata: dict[str, str]


@runtime_checkable
class JobStore(Protocol):
    """What jobs_core needs from storage. All methods are coroutines."""

    async def append(
        self, name: str, data: bytes, *, create_metadata: dict[str, str]
    ) -> AppendResult:
        """Append one block to the append blob ``name``, creating it (with ``create_metadata``)
        first if it does not exist. Concurrent creators must not truncate each other."""
        ...

    async def read(self, name: str, offset: int = 0) -> ReadResult:
        """Bytes of ``name`` from ``offset`` to its end; ``offset == size`` gives empty data.
        Raises ``BlobNotFoundError``."""
        ...

    async def list(self, prefix: str) -> list[BlobInfo]:
        """Every blob whose name starts with ``prefix``, sorted by name, with metadata."""
        ...

    async def stat(self, name: str) -> BlobInfo:
        """Size, ETag, metadata and committed block count of one blob (one HEAD request);
        ``block_count`` is None for a blob that is not an append blob (a claim). Raises
        ``BlobNotFoundError``."""
        ...

    async def set_metadata(self, name: str, metadata: dict[str, str]) -> None:
        """Replace the metadata of an existing blob (unconditionally)."""
        ...

    async def read_claim(self, name: str) -> ClaimBlob | None:
        """The claim blob's ETag and metadata, or None if it does not exist."""
        ...

    async def write_claim(self, name: str, metadata: dict[str, str], *, etag: str | None) -> str:
        """Write a claim blob's metadata if its ETag is still ``etag`` (``None``: only if the blob
        does not exist yet). Returns the new ETag; raises ``ConcurrencyConflictError`` when
        the condition fails."""
        ...

    async def delete(self, name: str, *, if_match: str | None = None) -> bool:
        """Delete a blob. Returns True if this call deleted it, False if it did not exist
        (not an error). With ``if_match`` (an ETag, e.g. from ``list``) the blob is deleted
        only if its ETag is still that one; otherwise nothing is deleted and
        ``ConcurrencyConflictError`` is raised (any append or metadata write changes the ETag;
        a missing blob fails the condition too, as the service answers 412)."""
        ...

    async def close(self) -> None: ...
