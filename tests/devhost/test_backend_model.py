"""devhost's model of the Azure Storage backend (devhost/backend_model.py): polling with the
real back-off, the storage requests of each step, the size limits, duplicate starts, and the
visibility timeout of an activity interrupted by a crash."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import requests

from devhost.backend_model import (
    CUSTOM_STATUS_UTF16,
    BackendModel,
    BackendSettings,
    Poller,
)
from devhost.history import parse_ts
from devhost.testing import DevHostProcess

from .helpers import make_app_dir, poll, start, status, wait_done

REPO = Path(__file__).resolve().parents[2]


def test_an_idle_poller_backs_off_to_its_maximum_and_a_message_resets_it() -> None:
    poller = Poller(2.0, random.Random(1), now=0.0)
    found = poller.receive(600.0)  # a timer came due after ten idle minutes
    assert 600.0 <= found <= 602.0
    idle_polls = poller.polls - 1
    assert 300 <= idle_polls <= 330  # ~one poll per 2 s, after a short ramp from 50 ms
    again = poller.receive(found + 0.01)  # right after a message: 50 ms steps again
    assert again - found <= 0.06
    poller.signal(900.0)  # this process put a message: the wait ends at once
    assert poller.receive(900.0) - 900.0 <= 0.06


def test_the_default_thirty_second_interval_can_make_a_timer_thirty_seconds_late() -> None:
    late = []
    for seed in range(20):
        poller = Poller(30.0, random.Random(seed), now=0.0)
        late.append(poller.receive(3600.0) - 3600.0)
    assert max(late) > 10 and all(0 <= x <= 30 for x in late)


def test_each_step_costs_what_the_backend_spends_on_it() -> None:
    model = BackendModel(BackendSettings())
    model.episode(consumed=1, scheduled=1, continued=False, timers_left=0)  # a cycle begins
    model.activity("plan_cycle", {"slot": 0}, json.dumps({"batches": []}))
    model.activity("big", "x" * 50_000, None)  # a 50 KB input goes through a blob
    model.raise_event()
    model.episode(consumed=2, scheduled=0, continued=True, timers_left=1)
    report = model.report(0.0)
    assert report["requests"] == {"episode": 6 + 6, "activity": 3 + 6, "raise_event": 3,
                                  "continue_as_new": 2, "timer left behind": 3, "poll": 0}
    assert report["total"] == 29 and len(report["warnings"]) == 1
    assert "offloads it to a blob" in report["warnings"][0]


def test_a_custom_status_over_16_kb_utf16_is_refused() -> None:
    model = BackendModel(BackendSettings())
    assert model.custom_status_error("s" * (CUSTOM_STATUS_UTF16 // 2 - 10)) is None
    error = model.custom_status_error("s" * (CUSTOM_STATUS_UTF16 // 2 + 10))
    assert error is not None and "16384" in error


def test_the_apps_host_json_sets_the_polling_interval_and_partitions() -> None:
    settings = BackendSettings.from_host_json(REPO)
    assert (settings.max_poll_seconds, settings.partitions) == (2.0, 4)
    assert BackendSettings.from_host_json(REPO / "tests" / "devhost" / "sample_app") \
        .max_poll_seconds == 30.0


def _app_with_polling(tmp_path: Path, interval: str) -> Path:
    app_dir = make_app_dir(tmp_path)
    (app_dir / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {
        "durableTask": {"hubName": "SampleHub",
                        "storageProvider": {"maxQueuePollingInterval": interval}}}}))
    return app_dir


def test_a_host_with_the_model_delays_timers_counts_requests_and_enforces_limits(
        tmp_path: Path) -> None:
    app_dir = _app_with_polling(tmp_path, "00:00:01")
    with DevHostProcess(app_dir, data_dir=tmp_path / "data",
                        log_file=tmp_path / "dh.log") as host:
        time.sleep(3)  # the pollers back off to their 1 s maximum
        sleeper = start(host, "sleeper", 2).json()["id"]
        assert wait_done(host, sleeper)["runtimeStatus"] == "Completed"
        events = status(host, sleeper, showHistory="true").json()["historyEvents"]
        fired = next(e for e in events if e["EventType"] == "TimerFired")
        late = (parse_ts(fired["Timestamp"]) - parse_ts(fired["FireAt"])).total_seconds()
        assert 0 <= late <= 1.3  # seen at the control queue's next poll, not at once

        fan = wait_done(host, start(host, "fan_out", 3).json()["id"])
        assert fan["runtimeStatus"] == "Completed"
        big = wait_done(host, start(host, "big_status", CUSTOM_STATUS_UTF16).json()["id"])
        assert big["runtimeStatus"] == "Failed" and "16384" in big["output"]

        assert requests.get(host.url("admin/backend"), timeout=5).status_code == 401
        report = requests.get(host.url("admin/backend"), headers=host.headers,
                              timeout=5).json()
        assert report["enabled"] and report["settings"]["max_poll_seconds"] == 1.0
        assert report["steps"]["start"] == 3 and report["steps"]["activity"] >= 3
        assert report["requests"]["episode"] >= 4 * report["steps"]["episode"]
        assert report["requests"]["poll"] >= 5 * 3  # five queues, idle for 3 s and more
        assert set(report["polls"]) == {"control-00", "control-01", "control-02",
                                        "control-03", "workitems"}


def test_a_start_on_a_running_instance_answers_500_as_the_extension_does(
        tmp_path: Path) -> None:
    with DevHostProcess(make_app_dir(tmp_path), data_dir=tmp_path / "data",
                        log_file=tmp_path / "dh.log") as host:
        url = host.url("runtime/webhooks/durabletask/orchestrators/wait_event/once")
        first = requests.post(url, headers=host.headers, json=None, timeout=5)
        second = requests.post(url, headers=host.headers, json=None, timeout=5)
    assert first.status_code == 202 and second.status_code == 500
    assert "already exists" in second.json()["ExceptionMessage"]


def test_an_activity_cut_by_a_crash_runs_again_after_its_visibility_timeout(
        tmp_path: Path) -> None:
    app_dir = make_app_dir(tmp_path)
    gate = tmp_path / "gate.txt"
    runs = Path(str(gate) + ".runs")
    with DevHostProcess(app_dir, data_dir=tmp_path / "data", log_file=tmp_path / "dh.log",
                        extra_args=["--visibility-timeout", "3"]) as host:
        instance_id = start(host, "blocking", str(gate)).json()["id"]
        poll(lambda: runs.read_text() if runs.exists() else "", lambda t: t.count("run") == 1)
        host.kill()
        restarted = time.monotonic()
        host.start()
        poll(lambda: runs.read_text(), lambda t: t.count("run") == 2)
        assert time.monotonic() - restarted >= 3
        gate.write_text("opened")
        assert wait_done(host, instance_id)["runtimeStatus"] == "Completed"
