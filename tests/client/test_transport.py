"""Transport-level behaviour of both clients, on httpx.MockTransport (no server): 503 retries
honouring Retry-After and their bounds, what is never repeated, Prefer: wait then polling,
problem+json as typed errors, request bodies, and responses from a newer server."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from datetime import datetime

import httpx
import pytest

from jobs_client import (
    AsyncJobsClient,
    BadRequest,
    Conflict,
    JobsClient,
    JobsConnectionError,
    NotFound,
    PayloadTooLarge,
    PollConfig,
    RetryConfig,
    ServerError,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    UnexpectedResponse,
    WaitTimeout,
)
from jobs_client._codec import as_json
from tests.client.helpers import UNKNOWN_ID, job_json, problem_response

Handler = Callable[[httpx.Request], httpx.Response]
UNAVAILABLE = {"Retry-After": "1"}


class Script:
    """Answers requests from a list, in order, and records them."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(body: object, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Records the clients' sleeps instead of sleeping."""
    slept: list[float] = []

    async def fake_async_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(asyncio, "sleep", fake_async_sleep)
    return slept


def sync_client(script: Script, **options: object) -> JobsClient:
    return JobsClient("http://jobs.test", "k3y", transport=httpx.MockTransport(script),
                      **options)  # type: ignore[arg-type]


def test_503_is_retried_after_retry_after_then_succeeds(sleeps: list[float]) -> None:
    script = Script(problem_response(503, headers=UNAVAILABLE),
                    problem_response(503, headers=UNAVAILABLE), ok(job_json()))
    job = sync_client(script).get(UNKNOWN_ID)
    assert job.id == UNKNOWN_ID
    assert len(script.requests) == 3
    assert len(sleeps) == 2 and all(s >= 1.0 for s in sleeps), sleeps  # never before Retry-After
    assert script.requests[0].headers["x-functions-key"] == "k3y"


async def test_async_client_retries_503_the_same_way(sleeps: list[float]) -> None:
    script = Script(problem_response(503, headers={"Retry-After": "2"}), ok(job_json()))
    async with AsyncJobsClient("http://jobs.test", "k", transport=httpx.MockTransport(script)) \
            as jobs:
        job = await jobs.get(UNKNOWN_ID)
    assert job.status == "scheduled" and len(script.requests) == 2
    assert len(sleeps) == 1 and sleeps[0] >= 2.0


def test_503_retries_are_bounded(sleeps: list[float]) -> None:
    script = Script(*[problem_response(503, "Storage unavailable", headers=UNAVAILABLE)] * 4)
    with pytest.raises(ServiceUnavailable) as caught:
        sync_client(script, retry=RetryConfig(attempts=4)).get(UNKNOWN_ID)
    assert len(script.requests) == 4 and len(sleeps) == 3
    error = caught.value
    assert error.status == 503 and error.retry_after == 1.0
    assert error.title == "Storage unavailable"
    assert isinstance(error, ServerError)


def test_a_retry_after_beyond_the_bounds_is_not_waited_for(sleeps: list[float]) -> None:
    script = Script(problem_response(503, headers={"Retry-After": "120"}))
    with pytest.raises(ServiceUnavailable):
        sync_client(script, retry=RetryConfig(max_delay=30)).get(UNKNOWN_ID)
    assert len(script.requests) == 1 and sleeps == []


def test_schedule_without_idempotency_key_is_never_repeated(sleeps: list[float]) -> None:
    # a 503 may still hide a write in flight (README, I1): repeating could schedule it twice
    script = Script(problem_response(503, headers=UNAVAILABLE))
    with pytest.raises(ServiceUnavailable):
        sync_client(script).schedule("echo", 1)
    assert len(script.requests) == 1 and sleeps == []
    refused = Script(httpx.ConnectError("refused"), ok(job_json(), 201))  # nothing was sent
    assert sync_client(refused).schedule("echo", 1).id == UNKNOWN_ID
    assert len(refused.requests) == 2
    keyed = Script(problem_response(503, headers=UNAVAILABLE), ok(job_json(), 201))
    job = sync_client(keyed).schedule("echo", 1, idempotency_key="order-7")
    assert job.id == UNKNOWN_ID and len(keyed.requests) == 2
    assert json.loads(keyed.requests[1].content)["idempotency_key"] == "order-7"


