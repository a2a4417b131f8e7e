"""``python -m devhost --workers N``: the app in N worker processes, like N instances."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devhost.testing import DevHostProcess
from tests.devhost.helpers import make_app_dir, start, wait_done


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHostProcess]:
    root = tmp_path_factory.mktemp("workers")
    proc = DevHostProcess(make_app_dir(root), data_dir=root / "data",
                          log_file=root / "devhost.log",
                          extra_args=["--no-backend-model", "--workers", "2"])
    with proc:
        yield proc
    print(proc.logs()[-5000:])


def workers(host: DevHostProcess) -> list[dict[str, object]]:
    status = requests.get(host.url("/admin/host/status"), timeout=5).json()
    return list(status["workers"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie has exited
        return fh.read().split()[2] != "Z"


def test_http_requests_are_served_by_every_worker_not_the_host(host: DevHostProcess) -> None:
    assert host.process is not None
    pids = {requests.get(host.url("/api/whoami"), headers=host.headers, timeout=10).json()["pid"]
            for _ in range(6)}
    assert len(pids) == 2 and host.process.pid not in pids
    assert pids == {w["pid"] for w in workers(host)}


def test_activities_are_spread_over_the_workers(host: DevHostProcess) -> None:
    final = wait_done(host, start(host, "pids", 8).json()["id"])
    assert final["runtimeStatus"] == "Completed"
    assert set(final["output"]) == {w["pid"] for w in workers(host)}


def test_a_failure_in_a_worker_reads_as_it_does_in_process(host: DevHostProcess) -> None:
    final = wait_done(host, start(host, "activity_failure").json()["id"])
    assert final["output"].startswith(
        "caught: Activity function 'fail_always' failed: ValueError: boom: hello")
    assert 'raise ValueError(f"boom: {message}")' in final["output"]  # the worker's traceback


def test_a_worker_that_died_is_started_again(host: DevHostProcess) -> None:
    victim = workers(host)[0]
    os.kill(int(str(victim["pid"])), signal.SIGKILL)
    answers = [requests.get(host.url("/api/whoami"), headers=host.headers, timeout=30)
               for _ in range(4)]
    assert [a.status_code for a in answers].count(200) >= 3  # its in-flight turn may fail
    again = workers(host)[0]
    assert again["alive"] and again["starts"] == 2 and again["pid"] != victim["pid"]


def test_the_workers_end_with_the_host_even_when_it_is_killed(tmp_path: Path) -> None:
    proc = DevHostProcess(make_app_dir(tmp_path), data_dir=tmp_path / "data",
                          log_file=tmp_path / "devhost.log",
                          extra_args=["--no-backend-model", "--workers", "2"]).start()
    pids = [int(str(w["pid"])) for w in workers(proc)]
    assert all(alive(pid) for pid in pids)
    proc.kill()  # SIGKILL: no cleanup runs in the host
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids)


def test_the_key_is_in_no_command_line(host: DevHostProcess) -> None:
    """A process's command line is readable by every user of the machine (``ps``,
    ``/proc/<pid>/cmdline``): the host took the key as ``--key=`` and each worker the binding
    JSON, which holds it (``code=``), as ``--binding``. Both come from the environment now."""
    assert host.process is not None
    pids = [host.process.pid, *(int(str(w["pid"])) for w in workers(host))]
    assert len(pids) == 3
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert host.key not in cmdline, (pid, cmdline.replace("\0", " ")[:300])
