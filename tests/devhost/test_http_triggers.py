"""HTTP triggers over real HTTP: routes, params, headers, auth, host status, timer trigger."""

from __future__ import annotations

import pytest
import requests

from devhost.testing import DevHostProcess
from tests.devhost.helpers import poll

pytestmark = pytest.mark.e2e


def test_host_status(host: DevHostProcess) -> None:
    r = requests.get(host.url("admin/host/status"), timeout=5)
    assert r.status_code == 200
    assert r.json() == {"state": "Running"}


def test_route_params_query_headers_body_and_response(host: DevHostProcess) -> None:
    r = requests.post(host.url("api/echo/abc/42?q=1&r=two"), data=b"payload",
                      headers={"x-sample": "hdr"}, timeout=5)
    assert r.status_code == 201
    assert r.headers["x-echo"] == "yes"
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"method": "POST", "route": {"a": "abc", "b": "42"},
                        "query": {"q": "1", "r": "two"}, "header": "hdr", "body": "payload"}


def test_a_repeated_query_parameter_arrives_joined_with_commas(host: DevHostProcess) -> None:
    """As the Functions host hands it to the worker (its query's StringValues.ToString():
    ``label=a&label=b`` is ``"a,b"``); devhost kept the first value only, so a repeated
    ``GET /api/jobs?label=`` filter was dropped without a word on devhost alone."""
    r = requests.post(host.url("api/echo/abc/42?q=1&r=two&q=3"), data=b"", timeout=5)
    assert r.status_code == 201
    assert r.json()["query"] == {"q": "1,3", "r": "two"}


def test_a_query_parameter_without_a_value_does_not_reach_the_function(
        host: DevHostProcess) -> None:
    """The host's ToRpcHttp leaves out a parameter whose value is empty (``?wait=``)."""
    r = requests.post(host.url("api/echo/abc/42?q=1&empty=&r"), data=b"", timeout=5)
    assert r.status_code == 201
    assert r.json()["query"] == {"q": "1"}


def test_route_constraint_and_method_mismatch(host: DevHostProcess) -> None:
    assert requests.get(host.url("api/echo/abc/notint"), timeout=5).status_code == 404
    assert requests.delete(host.url("api/echo/abc/1"), timeout=5).status_code == 405
    assert requests.get(host.url("api/nothing-here"), timeout=5).status_code == 404


def test_auth_levels(host: DevHostProcess) -> None:
    assert requests.get(host.url("api/admin-only"), timeout=5).status_code == 401
    wrong = requests.get(host.url("api/admin-only"), headers={"x-functions-key": "nope"},
                         timeout=5)
    assert wrong.status_code == 401
    by_header = requests.get(host.url("api/admin-only"), headers=host.headers, timeout=5)
    assert (by_header.status_code, by_header.text) == (200, "admin ok")
    by_code = requests.get(host.url("api/admin-only"), params={"code": host.key}, timeout=5)
    assert by_code.status_code == 200
    # FUNCTION-level (the app default) also needs the key; ANONYMOUS does not.
    assert requests.get(host.url("api/instances"), timeout=5).status_code == 401
    assert requests.get(host.url("api/echo/a/1"), timeout=5).status_code == 201


def test_public_webhooks_need_key(host: DevHostProcess) -> None:
    url = host.url("runtime/webhooks/durabletask/instances/unknown")
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, params={"code": host.key}, timeout=5).status_code == 404


def test_the_rpc_api_cannot_be_reached_without_the_key(host: DevHostProcess) -> None:
    """The Durable client's RPC API takes no key (like the extension's loopback endpoint), but
    devhost serves it on the app's port: at ``/durabletask/`` anyone who reached the port (a
    ``--host`` open to the network, or any web page POSTing to 127.0.0.1) could list, start,
    terminate or purge orchestrations, and raise their events, without the key. Its path now
    holds a token derived from the key."""
    instance_id = requests.post(host.url("api/orchestrators/wait_event/rpc-guard"),
                                headers=host.headers, timeout=10).json()["id"]
    webhook = host.url(f"runtime/webhooks/durabletask/instances/{instance_id}")
    poll(lambda: requests.get(webhook, headers=host.headers, timeout=5).json(),
         lambda s: s["runtimeStatus"] == "Running")
    for method, path in [("GET", "durabletask/instances"),
                         ("GET", f"durabletask/instances/{instance_id}"),
                         ("POST", f"durabletask/instances/{instance_id}/terminate?reason=x"),
                         ("POST", f"durabletask/instances/{instance_id}/raiseEvent/go"),
                         ("POST", "durabletask/orchestrators/wait_event/rpc-guard-2"),
                         ("DELETE", "durabletask/instances")]:
        r = requests.request(method, host.url(path), json="x", timeout=5)
        assert r.status_code == 404, (method, path, r.status_code, r.text[:200])
    status = requests.get(webhook, headers=host.headers, timeout=5).json()
    assert status["runtimeStatus"] == "Running"  # (the app's own calls still work)
    terminate = requests.post(host.rpc_url(f"instances/{instance_id}/terminate?reason=done"),
                              timeout=5)
    assert terminate.status_code == 202


def test_timer_trigger_run_on_startup(host: DevHostProcess) -> None:
    marker = host.timer_marker  # type: ignore[attr-defined]
    text = poll(lambda: marker.read_text() if marker.exists() else "",
                lambda t: "fired" in t, timeout=10)
    assert text.splitlines()[0] == "fired past_due=False"


def test_startup_output_lists_functions(host: DevHostProcess) -> None:
    logs = host.logs()
    assert f"\techo: [GET,POST] {host.base_url}/api/echo/{{a}}/{{b:int}}" in logs
    assert "\tstartup_timer: timerTrigger (0 0 0 1 1 *)" in logs
    assert "Executed 'Functions.echo' (Succeeded" in logs
