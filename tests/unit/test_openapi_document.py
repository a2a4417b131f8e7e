"""The OpenAPI document: valid OpenAPI 3.1, one operation per HTTP function of the app (and no
other), limits taken from the settings, and real objects of the code valid against it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31

import function_app
from jobs_api import openapi
from jobs_api.problems import ApiProblem, problem_of, problem_response
from jobs_api.registry import handlers as registry
from jobs_api.runtime import ApiSettings
from jobs_core import Job, JobsSettings, JobStatus, RetryPolicy
from jobs_core import errors as e
from jobs_core.model import ErrorInfo, Recurrence
from jobs_core.retention import PurgeReport
from tests.openapi_support import component, iter_schemas, operations, resolve, validator

DEFAULTS = openapi.build_document(JobsSettings(), ApiSettings())
T0 = datetime(2026, 11, 22, 14, 5, tzinfo=UTC)
JOB_ID = "j20261122T1400-s003-0000-1a2b3c4d5e6f7a8b"


def http_functions() -> dict[tuple[str, str], str]:
    """(path as in the document, method) -> function name, from the app's own registrations."""
    found = {}
    for fn in function_app.app.get_functions():
        trigger = fn.get_trigger()
        if trigger.type != "httpTrigger":
            continue
        for method in trigger.methods:
            found[("/" + trigger.route, str(method.value).lower())] = fn.get_function_name()
    return found


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DEFAULTS["openapi"].startswith("3.1.")
    jsonschema.Draft202012Validator(OPENAPI_31).validate(DEFAULTS)
    assert DEFAULTS["servers"] == [{"url": "/api"}]
    json.dumps(DEFAULTS, allow_nan=False)  # plain JSON


def test_every_schema_object_is_valid_json_schema_2020_12() -> None:
    schemas = list(iter_schemas(DEFAULTS))
    assert len(schemas) > 40
    for where, schema in schemas:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as err:  # pragma: no cover - the message names it
            pytest.fail(f"{where}: {err.message}")


def test_every_reference_resolves() -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(DEFAULTS)
    assert len(set(refs)) > 20
    for ref in set(refs):
        assert ref.startswith("#/components/"), ref
        assert resolve(DEFAULTS, {"$ref": ref}) is not None


def test_every_http_function_is_documented_and_nothing_else() -> None:
    functions = http_functions()
    documented = {(path, method): op["operationId"] for path, method, op in
                  operations(DEFAULTS)}
    assert documented == functions
    assert len(functions) >= 8


def test_every_operation_needs_the_key_and_answers_errors_as_problems() -> None:
    schemes = DEFAULTS["components"]["securitySchemes"]
    assert schemes["functionKeyHeader"] == {"type": "apiKey", "in": "header",
                                            "name": "x-functions-key"}
    assert schemes["functionKeyQuery"] == {"type": "apiKey", "in": "query", "name": "code"}
    assert DEFAULTS["security"] == [{"functionKeyHeader": []}, {"functionKeyQuery": []}]
    for path, method, op in operations(DEFAULTS):
        assert "security" not in op, (path, method)  # nothing is anonymous
        statuses = set(op["responses"])
        assert "401" in statuses, (path, method)
        assert any(s.startswith("2") for s in statuses), (path, method)
        for status, response in op["responses"].items():
            content = resolve(DEFAULTS, response).get("content", {})
            if status.startswith(("4", "5")) and status != "401":
                assert list(content) == ["application/problem+json"], (path, method, status)


def test_post_jobs_documents_every_answer_of_the_code() -> None:
    op = DEFAULTS["paths"]["/jobs"]["post"]
    assert set(op["responses"]) == {"200", "201", "202", "400", "401", "409", "413", "415",
                                    "503"}
    for status in ("200", "201", "202"):
        assert "Location" in op["responses"][status]["headers"]
    assert "Retry-After" in op["responses"]["202"]["headers"]
    assert {p["name"] for p in op["parameters"]} == {"wait", "Prefer", "Idempotency-Key"}
    assert "503" in op["responses"]


