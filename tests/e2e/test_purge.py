"""End to end: POST /api/maintenance/purge on the Functions app (devhost + Azurite).

The old data is written by the real jobs_core scheduler and executor with a clock set 10 days
back, into the container the app uses, before the app starts: what the store holds after jobs
ran 10 days ago. The purge then runs in the app with the default retention (7 days).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import azure.durable_functions as df
import pytest
import requests

from devhost.management_api import client_binding
from jobs_api.maintenance import purge_orchestrations
from jobs_core import JobRequest
from jobs_core.blob_store import AzureBlobStore
from jobs_core.ids import parse_job_id
from tests import azurite as azurite_helpers
from tests.e2e.helpers import Api, make_host, poll
from tests.jobs_helpers import Clock, Recorder, drain, make

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
SLOTS = 2
PURGE = "/api/maintenance/purge"


@dataclass
class OldJobs:
    done: list[str]  # slot 0: all succeeded -> the shard is purged
    done_beside_live: str  # slot 1: succeeded, in the same shard as ...
    recurring: str  # ... a recurring job (every 30 days) that keeps the shard


def key_for_slot(prefix: str, slot: int) -> str:
    """An idempotency key that places its job in ``slot`` (the scheduler hashes keys)."""
    return next(f"{prefix}-{i}" for i in range(1000)
                if zlib.crc32(f"{prefix}-{i}".encode()) % SLOTS == slot)


async def seed_old_jobs(azurite: azurite_helpers.Azurite, container: str) -> OldJobs:
    clock = Clock(datetime.now(UTC) - timedelta(days=10))
    async with await AzureBlobStore.open(azurite_helpers.settings(azurite, container)) as store:
        scheduler, executor = make(store, Recorder(), clock, slots=SLOTS, owner="ten-days-ago")

        async def schedule(key: str, **fields: object) -> str:
            job = await scheduler.schedule(JobRequest("echo", {"key": key},
                                                      idempotency_key=key, **fields))  # type: ignore[arg-type]
            return job.job.id

        done = [await schedule(key_for_slot(f"done{i}", 0)) for i in range(3)]
        beside = await schedule(key_for_slot("beside", 1))
        recurring = await schedule(key_for_slot("recurring", 1), due_at=clock.now,
                                   recurrence={"interval_seconds": 30 * 86400})
        await drain(executor, SLOTS)
    return OldJobs(done, beside, recurring)


@pytest.fixture(scope="module")
def setup(azurite: azurite_helpers.Azurite,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, OldJobs]]:
    container = azurite_helpers.unique_container("e2e-purge")
    old = asyncio.run(seed_old_jobs(azurite, container))
    host = make_host(azurite, tmp_path_factory.mktemp("e2e-purge"), JOBS_CONTAINER=container,
                     JOBS_SLOTS=str(SLOTS))
    with host:
        api = Api(host)
        api.start()
        yield api, old
    print(host.logs()[-6000:])


def purge(api: Api, body: object = None) -> dict:  # type: ignore[type-arg]
    r = api.request("POST", PURGE, json=body) if body is not None else \
        api.request("POST", PURGE)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_purge_deletes_the_old_finished_shard_and_keeps_the_live_one(
        setup: tuple[Api, OldJobs]) -> None:
    api, old = setup
    assert parse_job_id(old.done[0]).name != parse_job_id(old.recurring).name
    assert parse_job_id(old.done_beside_live).name == parse_job_id(old.recurring).name
    assert {api.get(i)["status"] for i in old.done} == {"succeeded"}
    recurring = api.get(old.recurring)
    assert (recurring["status"], recurring["runs"]) == ("scheduled", 1)
    fresh = api.request("POST", "/api/jobs?wait=20", json={"handler": "echo", "payload": 1})
    assert fresh.status_code == 200 and fresh.json()["status"] == "succeeded", fresh.text

    dry = purge(api, {"dry_run": True})
    assert dry["dry_run"] is True
    assert (dry["shards"]["shards_deleted"], dry["shards"]["jobs_deleted"]) == (1, 3)
    assert api.get(old.done[0])["status"] == "succeeded"  # a dry run deletes nothing

    result = purge(api)  # no body: JOBS_RETENTION_DAYS (7)
    print("purge:", json.dumps(result))
    shards = result["shards"]
    assert result["retention_days"] == 7.0 and result["dry_run"] is False
    assert (shards["shards_deleted"], shards["jobs_deleted"]) == (1, 3)
    assert shards["bytes_deleted"] > 0
    assert shards["shards_kept_unfinished"] == 1  # slot 1's old shard: the recurring job
    assert shards["shards_kept_recent"] >= 1  # the fresh job's shard
    assert shards["error_count"] == 0
    assert result["orchestrations"] == {"instances_deleted": 0}  # the slots run on
    cutoff = datetime.fromisoformat(result["cutoff"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - cutoff) - timedelta(days=7)) < timedelta(minutes=5)

    for job_id in old.done:
        gone = api.request("GET", f"/api/jobs/{job_id}")
        assert gone.status_code == 404, gone.text
        assert gone.headers["content-type"].startswith("application/problem+json")
    assert api.get(old.done_beside_live)["status"] == "succeeded"
    assert api.get(old.recurring)["status"] == "scheduled"
    assert api.get(fresh.json()["id"])["status"] == "succeeded"
    assert purge(api)["shards"]["shards_deleted"] == 0  # nothing left to purge

    longer = purge(api, {"retention_days": 30})  # an override: nothing is that old
    assert (longer["retention_days"], longer["shards"]["shards_deleted"]) == (30.0, 0)


@pytest.mark.parametrize(("body", "headers", "status", "field"), [
    (b"[]", {}, 400, None),
    (b"{", {}, 400, None),
    (b'{"dry_run": "yes"}', {}, 400, "dry_run"),
    (b'{"retention_days": 0}', {}, 400, "retention_days"),
    (b'{"retention_days": 0.01}', {}, 400, "retention_days"),  # under one hour
    (b'{"retention_days": "7"}', {}, 400, "retention_days"),
    (b'{"retention_days": true}', {}, 400, "retention_days"),
    (b'{"retention_days": 1e9}', {}, 400, "retention_days"),
    (b'{"days": 7}', {}, 400, "days"),
    (b'{"dry_run": true}', {"Content-Type": "text/plain"}, 415, None),
    (b'{"dry_run": true, "x": "' + b"a" * 5000 + b'"}', {}, 413, None),
])
def test_bad_purge_bodies_are_refused_with_a_problem(
        setup: tuple[Api, OldJobs], body: bytes, headers: dict[str, str], status: int,
        field: str | None) -> None:
    api, _ = setup
    r = api.request("POST", PURGE, data=body,
                    headers={"Content-Type": "application/json", **headers})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == status and problem["detail"]
    assert problem.get("field") == field


def test_purge_needs_the_function_key(setup: tuple[Api, OldJobs]) -> None:
    api, _ = setup
    assert api.request("POST", PURGE, key=False).status_code == 401


def test_finished_orchestration_history_is_purged_and_running_slots_are_not(
        setup: tuple[Api, OldJobs]) -> None:
    """The app's own orchestrations, through the SDK client and devhost's management API;
    the cutoff is passed directly (the HTTP route's retention is at least an hour)."""
    api, _ = setup
    host = api.host
    binding = client_binding(host.base_url, "JobsHub", host.key)
    status_url = host.url("/runtime/webhooks/durabletask/instances/{}")

    def runtime_status(instance_id: str) -> str | None:
        r = requests.get(status_url.format(instance_id), params={"code": host.key}, timeout=10)
        return None if r.status_code == 404 else str(r.json()["runtimeStatus"])

    async def terminate_then_purge() -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
        client = df.DurableOrchestrationClient(json.dumps(binding))
        await client.terminate("jobs-slot-1", "retention test")
        poll(lambda: runtime_status("jobs-slot-1"), lambda s: s == "Terminated", timeout=30)
        before_it = await purge_orchestrations(client, datetime.now(UTC) - timedelta(hours=1),
                                               dry_run=False)
        cutoff = datetime.now(UTC) + timedelta(seconds=1)
        return (before_it, await purge_orchestrations(client, cutoff, dry_run=True),
                await purge_orchestrations(client, cutoff, dry_run=False))

    too_early, dry, real = asyncio.run(terminate_then_purge())
    assert too_early == {"instances_deleted": 0}  # created after that cutoff: kept
    assert dry == {"instances_deleted": 1}
    assert real == {"instances_deleted": 1}
    assert runtime_status("jobs-slot-1") is None  # its history is gone
    assert runtime_status("jobs-slot-0") == "Running"  # eternal: never purged
    restarted = {s["slot"]: s["action"] for s in api.start()["slots"]}
    assert restarted == {0: "already running", 1: "started"}


def timer_reports(log_text: str) -> list[dict]:  # type: ignore[type-arg]
    marker = "retention purge: "
    return [json.loads(line.split(marker, 1)[1]) for line in log_text.splitlines()
            if marker in line]


def test_timer_purges_on_its_schedule(azurite: azurite_helpers.Azurite, tmp_path: Path) -> None:
    container = azurite_helpers.unique_container("e2e-purge-timer")
    old = asyncio.run(seed_old_jobs(azurite, container))
    host = make_host(azurite, tmp_path, JOBS_CONTAINER=container,
                     JOBS_SLOTS=str(SLOTS), JOBS_PURGE_SCHEDULE="*/2 * * * * *")
    with host:
        api = Api(host)
        api.start()  # the slots publish the old blobs' events; until then retention keeps them
        reports = poll(lambda: timer_reports(host.logs()),
                       lambda found: any(r["shards"]["shards_deleted"] for r in found),
                       timeout=60)
        assert sum(r["shards"]["shards_deleted"] for r in reports) == 1
        assert all(r["retention_days"] == 7.0 and not r["dry_run"] for r in reports)
        assert api.request("GET", f"/api/jobs/{old.done[0]}").status_code == 404
        assert api.get(old.recurring)["status"] == "scheduled"