def test_a_cancel_whose_answer_was_lost_is_not_reported_as_a_conflict(
        sleeps: list[float]) -> None:
    """The cancel took effect, its read-back failed (503); the repeat met 409 "job is
    cancelled", and the client raised Conflict: "nothing changed" (hunt of stop 29). The
    job is read: cancelled, as asked, is the answer; in another state the outcome is unknown
    (a resume that took effect, then the job started): 503, never a Conflict."""
    conflict = problem_response(409, "Conflict", "cannot cancel: job is cancelled")
    script = Script(problem_response(503, headers=UNAVAILABLE), conflict,
                    ok(job_json(status="cancelled")))
    assert sync_client(script).cancel(UNKNOWN_ID).status == "cancelled"
    assert [r.method for r in script.requests] == ["DELETE", "DELETE", "GET"]
    other = Script(problem_response(503, headers=UNAVAILABLE), conflict,
                   ok(job_json(status="running")))
    with pytest.raises(ServiceUnavailable, match="unknown") as raised:
        sync_client(other).resume(UNKNOWN_ID)
    assert isinstance(raised.value.__cause__, Conflict) and len(other.requests) == 3
    for first in ([], [httpx.ConnectError("refused")]):  # nothing sent before: a true 409
        script = Script(*first, conflict)
        with pytest.raises(Conflict):
            sync_client(script).cancel(UNKNOWN_ID)
        assert len(script.requests) == len(first) + 1


@pytest.mark.parametrize("action", ["run_now", "retry"])
def test_run_now_and_retry_are_not_repeated_after_a_503(sleeps: list[float],
                                                        action: str) -> None:
    """A 503 may hide a run-now or retry that took effect; repeated after the job's new run
    ended, a retry would apply again and run it once more."""
    script = Script(problem_response(503, headers=UNAVAILABLE))
    with pytest.raises(ServiceUnavailable):
        getattr(sync_client(script), action)(UNKNOWN_ID)
    assert len(script.requests) == 1 and sleeps == []
    refused = Script(httpx.ConnectError("refused"), ok(job_json()))  # never sent: repeated
    assert getattr(sync_client(refused), action)(UNKNOWN_ID).id == UNKNOWN_ID


def test_refused_connections_are_retried_broken_ones_are_not(sleeps: list[float]) -> None:
    refused = httpx.ConnectError("refused")
    script = Script(refused, refused, ok(job_json()))
    assert sync_client(script).get(UNKNOWN_ID).id == UNKNOWN_ID
    assert len(script.requests) == 3 and len(sleeps) == 2
    broken = Script(httpx.ReadError("reset"))
    with pytest.raises(JobsConnectionError):
        sync_client(broken).run_now(UNKNOWN_ID)  # it may have reached the server
    assert len(broken.requests) == 1


def test_a_read_is_repeated_after_any_failed_connection(sleeps: list[float]) -> None:
    """A read changes nothing: a reset, a server that closed a pooled keep-alive connection or
    a read timeout is tried again (a long wait() ended on one stale connection), within the
    same bounds; a write that may have reached the server is not."""
    stale = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    script = Script(stale, httpx.ReadError("reset"), ok(job_json()))
    assert sync_client(script).get(UNKNOWN_ID).id == UNKNOWN_ID
    assert len(script.requests) == 3 and len(sleeps) == 2
    gone = Script(*[httpx.ReadTimeout("slow")] * 6)
    with pytest.raises(JobsConnectionError):
        sync_client(gone).get(UNKNOWN_ID)
    assert len(gone.requests) == 4  # RetryConfig's tries in all
    for write in ("cancel", "pause"):
        broken = Script(stale)
        with pytest.raises(JobsConnectionError):
            getattr(sync_client(broken), write)(UNKNOWN_ID)
        assert len(broken.requests) == 1


