"""A bounded schemathesis run against the app on devhost + Azurite, driven by the document the
app serves: no 5xx, and no response that breaks the document (status, content type, headers,
body schema).

Bounded: at most ``MAX_EXAMPLES`` generated cases per operation in the fuzzing phase, plus the
coverage phase (boundary and invalid values from the schemas, a fixed set), the examples
phase and a stateful phase (links inferred from the document: schedule, then get, cancel, run,
history). Fixed seed, no example database. About 40 s on 2 idle cores (1,260 cases).

No operation is excluded (schemathesis itself leaves out GET /api/openapi.json, the document
it reads; test_openapi_conformance.py checks that one). The side effects stay cheap: ``?wait=``
is capped at 1 s on this host (JOBS_MAX_WAIT_SECONDS), jobs that fall due run once
``POST /api/scheduler/start`` has started the host's own slots (the keeper does not run at
startup, and its schedule here is yearly), and the purge has nothing old enough to delete.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost.testing import DevHostProcess
from tests import azurite as azurite_helpers
from tests.e2e.helpers import make_host
from tests.openapi_support import operations

pytestmark = [pytest.mark.e2e, pytest.mark.azurite, pytest.mark.slow,
              pytest.mark.timeout(600)]
MAX_EXAMPLES = 30
SEED = 20261122
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance")


@pytest.fixture(scope="module")
def host(azurite: azurite_helpers.Azurite,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHostProcess]:
    root = tmp_path_factory.mktemp("e2e-schemathesis")
    with make_host(azurite, root, JOBS_MAX_WAIT_SECONDS="1") as running:
        yield running
    print(running.logs()[-3000:])


def run_schemathesis(host: DevHostProcess, workdir: Path) -> dict[str, Any]:
    report = workdir / "schemathesis.json"
    cmd = [sys.executable, "-m", "schemathesis.cli", "run", host.url("/api/openapi.json"),
           "--header", f"x-functions-key: {host.key}",
           "--checks", ",".join(CHECKS),
           "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
           "--generation-database", "none", "--workers", "1", "--request-timeout", "60",
           "--report", "json", "--report-json-path", str(report), "--no-color"]
    # cwd: schemathesis keeps a cache folder in the working directory
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=540,
                          check=False)
    print(done.stdout[-6000:], done.stderr[-2000:])
    assert report.exists(), f"no report (exit {done.returncode}): {done.stderr[-2000:]}"
    return dict(json.loads(report.read_text()))


def test_schemathesis_finds_no_server_error_and_no_broken_response(
        host: DevHostProcess, tmp_path: Path) -> None:
    result = run_schemathesis(host, tmp_path)
    cases = result["test_cases"]
    ops = result["operations"]
    print(f"schemathesis {result['schemathesis_version']}: {ops['tested']} operations, "
          f"{cases['generated']} test cases, {result['running_time']:.1f} s, "
          f"{cases['with_failures']} with failures, seed {result['seed']}")
    assert result["failures"] == [] and cases["with_failures"] == 0, result["failures"]
    assert result["errors"] == [], result["errors"]
    assert result["complete"] and result["exit_code"] == 0
    served = requests.get(host.url("/api/openapi.json"), headers=host.headers, timeout=30)
    documented = {f"{method.upper()} {path}" for path, method, _ in operations(served.json())}
    # schemathesis leaves out the operation that serves the document it reads
    assert set(result["valid_rates"]) == documented - {"GET /openapi.json"}
    assert ops["tested"] == ops["total"] == len(documented) - 1
    assert cases["generated"] >= 10 * ops["tested"]
    assert result["warnings"]["missing_auth"] == []  # the key was sent
    statuses = {phase: data["status"] for phase, data in result["phases"].items()}
    assert statuses == dict.fromkeys(("examples", "coverage", "fuzzing", "stateful"),
                                     "success"), statuses
    accepted = {op: sum(p["accepted"] for p in phases.values())
                for op, phases in result["valid_rates"].items()}
    for op in ("POST /jobs", "POST /jobs/batch", "GET /jobs", "GET /jobs/{id}",
               "GET /shards", "GET /timeline", "GET /scheduler", "POST /maintenance/purge"):
        assert accepted.get(op, 0) > 0, (op, accepted)  # real 2xx answers, not only errors
