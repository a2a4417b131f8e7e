"""``jobs_api/http_api.py``'s answers tell the truth about what was written: the handlers
called directly, on a runtime whose store is in memory (from the hunt of stop 28)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest

import function_app  # noqa: F401  (the sample handlers: echo)
from jobs_api import http_api, starter
from jobs_api import runtime as runtime_module
from jobs_core.errors import SettingsError, TransientStoreError
from jobs_core.memory_store import InMemoryStore
from tests.jobs_helpers import ReadFailsAfterAdd, any_append


class Client:
    """The Durable client as far as waking slots needs it."""

    async def get_status(self, instance_id: str) -> None:
        return None

    async def raise_event(self, *args: Any, **kwargs: Any) -> None:
        return None


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryStore]:
    monkeypatch.setenv("JOBS_EVENTS_QUEUE", "off")
    memory = ReadFailsAfterAdd()
    runtime = runtime_module.Runtime()
    runtime._store = memory  # type: ignore[assignment]
    monkeypatch.setattr(runtime_module, "_runtime", runtime)
    yield memory


def request(body: Any, *, params: dict[str, str] | None = None,
            headers: dict[str, str] | None = None, url: str = "/api/jobs") -> func.HttpRequest:
    raw = body if isinstance(body, str) else json.dumps(body)
    return func.HttpRequest(method="POST", url=f"http://localhost{url}",
                            headers={"content-type": "application/json", **(headers or {})},
                            params=params or {}, body=raw.encode())


async def answer(handler: Any, req: func.HttpRequest) -> tuple[int, dict[str, str], Any]:
    response = await http_api.guarded(handler)(req, Client())  # type: ignore[arg-type]
    return response.status_code, dict(response.headers), json.loads(response.get_body())


async def test_a_wait_whose_read_fails_answers_202_for_the_written_job(
        store: ReadFailsAfterAdd) -> None:
    """The job was durable; one read during ``?wait=`` failed, and the answer was 503 ("not
    written"): a caller without a key would schedule it again."""
    store.arms_on = any_append
    code, headers, body = await answer(http_api.create_job, request(
        {"handler": "echo", "delay": 60}, params={"wait": "1"}))
    assert code == 202, body
    assert headers["Location"].endswith(body["id"]) and body["status"] == "scheduled"
    page = await (await runtime_module.get_runtime().scheduler()).list()
    assert [job.id for job in page.jobs] == [body["id"]]


@pytest.mark.parametrize(("handler", "body", "headers"), [
    (http_api.create_job, '{"handler": "echo", "labels": {"team": "\\ud800"}}',
     {"idempotency-key": "k-1"}),
    (http_api.create_job, '{"handler": "echo", "payload": {"\\udfff": 1}}', {}),
    (http_api.create_batch, '{"jobs": [{"handler": "echo", "payload": {"n": 1}}, '
                            '{"handler": "echo", "labels": {"team": "\\ud800"}}, '
                            '{"handler": "echo", "payload": {"n": 3}}]}', {}),
])
async def test_a_lone_surrogate_is_a_400_and_nothing_is_written(
        store: ReadFailsAfterAdd, handler: Any, body: str, headers: dict[str, str]) -> None:
    """Valid JSON, but no text: it passed validation, and encoding the record failed after
    the key claim (or the batch's other items) had been written: a 500."""
    assert "\\ud800" in body or "\\udfff" in body
    code, _, problem = await answer(handler, request(body, headers=headers))
    assert (code, problem["type"].rsplit("/", 1)[-1]) == (400, "invalid-json"), problem
    assert "surrogate" in problem["detail"]
    assert await store.list("") == []


async def test_a_paired_surrogate_escape_is_text(store: ReadFailsAfterAdd) -> None:
    code, _, body = await answer(http_api.create_job, request(
        '{"handler": "echo", "payload": {"smile": "\\ud83d\\ude00"}}'))
    assert code == 201 and body["payload"] == {"smile": "\U0001f600"}


EDGES = ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00Z",
         "9999-12-31T23:59:59Z"]


def route(method: str, url: str, body: Any = None, *, params: dict[str, str] | None = None,
          route_params: dict[str, str] | None = None) -> func.HttpRequest:
    return func.HttpRequest(method=method, url=f"http://localhost{url}",
                            headers={"content-type": "application/json"},
                            params=params or {}, route_params=route_params or {},
                            body=b"" if body is None else json.dumps(body).encode())


