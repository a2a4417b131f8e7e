"""Persistence: SIGKILL and restart resume timers and re-run unfinished activities."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from devhost.history import parse_ts, utc_now
from devhost.testing import DevHostProcess
from tests.devhost.helpers import make_app_dir, poll, start, status, wait_done

pytestmark = pytest.mark.e2e


def _history_types(host: DevHostProcess, instance_id: str) -> list[str]:
    body = status(host, instance_id, showHistory="true").json()
    return [e["EventType"] for e in body.get("historyEvents", [])]


def test_kill_and_restart_resumes_waiting_timer(tmp_path: Path) -> None:
    app_dir = make_app_dir(tmp_path)
    with DevHostProcess(app_dir, data_dir=tmp_path / "data",
                        log_file=tmp_path / "devhost.log") as host:
        instance_id = start(host, "sleeper", 2, "sleepy").json()["id"]
        poll(lambda: _history_types(host, instance_id), lambda t: "TimerCreated" in t)
        host.kill()
        assert host.process is not None and host.process.returncode == -9
        host.start()  # same port, key and data dir
        assert status(host, instance_id).json()["runtimeStatus"] == "Running"
        final = wait_done(host, instance_id, timeout=10)
        assert (final["runtimeStatus"], final["output"]) == ("Completed", "woke")


def test_timer_due_while_down_fires_on_start(tmp_path: Path) -> None:
    app_dir = make_app_dir(tmp_path)
    host = DevHostProcess(app_dir, data_dir=tmp_path / "data", log_file=tmp_path / "dh.log")
    with host:
        instance_id = start(host, "sleeper", 1, "due-while-down").json()["id"]
        events = poll(lambda: status(host, instance_id, showHistory="true").json(),
                      lambda b: any(e["EventType"] == "TimerCreated" for e in b["historyEvents"]))
        fire_at = next(parse_ts(e["FireAt"]) for e in events["historyEvents"]
                       if e["EventType"] == "TimerCreated")
        host.kill()
        poll(utc_now, lambda now: now > fire_at, timeout=5)  # the timer falls due while down
        host.start()
        final = wait_done(host, instance_id, timeout=10)
        assert (final["runtimeStatus"], final["output"]) == ("Completed", "woke")


def test_kill_during_activity_reruns_it(tmp_path: Path) -> None:
    app_dir = make_app_dir(tmp_path)
    gate = tmp_path / "gate.txt"
    runs = Path(str(gate) + ".runs")
    with DevHostProcess(app_dir, data_dir=tmp_path / "data", log_file=tmp_path / "devhost.log",
                        extra_args=["--no-backend-model"]) as host:  # re-run at once
        instance_id = start(host, "blocking", str(gate)).json()["id"]
        poll(lambda: runs.read_text() if runs.exists() else "", lambda t: t.count("run") == 1)
        host.kill()
        host.start()
        poll(lambda: runs.read_text(), lambda t: t.count("run") == 2)  # at-least-once
        gate.write_text("opened")
        final = wait_done(host, instance_id)
        assert (final["runtimeStatus"], final["output"]) == ("Completed", "opened")
        assert runs.read_text().count("run") == 2


def test_sigterm_is_a_clean_shutdown(tmp_path: Path) -> None:
    app_dir = make_app_dir(tmp_path)
    host = DevHostProcess(app_dir, data_dir=tmp_path / "data", log_file=tmp_path / "dh.log")
    host.start()
    assert requests.get(host.url("admin/host/status"), timeout=5).status_code == 200
    assert host.stop() == 0
    assert "Stopping host" in host.logs()


@pytest.mark.parametrize("strict", [False, True])
def test_strict_determinism_compares_inputs(tmp_path: Path, strict: bool) -> None:
    app_dir = make_app_dir(tmp_path)
    args = ["--strict-determinism"] if strict else []
    with DevHostProcess(app_dir, data_dir=tmp_path / "data", log_file=tmp_path / "dh.log",
                        extra_args=args) as host:
        final = wait_done(host, start(host, "input_drift", str(tmp_path / "m")).json()["id"])
    if strict:
        assert final["runtimeStatus"] == "Failed"
        assert "sequence id 0" in final["output"] and "strict mode" in final["output"]
    else:
        assert (final["runtimeStatus"], final["output"]) == ("Completed", 2)
