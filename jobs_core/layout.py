"""The settings that are part of the storage format, recorded in the container they shape.

``JOBS_BUCKET_MINUTES`` decides which blob a job's id names and when a blob's bucket ends (the
planner's listing, the key index's "lost add" window and retention read it). ``JOBS_SLOTS``
decides which slots have an orchestrator: a job lives in its slot for good, so a slot that
holds jobs must keep running. A deployment that changed either on a container with data lost
jobs without a word (from the hunt of stop 28: a job in slot 7 of 8 never ran after a
redeploy with 4 slots; with larger buckets a key's retry ran a purged job again).

So the first process that opens a container records them in the metadata of the blob
``layout``, and every process checks its settings against it before it touches any job:

- another ``JOBS_BUCKET_MINUTES``: ``SettingsError`` (it cannot change: use a new container);
- fewer ``JOBS_SLOTS``: ``SettingsError`` when a slot it drops holds shard blobs; otherwise
  (a rollback after a release that only added slots) the record follows;
- more ``JOBS_SLOTS``: the record grows.

Every write is conditional on the record's ETag. A container written before the record existed
gets one from the first process of this release, counting the slots that ever held a claim
(``claims/sNNN``). Cost: one HEAD per process (and a list per dropped slot, once per change).
"""

from __future__ import annotations

from .errors import ConcurrencyConflictError
from .ids import CLAIM_PREFIX, slot_prefix
from .settings import JobsSettings, SettingsError
from .store import JobStore

LAYOUT_BLOB = "layout"
MAX_TRIES = 8  # conditional writes lost to other processes before giving up


async def check_layout(store: JobStore, settings: JobsSettings) -> None:
    """Raise ``SettingsError`` when ``settings`` would misread the container's jobs; record
    the container's layout (or its new slot count) otherwise."""
    for _ in range(MAX_TRIES):
        found = await store.read_claim(LAYOUT_BLOB)
        if found is None:
            slots, etag = await _slots_claimed(store), None
        else:
            recorded = int(found.metadata["bucket_minutes"])
            if settings.bucket_minutes != recorded:
                raise SettingsError(
                    f"JOBS_BUCKET_MINUTES is {settings.bucket_minutes}, but this container's "
                    f"jobs were written with {recorded}: it is part of the storage format and "
                    "cannot change (set it back, or use a new container: JOBS_CONTAINER)")
            slots, etag = int(found.metadata["slots"]), found.etag
            if settings.slots == slots:
                return
        for slot in range(slots - 1, settings.slots - 1, -1):  # the slots it would drop
            if await store.list(slot_prefix(slot)):
                raise SettingsError(
                    f"JOBS_SLOTS is {settings.slots}, but slot {slot} holds jobs in this "
                    "container: jobs live in their slot for good, so a slot that holds jobs "
                    f"cannot be removed (set JOBS_SLOTS to {slot + 1} or more)")
        try:
            await store.write_claim(LAYOUT_BLOB, {"bucket_minutes": str(settings.bucket_minutes),
                                                  "slots": str(settings.slots)}, etag=etag)
            return
        except ConcurrencyConflictError:
            continue  # another process recorded it first: check against theirs
    raise SettingsError(f"could not record the container's layout in {LAYOUT_BLOB!r}: "
                        f"{MAX_TRIES} conditional writes lost to other processes")


async def _slots_claimed(store: JobStore) -> int:
    """How many slots the highest claim blob implies (0: none)."""
    highest = -1
    for info in await store.list(CLAIM_PREFIX):
        suffix = info.name[len(CLAIM_PREFIX):]
        if suffix.startswith("s") and suffix[1:].isdigit():
            highest = max(highest, int(suffix[1:]))
    return highest + 1
