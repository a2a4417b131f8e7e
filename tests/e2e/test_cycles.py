"""End to end with long planner sleeps (JOBS_MAX_SLEEP_SECONDS=60): wake-ups, continue-as-new
generations, recurring jobs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests import azurite as azurite_helpers
from tests.e2e.helpers import Api, poll, started_api

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


@pytest.fixture(scope="module")
def api(azurite: azurite_helpers.Azurite,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from started_api(azurite, tmp_path_factory, "e2e-cycles",
                           JOBS_MAX_SLEEP_SECONDS="60", JOBS_MIN_SLEEP_SECONDS="1")


def slots(api: Api) -> list[dict[str, Any]]:
    r = api.request("GET", "/api/scheduler")
    assert r.status_code == 200, r.text
    return list(r.json()["slots"])


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_continue_as_new_generations_are_observed(api: Api) -> None:
    first = {s["slot"]: (s["custom_status"] or {}).get("cycle", 0) for s in slots(api)}
    # wake-ups drive new generations without waiting for the (long) timers
    for _ in range(3):
        api.schedule(handler="echo", payload="tick")
    later = poll(lambda: slots(api),
                 lambda ss: all((s["custom_status"] or {}).get("cycle", 0) >= 3 for s in ss)
                 and any(s["custom_status"]["cycle"] > first[s["slot"]] for s in ss),
                 timeout=60)
    for s in later:
        assert s["runtime_status"] in ("Running", "Pending")
        status = s["custom_status"]
        assert {"cycle", "last_cycle", "next_wake", "counts", "last_error"} <= set(status)


def test_wake_up_runs_a_job_promptly_while_the_slot_sleeps_long(api: Api) -> None:
    # let the slots settle into long sleeps (several empty cycles double the sleep)
    poll(lambda: slots(api), lambda ss: all(
        (parse(s["custom_status"]["next_wake"]) - parse(s["custom_status"]["last_cycle"]))
        .total_seconds() >= 4 for s in ss), timeout=60, interval=0.5)
    lateness = []
    for _ in range(2):
        due = datetime.now(UTC) + timedelta(seconds=2)
        job = api.schedule(handler="echo", payload="wake",
                           due_at=due.isoformat().replace("+00:00", "Z"))
        done = api.wait_final(job["id"], timeout=90)
        assert done["status"] == "succeeded", done
        lateness.append((parse(done["started_at"]) - due).total_seconds())
    print(f"lateness after wake-up: {lateness}")
    assert all(late >= 0 for late in lateness)
    assert min(lateness) < 1.5 and max(lateness) < 5, lateness  # not the 60 s poll


def test_recurring_job_runs_three_times(api: Api) -> None:
    job = api.schedule(handler="echo", payload="again", recurrence={"interval_seconds": 1})
    done = poll(lambda: api.get(job["id"]), lambda j: j["runs"] >= 3, timeout=90, interval=0.3)
    assert done["status"] in ("scheduled", "running", "succeeded")
    r = api.request("DELETE", f"/api/jobs/{job['id']}")
    assert r.status_code in (200, 409), r.text
