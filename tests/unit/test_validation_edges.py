"""Inputs found by fuzzing the HTTP API (schemathesis): each is a 400 with its own error type,
never an unhandled OverflowError / TypeError / RecursionError (a 500)."""

from __future__ import annotations

import pytest

from jobs_core import JobRequest, JobsSettings
from jobs_core import errors as e
from jobs_core.handlers import HandlerRegistry
from jobs_core.validation import MAX_JSON_DEPTH, check_json_size, validate
from tests.jobs_helpers import T0

REG = HandlerRegistry()
REG.handler("echo")(lambda ctx: None)
SETTINGS = JobsSettings()
HUGE = 10**400  # valid JSON, beyond any float


def nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(("request_", "error", "phrase"), [
    (JobRequest("echo", delay=HUGE), e.HorizonExceededError, "beyond the horizon"),
    (JobRequest("echo", retry={"max_attempts": float("inf")}), e.InvalidRetryPolicyError,
     "whole number"),
    (JobRequest("echo", retry={"base_delay": HUGE}), e.InvalidRetryPolicyError,
     "finite numbers"),
    (JobRequest("echo", recurrence={"interval_seconds": HUGE}), e.InvalidRecurrenceError,
     "beyond the horizon of 365 days"),
    (JobRequest("echo", recurrence={"interval_seconds": 1e12}), e.InvalidRecurrenceError,
     "beyond the horizon of 365 days"),
    (JobRequest("echo", recurrence={"interval_seconds": 365 * 86400 + 1}),
     e.InvalidRecurrenceError, "JOBS_HORIZON_DAYS"),
    (JobRequest("echo", recurrence={"cron": "0 2 * * *", "timezone": 5}),
     e.InvalidRecurrenceError, "time zone 5 is unknown"),
    (JobRequest("echo", recurrence={"cron": "0 0 30 2 *"}), e.InvalidRecurrenceError,
     "never fires"),
    (JobRequest("echo", payload=nested(MAX_JSON_DEPTH + 1)), e.InvalidPayloadError,
     f"nested deeper than {MAX_JSON_DEPTH} levels"),
])
def test_extreme_values_are_validation_errors(request_: JobRequest, error: type[Exception],
                                              phrase: str) -> None:
    with pytest.raises(error, match=phrase):
        validate(request_, REG, SETTINGS, T0)


def test_limits_themselves_are_accepted() -> None:
    ok = [JobRequest("echo", payload=nested(MAX_JSON_DEPTH)),
          JobRequest("echo", recurrence={"interval_seconds": 365 * 86400}),
          JobRequest("echo", recurrence={"cron": "0 0 29 2 *"}),  # leap days do come
          JobRequest("echo", delay=365 * 86400)]
    for request in ok:
        assert validate(request, REG, SETTINGS, T0).handler == "echo"


def test_a_deep_result_is_refused_like_a_deep_payload() -> None:
    with pytest.raises(e.InvalidPayloadError, match="the result is nested"):
        check_json_size({"a": nested(MAX_JSON_DEPTH)}, 1000, "result")
