"""The deployment payload, built the way a remote build does, imports and registers every
function from the payload alone (no venv, no repo, no tests on sys.path). So does an app of
one's own (``examples/own_app``) laid out as the README says: its files, plus copies of
``jobs_api/`` and ``jobs_core/`` and the scheduler's requirements.

Needs PyPI (pip install --target), so it is marked ``slow``; pip's cache keeps reruns short.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.funcignore import copy_payload

ROOT = Path(__file__).resolve().parents[2]
OWN_APP = ROOT / "examples" / "own_app"
# what the README's "Add it to your own Functions app" copies into an app of one's own
COPIED_INTO_AN_APP = ("jobs_api", "jobs_core")

EXPECTED_HTTP = {
    "jobs_create": ("jobs", ["POST"]),
    "jobs_batch": ("jobs/batch", ["POST"]),
    "jobs_list": ("jobs", ["GET"]),
    "jobs_get": ("jobs/{id}", ["GET"]),
    "jobs_cancel": ("jobs/{id}", ["DELETE"]),
    "jobs_update": ("jobs/{id}", ["PATCH"]),
    "jobs_run": ("jobs/{id}/run", ["POST"]),
    "jobs_reschedule": ("jobs/{id}/reschedule", ["POST"]),
    "jobs_retry": ("jobs/{id}/retry", ["POST"]),
    "jobs_pause": ("jobs/{id}/pause", ["POST"]),
    "jobs_resume": ("jobs/{id}/resume", ["POST"]),
    "scheduler_start": ("scheduler/start", ["POST"]),
    "scheduler_status": ("scheduler", ["GET"]),
    "jobs_history": ("jobs/{id}/history", ["GET"]),
    "shards_list": ("shards", ["GET"]),
    "jobs_timeline": ("timeline", ["GET"]),
    "dashboard_page": ("dashboard", ["GET"]),
    "openapi_document": ("openapi.json", ["GET"]),
    "purge_now": ("maintenance/purge", ["POST"]),
}
WITHOUT_CLIENT = {"dashboard_page", "openapi_document"}  # static content: no Durable client
EXPECTED_OTHER = {
    "scheduler_keeper": "timerTrigger",
    "retention_purge": "timerTrigger",
    "jobs_slot": "orchestrationTrigger",
    "plan_cycle": "activityTrigger",
    "execute_batch": "activityTrigger",
    "publish_events": "activityTrigger",
}

# Run with `python -I -S`: no site-packages, no PYTHON* variables, no user site, no cwd.
PROBE = r"""
import json, sys
payload = sys.argv[1]
sys.path[:0] = [payload, payload + "/.python_packages/lib/site-packages"]
import function_app, azure.functions, azure.durable_functions, azure.storage.blob, cronsim
import jobs_api.registry, jobs_api.runtime
out = {"modules": {m.__name__: m.__file__ for m in (function_app, azure.functions,
                    azure.durable_functions, azure.storage.blob, cronsim, jobs_api.runtime)},
       "functions": {}, "handlers": jobs_api.registry.handlers.names()}
try:  # azure-functions-durable ships a top-level `tests` package of its own
    import tests
    out["tests_from"] = tests.__file__ or str(list(tests.__path__))
except ImportError:
    out["tests_from"] = None
for fn in function_app.app.get_functions():
    out["functions"][fn.get_function_name()] = json.loads(fn.get_function_json())["bindings"]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("payload")
    copy_payload(ROOT, dest)
    site = dest / ".python_packages" / "lib" / "site-packages"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
         "--target", str(site), "-r", str(dest / "requirements.txt")],
        capture_output=True, text=True, timeout=540,
    )
    if proc.returncode:
        pytest.fail(f"pip install --target failed (needs PyPI):\n{proc.stderr[-3000:]}")
    return dest


@pytest.fixture(scope="module")
def own_app_payload(payload: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/own_app as a user lays it out, with the same installed requirements."""
    dest = tmp_path_factory.mktemp("own_app")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(OWN_APP, dest, dirs_exist_ok=True, ignore=skip)
    for package in COPIED_INTO_AN_APP:
        shutil.copytree(ROOT / package, dest / package, ignore=skip)
    shutil.copy2(ROOT / "requirements.txt", dest / "requirements.txt")
    (dest / ".python_packages").symlink_to(payload / ".python_packages")
    return dest


def probe(payload: Path) -> dict[str, Any]:
    """Import the payload's function_app alone; its functions, handlers and module paths."""
    env = {"PATH": os.environ.get("PATH", ""),
           "JOBS_STORAGE__blobServiceUri": "https://example.blob.core.windows.net"}
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, str(payload)],
                          capture_output=True, text=True, timeout=120, cwd=payload, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    for name, path in out["modules"].items():
        assert path.startswith(str(payload)), f"{name} came from {path}, not the payload"
    return out


def assert_the_scheduler_is_registered(functions: dict[str, list[dict[str, Any]]]) -> None:
    for name, (route, methods) in EXPECTED_HTTP.items():
        trigger = next(b for b in functions[name] if b["type"] == "httpTrigger")
        assert trigger["route"] == route, name
        assert sorted(m.upper() for m in trigger["methods"]) == methods, name
        assert str(trigger["authLevel"]).upper().endswith("FUNCTION"), (name, trigger)
        has_client = any(b["type"] == "durableClient" for b in functions[name])
        assert has_client == (name not in WITHOUT_CLIENT), name
    for name, kind in EXPECTED_OTHER.items():
        assert any(b["type"] == kind for b in functions[name]), name


@pytest.mark.slow
def test_payload_imports_and_registers_every_function(payload: Path) -> None:
    out = probe(payload)
    # the repo's tests are not in the payload (a `tests` found is a dependency's own)
    assert not (payload / "tests").exists()
    assert out["tests_from"] is None or ".python_packages" in out["tests_from"]
    assert set(out["functions"]) == set(EXPECTED_HTTP) | set(EXPECTED_OTHER)
    assert_the_scheduler_is_registered(out["functions"])
    assert out["handlers"] == ["echo", "fail_n_times", "reserve", "sleep"]


@pytest.mark.slow
def test_an_own_app_with_copied_packages_registers_the_scheduler(own_app_payload: Path) -> None:
    out = probe(own_app_payload)
    functions = out["functions"]
    assert set(functions) == set(EXPECTED_HTTP) | set(EXPECTED_OTHER) | {"hello"}
    assert_the_scheduler_is_registered(functions)
    hello = next(b for b in functions["hello"] if b["type"] == "httpTrigger")
    assert str(hello["authLevel"]).upper().endswith("ANONYMOUS")  # the app's own default
    assert out["handlers"] == ["render_invoice"]  # its own, and not the repository's samples


@pytest.mark.slow
def test_payload_holds_no_dev_files(payload: Path) -> None:
    tops = {p.name for p in payload.iterdir()}
    for gone in ("tests", "infra", "bench", "bench-results", "devhost", "scripts", ".ci",
                 ".venv", "local.settings.json", "local.settings.sample.json"):
        assert gone not in tops, gone
    assert not list(payload.glob("**/test_*.py")) or all(
        ".python_packages" in str(p) for p in payload.glob("**/test_*.py"))
