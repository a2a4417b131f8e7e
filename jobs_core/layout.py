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
- fewer ``JOBS_SLOTS``: ``SettingsError`` (slots can be added, never removed);
- more ``JOBS_SLOTS``: the record grows (conditional on its ETag).

A container written before the record existed gets one from the first process of this
release, with its slots at least the highest slot that ever held a claim (``claims/sNNN``).
Cost: one HEAD per process (and one list and one write, once per container).
"""

from __future__ import annotations

from .errors import ConcurrencyConflictError
from .ids import CLAIM_PREFIX
from .settings import JobsSettings, SettingsError
from .store import JobStore

LAYOUT_BLOB = "layout"
MAX_TRIES = 8  # conditional writes lost to other processes before giving up


async def check_layout(store: JobStore, settings: JobsSettings) -> None:
    """Raise ``SettingsError`` when ``settings`` would misread the container's jobs; record
    the container's layout (or its new slots) otherwise."""
    for _ in range(MAX_TRIES):
        found = await store.read_claim(LAYOUT_BLOB)
        if found is None:
            slots = max(settings.slots, await _slots_claimed(store))
            _check(settings, settings.bucket_minutes, slots, "held a claim")
            etag = None
        else:
            meta = found.metadata
            _check(settings, int(meta["bucket_minutes"]), int(meta["slots"]), "are recorded")
            if settings.slots == int(meta["slots"]):
                return
            etag = found.etag
        try:
            await store.write_claim(LAYOUT_BLOB, {"bucket_minutes": str(settings.bucket_minutes),
                                                  "slots": str(settings.slots)}, etag=etag)
            return
        except ConcurrencyConflictError:
            continue  # another process recorded it first: check against theirs
    raise SettingsError(f"could not record the container's layout in {LAYOUT_BLOB!r}: "
                        f"{MAX_TRIES} conditional writes lost to other processes")


def _check(settings: JobsSettings, bucket_minutes: int, slots: int, source: str) -> None:
    if settings.bucket_minutes != bucket_minutes:
        raise SettingsError(
            f"JOBS_BUCKET_MINUTES is {settings.bucket_minutes}, but this container's jobs were "
            f"written with {bucket_minutes}: it is part of the storage format and cannot "
            "change (set it back, or use a new container: JOBS_CONTAINER)")
    if settings.slots < slots:
        raise SettingsError(
            f"JOBS_SLOTS is {settings.slots}, but {slots} slots {source} in this container: "
            "jobs live in their slot for good, so slots can be added, never removed (set "
            f"JOBS_SLOTS to {slots} or more)")


async def _slots_claimed(store: JobStore) -> int:
    """How many slots the highest claim blob implies (0: none)."""
    highest = -1
    for info in await store.list(CLAIM_PREFIX):
        suffix = info.name[len(CLAIM_PREFIX):]
        if suffix.startswith("s") and suffix[1:].isdigit():
            highest = max(highest, int(suffix[1:]))
    return highest + 1