@pytest.mark.parametrize("moment", EDGES)
async def test_dates_at_the_ends_of_the_calendar_are_a_400_on_every_route(
        store: ReadFailsAfterAdd, moment: str) -> None:
    """``astimezone`` overflows at the ends of the calendar: an uncaught OverflowError, a
    500 on eight routes (and one such item took a whole batch down)."""
    from jobs_api import insights
    _, _, job = await answer(http_api.create_job, request({"handler": "echo", "delay": 100}))
    _, _, rec = await answer(http_api.create_job, request(
        {"handler": "echo", "recurrence": {"interval_seconds": 60}}))
    ids = {"id": job["id"]}
    cases: list[tuple[Any, func.HttpRequest]] = [
        (http_api.create_job, request({"handler": "echo", "due_at": moment})),
        (http_api.create_job, request({"handler": "echo", "recurrence": {
            "interval_seconds": 60, "until": moment}})),
        (http_api.create_job, request({"handler": "echo", "recurrence": {
            "interval_seconds": 60, "anchor": moment}})),
        (http_api.create_batch, request({"jobs": [{"handler": "echo", "due_at": moment}]})),
        (http_api.reschedule_job, route("POST", "/api/jobs/x/reschedule", {"due_at": moment},
                                        route_params=ids)),
        (http_api.update_job, route("PATCH", "/api/jobs/x", {"recurrence": {
            "interval_seconds": 60, "until": moment}}, route_params={"id": rec["id"]})),
        (http_api.list_jobs, route("GET", "/api/jobs", params={"due_from": moment})),
        (http_api.list_jobs, route("GET", "/api/jobs", params={"due_to": moment})),
        (insights.list_shards, route("GET", "/api/shards", params={"bucket_to": moment})),
        (insights.list_shards, route("GET", "/api/shards", params={"bucket_from": moment})),
    ]
    for i, (handler, req) in enumerate(cases):
        code, _, body = await answer(handler, req)
        assert code < 500, (handler.__name__, req.params, body)
        if i in (0, 4):  # a due time at the ends of the calendar is never within the horizon
            assert code == 400, (handler.__name__, body)
        if i == 3:
            assert body["results"][0]["status"] == 400, body


async def test_a_huge_integer_retention_is_a_400(store: ReadFailsAfterAdd) -> None:
    from jobs_api import maintenance
    code, _, problem = await answer(maintenance.purge_now, request(
        '{"retention_days": 1' + "0" * 400 + "}", url="/api/maintenance/purge"))
    assert (code, problem["field"]) == (400, "retention_days"), problem


async def test_a_replayed_key_waits_for_a_run_after_the_answer_not_one_before(
        store: ReadFailsAfterAdd) -> None:
    """A keyed job cancelled and retried waits again with ``runs`` 1. Its replayed POST with
    ``?wait=`` answered 200 at once ("finished") for a job that never ran (hunt of stop 29):
    finished is final, or a run done since the answer."""
    body = {"handler": "echo", "payload": 1, "idempotency_key": "order-7", "delay": 3600}
    code, _, job = await answer(http_api.create_job, request(body))
    assert code == 201
    ids = {"id": job["id"]}
    assert (await answer(http_api.cancel_job, route("DELETE", "/api/jobs", route_params=ids)))[0] \
        == 200
    code, _, retried = await answer(http_api.retry_job, route("POST", "/api/jobs",
                                                              route_params=ids))
    assert code == 200 and retried["status"] == "scheduled" and retried["runs"] == 1
    code, headers, replay = await answer(http_api.create_job,
                                         request(body, params={"wait": "0.3"}))
    assert code == 202, replay
    assert replay["status"] == "scheduled" and replay["started_at"] is None
    assert headers["Preference-Applied"] == "wait" and int(headers["Retry-After"]) >= 1
    code, headers, again = await answer(http_api.create_job, request(body))
    assert code == 200 and again["id"] == job["id"]
    assert "Preference-Applied" not in headers  # (no wait asked)


