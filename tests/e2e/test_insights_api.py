"""End to end: GET /api/shards, /api/timeline and /api/jobs/{id}/history on devhost + Azurite,
checked against jobs this module schedules and runs over HTTP (one host for the module)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests import azurite as azurite_helpers
from tests.e2e.helpers import Api, make_host

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
STATUSES = {"scheduled", "running", "retrying", "succeeded", "failed", "cancelled", "paused"}


@dataclass
class Scene:
    api: Api
    jobs: dict[str, dict[str, Any]]  # name -> the job as last read


@pytest.fixture(scope="module")
def scene(azurite: azurite_helpers.Azurite,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    host = make_host(azurite, tmp_path_factory.mktemp("e2e-insights"))
    with host:
        api = Api(host)
        api.start()
        jobs = {f"echo{i}": api.schedule(handler="echo", payload=i) for i in range(3)}
        jobs["doomed"] = api.schedule(handler="fail_n_times", payload={"n": 9, "key": "d"},
                                      retry={"max_attempts": 2, "base_delay": 0.2,
                                             "max_delay": 1, "jitter": 0})
        jobs["later"] = api.schedule(handler="echo", delay=3 * 3600)
        jobs["dropped"] = api.schedule(handler="echo", delay=3 * 3600)
        r = api.request("DELETE", f"/api/jobs/{jobs['dropped']['id']}")
        assert r.status_code == 200, r.text
        for name in ("echo0", "echo1", "echo2", "doomed"):
            jobs[name] = api.wait_final(jobs[name]["id"])
        jobs["later"] = api.get(jobs["later"]["id"])
        jobs["dropped"] = api.get(jobs["dropped"]["id"])
        yield Scene(api, jobs)
    print(host.logs()[-4000:])


def ok_json(r: requests.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return dict(r.json())


def problem(r: requests.Response, status: int, field: str | None) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    body = r.json()
    assert body["status"] == status and body["detail"]
    if field is not None:
        assert body.get("field") == field, body


def blob_of(job_id: str) -> str:
    bucket, slot, index, _ = job_id.split("-")
    return f"shards/{slot}/{bucket[1:]}-{index}.jsonl"


def test_shards_show_every_blob_with_its_counts_claim_and_blocks(scene: Scene) -> None:
    body = ok_json(scene.api.request("GET", "/api/shards"))
    rows = body["shards"]
    assert body["next_cursor"] is None
    assert {row["name"] for row in rows} == {blob_of(j["id"]) for j in scene.jobs.values()}
    assert [row["bucket"] for row in rows] == sorted((row["bucket"] for row in rows),
                                                     reverse=True)
    totals: Counter[str] = Counter()
    for row in rows:
        assert set(row["counts"]) == STATUSES
        totals.update(row["counts"])
        assert row["pending"] == sum(row["counts"][s] for s in ("scheduled", "running",
                                                                "retrying"))
        assert row["name"] == f"shards/s{row['slot']:03d}/" + \
            row["bucket"][:16].replace("-", "").replace(":", "") + f"-{row['index']:04d}.jsonl"
        assert 1 <= row["blocks"] <= row["block_limit"] == 50_000
        assert row["size"] > 0
        assert row["counts_source"] in ("summary", "log")
        if row["owner"] is not None:
            assert row["owner"] == f"JobsHub/jobs-slot-{row['slot']}"
            assert isinstance(row["epoch"], int) and row["epoch"] >= 1
    expected = Counter(j["status"] for j in scene.jobs.values())
    assert {s: totals[s] for s in STATUSES} == {s: expected[s] for s in STATUSES}
    now_rows = [row for row in rows if row["name"] == blob_of(scene.jobs["echo0"]["id"])]
    assert now_rows[0]["owner"] is not None  # the slot ran its jobs: it holds a claim
    # paging: one row at a time gives the same rows in the same order
    seen, cursor = [], None
    for _ in range(len(rows) + 1):
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = ok_json(scene.api.request("GET", "/api/shards", params=params))
        seen += [row["name"] for row in page["shards"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [row["name"] for row in rows]
    later = scene.jobs["later"]
    slot = int(later["id"].split("-")[1][1:])
    bucket = blob_of(later["id"]).split("/")[2][:13]
    since = datetime.strptime(bucket, "%Y%m%dT%H%M").replace(tzinfo=UTC).isoformat()
    only = ok_json(scene.api.request("GET", "/api/shards",
                                     params={"slot": str(slot), "bucket_from": since}))
    assert [row["name"] for row in only["shards"]] == [blob_of(later["id"])]


def test_timeline_counts_the_jobs_due_and_finished_in_the_window(scene: Scene) -> None:
    body = ok_json(scene.api.request("GET", "/api/timeline", params={"minutes": "10"}))
    assert body["bucket_seconds"] == 60 and len(body["points"]) == 10
    ats = [datetime.fromisoformat(p["at"].replace("Z", "+00:00")) for p in body["points"]]
    assert ats == [ats[0] + timedelta(minutes=i) for i in range(10)]
    assert body["from"] == body["points"][0]["at"] and body["to"].endswith("Z")
    assert all(a.second == 0 and a.microsecond == 0 for a in ats)
    ran = ("echo0", "echo1", "echo2", "doomed")
    assert sum(p["due"] for p in body["points"]) == len(ran)  # the 3 h jobs are not due yet
    # the job cancelled before its bucket starts lives in a future blob: not counted
    assert sum(p["finished"] for p in body["points"]) == len(ran)
    for name in ran:
        finished = scene.jobs[name]["finished_at"][:16] + ":00Z"
        assert next(p for p in body["points"] if p["at"] == finished)["finished"] >= 1
    assert body["jobs_scanned"] >= len(ran)
    default = ok_json(scene.api.request("GET", "/api/timeline"))
    assert len(default["points"]) == 60


def test_history_shows_each_attempt_with_its_error(scene: Scene) -> None:
    doomed = scene.jobs["doomed"]
    body = ok_json(scene.api.request("GET", f"/api/jobs/{doomed['id']}/history"))
    assert body["job_id"] == doomed["id"]
    records = body["records"]
    assert [r["type"] for r in records] == ["add", "start", "fail", "start", "fail"]
    assert all(r["applied"] for r in records)
    assert [r["attempt"] for r in records] == [None, 1, 1, 2, 2]
    first_fail, last_fail = records[2], records[4]
    assert first_fail["retry_at"] is not None and last_fail["retry_at"] is None
    for n, fail in ((1, first_fail), (2, last_fail)):
        assert fail["error"]["type"] == "RuntimeError"
        assert fail["error"]["message"] == f"attempt {n} of 'd' fails on purpose"
        assert fail["error"]["attempt"] == n and fail["error"]["permanent"] is False
    assert last_fail["at"] == doomed["finished_at"] and body["job"] == doomed
    assert all(isinstance(r["epoch"], int) for r in records[1:])
    ok = ok_json(scene.api.request("GET", f"/api/jobs/{scene.jobs['echo1']['id']}/history"))
    assert [(r["type"], r["result"]) for r in ok["records"]] == [
        ("add", None), ("start", None), ("ok", 1)]
    dropped = ok_json(scene.api.request(
        "GET", f"/api/jobs/{scene.jobs['dropped']['id']}/history"))
    assert [r["type"] for r in dropped["records"]] == ["add", "cancel"]


def test_bad_parameters_are_400_problems_naming_the_parameter(scene: Scene) -> None:
    api = scene.api
    cases = [
        ("/api/shards", {"slot": "x"}, "slot"), ("/api/shards", {"slot": "2"}, "slot"),
        ("/api/shards", {"limit": "0"}, "limit"), ("/api/shards", {"limit": "501"}, "limit"),
        ("/api/shards", {"bucket_from": "yesterday"}, "bucket_from"),
        ("/api/shards", {"bucket_to": "2026-11-22T14:00:00"}, "bucket_to"),  # no offset
        ("/api/shards", {"bucket_from": "2026-11-22T15:00:00Z",
                         "bucket_to": "2026-11-22T14:00:00Z"}, "bucket_to"),
        ("/api/shards", {"cursor": "bogus"}, "cursor"),
        ("/api/timeline", {"minutes": "0"}, "minutes"),
        ("/api/timeline", {"minutes": "1441"}, "minutes"),
        ("/api/timeline", {"minutes": "1.5"}, "minutes"),
    ]
    for path, params, field in cases:
        problem(api.request("GET", path, params=params), 400, field)
    problem(api.request("GET", "/api/jobs/not-a-job-id/history"), 400, "id")
    unknown = "j20261122T1400-s001-0000-1a2b3c4d5e6f7a8b"
    problem(api.request("GET", f"/api/jobs/{unknown}/history"), 404, None)
    for path in ("/api/shards", "/api/timeline", f"/api/jobs/{unknown}/history"):
        assert api.request("GET", path, key=False).status_code == 401
