"""Figure 4b: lateness END TO END through the Functions app on devhost, over real HTTP.

For each rate: start devhost (``devhost.testing.DevHostProcess``) on the repo root with a fresh
container on the bench's Azurite, call ``POST /api/scheduler/start``, then a producer posts,
every ``TICK_S``, one ``POST /api/jobs/batch`` holding the ``echo`` jobs falling due ``LEAD_S``
later (``due_at`` spread evenly at the rate). Once every job succeeded, ``GET /api/jobs``
(paged, ``status=succeeded``) gives each job's ``started_at - due_at``. The client is aiohttp
with the function key; batching per tick keeps it cheap (one request per 100 ms).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from devhost.testing import REPO_ROOT, DevHostProcess
from tests import azurite as azurite_helpers

from .common import percentiles, steady_ticks

LEAD_S = 2.0  # jobs are posted this long before they are due
TICK_S = 0.1  # one POST /api/jobs/batch per tick
HANDLER = "echo"
APP_SETTINGS = {  # like tests/e2e/helpers.make_host; the bench starts the slots itself
    "JOBS_SLOTS": "4",
    "JOBS_MAX_SLEEP_SECONDS": "5",
    "JOBS_KEEPER_SCHEDULE": "0 0 0 1 1 *",
}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _parse(raw: str) -> datetime:
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


def processes(workers: int) -> str:
    return f"{workers} worker processes" if workers else "one process"


def host_for(azurite: azurite_helpers.Azurite, root: Path, per_s: float,
             workers: int = 0) -> DevHostProcess:
    env = {"JOBS_STORAGE_CONNECTION_STRING": azurite.connection_string,
           "JOBS_STORAGE_API_VERSION": azurite_helpers.API_VERSION,
           "JOBS_CONTAINER": azurite_helpers.unique_container(f"e2elate{int(per_s)}"),
           **APP_SETTINGS}
    return DevHostProcess(REPO_ROOT, data_dir=root / "data", log_file=root / "devhost.log",
                          env=env, startup_timeout=60,
                          extra_args=["--workers", str(workers)] if workers else [])


class _Client:
    def __init__(self, host: DevHostProcess, session: aiohttp.ClientSession) -> None:
        self.host, self.session = host, session

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.session.request(method, self.host.url(path), headers=self.host.headers,
                                        **kwargs) as r:
            body = await r.json(content_type=None)
            if r.status >= 300:
                raise RuntimeError(f"{method} {path}: {r.status} {str(body)[:500]}")
            return body


async def _post_batch(client: _Client, jobs: list[dict[str, Any]],
                      latencies: list[float]) -> int:
    start = time.perf_counter()
    body = await client.call("POST", "/api/jobs/batch", json={"jobs": jobs})
    latencies.append(time.perf_counter() - start)
    bad = [r for r in body["results"] if r.get("status") not in (200, 201)]
    if bad:
        raise RuntimeError(f"batch refused {len(bad)} jobs: {bad[0]}")
    return len(body["results"])


async def _produce(client: _Client, first_due: datetime, per_s: float, count: int,
                   latencies: list[float]) -> int:
    """Post, per tick, the jobs due within ``LEAD_S``; the POSTs run as tasks so a slow one
    does not hold the next tick back. Returns how many jobs were accepted."""
    posts: list[asyncio.Task[int]] = []
    async for ticks in steady_ticks(first_due, per_s, count, LEAD_S, TICK_S):
        batch = [{"handler": HANDLER, "payload": {"i": i}, "due_at": _iso(due)}
                 for i, due in ticks]
        posts.append(asyncio.create_task(_post_batch(client, batch, latencies)))
    return sum(await asyncio.gather(*posts))


async def _succeeded(client: _Client) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"status": "succeeded", "limit": "500", **({"cursor": cursor} if cursor else {})}
        page = await client.call("GET", "/api/jobs", params=params)
        jobs.extend(page["jobs"])
        cursor = page.get("next_cursor")
        if not cursor:
            return jobs


async def _count_succeeded(client: _Client) -> int:
    """Succeeded jobs, from ``GET /api/shards`` (per-blob counts; cheap next to listing every
    job while the drain runs, which would compete with it for the app's CPU)."""
    total, cursor = 0, None
    while True:
        params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
        page = await client.call("GET", "/api/shards", params=params)
        total += sum(int(row["counts"].get("succeeded", 0)) for row in page["shards"])
        cursor = page.get("next_cursor")
        if not cursor:
            return total


async def _wait_succeeded(client: _Client, count: int, timeout_s: float) -> list[dict[str, Any]]:
    """Every succeeded job, once ``count`` have succeeded (or at the timeout)."""
    await _wait_for_count(client, count, timeout_s)
    return await _succeeded(client)


async def _wait_for_count(client: _Client, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await _count_succeeded(client) >= count:
            return
        await asyncio.sleep(0.2)


async def _warm_up(client: _Client, timeout_s: float = 30) -> float:
    """Not timed: wait until every slot ran its first cycle (cold start of the worker, the
    store and the orchestrators), so the figure is steady state, not start-up."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        await client.call("GET", "/api/jobs", params={"limit": "1"})
        status = await client.call("GET", "/api/scheduler")
        slots = status.get("slots", []) if isinstance(status, dict) else []
        if slots and all((s.get("custom_status") or {}).get("cycle") for s in slots):
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)
    return time.perf_counter() - start


async def _backend(client: _Client) -> dict[str, Any]:
    """devhost's model of the Durable Azure Storage backend: requests by step so far."""
    report: dict[str, Any] = await client.call("GET", "/admin/backend")
    return report


def _backend_delta(before: dict[str, Any], after: dict[str, Any], jobs: int,
                   seconds: float) -> dict[str, Any]:
    steps = {k: after["requests"].get(k, 0) - before["requests"].get(k, 0)
             for k in after["requests"]}
    total = sum(steps.values())
    return {"requests": total, "per_job": round(total / jobs, 3) if jobs else None,
            "per_s": round(total / seconds, 1) if seconds else None, "by_step": steps,
            "max_poll_seconds": after["settings"]["max_poll_seconds"]}


async def _measure(host: DevHostProcess, per_s: float, window_s: float,
                   timeout_s: float) -> dict[str, Any]:
    count = int(per_s * window_s)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        client = _Client(host, session)
        started = await client.call("POST", "/api/scheduler/start")
        warm_up_s = await _warm_up(client)
        backend_before = await _backend(client)
        first_due = datetime.now(UTC) + timedelta(seconds=LEAD_S)
        latencies: list[float] = []
        cpu_before = _cpu_seconds()
        start = time.perf_counter()
        accepted = await _produce(client, first_due, per_s, count, latencies)
        posted_s = time.perf_counter() - start
        done = await _wait_succeeded(client, count, timeout_s)
        elapsed = time.perf_counter() - start
        cpu_after = _cpu_seconds()
        backend = _backend_delta(backend_before, await _backend(client), count, elapsed)
    samples = [(_parse(j["started_at"]) - _parse(j["due_at"])).total_seconds()
               for j in done if j.get("started_at") and j.get("due_at")]
    after_due = sum(1 for j in done if j.get("created_at") and j.get("due_at")
                    and _parse(j["created_at"]) > _parse(j["due_at"]))
    return {"rate_per_s": per_s, "window_s": window_s, "jobs": count, "accepted": accepted,
            "accepted_after_due": after_due,
            "ran": len(done), "all_succeeded": len(done) >= count, "seconds": elapsed,
            "posting_s": posted_s, "posts": len(latencies),
            "post_latency_s": percentiles(latencies), "warm_up_s": warm_up_s,
            "lead_s": LEAD_S, "tick_s": TICK_S,
            "slots_started": [s.get("action") for s in started.get("slots", [])],
            "lateness_s": percentiles(samples), "samples": [round(x, 4) for x in samples],
            "durable_backend": backend,
            # where the machine's CPU went from the first POST until the last job succeeded
            "cpu_s_by_process": _cpu_delta(cpu_before, cpu_after), "cpu_window_s": elapsed,
            "cpu_busy": _busy(cpu_before, cpu_after, elapsed)}


async def _idle(host: DevHostProcess, idle_s: float) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        client = _Client(host, session)
        await client.call("POST", "/api/scheduler/start")
        await _warm_up(client)
        before = await _backend(client)
        await asyncio.sleep(idle_s)  # nothing to do: the slots sleep, the queues are polled
        idle = _backend_delta(before, await _backend(client), 0, idle_s)
        job = await client.call("POST", "/api/jobs", json={"handler": HANDLER, "payload": {}})
        for _ in range(600):
            job = await client.call("GET", f"/api/jobs/{job['id']}")
            if job.get("started_at"):
                break
            await asyncio.sleep(0.1)
    late = (_parse(job["started_at"]) - _parse(job["due_at"])).total_seconds() \
        if job.get("started_at") else None
    return {"idle_s": idle_s, "lateness_s": late, "idle_backend_requests_per_s":
            idle["per_s"], "idle_backend_by_step": idle["by_step"],
            "max_poll_seconds": idle["max_poll_seconds"]}


def idle(azurite: azurite_helpers.Azurite, idle_s: float) -> dict[str, Any]:
    """A lone job POSTed (due now) after ``idle_s`` of idle: its lateness with the polling
    model on, and what the idle app costs the Durable backend per second. Never raises."""
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        host = host_for(azurite, Path(tmp), 0)
        try:
            with host:
                return asyncio.run(_idle(host, idle_s))
        except Exception as exc:
            return {"idle_s": idle_s, "lateness_s": None, "error": repr(exc)[:1000],
                    "devhost_log_tail": host.logs()[-3000:]}


def steady(azurite: azurite_helpers.Azurite, per_s: float, window_s: float, *,
           timeout_s: float = 90, workers: int = 0) -> dict[str, Any]:
    """One devhost (fresh container) at ``per_s`` jobs/s for ``window_s``, the app in the
    host or in ``workers`` processes; never raises: a failure is reported in the row
    (``error``) so the rest of the bench still prints."""
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        host = host_for(azurite, Path(tmp), per_s, workers)
        try:
            with host:
                row = asyncio.run(_measure(host, per_s, window_s, timeout_s))
        except Exception as exc:  # report, do not hide: the row says what went wrong
            row = {"rate_per_s": per_s, "window_s": window_s, "jobs": int(per_s * window_s),
                   "ran": 0, "all_succeeded": False, "error": repr(exc)[:1000],
                   "devhost_log_tail": host.logs()[-3000:],
                   "lateness_s": percentiles([]), "samples": []}
        row["workers"] = workers
        row["app_settings"] = dict(APP_SETTINGS)
        row["handler"] = HANDLER
        return row


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by the processes that share this machine during a drain:
    Azurite (node), devhost's host and workers, this bench, and everything else."""
    import psutil

    out: dict[str, float] = {}
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "name", "cmdline", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is None:
            continue
        cmd = " ".join(proc.info["cmdline"] or [])
        if proc.info["pid"] == me:
            kind = "bench client"
        elif "azurite" in cmd:
            kind = "azurite"
        elif "devhost.worker" in cmd:
            kind = "devhost workers"
        elif "-m devhost" in cmd:
            kind = "devhost host"
        else:
            kind = "other"
        out[kind] = out.get(kind, 0.0) + times.user + times.system
    return out


def _cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after.get(k, 0.0) - before.get(k, 0.0), 2) for k in after}


