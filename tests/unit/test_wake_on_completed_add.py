"""A keyed POST whose add never landed (its request died between the key's claim and the
add, or answered 503) is completed by the next request with the key, often in another
process: that request writes the job, answers ``200`` (the key's job was claimed before)
and must wake the slot like any request that wrote a job due now. It did not (only
``created`` jobs woke their slot): the job waited for the slot's timer, up to
``JOBS_MAX_SLEEP_SECONDS``."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest

import function_app  # noqa: F401  (the sample handlers: echo)
from jobs_api import http_api
from jobs_api import runtime as runtime_module
from jobs_core.errors import TransientStoreError
from jobs_core.memory_store import InMemoryStore


class AddFailsOnce(InMemoryStore):
    """The first append to a shard blob fails and is not committed."""

    failed = False

    async def append(self, name: str, data: bytes, *,
                     create_metadata: dict[str, str]) -> Any:
        if name.startswith("shards/") and not self.failed:
            self.failed = True
            raise TransientStoreError(f"append {name}: 503 ServerBusy")
        return await super().append(name, data, create_metadata=create_metadata)


class Durable:
    """A sleeping slot (no status known): every wake asked for is raised."""

    def __init__(self) -> None:
        self.raised: list[str] = []

    async def get_status(self, instance_id: str) -> None:
        return None

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        self.raised.append(instance_id)


def _process(monkeypatch: pytest.MonkeyPatch, store: InMemoryStore) -> runtime_module.Runtime:
    runtime = runtime_module.Runtime()
    runtime._store = store  # type: ignore[assignment]
    monkeypatch.setattr(runtime_module, "_runtime", runtime)
    return runtime


async def _post(body: dict[str, Any], client: Durable) -> tuple[int, Any]:
    req = func.HttpRequest(method="POST", url="http://localhost/api/jobs",
                           headers={"content-type": "application/json"}, params={},
                           body=json.dumps(body).encode())
    response = await http_api.guarded(http_api.create_job)(req, client)  # type: ignore[arg-type]
    await runtime_module.get_runtime().wake_gate().drain()
    return response.status_code, json.loads(response.get_body())


async def test_the_request_that_completes_a_lost_add_wakes_the_slot(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBS_EVENTS_QUEUE", "off")
    store = AddFailsOnce()
    body = {"handler": "echo", "payload": 1, "idempotency_key": "order-9"}
    first, second = Durable(), Durable()

    _process(monkeypatch, store)  # process A: the key is claimed, the add fails
    code, problem = await _post(body, first)
    assert code == 503, problem
    assert first.raised == []

    _process(monkeypatch, store)  # process B: the client's retry with the key
    code, job = await _post(body, second)
    assert code == 200 and job["status"] == "scheduled", job
    slot = int(job["id"].split("-")[1][1:])
    assert second.raised == [f"jobs-slot-{slot}"], "the job B wrote, due now, woke no slot"
