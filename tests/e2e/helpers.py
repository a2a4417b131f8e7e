"""Helpers for the end-to-end tests: a devhost running the real app on Azurite."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost.testing import DevHostProcess
from jobs_core.model import FINAL_STATUSES
from tests import azurite as azurite_helpers
from tests.polling import poller

REPO_ROOT = Path(__file__).resolve().parents[2]
FINAL = {status.value for status in FINAL_STATUSES}


def make_host(azurite: azurite_helpers.Azurite, root: Path, *, workers: int = 0,
              app_dir: Path = REPO_ROOT, **settings: str) -> DevHostProcess:
    """devhost serving an app (the repository's, or ``app_dir``'s) against Azurite;
    ``workers`` > 0 runs it in that many worker processes (like instances of a scaled-out
    app)."""
    env = {
        "JOBS_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "JOBS_STORAGE_API_VERSION": azurite_helpers.API_VERSION,
        "JOBS_CONTAINER": azurite_helpers.unique_container("e2e"),
        "JOBS_SLOTS": "2",
        "JOBS_MAX_SLEEP_SECONDS": "5",
        "JOBS_MIN_SLEEP_SECONDS": "0.5",
        "JOBS_ERROR_SLEEP_SECONDS": "1",
        "JOBS_KEEPER_SCHEDULE": "0 0 0 1 1 *",  # the test starts the slots itself
        "JOBS_NOTIFY_QUEUES": "nt-*,e2e-billing",
        **settings,
    }
    return DevHostProcess(app_dir, data_dir=root / "data", log_file=root / "devhost.log",
                          env=env, startup_timeout=60,
                          extra_args=["--workers", str(workers)] if workers else [])


class Api:
    def __init__(self, host: DevHostProcess) -> None:
        self.host = host
        self.session = requests.Session()

    def request(self, method: str, path: str, *, key: bool = True,
                **kwargs: Any) -> requests.Response:
        headers = {**(self.host.headers if key else {}), **kwargs.pop("headers", {})}
        return self.session.request(method, self.host.url(path), headers=headers,
                                    timeout=kwargs.pop("timeout", 60), **kwargs)

    def schedule(self, **job: Any) -> dict[str, Any]:
        r = self.request("POST", "/api/jobs", json=job)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def get(self, job_id: str) -> dict[str, Any]:
        r = self.request("GET", f"/api/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def start(self) -> dict[str, Any]:
        r = self.request("POST", "/api/scheduler/start")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait_final(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        return dict(poll(lambda: self.get(job_id), lambda j: j["status"] in FINAL,
                         timeout=timeout))


poll = poller(60, 0.1)


def drain_queue(azurite: azurite_helpers.Azurite, name: str, *,
                missing_ok: bool = False) -> list[dict[str, Any]]:
    """Receive and delete every message on an events queue; the events they carry, checked
    against the message format (``v`` 1, ``type`` job-events)."""
    from azure.storage.queue import QueueServiceClient

    service = QueueServiceClient.from_connection_string(azurite.connection_string)
    queue = service.get_queue_client(name)
    out: list[dict[str, Any]] = []
    try:
        for message in queue.receive_messages(messages_per_page=32, max_messages=5000):
            body = json.loads(base64.b64decode(message.content))
            assert body["v"] == 1 and body["type"] == "job-events", body
            out.extend(body["events"])
            queue.delete_message(message)
    except Exception as exc:
        if not (missing_ok and "QueueNotFound" in str(exc)):
            raise
    return out


def states_by_job(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each change once (by event id), in order of time, as a list of states per job."""
    by_job: dict[str, list[str]] = {}
    for event in sorted({e["id"]: e for e in events}.values(), key=lambda e: e["at"]):
        by_job.setdefault(event["job_id"], []).append(event["state"])
    return by_job


def started_api(azurite: azurite_helpers.Azurite, tmp_path_factory: pytest.TempPathFactory,
                name: str, *, log_tail: int = 6000, **host: Any) -> Iterator[Api]:
    """The body of a module's ``api`` fixture: a devhost (``make_host`` arguments), its
    scheduler started, an ``Api`` on it; the host's last log lines are printed at the end."""
    running = make_host(azurite, tmp_path_factory.mktemp(name), **host)
    with running:
        client = Api(running)
        client.start()
        yield client
    print(running.logs()[-log_tail:])