def test_limits_come_from_the_settings() -> None:
    settings = JobsSettings(slots=3, horizon_days=10, max_payload_bytes=1000,
                            max_past_seconds=60, retry=RetryPolicy(max_attempts=7))
    api = ApiSettings(max_batch=9, max_body_bytes=2000, max_batch_body_bytes=3000,
                      max_wait_seconds=4)
    doc = openapi.build_document(settings, api)
    schemas = doc["components"]["schemas"]
    request = schemas["JobRequest"]["properties"]
    assert request["delay"]["maximum"] == 10 * 86400
    assert request["payload"]["x-max-json-bytes"] == 1000
    assert "1000 bytes" in request["payload"]["description"]
    assert "10 days" in request["due_at"]["description"]
    assert "60 s" in request["due_at"]["description"]
    assert request["handler"]["enum"] == registry.names()
    assert schemas["IntervalRecurrence"]["properties"]["interval_seconds"]["maximum"] == \
        10 * 86400
    assert schemas["RetryPolicyRequest"]["properties"]["max_attempts"]["default"] == 7
    assert schemas["BatchRequest"]["properties"]["jobs"]["maxItems"] == 9
    params = {p["name"]: p for p in doc["paths"]["/jobs"]["get"]["parameters"]}
    assert params["slot"]["schema"]["maximum"] == 2
    post = doc["paths"]["/jobs"]["post"]
    assert "2000 bytes" in post["requestBody"]["description"]
    assert "3000 bytes" in doc["paths"]["/jobs/batch"]["post"]["requestBody"]["description"]
    assert "capped at 4" in post["parameters"][0]["description"]


def jobs() -> list[Job]:
    base = Job(id=JOB_ID, handler="echo", due_at=T0, created_at=T0 - timedelta(seconds=5),
               updated_at=T0, payload={"a": [1, 2.5, None]})
    return [
        base,
        Job(**{**_fields(base), "status": JobStatus.SUCCEEDED, "attempts": 1,
               "started_at": T0, "finished_at": T0 + timedelta(seconds=1),
               "result": {"ok": True}}),
        Job(**{**_fields(base), "status": JobStatus.FAILED, "attempts": 5,
               "last_error": ErrorInfo("RuntimeError", "boom", 5, False),
               "compensation": "succeeded", "idempotency_key": "order-17"}),
        Job(**{**_fields(base), "status": JobStatus.CANCELLED, "cancel_reason": "by hand"}),
        Job(**{**_fields(base), "recurrence": Recurrence(cron="0 2 * * *",
                                                         timezone="Europe/Berlin"),
               "runs": 3, "notify": "job-events"}),
        Job(**{**_fields(base), "recurrence": Recurrence(interval_seconds=30.0)}),
    ]


def _fields(job: Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in job.__dataclass_fields__}


def test_job_to_dict_is_a_job() -> None:
    check = component(DEFAULTS, "Job")
    for job in jobs():
        check.validate(job.to_dict())
    broken = {**jobs()[0].to_dict(), "status": "sleeping"}
    assert not check.is_valid(broken)


@pytest.mark.parametrize("error", [
    e.UnknownHandlerError("nope", ["echo"]), e.InvalidDueTimeError("bad"),
    e.PayloadTooLargeError(70_000, 65_536), e.InvalidJobIdError("x"), e.JobNotFoundError(JOB_ID),
    e.InvalidTransitionError("cancel", "succeeded", "cancelled"),
    e.IdempotencyConflictError("k", JOB_ID), e.ShardFullError("full"),
    e.TransientStoreError("down"), ApiProblem(415, "unsupported-media-type", "t", "d"),
    e.JobUnreachableError(JOB_ID, 32), e.JobConflictError("changing"),
    e.SettingsError("JOBS_SLOTS is 4, but 8 slots are recorded in this container"),
])
def test_every_problem_the_code_makes_is_a_problem(error: Exception) -> None:
    problem = problem_of(error)
    component(DEFAULTS, "Problem").validate(problem)
    response = problem_response(problem)
    assert response.mimetype == "application/problem+json"
    if isinstance(error, e.JobUnreachableError):  # it may live on: never a 404
        assert (problem["status"], problem["type"].rsplit("/", 1)[-1]) == (503, "job-unreachable")
    if isinstance(error, e.SettingsError):  # the app's settings: never the caller's 400
        assert (problem["status"], problem["detail"]) == (503, str(error))
    if problem["status"] == 503:  # the documented Retry-After header
        header = resolve(DEFAULTS, DEFAULTS["components"]["headers"]["RetryAfter"])
        validator(DEFAULTS, header["schema"]).validate(int(response.headers["Retry-After"]))