@pytest.mark.parametrize(("failure", "code"), [
    (TransientStoreError("blob service: 503 ServerBusy"), 200),
    (SettingsError("JOBS_BUCKET_MINUTES is 5, the container's jobs were written with 15"), 503),
])
async def test_the_scheduler_status_without_storage_is_no_500(
        monkeypatch: pytest.MonkeyPatch, failure: Exception, code: int) -> None:
    """``GET /api/scheduler`` on a cold process whose storage is down (or whose settings
    contradict the container) raised, and the host answered 500 (hunt of stop 29). Storage
    down: the slots' status still answers, the permits in use are unknown (null); a
    misconfigured app is a 503 problem, as on every other route."""
    monkeypatch.setenv("JOBS_HANDLER_LIMITS", '{"echo": {"max_concurrency": 2}}')
    runtime = runtime_module.Runtime()
    monkeypatch.setattr(runtime_module, "_runtime", runtime)

    async def unavailable() -> InMemoryStore:
        raise failure

    monkeypatch.setattr(runtime, "store", unavailable)
    response = await http_api.guarded(starter.report_route)(  # type: ignore[arg-type]
        route("GET", "/api/scheduler"), Client())
    body = json.loads(response.get_body())
    assert response.status_code == code, body
    if code == 200:
        assert body["handler_limits"]["echo"]["in_use"] is None
        assert len(body["slots"]) == runtime.settings.slots
    else:
        assert response.mimetype == "application/problem+json"
        assert body["type"].endswith("misconfigured")


@pytest.mark.parametrize(("handler", "method", "url"), [
    (starter.start_route, "POST", "/api/scheduler/start"),
    (starter.report_route, "GET", "/api/scheduler"),
])
async def test_the_scheduler_routes_of_a_misconfigured_app_answer_503(
        monkeypatch: pytest.MonkeyPatch, handler: Any, method: str, url: str) -> None:
    """README, HTTP API: ``POST /api/scheduler/start`` and ``GET /api/scheduler`` answer 503 if
    the app is misconfigured. Without handler limits neither touched the store, so neither
    checked the container's layout: devhost with JOBS_BUCKET_MINUTES=30 on a container
    written with 60 answered both with 200 (the start "already running") while every cycle
    failed and every job route answered 503."""
    monkeypatch.delenv("JOBS_HANDLER_LIMITS", raising=False)
    runtime = runtime_module.Runtime()
    monkeypatch.setattr(runtime_module, "_runtime", runtime)
    started: list[str] = []

    class Starter(Client):
        async def start_new(self, name: str, instance_id: str, payload: Any) -> str:
            started.append(instance_id)
            return instance_id

    async def misconfigured() -> InMemoryStore:
        raise SettingsError("JOBS_BUCKET_MINUTES is 30, but this container's jobs were "
                            "written with 60")

    monkeypatch.setattr(runtime, "store", misconfigured)
    response = await http_api.guarded(handler)(route(method, url), Starter())  # type: ignore[arg-type]
    body = json.loads(response.get_body())
    assert response.status_code == 503, body
    assert body["type"].endswith("/misconfigured") and "JOBS_BUCKET_MINUTES" in body["detail"]
    assert started == []  # no slot was started on a container it would misread


