"""The container's layout (``jobs_core/layout.py``): a deployment whose bucket size or slot
count would misread the container's jobs is refused before it touches one (from the hunt of
stop 28), on the in-memory store and on Azurite alike."""

from __future__ import annotations

import pytest

from jobs_core import JobRequest, JobsSettings, JobStatus
from jobs_core.ids import claim_blob, parse_job_id, slot_prefix
from jobs_core.layout import LAYOUT_BLOB, check_layout
from jobs_core.settings import SettingsError
from jobs_core.store import JobStore
from tests.jobs_helpers import Clock, Recorder, drain, make


async def test_the_first_process_records_the_layout_and_the_same_settings_pass(
        store: JobStore) -> None:
    await check_layout(store, JobsSettings(slots=4, bucket_minutes=60))
    recorded = await store.read_claim(LAYOUT_BLOB)
    assert recorded is not None
    assert recorded.metadata == {"bucket_minutes": "60", "slots": "4"}
    await check_layout(store, JobsSettings(slots=4, bucket_minutes=60))  # a second process
    again = await store.read_claim(LAYOUT_BLOB)
    assert again is not None and again.etag == recorded.etag  # nothing written


async def test_another_bucket_size_is_refused_and_changes_nothing(store: JobStore) -> None:
    await check_layout(store, JobsSettings(slots=4, bucket_minutes=60))
    for minutes in (1440, 15):
        with pytest.raises(SettingsError, match=rf"JOBS_BUCKET_MINUTES is {minutes}, but "
                                                r"this container's jobs were written with 60"):
            await check_layout(store, JobsSettings(slots=4, bucket_minutes=minutes))
    recorded = await store.read_claim(LAYOUT_BLOB)
    assert recorded is not None and recorded.metadata["bucket_minutes"] == "60"


async def test_slots_can_be_added_and_removed_only_while_they_hold_no_jobs(
        store: JobStore) -> None:
    """A rollback after a release that only added slots must work (from review of stop 28:
    the record grew at once, and the previous release was refused); a slot that holds jobs
    can never be dropped."""
    await check_layout(store, JobsSettings(slots=4))
    await check_layout(store, JobsSettings(slots=8))
    recorded = await store.read_claim(LAYOUT_BLOB)
    assert recorded is not None and recorded.metadata["slots"] == "8"
    await check_layout(store, JobsSettings(slots=4))  # slots 4-7 hold nothing: a rollback
    recorded = await store.read_claim(LAYOUT_BLOB)
    assert recorded is not None and recorded.metadata["slots"] == "4"
    await check_layout(store, JobsSettings(slots=8))
    await store.append(slot_prefix(6) + "20261122T1400-0000.jsonl", b"{}\n",
                       create_metadata={})
    with pytest.raises(SettingsError, match="JOBS_SLOTS is 4, but slot 6 holds jobs"):
        await check_layout(store, JobsSettings(slots=4))
    await check_layout(store, JobsSettings(slots=7))
    recorded = await store.read_claim(LAYOUT_BLOB)
    assert recorded is not None and recorded.metadata["slots"] == "7"


async def test_a_container_from_before_the_record_keeps_the_slots_that_held_jobs(
        store: JobStore) -> None:
    """A container written by an earlier release has no record: its claims say which slots
    ran. A job in slot 7 of 8 never ran once the app was redeployed with 4 slots."""
    clock, rec = Clock(), Recorder()
    scheduler, executor = make(store, rec, clock, slots=8)
    jobs = [(await scheduler.schedule(JobRequest("echo", {"n": i}))).job for i in range(32)]
    await drain(executor, 8)
    assert {j.id for j in jobs} == set(rec.runs)
    assert await store.read_claim(claim_blob(7)) is not None
    assert max(parse_job_id(j.id).key.slot for j in jobs) >= 4  # (32 jobs over 8 slots)
    with pytest.raises(SettingsError, match=r"JOBS_SLOTS is 4, but slot [4-7] holds jobs"):
        await check_layout(store, JobsSettings(slots=4))
    assert await store.read_claim(LAYOUT_BLOB) is None  # nothing recorded
    await check_layout(store, JobsSettings(slots=8))
    done = [await scheduler.get(j.id) for j in jobs]
    assert {j.status for j in done} == {JobStatus.SUCCEEDED}
