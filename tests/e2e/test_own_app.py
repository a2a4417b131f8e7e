"""End to end: an app of one's own (``examples/own_app``) registers the scheduler's blueprint and
its own handlers module, and runs a job of its own handler on devhost + Azurite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import azurite as azurite_helpers
from tests.e2e.helpers import REPO_ROOT, Api, started_api

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
OWN_APP = REPO_ROOT / "examples" / "own_app"


@pytest.fixture(scope="module")
def api(azurite: azurite_helpers.Azurite,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from started_api(azurite, tmp_path_factory, "e2e-own-app", app_dir=OWN_APP)


def test_a_job_of_the_apps_own_handler_runs(api: Api) -> None:
    job = api.schedule(handler="render_invoice", delay=1, payload={
        "number": "INV-7", "lines": [{"qty": 2, "price": 9.5}, {"qty": 1, "price": 1}]})
    done = api.wait_final(job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"] == {"invoice": "INV-7", "total": 20.0, "attempt": 1}

    r = api.request("POST", "/api/jobs?wait=20", json={"handler": "render_invoice",
                                                       "payload": {"number": "INV-8"}})
    assert r.status_code == 200, r.text  # finished within the wait: failed at once, no retry
    assert r.json()["status"] == "failed"
    assert r.json()["attempts"] == 1
    assert "at least one line" in r.json()["error"]["message"]


def test_only_the_apps_handlers_can_be_named(api: Api) -> None:
    r = api.request("POST", "/api/jobs", json={"handler": "echo"})  # the repository's sample
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "handler"
    assert "render_invoice" in r.json()["detail"]
    r = api.request("GET", "/api/openapi.json")
    assert r.status_code == 200
    handler = r.json()["components"]["schemas"]["JobRequest"]["properties"]["handler"]
    assert handler["enum"] == ["http", "render_invoice"]  # its own, and the built-in one


def test_the_apps_own_route_is_anonymous_and_the_schedulers_need_the_key(api: Api) -> None:
    r = api.request("GET", "/api/hello", key=False)
    assert r.status_code == 200
    assert r.text == "hello from your own app"
    for method, path in (("GET", "/api/jobs"), ("POST", "/api/scheduler/start"),
                         ("GET", "/api/openapi.json"), ("GET", "/api/dashboard")):
        assert api.request(method, path, key=False).status_code == 401, (method, path)
