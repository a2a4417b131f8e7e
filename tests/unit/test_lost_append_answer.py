"""Group commit: an append whose answer was lost is read back where it landed (from the hunt of
stop 27)."""

from __future__ import annotations

import pytest

from jobs_core import JobRequest
from jobs_core.errors import TransientStoreError
from jobs_core.group_commit import GroupCommitter
from jobs_core.memory_store import InMemoryStore
from tests.jobs_helpers import Clock, Recorder, make


class LostAnswer:
    """The first append to a ``shards/`` blob whose data holds ``marker`` commits, then other
    processes append (``meanwhile``), then its answer is lost (a timeout: 503 to the caller)."""

    def __init__(self, store: object, marker: bytes) -> None:
        self._store, self.marker, self.armed, self.meanwhile = store, marker, True, None

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def append(self, name: str, data: bytes, **kwargs: object) -> object:
        result = await self._store.append(name, data, **kwargs)  # type: ignore[attr-defined]
        if self.armed and name.startswith("shards/") and self.marker in data:
            self.armed = False
            await self.meanwhile()  # type: ignore[misc]
            raise TransientStoreError(f"{name}: timeout (the block was committed)")
        return result


@pytest.mark.parametrize("blob_exists", [False, True])
async def test_an_add_whose_answer_was_lost_is_found_after_the_blob_grew_256_kib(
        blob_exists: bool) -> None:
    """I1: an append that fails is read back, and a block that is there committed (2xx). The
    read-back of a process that never read the blob (an API instance that only adds to it)
    looked for its block in the blob's last 256 KiB as of the read-back: other processes'
    blocks written meanwhile (one batch of jobs with larger payloads) pushed it out, and the
    caller got a 503 for a job that was written and ran (a retry without a key: a second job).
    It now looks after a size the blob had before the append (the listing of the process's
    first add to the shard; 0 for a blob not there yet)."""
    inner, clock, rec = InMemoryStore(), Clock(), Recorder()
    store = LostAnswer(inner, b"lost-answer-marker")
    scheduler, _ = make(store, rec, clock, slots=1, commit_linger_ms=0)
    other, _ = make(inner, rec, clock, slots=1, commit_linger_ms=0, owner="b")
    if blob_exists:
        await other.schedule(JobRequest("echo", {"before": True}))

    async def meanwhile() -> None:  # another instance schedules a batch in the same bucket
        await other.schedule_many([JobRequest("echo", {"blob": "x" * 40_000})
                                   for _ in range(10)])

    store.meanwhile = meanwhile
    scheduled = await scheduler.schedule(JobRequest("echo", {"tag": "lost-answer-marker"}))
    page = await other.list(slot=0)
    written = [j.id for j in page.jobs if j.payload == {"tag": "lost-answer-marker"}]
    assert written == [scheduled.job.id]
    assert scheduler.committer.verified_after_error == 1


async def test_a_block_is_found_in_the_tail_when_the_blob_is_smaller_than_its_floor() -> None:
    """From review: a floor from before the blob was deleted and re-created (a purged home
    re-created by a retry's pointer) lies past its end; the block is looked for in the tail."""
    store = InMemoryStore()
    committer = GroupCommitter(store, linger=0, max_block_bytes=1 << 20)
    await store.append("b", b"\nx" * 10, create_metadata={})
    block = b'\n{"op":"full","at":"t"}'
    await store.append("b", block, create_metadata={})
    found = await committer._find("b", block, 10_000)
    assert found is not None and found.size == 20 + len(block)
