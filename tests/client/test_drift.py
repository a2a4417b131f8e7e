"""The client cannot drift from the API: ``jobs_client.drift.check`` against the document
devhost serves must find nothing, and the checker itself must notice a route or a field added
(or removed) on either side, which the doctored documents below show."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from devhost.testing import DevHostProcess
from jobs_api.openapi import build_document
from jobs_api.runtime import ApiSettings
from jobs_client import JobsClient
from jobs_client.drift import check, document_operations
from jobs_client.operations import AHEAD_OF_SERVER, NOT_IN_CLIENT, OPERATIONS, Operation
from jobs_core import JobsSettings

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def document() -> Doc:
    """The document the app builds (the same code serves it), with the ahead-of-server
    operations the client already has, as the server will have them."""
    doc = build_document(JobsSettings(), ApiSettings(), ["echo"])
    run = doc["paths"]["/jobs/{id}/run"]
    for method, path in AHEAD_OF_SERVER:
        doc["paths"].setdefault(path, {"parameters": run["parameters"]})[method] = run["post"]
    return doc


def doctored(document: Doc) -> Doc:
    return copy.deepcopy(document)


def no_ahead(doc: Doc) -> list[str]:
    return check(doc, ahead=frozenset())


@pytest.mark.e2e
@pytest.mark.azurite
def test_the_served_document_and_the_client_agree(host: DevHostProcess) -> None:
    with JobsClient(host.base_url, host.key) as jobs:
        served = jobs.openapi()
    assert check(served) == []
    # every operation the document has is one the client has, or is left out with a reason
    assert set(document_operations(served)) <= set(OPERATIONS) | set(NOT_IN_CLIENT)


def test_the_built_document_and_the_client_agree(document: Doc) -> None:
    assert no_ahead(document) == []


def test_a_route_only_in_the_document_is_drift(document: Doc) -> None:
    doc = doctored(document)
    doc["paths"]["/jobs/{id}/clone"] = {"post": doc["paths"]["/jobs/{id}/run"]["post"]}
    assert no_ahead(doc) == ["POST /jobs/{id}/clone: in the document, no client method (add it "
                             "to OPERATIONS, or to NOT_IN_CLIENT with the reason)"]


def test_a_route_only_in_the_client_is_drift(document: Doc) -> None:
    doc = doctored(document)
    del doc["paths"]["/jobs/{id}/pause"]
    assert no_ahead(doc) == ["POST /jobs/{id}/pause: the client's pause() has no operation in "
                             "the document"]


def test_an_operation_ahead_of_the_server_must_be_cleared_once_served(document: Doc) -> None:
    ahead = frozenset({("post", "/jobs/{id}/pause")})
    assert check(document, ahead=ahead) == [
        "POST /jobs/{id}/pause: the document has it now: remove it from AHEAD_OF_SERVER"]
    doc = doctored(document)
    del doc["paths"]["/jobs/{id}/pause"]
    assert check(doc, ahead=ahead) == []  # not served yet: accepted


def test_a_method_missing_on_a_client_is_drift(document: Doc) -> None:
    run = ("post", "/jobs/{id}/run")
    table = {**OPERATIONS, run: Operation("run_later", None, OPERATIONS[run].response)}
    problems = check(document, table, ahead=frozenset())
    assert problems == ["POST /jobs/{id}/run: JobsClient has no method run_later()",
                        "POST /jobs/{id}/run: AsyncJobsClient has no method run_later()"]


def test_a_job_field_only_in_the_document_is_drift(document: Doc) -> None:
    doc = doctored(document)
    doc["components"]["schemas"]["Job"]["properties"]["priority"] = {"type": "integer"}
    problems = no_ahead(doc)
    # reported once, where the Job schema is first met
    assert problems == ["GET /jobs 200.jobs.priority: in the document, not in the client model "
                        "Job"]


def test_a_job_field_only_in_the_client_is_drift(document: Doc) -> None:
    doc = doctored(document)
    del doc["components"]["schemas"]["Job"]["properties"]["cancel_reason"]
    problems = no_ahead(doc)
    assert any(p.endswith(".cancel_reason: in the client model Job, not in the document")
               for p in problems), problems


def test_nested_models_are_checked_too(document: Doc) -> None:
    doc = doctored(document)
    schemas = doc["components"]["schemas"]
    schemas["ErrorInfo"]["properties"]["trace_id"] = {"type": "string"}
    schemas["HistoryRecord"]["properties"].pop("blob")
    schemas["SchedulerMetrics"]["properties"]["lateness_ms"] = {"type": "object"}  # no props
    limits = schemas["SchedulerStatus"]["properties"]["handler_limits"]  # a map of objects
    limits["additionalProperties"]["properties"]["queued"] = {"type": "integer"}
    problems = no_ahead(doc)
    assert "GET /scheduler 200.handler_limits.queued: in the document, not in the client " \
           "model HandlerLimit" in problems, problems
    assert any(p.endswith(".error.trace_id: in the document, not in the client model ErrorInfo")
               for p in problems), problems
    assert "GET /jobs/{id}/history 200.records.blob: in the client model HistoryRecord, not " \
           "in the document" in problems, problems
    assert "GET /scheduler 200.metrics.lateness_ms: the document has no object properties for " \
           "the client model LatencySummary" in problems, problems


def test_request_bodies_and_query_parameters_are_checked(document: Doc) -> None:
    doc = doctored(document)
    schemas = doc["components"]["schemas"]
    schemas["JobRequest"]["properties"]["priority"] = {"type": "integer"}
    schemas["CronRecurrence"]["properties"]["calendar"] = {"type": "string"}
    doc["paths"]["/jobs"]["get"]["parameters"].append(
        {"name": "payload_contains", "in": "query", "schema": {"type": "string"}})
    del doc["paths"]["/jobs/{id}"]["delete"]["parameters"]
    assert sorted(no_ahead(doc)) == sorted([
        "POST /jobs body.priority: in the document, not in the client model NewJob",
        "POST /jobs body.recurrence.calendar: in the document, not in the client model "
        "Recurrence",
        "GET /jobs: query parameter 'payload_contains' in the document, not in the client's "
        "list_page()",
        "DELETE /jobs/{id}: query parameter 'reason' in the client's cancel(), not in the "
        "document",
    ])