def test_job_request_schema_matches_the_rules() -> None:
    check = component(DEFAULTS, "JobRequest")
    good = [{"handler": "echo"},
            {"handler": "echo", "payload": [1], "delay": 0, "idempotency_key": "k-1",
             "retry": {"max_attempts": 3, "jitter": 0}, "notify": "job-events",
             "recurrence": {"cron": "0 2 * * *", "timezone": "Europe/Berlin"},
             "timeout_seconds": 3600},
            {"handler": "reserve", "due_at": "2026-11-22T15:05:00+01:00",
             "recurrence": {"interval_seconds": 60}}]
    bad = [{}, {"handler": "nope"}, {"handler": "echo", "bogus": 1},
           {"handler": "echo", "delay": 1, "due_at": "2026-11-22T15:05:00Z"},
           {"handler": "echo", "delay": -1}, {"handler": "echo", "delay": 366 * 86400},
           {"handler": "echo", "idempotency_key": "has space"},
           {"handler": "echo", "idempotency_key": "x" * 201},
           {"handler": "echo", "notify": "Bad_Queue"}, {"handler": "echo", "notify": "a--b"},
           {"handler": "echo", "notify": "ab"},
           {"handler": "echo", "retry": {"max_attempts": 101}},
           {"handler": "echo", "recurrence": {"cron": "0 2 * * *", "interval_seconds": 5}},
           {"handler": "echo", "recurrence": {"interval_seconds": 0.5}},
           {"handler": "echo", "timeout_seconds": 0}]
    for body in good:
        check.validate(body)
    for body in bad:
        assert not check.is_valid(body), body


def test_batch_results_cover_both_outcomes() -> None:
    check = component(DEFAULTS, "BatchResponse")
    check.validate({"results": [
        {"status": 201, "job": jobs()[0].to_dict()},
        {"status": 400, "problem": problem_of(e.UnknownHandlerError("x", []))}]})
    assert not check.is_valid({"results": [{"status": 201, "problem": {}}]})


def test_a_purge_report_is_a_purge_report() -> None:
    shards = PurgeReport(cutoff=T0, dry_run=True, shards_scanned=3, shards_deleted=1,
                         jobs_deleted=4, errors=["shards/s000/x: boom"], error_count=1)
    component(DEFAULTS, "PurgeReport").validate({
        "dry_run": True, "retention_days": 7.0, "cutoff": "2026-11-15T14:05:00Z",
        "shards": shards.to_dict(), "keys": {"blobs_deleted": 2, "window_days": 7.0},
        "orchestrations": {"instances_deleted": 0, "error": "unreachable"}})


def test_the_document_is_served_as_json_and_cacheable() -> None:
    response = openapi.document_response(None)  # type: ignore[arg-type]
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert "max-age" in response.headers["Cache-Control"]
    served = json.loads(response.get_body())
    assert served["paths"].keys() == DEFAULTS["paths"].keys()


def test_the_document_of_a_misconfigured_app_is_a_503_problem(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every other route answers a bad setting with ``503 misconfigured`` naming it (README,
    Settings); the document's route is not wrapped like them, so the ``SettingsError`` of
    building the runtime escaped, and the host answered 500 without a word."""
    from jobs_api import runtime as runtime_module

    monkeypatch.setenv("JOBS_SLOTS", "0")
    monkeypatch.setattr(runtime_module, "_runtime", None)
    openapi.document_json.cache_clear()
    try:
        response = openapi.document_response(None)  # type: ignore[arg-type]
        problem = json.loads(response.get_body())
        assert response.status_code == 503 and response.mimetype == "application/problem+json"
        assert problem["type"].endswith("/misconfigured") and "JOBS_SLOTS" in problem["detail"]
        assert response.headers["Retry-After"]
    finally:
        monkeypatch.undo()
        openapi.document_json.cache_clear()
    assert openapi.document_response(None).status_code == 200  # type: ignore[arg-type]
