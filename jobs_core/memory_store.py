"""An in-memory ``JobStore`` with the same semantics as the blob adapter (for fast tests)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from .errors import BlobNotFoundError, BlockLimitError, ConcurrencyConflictError
from .store import AppendResult, BlobInfo, ClaimBlob, ReadResult

MAX_BLOCKS = 50_000


@dataclass
class _Blob:
    data: bytearray = field(default_factory=bytearray)
    blocks: int = 0
    etag: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    append_blob: bool = True


class InMemoryStore:
    """Holds blobs in a dict. ``requests`` counts operations like the blob adapter's counter."""

    def __init__(self, *, max_blocks: int = MAX_BLOCKS) -> None:
        self._blobs: dict[str, _Blob] = {}
        self._etags = itertools.count(1)
        self._lock = asyncio.Lock()
        self.max_blocks = max_blocks
        self.requests: dict[str, int] = {}

    def _count(self, op: str) -> None:
        self.requests[op] = self.requests.get(op, 0) + 1

    def _new_etag(self) -> str:
        return f'"0x{next(self._etags):016X}"'

    async def append(
        self, name: str, data: bytes, *, create_metadata: dict[str, str]
    ) -> AppendResult:
        await asyncio.sleep(0)  # a real store yields; so must we, to surface races in tests
        blob = self._blobs.get(name)
        if blob is None:
            self._count("create")
            blob = self._blobs[name] = _Blob(etag=self._new_etag(), metadata=dict(create_metadata))
        self._count("append")
        if blob.blocks >= self.max_blocks:
            raise BlockLimitError(f"{name}: 409 BlockCountExceedsLimit")
        offset = len(blob.data)
        blob.data += data
        blob.blocks += 1
        blob.etag = self._new_etag()
        return AppendResult(offset=offset, size=len(blob.data), block_count=blob.blocks)

    async def read(self, name: str, offset: int = 0) -> ReadResult:
        await asyncio.sleep(0)
        self._count("read")
        blob = self._blobs.get(name)
        if blob is None:
            raise BlobNotFoundError(f"{name}: 404 BlobNotFound")
        return ReadResult(bytes(blob.data[offset:]), len(blob.data), dict(blob.metadata),
                          blob.blocks)

    async def list(self, prefix: str) -> list[BlobInfo]:
        await asyncio.sleep(0)
        self._count("list")
        return [
            BlobInfo(name, len(b.data), b.etag, dict(b.metadata))
            for name, b in sorted(self._blobs.items())
            if name.startswith(prefix)
        ]

    async def stat(self, name: str) -> BlobInfo:
        await asyncio.sleep(0)
        self._count("stat")
        blob = self._blobs.get(name)
        if blob is None:
            raise BlobNotFoundError(f"{name}: 404 BlobNotFound")
        return BlobInfo(name, len(blob.data), blob.etag, dict(blob.metadata),
                        blob.blocks if blob.append_blob else None)

    async def set_metadata(self, name: str, metadata: dict[str, str]) -> None:
        await asyncio.sleep(0)
        self._count("set_metadata")
        blob = self._blobs.get(name)
        if blob is None:
            raise BlobNotFoundError(f"{name}: 404 BlobNotFound")
        blob.metadata = dict(metadata)
        blob.etag = self._new_etag()

    async def read_claim(self, name: str) -> ClaimBlob | None:
        await asyncio.sleep(0)
        self._count("read_claim")
        blob = self._blobs.get(name)
        return None if blob is None else ClaimBlob(blob.etag, dict(blob.metadata))

    async def write_claim(self, name: str, metadata: dict[str, str], *, etag: str | None) -> str:
        await asyncio.sleep(0)
        self._count("write_claim")
        blob = self._blobs.get(name)
        if etag is None:
            if blob is not None:
                raise ConcurrencyConflictError(f"{name}: 409 BlobAlreadyExists")
            blob = self._blobs[name] = _Blob(append_blob=False)
        elif blob is None or blob.etag != etag:
            raise ConcurrencyConflictError(f"{name}: 412 ConditionNotMet")
        blob.metadata = dict(metadata)
        blob.etag = self._new_etag()
        return blob.etag

    async def delete(self, name: str, *, if_match: str | None = None) -> bool:
        await asyncio.sleep(0)
        self._count("delete")
        blob = self._blobs.get(name)
        if if_match is not None and (blob is None or blob.etag != if_match):
            raise ConcurrencyConflictError(f"{name}: 412 ConditionNotMet")
        if blob is None:
            return False
        del self._blobs[name]
        return True

    async def close(self) -> None:
        return None

    # test helpers -------------------------------------------------------------------------
    def raw_append(self, name: str, data: bytes) -> None:
        """Append bytes without framing (tests use it to simulate a torn or foreign write)."""
        blob = self._blobs.setdefault(name, _Blob(etag=self._new_etag()))
        blob.data += data
        blob.blocks += 1
