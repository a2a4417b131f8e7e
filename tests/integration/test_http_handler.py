"""The built-in ``http`` handler against a local HTTP server (aiohttp), through the scheduler
and the executor on the in-memory store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from jobs_core import Executor, InMemoryStore, JobRequest, JobScheduler, JobStatus, RetryPolicy
from jobs_core.errors import InvalidPayloadError
from jobs_core.http_handler import (
    MAX_BODY_CHARS,
    HttpHandler,
    parse_allowed_bases,
    parse_retry_after,
)
from jobs_core.settings import JobsSettings, SettingsError
from tests.jobs_helpers import Clock, Recorder, drain, make

RETRY = RetryPolicy(max_attempts=3, base_delay=1, max_delay=1, jitter=0)
CHUNK, HUGE_CHUNKS = 1 << 20, 16


class Server:
    def __init__(self) -> None:
        self.hits: list[tuple[str, str, dict[str, str], bytes]] = []
        self.base = ""
        self.sent = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append((request.method, request.path,
                          {k.lower(): v for k, v in request.headers.items()},
                          await request.read()))
        name = request.match_info["name"]
        if name == "ok":
            return web.json_response({"shipped": True})
        if name == "big":
            return web.Response(text="x" * 10_000)
        if name == "limited":
            return web.Response(status=429, headers={"Retry-After": "120"}, text="slow down")
        if name == "down":
            return web.Response(status=503, text="maintenance")
        if name == "redirect":
            raise web.HTTPFound("http://example.invalid/elsewhere")
        if name == "charset":  # a charset that names a codec of bytes, not a text encoding
            return web.Response(body="café".encode(), headers={
                "Content-Type": f"text/plain; charset={request.query['cs']}"})
        if name == "auth":
            return web.json_response({"authorization": request.headers.get("Authorization")})
        if name == "huge":  # 16 MiB, streamed: the handler keeps 4,000 characters of it
            response = web.StreamResponse()
            response.content_type = "text/plain"
            await response.prepare(request)
            try:
                for _ in range(HUGE_CHUNKS):
                    await response.write(b"x" * CHUNK)
                    self.sent += CHUNK
                await response.write_eof()
            except (ConnectionError, RuntimeError):
                pass  # the client went away
            return response
        return web.Response(status=404, text="no such thing")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_route("*", "/api/{name}", srv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    srv.base = f"http://127.0.0.1:{port}/api/"
    try:
        yield srv
    finally:
        await runner.cleanup()


async def tokens(audience: str) -> str:
    return f"tok-for-{audience}"


def setup(server: Server, audiences: str = " api://orders"
          ) -> tuple[Clock, Recorder, JobScheduler, Executor]:
    clock, rec = Clock(), Recorder()
    HttpHandler(server.base + audiences, tokens).register(rec.registry)
    scheduler, executor = make(InMemoryStore(), rec, clock, slots=1)
    return clock, rec, scheduler, executor


async def test_a_2xx_answer_is_the_result_and_the_request_is_what_the_payload_said(
        server: Server) -> None:
    _, _, scheduler, executor = setup(server)
    job = (await scheduler.schedule(JobRequest("http", {
        "url": server.base + "ok", "method": "PUT", "json": {"order": 42},
        "headers": {"X-Request-Id": "abc"}}))).job
    big = (await scheduler.schedule(JobRequest("http", {
        "url": server.base + "big", "method": "GET"}))).job
    await drain(executor, 1)
    done = await scheduler.get(job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result["status"] == 200 and '"shipped": true' in done.result["body"]
    method, path, headers, body = next(h for h in server.hits if h[1] == "/api/ok")
    assert (method, path, headers["x-request-id"], body) == ("PUT", "/api/ok", "abc",
                                                             b'{"order": 42}')
    cut = (await scheduler.get(big.id)).result
    assert cut["truncated"] is True and len(cut["body"]) == 4000


async def test_429_and_5xx_retry_no_sooner_than_retry_after_other_answers_fail_for_good(
        server: Server) -> None:
    clock, _, scheduler, executor = setup(server)
    ids = {}
    for name in ("limited", "down", "missing", "redirect"):
        ids[name] = (await scheduler.schedule(JobRequest(
            "http", {"url": server.base + name}, retry=RETRY))).job.id
    await executor.run_cycle(0)
    limited = await scheduler.get(ids["limited"])
    assert limited.status is JobStatus.RETRYING
    assert limited.due_at - clock.now >= timedelta(seconds=120)  # not the 1 s back-off
    down = await scheduler.get(ids["down"])
    assert down.status is JobStatus.RETRYING and down.due_at - clock.now <= timedelta(seconds=2)
    for name in ("missing", "redirect"):
        failed = await scheduler.get(ids[name])
        assert failed.status is JobStatus.FAILED and failed.attempts == 1, name
        assert failed.last_error is not None and failed.last_error.permanent
    assert "redirects are not followed" in str(
        (await scheduler.get(ids["redirect"])).last_error)
    assert {h[1] for h in server.hits} == {"/api/limited", "/api/down", "/api/missing",
                                           "/api/redirect"}  # nothing followed elsewhere


async def test_a_managed_identity_token_for_the_audience(server: Server) -> None:
    _, _, scheduler, executor = setup(server)
    job = (await scheduler.schedule(JobRequest("http", {
        "url": server.base + "auth", "audience": "api://orders"}))).job
    await drain(executor, 1)
    body = (await scheduler.get(job.id)).result["body"]
    assert "Bearer tok-for-api://orders" in body


async def test_a_url_outside_the_allow_list_is_a_400_and_nothing_is_written(
        server: Server) -> None:
    _, _, scheduler, _ = setup(server)
    port = server.base.split(":")[2].split("/")[0]
    for url in (f"http://127.0.0.2:{port}/api/ok", f"https://127.0.0.1:{port}/api/ok",
                "http://127.0.0.1:1/api/ok", f"http://127.0.0.1:{port}/apix/ok",
                f"http://127.0.0.1:{port}/api/../admin",
                f"http://127.0.0.1:{port}/api/%2e%2e/admin",
                f"http://user:pw@127.0.0.1:{port}/api/ok", "file:///etc/passwd", 42, None):
        with pytest.raises(InvalidPayloadError):
            await scheduler.schedule(JobRequest("http", {"url": url}))
    for payload in ({"url": server.base + "ok", "method": "TRACE"},
                    {"url": server.base + "ok", "json": 1, "body": "x"},
                    {"url": server.base + "ok", "headers": {"Host": "evil"}},
                    {"url": server.base + "ok", "headers": {"Authorization": "x"},
                     "audience": "api://a"},
                    {"url": server.base + "ok", "timeout_seconds": 0},
                    {"url": server.base + "ok", "extra": 1}, "just a string"):
        with pytest.raises(InvalidPayloadError):
            await scheduler.schedule(JobRequest("http", payload))
    assert (await scheduler.list()).jobs == []
    assert server.hits == []


def test_the_allow_list_setting_is_checked_and_retry_after_is_read_both_ways() -> None:
    with pytest.raises(SettingsError, match="JOBS_HTTP_ALLOWED_BASES"):
        JobsSettings(http_allowed_bases="ftp://files.example.com/")
    assert JobsSettings(http_allowed_bases="https://a.example.com/v1, http://b:8080")
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after("Wed, 02 Dec 2026 12:01:00 GMT", now) == 60.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


async def test_a_token_only_for_an_audience_its_base_names(server: Server) -> None:
    """A caller with the function key asked for the app's token for any audience, e.g.
    ``https://storage.azure.com`` (the identity owns the job store's account), and sent it to
    an allowed API that may echo it back into the job's result. Now a base names the
    audiences its URLs may get, and any other is a 400; a job stored before the allow-list
    changed fails at its run without a token sent."""
    _, _, scheduler, executor = setup(server)
    for audience in ("https://storage.azure.com", "https://management.azure.com/.default",
                     "api://orders-admin"):
        with pytest.raises(InvalidPayloadError, match="not allowed for"):
            await scheduler.schedule(JobRequest("http", {"url": server.base + "auth",
                                                         "audience": audience}))
    job = (await scheduler.schedule(JobRequest("http", {
        "url": server.base + "auth", "audience": "api://orders/.default"}))).job
    clock, rec = Clock(), Recorder()  # the same store, after the allow-list lost the audience
    HttpHandler(server.base, tokens).register(rec.registry)
    _, narrower = make(executor.store, rec, clock, slots=1)
    await drain(narrower, 1)
    done = await scheduler.get(job.id)
    assert done.status == JobStatus.FAILED and "not allowed for" in str(done.last_error)
    assert server.hits == []


def test_a_base_names_audiences_only_over_https_or_on_this_machine() -> None:
    with pytest.raises(SettingsError, match="not https"):
        JobsSettings(http_allowed_bases="http://api.example.com/v1/ api://orders")
    (base,) = parse_allowed_bases("https://API.example.com/v1 api://orders api://x/.default")
    assert (base.netloc, base.prefix, base.audiences) == (
        "api.example.com:443", "/v1/", frozenset({"api://orders", "api://x"}))
    assert parse_allowed_bases("http://localhost:7071/api/ api://orders")[0].audiences


def test_an_encoded_backslash_is_refused_like_a_raw_one() -> None:
    """Servers that read a backslash as ``/`` would resolve ``..%5Cadmin`` upward."""
    handler = HttpHandler("https://api.example.com/v1/")
    for url in ("https://api.example.com/v1/..\\admin", "https://api.example.com/v1/..%5Cadmin",
                "https://api.example.com/v1/a%5c..%5c..%5cadmin"):
        with pytest.raises(InvalidPayloadError, match="dot segments"):
            handler.check({"url": url})


async def test_a_huge_answer_is_not_downloaded_past_what_is_kept(server: Server) -> None:
    """The result keeps 4,000 characters, but the whole answer was read into memory first
    (and aiohttp inflates gzip: a small compressed answer can be gigabytes)."""
    _, _, scheduler, executor = setup(server)
    job = (await scheduler.schedule(JobRequest("http", {
        "url": server.base + "huge", "method": "GET"}))).job
    await drain(executor, 1)
    done = await scheduler.get(job.id)
    assert done.status == JobStatus.SUCCEEDED
    assert done.result["truncated"] is True and len(done.result["body"]) == MAX_BODY_CHARS
    for _ in range(50):  # the server notices the closed connection
        if server.sent < HUGE_CHUNKS * CHUNK:
            break
        await asyncio.sleep(0.02)
    assert server.sent < HUGE_CHUNKS * CHUNK // 2, server.sent



def test_an_audience_is_allowed_whichever_covering_base_names_it() -> None:
    """Two entries may cover one URL (a host-wide base, and a path under it that names an
    audience). The audience was checked against the first entry that covered the URL only, so
    whether ``/v1/`` URLs got their token depended on the order of the entries."""
    for setting in ("https://api.example.com/v1/ api://orders, https://api.example.com/",
                    "https://api.example.com/, https://api.example.com/v1/ api://orders"):
        handler = HttpHandler(setting)
        handler.check({"url": "https://api.example.com/v1/ship", "audience": "api://orders"})
        with pytest.raises(InvalidPayloadError, match="not allowed for"):  # outside /v1/
            handler.check({"url": "https://api.example.com/ship", "audience": "api://orders"})


async def test_a_charset_that_is_no_text_encoding_reads_as_utf8(server: Server) -> None:
    """``charset=base64`` (or hex, zlib, rot13) names a codec Python has, but not a text
    encoding: its incremental decoder refused ``errors="replace"`` (AssertionError) or bytes
    (TypeError), so a 2xx answer failed the job, attempt after attempt. An unknown charset was
    already read as UTF-8; these are read so too."""
    _, _, scheduler, executor = setup(server)
    ids = [(await scheduler.schedule(JobRequest("http", {
        "url": f"{server.base}charset?cs={cs}", "method": "GET"}))).job.id
        for cs in ("base64", "hex", "zlib", "rot13", "no-such-charset", "latin-1")]
    await drain(executor, 1)
    bodies = []
    for job_id in ids:
        done = await scheduler.get(job_id)
        assert done.status == JobStatus.SUCCEEDED, done.last_error
        bodies.append(done.result["body"])
    assert bodies == ["café"] * 5 + ["cafÃ©"]
