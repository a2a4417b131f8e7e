"""JobsClient against the real app on devhost + Azurite: every route, typed errors, paging,
and both ways ``wait`` ends (an immediate 200, and 202 then polling)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from devhost.testing import DevHostProcess
from jobs_client import (
    BadRequest,
    Conflict,
    JobsClient,
    JobStatus,
    NewJob,
    NotFound,
    Recurrence,
    Unauthorized,
)
from tests.client.helpers import UNKNOWN_ID, Recorder

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


def test_schedule_and_wait_gets_the_finished_job_in_one_request(client: JobsClient,
                                                                recorder: Recorder) -> None:
    job = client.schedule_and_wait("echo", {"hello": "world"}, timeout=20)
    assert job.status == JobStatus.SUCCEEDED and job.result == {"hello": "world"}
    assert job.finished_at is not None and job.attempts == 1
    assert recorder.calls == [("POST", "/api/jobs", 200)]  # Prefer: wait answered at once


def test_wait_polls_after_a_202(client: JobsClient, recorder: Recorder) -> None:
    job = client.schedule("echo", 8, delay=3, wait=1)
    assert job.status == JobStatus.SCHEDULED  # not finished within the 1 s asked for
    assert recorder.calls == [("POST", "/api/jobs", 202)]
    done = client.wait(job.id, timeout=30)
    assert done.status == JobStatus.SUCCEEDED and done.result == 8
    gets = recorder.statuses("GET", f"/api/jobs/{job.id}")
    assert len(gets) >= 2 and set(gets) == {200}  # it polled


def test_pages_follow_the_continuation_to_the_end(client: JobsClient) -> None:
    tag = uuid.uuid4().hex[:8]
    results = client.schedule_many(
        [NewJob("sleep", {"i": i}, delay=3600, labels={"tag": tag}) for i in range(5)])
    assert [r.status for r in results] == [201] * 5
    mine = {r.job.id for r in results if r.job is not None}
    pages = list(client.iter_pages(label={"tag": tag}, page_size=2))
    seen = [j.id for page in pages for j in page.jobs]
    assert len(pages) >= 3 and all(len(page.jobs) <= 2 for page in pages)
    assert all(page.next_cursor for page in pages[:-1]) and pages[-1].next_cursor is None
    assert len(seen) == len(set(seen)) and set(seen) == mine
    assert [j.id for j in client.iter_jobs(label=f"tag:{tag}", page_size=2)] == seen
    first = client.list_page(label={"tag": None}, handler="sleep", limit=2)
    assert len(first.jobs) == 2 and all("tag" in j.labels for j in first.jobs)
    for job_id in mine:
        assert client.cancel(job_id, reason=tag).cancel_reason == tag


def test_errors_are_typed(client: JobsClient, host: DevHostProcess) -> None:
    with pytest.raises(NotFound) as missing:
        client.get(UNKNOWN_ID)
    assert missing.value.status == 404 and missing.value.title == "Job not found"
    with pytest.raises(BadRequest) as malformed:
        client.get("not-a-job-id")
    assert malformed.value.status == 400
    with pytest.raises(BadRequest) as unknown_handler:
        client.schedule("nope")
    assert unknown_handler.value.field == "handler"
    with pytest.raises(BadRequest) as naive_time:
        client.schedule("echo", due_at="2026-01-01T10:00:00")
    assert naive_time.value.field == "due_at" and "offset" in (naive_time.value.detail or "")
    job = client.schedule("echo", 1, delay=300)
    client.cancel(job.id)
    with pytest.raises(Conflict) as twice:
        client.cancel(job.id)
    assert twice.value.status == 409 and "cancel" in str(twice.value)
    with pytest.raises(Conflict):
        client.resume(job.id)
    with JobsClient(host.base_url, "wrong-key") as stranger, pytest.raises(Unauthorized):
        stranger.get(job.id)


def test_controls_update_history(client: JobsClient) -> None:
    job = client.schedule("echo", {"v": 1}, delay=600, retry={"max_attempts": 3})
    assert job.retry.max_attempts == 3 and job.max_attempts == 3
    assert client.pause(job.id).status == JobStatus.PAUSED
    updated = client.update(job.id, payload={"v": 2}, retry={"max_attempts": 4},
                            labels={"team": "billing"})
    assert updated.payload == {"v": 2} and updated.max_attempts == 4
    assert updated.labels == {"team": "billing"}
    assert client.resume(job.id).status == JobStatus.SCHEDULED
    later = datetime.now(UTC) + timedelta(hours=2)
    moved = client.reschedule(job.id, due_at=later)
    assert abs((moved.due_at - later).total_seconds()) < 1
    assert client.run_now(job.id).status == JobStatus.SCHEDULED
    done = client.wait(job.id, timeout=30)
    assert done.status == JobStatus.SUCCEEDED and done.result == {"v": 2}
    history = client.history(job.id)
    assert history.job.id == job.id and history.job.status == JobStatus.SUCCEEDED
    kinds = [r.type for r in history.records]
    assert kinds[0] == "add" and kinds[-1] == "ok", kinds
    assert {"pause", "resume", "update", "ok"} <= set(kinds), kinds


def test_batch_and_idempotent_replay(client: JobsClient) -> None:
    key = f"client-test-{uuid.uuid4().hex}"
    results = client.schedule_many([{"handler": "echo", "payload": 1, "idempotency_key": key},
                                    {"handler": "nope"}])
    assert [r.status for r in results] == [201, 400]
    assert results[0].ok and results[0].job is not None
    assert not results[1].ok and results[1].problem is not None
    assert results[1].problem.field == "handler"
    again = client.schedule("echo", 1, idempotency_key=key)
    assert again.id == results[0].job.id and again.idempotency_key == key
    with pytest.raises(Conflict) as conflict:
        client.schedule("echo", 2, idempotency_key=key)
    assert conflict.value.field == "idempotency_key"


def test_recurring_job_wait_means_its_next_run(client: JobsClient) -> None:
    job = client.schedule("echo", "tick", recurrence=Recurrence(interval_seconds=1))
    assert job.recurrence is not None and job.recurrence.interval_seconds == 1
    ran = client.wait(job.id, timeout=30)
    assert ran.runs >= 1 and not ran.is_final
    assert client.cancel(ran.id).status == JobStatus.CANCELLED


def test_retry_runs_a_failed_job_again_as_a_new_run(client: JobsClient) -> None:
    failed = client.schedule_and_wait("reserve", {"fail": True}, timeout=20)
    assert failed.status == JobStatus.FAILED and failed.attempts == 1
    again = client.retry(failed.id)
    assert again.id == failed.id and again.status == JobStatus.SCHEDULED
    assert again.runs == failed.runs + 1 and again.attempts == 0
    done = client.wait(again.id, timeout=30)  # runs again (and fails again: it is permanent)
    assert done.status == JobStatus.FAILED and done.attempts == 1
    assert [r.type for r in client.history(done.id).records].count("start") == 2
    with pytest.raises(Conflict):
        client.retry(client.schedule("echo", delay=600).id)  # not failed or cancelled


def test_operator_routes(client: JobsClient) -> None:
    status = client.status()
    assert [s.slot for s in status.slots] == [0, 1]
    assert all(s.runtime_status in ("Running", "Pending") for s in status.slots)
    assert status.metrics.jobs.get("started", 0) >= 1
    sleep = status.handler_limits["sleep"]  # JOBS_HANDLER_LIMITS of the package's host
    assert sleep.max_concurrency == 5 and sleep.max_per_second is None and sleep.in_use == 0
    assert [s.action for s in client.start().slots] == ["already running"] * 2
    rows = list(client.iter_shards(page_size=1))
    assert rows and all(r.name.startswith("shards/s") for r in rows)
    timeline = client.timeline(5)
    assert timeline.from_ is not None and timeline.points
    report = client.purge(dry_run=True)
    assert report.dry_run and report.shards.shards_deleted == 0
    assert report.keys is not None and report.keys.blobs_deleted is None  # (a dry run)
