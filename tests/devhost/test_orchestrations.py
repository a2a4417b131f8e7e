"""Durable orchestrations driven through the sample app's client functions over real HTTP."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from devhost.history import parse_ts
from devhost.testing import DevHostProcess
from tests.devhost.helpers import poll, start, status, wait_done

pytestmark = pytest.mark.e2e


def test_fan_out_and_check_status_urls(host: DevHostProcess) -> None:
    r = start(host, "fan_out", 5)
    assert r.status_code == 202
    links = r.json()
    assert r.headers["Location"] == links["statusQueryGetUri"]
    assert links["statusQueryGetUri"].startswith(host.base_url + "/runtime/webhooks/durabletask/")
    # The URLs of create_check_status_response work against devhost as they are.
    done = poll(lambda: requests.get(links["statusQueryGetUri"], timeout=5),
                lambda resp: resp.status_code == 200)
    body = done.json()
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == {"echo": 20}
    assert body["input"] == "5"  # as the client posted it: JSON text


def test_status_via_sdk_client_with_history(host: DevHostProcess) -> None:
    instance_id = start(host, "fan_out", 2).json()["id"]
    wait_done(host, instance_id)
    body = requests.get(host.url(f"api/instances/{instance_id}"), headers=host.headers,
                        timeout=5).json()
    assert body["runtimeStatus"] == "Completed"
    kinds = [e["EventType"] for e in body["history"]]
    assert kinds[0] == "ExecutionStarted"
    assert kinds.count("TaskScheduled") == 3
    assert kinds.count("TaskCompleted") == 3
    assert kinds[-1] == "ExecutionCompleted"
    listed = requests.get(host.url("api/instances"), headers=host.headers, timeout=5).json()
    assert instance_id in listed


def test_unknown_instance_and_orchestrator(host: DevHostProcess) -> None:
    assert status(host, "does-not-exist").status_code == 404
    r = requests.get(host.url("api/instances/does-not-exist"), headers=host.headers, timeout=5)
    assert r.status_code == 404
    bad = start(host, "no_such_orchestrator")
    assert bad.status_code == 409
    assert "no_such_orchestrator" in bad.text


def test_eternal_orchestrator_continues_as_new(host: DevHostProcess) -> None:
    instance_id = start(host, "eternal", None, "eternal-1").json()["id"]
    poll(lambda: status(host, instance_id).json(),
         lambda s: (s.get("customStatus") or {}).get("generation") == 1)
    # An event for the task_any(timer, event) of a later generation.
    sent = requests.post(host.url(f"api/instances/{instance_id}/events/ping"),
                         json={"n": 1}, headers=host.headers, timeout=5)
    assert sent.status_code == 202
    final = wait_done(host, instance_id)
    assert final["runtimeStatus"] == "Completed"
    assert final["output"]["generation"] == 3
    assert final["output"]["total"] == 4 * 6
    # raise_event payloads arrive JSON-encoded twice, as with the real extension (SDK #295).
    assert [json.loads(e) for e in final["output"]["events"]] == [{"n": 1}]
    history = status(host, instance_id, showHistory="true").json()["historyEvents"]
    assert history[0]["EventType"] == "ExecutionStarted"  # only the last execution's history
    assert history[0]["Input"] is not None


def test_raise_event_buffered_before_wait_and_custom_status(host: DevHostProcess) -> None:
    instance_id = start(host, "wait_event", None, "events-1").json()["id"]
    # go2 is raised before the orchestrator waits for it: buffered, not lost.
    for name, value in (("go2", "second"), ("go", "first")):
        r = requests.post(host.url(f"api/instances/{instance_id}/events/{name}"), json=value,
                          headers=host.headers, timeout=5)
        assert r.status_code == 202
    final = wait_done(host, instance_id)
    assert final["runtimeStatus"] == "Completed"
    assert [json.loads(v) for v in final["output"]] == ["first", "second"]
    assert final["customStatus"] == "got go"


def test_custom_status_while_waiting_and_raise_after_completion(host: DevHostProcess) -> None:
    instance_id = start(host, "wait_event", None, "events-2").json()["id"]
    waiting = poll(lambda: status(host, instance_id).json(),
                   lambda s: s["customStatus"] == "waiting")
    assert waiting["runtimeStatus"] == "Running"
    assert status(host, instance_id).status_code == 202
    rpc = host.rpc_url(f"instances/{instance_id}/raiseEvent/go")
    assert requests.post(rpc, json='"a"', timeout=5).status_code == 202
    assert requests.post(rpc.replace("/go", "/go2"), json='"b"', timeout=5).status_code == 202
    wait_done(host, instance_id)
    assert requests.post(rpc, json='"c"', timeout=5).status_code == 410
    gone = requests.post(host.url(f"api/instances/{instance_id}/events/go"), json=1,
                         headers=host.headers, timeout=5)
    assert gone.status_code == 410 and "either completed or failed" in gone.text
    unknown = host.rpc_url("instances/nope/raiseEvent/go")
    assert requests.post(unknown, json="1", timeout=5).status_code == 404


def test_terminate_and_purge(host: DevHostProcess) -> None:
    instance_id = start(host, "wait_event", None, "to-terminate").json()["id"]
    poll(lambda: status(host, instance_id).json(), lambda s: s["runtimeStatus"] == "Running")
    # A running instance cannot be purged.
    assert requests.delete(host.url(f"api/instances/{instance_id}"), headers=host.headers,
                           timeout=5).json() == {"deleted": 0}
    r = requests.post(host.url(f"api/instances/{instance_id}/terminate"),
                      params={"reason": "enough"}, headers=host.headers, timeout=5)
    assert r.status_code == 202
    final = wait_done(host, instance_id)
    assert (final["runtimeStatus"], final["output"]) == ("Terminated", "enough")
    again = requests.post(host.rpc_url(f"instances/{instance_id}/terminate?reason=x"),
                          timeout=5)
    assert again.status_code == 410
    purged = requests.delete(host.url(f"api/instances/{instance_id}"), headers=host.headers,
                             timeout=5)
    assert purged.json() == {"deleted": 1}
    assert status(host, instance_id).status_code == 404


def test_nondeterminism_detected(host: DevHostProcess, tmp_path: Path) -> None:
    instance_id = start(host, "nondeterministic", str(tmp_path / "flag")).json()["id"]
    final = wait_done(host, instance_id)
    assert final["runtimeStatus"] == "Failed"
    message = final["output"]
    assert "Non-deterministic workflow detected: sequence id 0" in message
    assert "expected CallActivity('double')" in message
    assert "produced CallActivity('async_echo')" in message


def test_orchestrator_error_reported(host: DevHostProcess) -> None:
    final = wait_done(host, start(host, "broken").json()["id"])
    assert final["runtimeStatus"] == "Failed"
    assert "orchestrator exploded on purpose" in final["output"]
    assert "$OutOfProcData$" not in final["output"]


def test_activity_failure_reason(host: DevHostProcess) -> None:
    final = wait_done(host, start(host, "activity_failure").json()["id"])
    assert final["runtimeStatus"] == "Completed"
    assert final["output"].startswith(
        "caught: Activity function 'fail_always' failed: ValueError: boom: hello")
    assert "Traceback" in final["output"]  # Details follow the Reason


def test_call_activity_with_retry(host: DevHostProcess) -> None:
    instance_id = start(host, "with_retry", None, "retry-1").json()["id"]
    final = wait_done(host, instance_id)
    assert final["runtimeStatus"] == "Completed", final
    assert final["output"]["flaky"] == "ok after 3"
    assert "boom: retry" in final["output"]["final_error"]
    events = status(host, instance_id, showHistory="true").json()["historyEvents"]
    flaky = [e["EventType"] for e in events
             if e.get("Name") == "flaky" or e["EventType"] in ("TaskFailed", "TimerCreated",
                                                                "TimerFired")][:8]
    # The extension's sequence: failure, retry timer, new attempt (twice), then success.
    assert flaky == ["TaskScheduled", "TaskFailed", "TimerCreated", "TimerFired",
                     "TaskScheduled", "TaskFailed", "TimerCreated", "TimerFired"]


def test_parallel_starts_of_same_id_make_one_instance(host: DevHostProcess) -> None:
    def go(_: int) -> int:
        return start(host, "wait_event", None, "singleton-1").status_code

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(go, range(10)))
    assert sorted(codes) == [202] + [409] * 9
    history = status(host, "singleton-1", showHistory="true").json()["historyEvents"]
    assert [e["EventType"] for e in history].count("ExecutionStarted") == 1
    requests.post(host.rpc_url("instances/singleton-1/terminate?reason=done"), timeout=5)
    wait_done(host, "singleton-1")
    # A finished instance may be replaced.
    assert start(host, "wait_event", None, "singleton-1").status_code == 202
    poll(lambda: status(host, "singleton-1").json(), lambda s: s["runtimeStatus"] == "Running")


def test_durable_timer_fires_promptly(host: DevHostProcess) -> None:
    instance_id = start(host, "sleeper", 1).json()["id"]
    wait_done(host, instance_id)
    events = status(host, instance_id, showHistory="true").json()["historyEvents"]
    fired = next(e for e in events if e["EventType"] == "TimerFired")
    lateness = parse_ts(fired["Timestamp"]) - parse_ts(fired["FireAt"])
    assert 0 <= lateness.total_seconds() < 0.1


def test_the_extension_awaits_each_yielded_task_in_turn(host: DevHostProcess,
                                                        tmp_path: Path) -> None:
    """OutOfProcOrchestrationShim.ProcessAsyncActionsV2 awaits each top-level action before the
    next one, and acts on isDone only after the last: the orchestrator returned at its timer,
    but the instance completes only when the activity it no longer waits for returns."""
    gate = tmp_path / "reused-timer-gate"
    instance_id = start(host, "reused_timer", str(gate)).json()["id"]
    time.sleep(1.5)  # the timer fired after 0.3 s
    assert status(host, instance_id).json()["runtimeStatus"] == "Running"
    gate.write_text("opened")
    final = wait_done(host, instance_id)
    assert (final["runtimeStatus"], final["output"]) == ("Completed", "deadline")


def test_an_event_goes_to_the_latest_wait_for_it(host: DevHostProcess) -> None:
    """DurableOrchestrationContext.WaitForExternalEvent keeps its waits for a name in a stack
    (``Next``) and RaiseEvent completes the top one, as the SDK's open_tasks list pops the last:
    the wait that lost its task_any does not take the event from the one now awaited."""
    instance_id = start(host, "event_after_lost_wait").json()["id"]
    poll(lambda: status(host, instance_id, showHistory="true").json(),
         lambda s: any(e["EventType"] == "TaskCompleted" for e in s.get("historyEvents") or []))
    r = requests.post(host.url(f"api/instances/{instance_id}/events/go"), json="payload",
                      headers=host.headers, timeout=5)
    assert r.status_code < 300, r.text
    final = wait_done(host, instance_id, timeout=5)
    assert (final["runtimeStatus"], json.loads(final["output"])) == ("Completed", "payload")


def test_an_unsupported_api_fails_the_instance_beside_a_pending_activity(
        host: DevHostProcess) -> None:
    instance_id = start(host, "unsupported_beside_activity").json()["id"]
    final = wait_done(host, instance_id, timeout=5)
    assert final["runtimeStatus"] == "Failed"
    assert "call_sub_orchestrator is not supported by devhost" in final["output"]