def test_a_request_the_client_cannot_send_is_not_repeated(sleeps: list[float]) -> None:
    """``--url localhost:7071`` (no scheme) or ``ftp://...``: httpx refuses the request before
    it connects (UnsupportedProtocol, a TransportError). Any read was repeated after it like
    after a failed connection: the same error again, after ~4 s of back-off."""
    for error in (httpx.UnsupportedProtocol("Request URL is missing an 'http://' or "
                                            "'https://' protocol."),
                  httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'.")):
        script = Script(error, ok(job_json()))
        with pytest.raises(JobsConnectionError):
            sync_client(script).get(UNKNOWN_ID)
        assert len(script.requests) == 1 and sleeps == []


def test_schedule_and_wait_sends_prefer_wait_then_polls_honouring_retry_after(
        sleeps: list[float]) -> None:
    script = Script(ok(job_json(), 202, **{"Retry-After": "3", "Location": "/api/jobs/x"}),
                    ok(job_json(status="running", attempts=1)),
                    ok(job_json(status="succeeded", attempts=1, result={"a": 1})))
    job = sync_client(script).schedule_and_wait("echo", {"a": 1}, timeout=60)
    assert job.status == "succeeded" and job.result == {"a": 1}
    first = script.requests[0]
    assert first.method == "POST" and first.headers["prefer"] == "wait=60"
    assert [r.method for r in script.requests[1:]] == ["GET", "GET"]
    assert len(sleeps) == 2 and all(s >= 3.0 for s in sleeps), sleeps


def test_an_immediate_200_needs_no_polling(sleeps: list[float]) -> None:
    script = Script(ok(job_json(status="succeeded", result=7), 200))
    job = sync_client(script).schedule_and_wait("echo", 7, timeout=10)
    assert job.result == 7 and len(script.requests) == 1 and sleeps == []


def test_a_202_is_not_finished_whatever_runs_the_job_shows(sleeps: list[float]) -> None:
    """A replayed key may find a job that ran once and waits again (cancelled and retried, or
    recurring): the API's 202 says its next run has not finished; the client once returned
    it at once, and ``jobsctl schedule --wait`` exited 0 (hunt of stop 29)."""
    script = Script(ok(job_json(status="scheduled", runs=1), 202,
                       **{"Retry-After": "1", "Location": "/api/jobs/x",
                          "Preference-Applied": "wait"}),
                    ok(job_json(status="running", runs=1)),
                    ok(job_json(status="scheduled", runs=2, result=5)))
    job = sync_client(script).schedule_and_wait("echo", 5, idempotency_key="k", timeout=60)
    assert job.runs == 2 and job.result == 5 and len(script.requests) == 3


def test_a_200_after_the_apis_wait_is_finished(sleeps: list[float]) -> None:
    """``Preference-Applied: wait`` says the API waited: a recurring job's 200 with a run
    done is finished. Without it (an API from before the header) the rule of before holds:
    a run done is finished, and a job with none is waited for."""
    for headers in ({"Preference-Applied": "wait"}, {}):
        script = Script(ok(job_json(status="scheduled", runs=1), 200, **headers))
        assert sync_client(script).schedule_and_wait("echo", 1, timeout=10).runs == 1
        assert len(script.requests) == 1
    at_once = Script(ok(job_json(status="scheduled", runs=0), 201),
                     ok(job_json(status="succeeded", runs=1)))
    assert sync_client(at_once).schedule_and_wait("echo", 1, timeout=10).status == "succeeded"
    assert len(at_once.requests) == 2


def test_wait_gives_up_with_the_last_known_job(sleeps: list[float]) -> None:
    script = Script(*[ok(job_json(status="running"))] * 50)
    client = sync_client(script, poll=PollConfig(initial=0.01, max=0.01))
    clock = iter(range(0, 1000))  # each monotonic() call: one more second
    real = time.monotonic
    try:
        time.monotonic = lambda: float(next(clock))  # type: ignore[assignment]
        with pytest.raises(WaitTimeout) as caught:
            client.wait(UNKNOWN_ID, timeout=5)
    finally:
        time.monotonic = real  # type: ignore[assignment]
    assert caught.value.job.status == "running"
    assert 1 < len(script.requests) < 10


@pytest.mark.parametrize(("answer", "error", "field"), [
    (problem_response(400, "Invalid request", field="due_at"), BadRequest, "due_at"),
    (problem_response(413, "Payload too large", field="payload"), PayloadTooLarge, "payload"),
    (problem_response(404, "Job not found"), NotFound, None),
    (problem_response(409, "Operation does not fit the job's state"), Conflict, None),
    (httpx.Response(401), Unauthorized, None),
    (httpx.Response(500, text="boom"), ServerError, None),
])
def test_problems_become_typed_errors(answer: httpx.Response, error: type[Exception],
                                      field: str | None, sleeps: list[float]) -> None:
    with pytest.raises(error) as caught:
        sync_client(Script(answer)).cancel(UNKNOWN_ID)
    raised = caught.value
    assert raised.status == answer.status_code  # type: ignore[attr-defined]
    assert raised.field == field  # type: ignore[attr-defined]
    if answer.headers.get("content-type") == "application/problem+json":
        assert raised.title == json.loads(answer.content)["title"]  # type: ignore[attr-defined]
        assert raised.detail == "it went wrong"  # type: ignore[attr-defined]
    assert isinstance(PayloadTooLarge("x"), BadRequest)


def test_a_2xx_that_is_not_the_api_is_an_unexpected_response() -> None:
    with pytest.raises(UnexpectedResponse):
        sync_client(Script(httpx.Response(200, text="<html>"))).get(UNKNOWN_ID)
    with pytest.raises(UnexpectedResponse):
        sync_client(Script(ok({"id": UNKNOWN_ID}))).get(UNKNOWN_ID)  # required members gone


def test_unknown_members_and_statuses_from_a_newer_server_are_kept() -> None:
    newer = job_json(status="archived", priority=5,
                     error={"type": "E", "message": "m", "attempt": 1, "permanent": False,
                            "trace_id": "t-1"})
    job = sync_client(Script(ok(newer))).get(UNKNOWN_ID)
    assert job.status == "archived" and not job.is_final
    assert job.extra == {"priority": 5}
    assert job.error is not None and job.error.extra == {"trace_id": "t-1"}
    assert as_json(job) == newer  # printed back (--json) as the server sent it


def test_request_bodies_send_what_was_given() -> None:
    script = Script(*[ok(job_json())] * 4)
    client = sync_client(script)
    client.update(UNKNOWN_ID, payload=None)
    client.update(UNKNOWN_ID, retry={"max_attempts": 2}, timeout_seconds=None)
    client.reschedule(UNKNOWN_ID, delay=30)
    client.schedule("echo", {"x": 1}, due_at=datetime.fromisoformat("2026-11-22T15:00:00+01:00"),
                    recurrence={"cron": "0 2 * * *", "timezone": "Europe/Berlin"})
    bodies = [json.loads(r.content) for r in script.requests]
    assert bodies == [
        {"payload": None},  # null is a payload; the fields not given are not sent
        {"retry": {"max_attempts": 2}, "timeout_seconds": None},
        {"delay": 30},
        {"handler": "echo", "payload": {"x": 1}, "due_at": "2026-11-22T15:00:00+01:00",
         "recurrence": {"cron": "0 2 * * *", "timezone": "Europe/Berlin"}},
    ]
    assert [r.url.path for r in script.requests] == [f"/api/jobs/{UNKNOWN_ID}"] * 2 + [
        f"/api/jobs/{UNKNOWN_ID}/reschedule", "/api/jobs"]
    with pytest.raises(ValueError, match="time zone"):
        client.schedule("echo", due_at=datetime(2026, 11, 22, 15))


def test_batch_items_as_dicts_and_prefer_wait_are_sent_as_given() -> None:
    batch = {"results": [{"status": 400, "problem": {
        "type": "t", "title": "Invalid request", "status": 400, "detail": "no offset",
        "field": "due_at"}}]}
    script = Script(ok(batch), ok(job_json(), 202, **{"Retry-After": "1"}))
    client = sync_client(script)
    [result] = client.schedule_many([{"handler": "echo", "due_at": "2026-11-22T15:00:00",
                                      "priority": 1}])
    assert not result.ok and result.problem is not None and result.problem.field == "due_at"
    # the caller's text and unknown members go to the server, which judges them
    assert json.loads(script.requests[0].content) == {"jobs": [
        {"handler": "echo", "due_at": "2026-11-22T15:00:00", "priority": 1}]}
    assert client.schedule("echo", wait=0.5).status == "scheduled"
    assert script.requests[1].headers["prefer"] == "wait=0.5"


def test_label_filters_and_labels() -> None:
    script = Script(ok({"jobs": [job_json(labels={"team": "billing"})], "next_cursor": None}),
                    ok(job_json()))
    client = sync_client(script)
    [job] = client.iter_jobs(label={"team": "billing", "urgent": None}, page_size=10)
    assert job.labels == {"team": "billing"}
    assert dict(script.requests[0].url.params) == {"label": "team:billing,urgent",
                                                   "limit": "10"}
    client.update(UNKNOWN_ID, labels=None)  # removes them: sent as null
    assert json.loads(script.requests[1].content) == {"labels": None}
    # the server splits filters on commas: such a value found nothing (hunt of stop 28)
    with pytest.raises(ValueError, match="comma"):
        list(client.iter_jobs(label={"team": "billing,eu"}))
    assert len(script.requests) == 2


def test_base_url_may_name_api_and_the_key_comes_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBS_KEY", "from-env")
    script = Script(ok({"slots": []}))
    JobsClient("http://jobs.test/api/", transport=httpx.MockTransport(script)).start()
    assert script.requests[0].url == "http://jobs.test/api/scheduler/start"
    assert script.requests[0].headers["x-functions-key"] == "from-env"


@pytest.mark.parametrize("key", ["s3cret-key\r", "s3cret-key\n", "s3cret-kéy"])
def test_a_key_a_header_cannot_carry_is_refused_without_showing_it(key: str) -> None:
    """A key read with its line end (``JOBS_KEY=$(cat key.txt)`` of a CRLF file): the HTTP
    layer refused the header with the key in its message, which became the
    ``JobsConnectionError`` jobsctl printed (exit 5); a non-ASCII one was a
    ``UnicodeEncodeError`` traceback."""
    with socket.socket() as listener:  # something to connect to (never answers)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(ValueError, match="function key") as refused, \
                JobsClient(url, key, timeout=2) as jobs:
            jobs.get(UNKNOWN_ID)
        assert "s3cret" not in str(refused.value)
    with pytest.raises(ValueError, match="function key") as refused:
        AsyncJobsClient(url, key)
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize("action", ["update", "reschedule"])
def test_an_update_or_reschedule_whose_answer_was_lost_is_not_reported_as_a_conflict(
        sleeps: list[float], action: str) -> None:
    """A reschedule to now took effect, its answer was lost (503), the job started: the
    repeat met 409 "job is running" and the client raised Conflict, which says nothing
    changed. No state tells whether the first try applied: the outcome is unknown (503)."""
    conflict = problem_response(409, "Conflict", "cannot reschedule: job is running")
    script = Script(problem_response(503, headers=UNAVAILABLE), conflict,
                    ok(job_json(status="running")))
    client = sync_client(script)
    with pytest.raises(ServiceUnavailable, match="unknown") as raised:
        if action == "update":
            client.update(UNKNOWN_ID, payload={"v": 2})
        else:
            client.reschedule(UNKNOWN_ID, delay=0)
    assert isinstance(raised.value.__cause__, Conflict)
    assert [r.method for r in script.requests][-1] == "GET"
    first = Script(conflict)  # nothing sent before: a true 409
    with pytest.raises(Conflict):
        sync_client(first).reschedule(UNKNOWN_ID, delay=0)
    assert len(first.requests) == 1


def test_429_was_refused_before_it_ran_and_is_retried_after_retry_after(
        sleeps: list[float]) -> None:
    """The Functions platform (or a gateway in front) answers 429 with Retry-After when it
    sheds load: the request never ran. It was a plain ``JobsClientError`` at once, even for a
    read; any request can go again, a schedule without a key included."""
    busy = httpx.Response(429, text="Too many requests", headers={"Retry-After": "2"})
    script = Script(busy, ok(job_json(), 201))
    assert sync_client(script).schedule("echo", 1).id == UNKNOWN_ID
    assert len(script.requests) == 2 and len(sleeps) == 1 and sleeps[0] >= 2.0
    refused = Script(busy, problem_response(409, "Conflict", "job is running"))
    with pytest.raises(Conflict):  # nothing ran before: a true "nothing changed"
        sync_client(refused).cancel(UNKNOWN_ID)
    always = Script(*[busy] * 4)
    with pytest.raises(TooManyRequests) as caught:
        sync_client(always).get(UNKNOWN_ID)
    assert len(always.requests) == 4
    assert caught.value.status == 429 and caught.value.retry_after == 2.0


def test_a_json_error_that_is_no_problem_keeps_its_text(sleeps: list[float]) -> None:
    """A gateway in front of the app (API Management, a proxy) answers its own JSON, not a
    problem: it was read as an empty problem, and the error said only "502 : "."""
    gateway = httpx.Response(502, json={"statusCode": 502, "message": "upstream unreachable"})
    with pytest.raises(ServerError) as caught:
        sync_client(Script(gateway)).get(UNKNOWN_ID)
    assert caught.value.status == 502 and caught.value.problem is None
    assert "upstream unreachable" in str(caught.value)
    assert str(caught.value).startswith("502 Bad Gateway")
