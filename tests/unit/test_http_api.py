"""``jobs_api/http_api.py``'s handlers, called directly with ``azure.functions.HttpRequest``:
bad input is a problem+json 4xx naming what to fix, answered before anything is read or
written (no storage is reachable here: a handler that touched it would fail with a 503)."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest

from jobs_api import http_api
from jobs_api.runtime import get_runtime


def request(body: bytes | str = b"", *, params: dict[str, str] | None = None,
            headers: dict[str, str] | None = None, method: str = "POST") -> func.HttpRequest:
    return func.HttpRequest(method=method, url="http://localhost/api/jobs",
                            headers={"content-type": "application/json", **(headers or {})},
                            params=params or {},
                            body=body.encode() if isinstance(body, str) else body)


async def answer(handler: Any, req: func.HttpRequest) -> tuple[int, dict[str, Any]]:
    response = await http_api.guarded(handler)(req, None)  # type: ignore[arg-type]
    assert response.mimetype == "application/problem+json"
    return response.status_code, json.loads(response.get_body())


@pytest.mark.parametrize(("body", "params", "headers", "status", "field"), [
    ('{"handler": "echo", "handler": "sleep"}', {}, {}, 400, None),  # a key twice
    ('{"handler": "echo", "delay": NaN}', {}, {}, 400, None),
    ("not json", {}, {}, 400, None),
    ('{"handler": "echo"}', {}, {"content-type": "text/plain"}, 415, None),
    ('{"handler": "echo", "bogus": 1}', {}, {}, 400, "bogus"),
    ('{"payload": 1}', {}, {}, 400, "handler"),
    ('{"handler": "echo"}', {"wait": "nan"}, {}, 400, "wait"),
    ('{"handler": "echo"}', {"wait": "-1"}, {}, 400, "wait"),
    ('{"handler": "echo", "idempotency_key": "a"}', {}, {"idempotency-key": "b"}, 400,
     "idempotency_key"),
    ('[1, 2]', {}, {}, 400, None),
])
async def test_bad_scheduling_input_is_a_problem_before_any_storage(
        body: str, params: dict[str, str], headers: dict[str, str], status: int,
        field: str | None) -> None:
    code, problem = await answer(http_api.create_job, request(body, params=params,
                                                              headers=headers))
    assert code == status and problem["status"] == status, problem
    assert problem["title"] and problem["detail"]
    if field is not None:
        assert problem["field"] == field, problem


async def test_a_body_over_the_limit_is_a_413() -> None:
    limit = get_runtime().api.max_body_bytes
    code, problem = await answer(http_api.create_job,
                                 request('{"handler": "echo", "payload": "' + "x" * limit + '"}'))
    assert code == 413 and str(limit) in problem["detail"]


async def test_a_batch_that_is_not_a_list_names_jobs() -> None:
    code, problem = await answer(http_api.create_batch, request('{"jobs": {"a": 1}}'))
    assert (code, problem["field"]) == (400, "jobs")


@pytest.mark.parametrize("reason", ["x" * 501, "a\x00b", "line\nbreak", "next\x85line",
                                    "line\u2028sep"])
async def test_a_cancel_reason_over_the_limit_or_with_control_characters_is_a_400(
        reason: str) -> None:
    """(hunt of stop 28: 100 KB with a NUL was kept in the log)"""
    req = func.HttpRequest(method="DELETE", url="http://localhost/api/jobs/x", headers={},
                           params={"reason": reason},
                           route_params={"id": "j20261122T1400-s003-0000-1a2b3c4d5e6f7a8b"},
                           body=b"")
    code, problem = await answer(http_api.cancel_job, req)
    assert (code, problem["field"]) == (400, "reason"), problem
