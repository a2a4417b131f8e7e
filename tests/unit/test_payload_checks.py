"""A handler's ``check_payload`` judges payloads when a job is scheduled or updated. What a
plain validator raises for a payload of the wrong shape (``ValueError``, ``TypeError``,
``LookupError``) is bad input: ``InvalidPayloadError`` (400), nothing written. It was a 500
(``left out`` since stop 30)."""

from __future__ import annotations

from typing import Any

import pytest

from jobs_core import JobContext, JobRequest
from jobs_core.errors import InvalidPayloadError
from jobs_core.memory_store import InMemoryStore
from tests.jobs_helpers import Clock, Recorder, make


def needs_address(payload: Any) -> None:
    if "@" not in payload["to"]:  # KeyError without "to", TypeError for a list
        raise ValueError(f"{payload['to']!r} is not an e-mail address")


def check_is_down(payload: Any) -> None:
    raise RuntimeError("the check's own dependency is down")


def recorder() -> Recorder:
    rec = Recorder()

    async def send(ctx: JobContext) -> None:
        return None

    rec.registry.handler("mail", check_payload=needs_address)(send)
    rec.registry.handler("mail_checked_elsewhere", check_payload=check_is_down)(send)
    return rec


async def shard_bytes(store: InMemoryStore) -> bytes:
    return b"".join([(await store.read(b.name)).data for b in await store.list("shards/")])


@pytest.mark.parametrize(("payload", "raised"), [
    ({"to": "nobody"}, "ValueError: 'nobody' is not an e-mail address"),
    ({"subject": "hi"}, "KeyError: 'to'"),
    (["a@example.com"], "TypeError"),
])
async def test_a_payload_of_the_wrong_shape_is_a_400_and_nothing_is_written(
        payload: Any, raised: str) -> None:
    store = InMemoryStore()
    scheduler, _ = make(store, recorder(), Clock())
    with pytest.raises(InvalidPayloadError, match=f"handler 'mail' refused the payload: {raised}"):
        await scheduler.schedule(JobRequest("mail", payload, idempotency_key="k-1"))
    assert await shard_bytes(store) == b""
    assert store.requests.get("append", 0) == 0


async def test_an_update_to_a_payload_of_the_wrong_shape_is_a_400_and_the_job_stays() -> None:
    store = InMemoryStore()
    scheduler, _ = make(store, recorder(), Clock())
    job = (await scheduler.schedule(JobRequest("mail", {"to": "a@example.com"}, delay=60))).job
    before = await shard_bytes(store)
    with pytest.raises(InvalidPayloadError, match="KeyError: 'to'"):
        await scheduler.update(job.id, {"payload": {"subject": "hi"}})
    assert await shard_bytes(store) == before
    assert (await scheduler.get(job.id)).payload == {"to": "a@example.com"}


async def test_a_check_that_fails_for_its_own_reasons_is_not_called_bad_input() -> None:
    """A 400 says the caller's payload is wrong: a check whose own dependency is down must not
    say so (it stays the server's error, a 500)."""
    store = InMemoryStore()
    scheduler, _ = make(store, recorder(), Clock())
    with pytest.raises(RuntimeError, match="dependency is down"):
        await scheduler.schedule(JobRequest("mail_checked_elsewhere", {"to": "a@example.com"}))
    assert await shard_bytes(store) == b""
