"""Helpers shared by the devhost end-to-end tests."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from devhost.testing import DevHostProcess

SAMPLE_APP = Path(__file__).parent / "sample_app"
TERMINAL = {"Completed", "Failed", "Terminated"}


def make_app_dir(root: Path) -> Path:
    app_dir = root / "app"
    shutil.copytree(SAMPLE_APP, app_dir, ignore=shutil.ignore_patterns("__pycache__"))
    (app_dir / "local.settings.json").write_text(json.dumps(
        {"IsEncrypted": False, "Values": {"SAMPLE_SETTING": "from-local-settings"}}))
    return app_dir


def poll(fn: Callable[[], Any], until: Callable[[Any], bool], timeout: float = 15.0,
         interval: float = 0.05) -> Any:
    """Call ``fn`` until ``until(result)`` holds or the deadline passes (then fail)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if until(last):
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


def start(host: DevHostProcess, name: str, payload: Any = None,
          instance_id: str | None = None) -> requests.Response:
    path = f"api/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
    return requests.post(host.url(path), json=payload, headers=host.headers, timeout=10)


def status(host: DevHostProcess, instance_id: str, **query: str) -> requests.Response:
    return requests.get(host.url(f"durabletask/instances/{instance_id}"), params=query,
                        timeout=10)


def wait_done(host: DevHostProcess, instance_id: str, timeout: float = 15.0) -> dict[str, Any]:
    return poll(lambda: status(host, instance_id).json(),
                lambda s: s and s["runtimeStatus"] in TERMINAL, timeout)