def _busy(before: dict[str, float], after: dict[str, float], wall_s: float) -> float | None:
    """The share of all the machine's cores in use over ``wall_s`` (1.0: every core busy)."""
    used = sum(_cpu_delta(before, after).values())
    return round(used / (wall_s * (os.cpu_count() or 1)), 3) if wall_s > 0 else None


async def _drain(host: DevHostProcess, jobs: int, lead_s: float,
                 timeout_s: float) -> dict[str, Any]:
    per_post = 500
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        client = _Client(host, session)
        await client.call("POST", "/api/scheduler/start")
        await _warm_up(client)
        due = datetime.now(UTC) + timedelta(seconds=lead_s)
        latencies: list[float] = []
        began = time.perf_counter()
        posts = [[{"handler": HANDLER, "payload": {"i": i}, "due_at": _iso(due)}
                  for i in range(start, min(jobs, start + per_post))]
                 for start in range(0, jobs, per_post)]
        gate = asyncio.Semaphore(4)  # four clients posting

        async def post(batch: list[dict[str, Any]]) -> int:
            async with gate:
                return await _post_batch(client, batch, latencies)

        accepted = sum(await asyncio.gather(*(post(b) for b in posts)))
        schedule_s = time.perf_counter() - began
        posted_after_due = datetime.now(UTC) > due
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
        cpu_before, wall_before = _cpu_seconds(), time.perf_counter()
        await _wait_for_count(client, jobs, timeout_s)
        cpu_after, wall = _cpu_seconds(), time.perf_counter() - wall_before
        done = await _succeeded(client)
    cpu = _cpu_delta(cpu_before, cpu_after)
    starts = [_parse(j["started_at"]) for j in done if j.get("started_at")]
    samples = [(s - due).total_seconds() for s in starts]
    drain_s = max(samples) if samples else None
    return {"jobs": jobs, "accepted": accepted, "ran": len(done), "lead_s": lead_s,
            "schedule_s": schedule_s, "schedule_per_s": jobs / schedule_s,
            "scheduled_after_due": posted_after_due,
            "drain_s": drain_s, "drain_per_s": len(done) / drain_s if drain_s else None,
            "lateness_samples": samples,
            # where the machine's CPU went from the due time until the last job succeeded
            "cpu_s_by_process": cpu, "cpu_window_s": round(wall, 2),
            "cpu_cores": os.cpu_count()}


def drain(azurite: azurite_helpers.Azurite, jobs: int, *, lead_s: float, workers: int = 0,
          timeout_s: float = 300) -> dict[str, Any]:
    """Figure 9: ``jobs`` no-op jobs all due at one instant, POSTed 500 per
    ``/api/jobs/batch`` by four clients before it; drain rate = jobs / (last start - due).
    Never raises (the row says what went wrong)."""
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        host = host_for(azurite, Path(tmp), jobs, workers)
        try:
            with host:
                row = asyncio.run(_drain(host, jobs, lead_s, timeout_s))
        except Exception as exc:
            row = {"jobs": jobs, "ran": 0, "error": repr(exc)[:1000],
                   "devhost_log_tail": host.logs()[-3000:], "lateness_samples": []}
        row["workers"] = workers
        row["app_settings"] = dict(APP_SETTINGS)
        return row
