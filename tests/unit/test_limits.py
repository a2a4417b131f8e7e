"""Each pattern the OpenAPI document shows accepts and refuses the same strings as validation
(the document's side checked the way a client checks it: JSON Schema, via ``jsonschema``).

One divergence is by design: a job id pattern cannot know month lengths, so the document
accepts ``j20260230T1000-...`` (30 February), which the API answers with a 400. It is left out
of the samples below and stated here.
"""

from __future__ import annotations

from collections.abc import Callable

import jsonschema
import pytest

from jobs_api.openapi import build_document
from jobs_api.runtime import ApiSettings
from jobs_core import JobsSettings
from jobs_core.errors import JobsError
from jobs_core.handlers import validate_handler_name
from jobs_core.ids import parse_job_id
from jobs_core.labels import parse_label_filter, parse_labels
from jobs_core.limits import (
    HANDLER_NAME_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    JOB_ID_PATTERN,
    QUEUE_NAME_PATTERN,
)
from jobs_core.notify_targets import parse_notify
from jobs_core.validation import parse_idempotency_key

OK_ID = "j20261122T1400-s003-0000-1a2b3c4d5e6f7a8b"
CASES: list[tuple[str, str, Callable[[str], object], list[str]]] = [
    ("handler", HANDLER_NAME_PATTERN, validate_handler_name,
     ["echo", "send_email", "a.b-c_9", "x" * 64, "x" * 65, "9lives", "", "has space", "é",
      "-dash", "a/b"]),
    ("idempotency_key", IDEMPOTENCY_KEY_PATTERN, parse_idempotency_key,
     ["k", "order-42:v1", "~!@#$%^&*()", "x" * 200, "x" * 201, "", "with space", "tab\t",
      "ümlaut"]),
    ("notify", QUEUE_NAME_PATTERN, lambda name: parse_notify(name, "*"),
     ["billing", "a-b-c", "abc", "ab", "a" * 63, "a" * 64, "Billing", "a--b", "-ab", "ab-",
      "a_b"]),
    ("job id", JOB_ID_PATTERN, parse_job_id,
     [OK_ID, OK_ID.replace("1122", "1322"), OK_ID.replace("T1400", "T2400"),
      OK_ID.replace("T1400", "T1460"), OK_ID.replace("1a2b", "1A2B"), OK_ID[:-1],
      OK_ID.replace("2026", "٢٠٢٦"), OK_ID.replace("s003", "s03"), "j" + OK_ID[1:] + "0", ""]),
]


def accepted_by(check: Callable[[str], object], value: str) -> bool:
    try:
        check(value)
    except (JobsError, ValueError):
        return False
    return True


@pytest.mark.parametrize(("what", "pattern", "check", "samples"), CASES,
                         ids=[c[0] for c in CASES])
def test_the_document_pattern_and_validation_agree(
        what: str, pattern: str, check: Callable[[str], object], samples: list[str]) -> None:
    schema = {"type": "string", "pattern": pattern}
    for value in samples:
        documented = jsonschema.Draft202012Validator(schema).is_valid(value)
        assert documented == accepted_by(check, value), (what, value)


def test_the_served_document_uses_these_patterns() -> None:
    document = build_document(JobsSettings(), ApiSettings(), ["echo"])
    schemas = document["components"]["schemas"]
    job_request = schemas["JobRequest"]["properties"]
    assert job_request["handler"]["pattern"] == HANDLER_NAME_PATTERN
    assert job_request["idempotency_key"]["pattern"] == IDEMPOTENCY_KEY_PATTERN
    assert job_request["notify"]["pattern"] == QUEUE_NAME_PATTERN
    assert schemas["Job"]["properties"]["id"]["pattern"] == JOB_ID_PATTERN


@pytest.mark.parametrize(("what", "check", "value"), [
    ("handler", validate_handler_name, "echo"),
    ("idempotency_key", parse_idempotency_key, "order-42"),
    ("notify", lambda name: parse_notify(name, "*"), "billing"),
    ("job id", parse_job_id, OK_ID),
    ("label key", lambda key: parse_labels({key: "v"}), "team"),
    ("label filter", lambda key: parse_label_filter([f"{key}:v"]), "team"),
])
def test_a_trailing_newline_is_refused(what: str, check: Callable[[str], object],
                                       value: str) -> None:
    """Python's ``$`` also matches before a final newline (ECMA-262's, the document's, does
    not): ``notify: "orders-eu\\n"`` was accepted, and its queue can never be created (hunt of
    stop 28). The checks match the whole value."""
    assert accepted_by(check, value), what
    assert not accepted_by(check, value + "\n"), what