async def test_starting_the_scheduler_while_the_store_is_down_answers_503(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """README: ``POST /api/scheduler/start`` answers 503 if its storage fails."""
    runtime = runtime_module.Runtime()
    monkeypatch.setattr(runtime_module, "_runtime", runtime)

    async def down() -> InMemoryStore:
        raise TransientStoreError("blob service: 503 ServerBusy")

    monkeypatch.setattr(runtime, "store", down)
    response = await http_api.guarded(starter.start_route)(  # type: ignore[arg-type]
        route("POST", "/api/scheduler/start"), Client())
    assert response.status_code == 503
    assert json.loads(response.get_body())["type"].endswith("/storage-unavailable")


async def test_a_blob_written_by_a_newer_release_is_a_503_never_a_400(
        store: ReadFailsAfterAdd) -> None:
    """README, Known limits: during a rolling upgrade an old process refuses a blob holding a
    record of a newer format version, and its routes answer 503. The error fell through to
    ``problem_of``'s last branch, a 400 "Invalid request" (the caller's fault, nothing
    written): on history, cancel and list, and on a keyed POST whose job *was* added (the
    replay after its add raised), so a caller dropped a job that runs."""
    import zlib

    from jobs_api import insights
    from jobs_core.ids import parse_job_id
    from jobs_core.records import FORMAT_VERSION

    code, _, job = await answer(http_api.create_job, request({"handler": "echo", "delay": 600}))
    assert code == 201
    home = parse_job_id(job["id"])
    newer = {"v": FORMAT_VERSION + 1, "op": "later", "id": job["id"], "at": job["created_at"]}
    await store.append(home.name, b"\n" + json.dumps(newer).encode(), create_metadata={})
    ids = {"id": job["id"]}
    slots = runtime_module.get_runtime().settings.slots
    key = next(f"k-{i}" for i in range(1000) if zlib.crc32(f"k-{i}".encode()) % slots ==
               home.key.slot)  # its job goes to the same blob
    cases: list[tuple[Any, func.HttpRequest]] = [
        (insights.job_history, route("GET", "/api/jobs/x/history", route_params=ids)),
        (http_api.cancel_job, route("DELETE", "/api/jobs/x", route_params=ids)),
        (http_api.list_jobs, route("GET", "/api/jobs", params={"slot": str(home.key.slot)})),
        (http_api.create_job, request({"handler": "echo", "due_at": job["due_at"],
                                       "idempotency_key": key})),
    ]
    for handler, req in cases:
        response = await http_api.guarded(handler)(req, Client())  # type: ignore[arg-type]
        problem = json.loads(response.get_body())
        assert response.status_code == 503, (handler.__name__, problem)
        assert problem["type"].endswith("/unsupported-record-version"), problem
        assert "upgrade" in problem["detail"] and response.headers["Retry-After"]
    claimed = [blob for blob in await store.list("shards/")
               if f'"{key}"'.encode() in (await store.read(blob.name)).data]
    assert [blob.name for blob in claimed] == [home.name]  # (the 503 was for a written job)


async def refused_on_post_batch_and_patch(store: ReadFailsAfterAdd, recurrence: dict[str, Any],
                                          kept: dict[str, Any]) -> str:
    """A recurrence the app must refuse: POST answers 400 (field ``recurrence``) and writes
    nothing; in a batch it is a 400 item beside the other item's 201; a PATCH to it of a job
    made with ``kept`` answers 400 and leaves the job as it was. Returns the POST's detail."""
    code, _, problem = await answer(http_api.create_job, request(
        {"handler": "echo", "recurrence": recurrence}))
    assert (code, problem["field"]) == (400, "recurrence"), problem
    assert await store.list("shards/") == []
    code, _, body = await answer(http_api.create_batch, request({"jobs": [
        {"handler": "echo", "payload": 1}, {"handler": "echo", "recurrence": recurrence}]}))
    assert code == 200 and [r["status"] for r in body["results"]] == [201, 400], body
    code, _, job = await answer(http_api.create_job, request(
        {"handler": "echo", "recurrence": kept}))
    assert code == 201, job
    code, _, refused = await answer(http_api.update_job, route(
        "PATCH", "/api/jobs/x", {"recurrence": recurrence}, route_params={"id": job["id"]}))
    assert (code, refused["field"]) == (400, "recurrence"), refused
    _, _, now = await answer(http_api.get_job, route("GET", "/api/jobs/x",
                                                     route_params={"id": job["id"]}))
    assert (now["recurrence"], now["due_at"]) == (job["recurrence"], job["due_at"]), now
    return str(problem["detail"])


@pytest.mark.parametrize("zone", ["America", "Europe", "America/Argentina", "a" * 300])
async def test_a_time_zone_that_is_a_folder_of_the_zone_database_is_a_400(
        store: ReadFailsAfterAdd, zone: str) -> None:
    """``ZoneInfo('America')`` opens a directory and ``ZoneInfo('a' * 300)`` a name too long
    for the file system: an ``OSError``, which the recurrence's check (unknown zone: 400)
    did not catch. POST and PATCH answered 500, and a batch with one such item lost every
    other item with it."""
    detail = await refused_on_post_batch_and_patch(
        store, {"cron": "0 2 * * *", "timezone": zone}, {"cron": "0 2 * * *", "timezone": "UTC"})
    assert "IANA" in detail


async def test_a_handler_filter_that_names_no_handler_is_a_400(store: ReadFailsAfterAdd) -> None:
    """``?handler=a&handler=b`` reaches the app joined with commas (Azure's host does that to a
    repeated parameter): it matched nothing, and the answer was an empty 200."""
    code, _, made = await answer(http_api.create_job, request({"handler": "echo"}))
    assert code == 201, made
    for value in ("echo,other", "echo other", "../echo"):
        code, _, problem = await answer(http_api.list_jobs, route(
            "GET", "/api/jobs", params={"handler": value}))
        assert code == 400 and problem["field"] == "handler", (value, problem)
    code, _, page = await answer(http_api.list_jobs, route(
        "GET", "/api/jobs", params={"handler": "echo"}))
    assert code == 200 and [j["id"] for j in page["jobs"]] == [made["id"]]


async def test_a_shard_whose_log_cannot_be_read_has_unknown_counts_not_zero(
        store: ReadFailsAfterAdd) -> None:
    """A blob holding a record of a newer format (a rolling upgrade) is ``unreadable`` in
    ``GET /api/shards``: its row answered ``counts`` of 0 in every status and ``pending: 0``,
    and the dashboard showed a blob with a waiting job as one with no jobs at all. Unknown
    figures are ``null``; ``error`` says why."""
    from jobs_api import insights
    from jobs_core.ids import parse_job_id
    from jobs_core.records import FORMAT_VERSION

    code, _, job = await answer(http_api.create_job, request({"handler": "echo", "delay": 600}))
    assert code == 201
    home = parse_job_id(job["id"]).name
    newer = {"v": FORMAT_VERSION + 1, "op": "later", "id": job["id"], "at": job["created_at"]}
    await store.append(home, b"\n" + json.dumps(newer).encode() + b"\n",
                       create_metadata={})

    code, _, page = await answer(insights.list_shards, route("GET", "/api/shards"))
    assert code == 200, page
    [row] = [r for r in page["shards"] if r["name"] == home]
    assert row["counts_source"] == "unreadable" and "version" in row["error"], row
    assert row["counts"] is None and row["pending"] is None and row["next_due"] is None, row


@pytest.mark.parametrize("cron", ["0 0 ³ * *", "²-1 * * * *", "0 ¹-2 * * *",
                                  "\u0665-\u0661 * * * *"])
async def test_a_cron_with_a_digit_other_than_ascii_is_a_400(store: ReadFailsAfterAdd,
                                                             cron: str) -> None:
    """``'³'.isdigit()`` is true but ``int('³')`` raises ``ValueError``, which the core's
    reading of a cron field did not expect: POST and PATCH answered 500, and a batch with one
    such item lost every other item with it. (Arabic-Indic '5-1' was read as the range 5-59,0-1.)"""
    await refused_on_post_batch_and_patch(store, {"cron": cron}, {"cron": "0 2 * * *"})


@pytest.mark.parametrize("anchor", ["9999-12-31T23:59:59.999999Z", "9999-12-31T00:00:00-12:00",
                                    "2400-01-01T00:00:00+01:00"])
async def test_a_fixed_rate_anchor_beyond_the_horizon_is_a_400(store: ReadFailsAfterAdd,
                                                               anchor: str) -> None:
    """The grid's first occurrence is its anchor: with no due_at the job was due in year 9999
    (due_at itself is held to JOBS_HORIZON_DAYS), and with jitter the occurrence overflowed
    (POST: 500; after an explicit first run, the executor's cycle raised OverflowError and the
    run started again after each lease). An anchor within the horizon, or past, is fine."""
    def rate(anchor: str) -> dict[str, Any]:
        return {"interval_seconds": 60, "interval_mode": "fixed_rate", "anchor": anchor,
                "jitter_seconds": 30}
    code, _, problem = await answer(http_api.create_job, request(
        {"handler": "echo", "delay": 0, "recurrence": rate(anchor)}))
    assert (code, problem["field"]) == (400, "recurrence"), problem
    assert "JOBS_HORIZON_DAYS" in problem["detail"]
    detail = await refused_on_post_batch_and_patch(store, rate(anchor),
                                                   rate("2001-01-01T00:00:30Z"))
    assert "JOBS_HORIZON_DAYS" in detail
    soon = (datetime.now(UTC) + timedelta(days=300)).isoformat()
    code, _, job = await answer(http_api.create_job, request(
        {"handler": "echo", "recurrence": {**rate(soon), "jitter_seconds": None}}))
    assert code == 201 and datetime.fromisoformat(job["due_at"]) == \
        datetime.fromisoformat(soon), job
