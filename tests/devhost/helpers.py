"""Helpers shared by the devhost end-to-end tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import requests

from devhost.testing import DevHostProcess
from tests.polling import poller

SAMPLE_APP = Path(__file__).parent / "sample_app"
TERMINAL = {"Completed", "Failed", "Terminated"}


def make_app_dir(root: Path) -> Path:
    app_dir = root / "app"
    shutil.copytree(SAMPLE_APP, app_dir, ignore=shutil.ignore_patterns("__pycache__"))
    (app_dir / "local.settings.json").write_text(json.dumps(
        {"IsEncrypted": False, "Values": {"SAMPLE_SETTING": "from-local-settings"}}))
    return app_dir


poll = poller(15.0, 0.05)


def start(host: DevHostProcess, name: str, payload: Any = None,
          instance_id: str | None = None) -> requests.Response:
    path = f"api/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
    return requests.post(host.url(path), json=payload, headers=host.headers, timeout=10)


def status(host: DevHostProcess, instance_id: str, **query: str) -> requests.Response:
    return requests.get(host.rpc_url(f"instances/{instance_id}"), params=query,
                        timeout=10)


def wait_done(host: DevHostProcess, instance_id: str, timeout: float = 15.0) -> dict[str, Any]:
    return poll(lambda: status(host, instance_id).json(),
                lambda s: s and s["runtimeStatus"] in TERMINAL, timeout)
