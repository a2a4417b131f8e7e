"""Every bad input has its own error type and a message a person can act on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs_core import JobRequest, JobsSettings, RetryPolicy
from jobs_core import errors as e
from jobs_core.handlers import HandlerRegistry
from jobs_core.ids import new_job_id, parse_job_id
from jobs_core.recurrence import next_occurrence, parse_recurrence
from jobs_core.settings import SettingsError
from jobs_core.validation import validate
from tests.jobs_helpers import T0

REG = HandlerRegistry()
REG.handler("echo")(lambda ctx: None)
SETTINGS = JobsSettings(max_payload_bytes=100)


def check(request: JobRequest) -> object:
    return validate(request, REG, SETTINGS, T0)


@pytest.mark.parametrize(("request_", "error", "phrase"), [
    (JobRequest("nope"), e.UnknownHandlerError, "no handler is registered under the name 'nope'"),
    (JobRequest("bad name!"), e.InvalidHandlerNameError, "a letter first"),
    (JobRequest("echo", due_at="tomorrow"), e.InvalidDueTimeError, "not an ISO-8601"),
    (JobRequest("echo", due_at="2026-11-22T15:00:00"), e.InvalidDueTimeError, "no UTC offset"),
    (JobRequest("echo", due_at="2028-01-01T00:00:00Z"), e.HorizonExceededError, "365 days"),
    (JobRequest("echo", due_at="2020-01-01T00:00:00Z"), e.InvalidDueTimeError, "in the past"),
    (JobRequest("echo", delay=-1), e.InvalidDueTimeError, ">= 0"),
    (JobRequest("echo", delay=5, due_at="2026-11-22T15:00:00Z"), e.InvalidDueTimeError,
     "not both"),
    (JobRequest("echo", payload="x" * 200), e.PayloadTooLargeError, "limit is 100 bytes"),
    (JobRequest("echo", payload={1, 2}), e.InvalidPayloadError, "not JSON"),
    (JobRequest("echo", recurrence={"cron": "61 * * * *"}), e.InvalidRecurrenceError,
     "5-field cron"),
    (JobRequest("echo", recurrence={"cron": "0 2 * * *", "timezone": "Mars/Base"}),
     e.InvalidRecurrenceError, "IANA"),
    (JobRequest("echo", recurrence={"interval_seconds": 0}), e.InvalidRecurrenceError, ">= 1"),
    (JobRequest("echo", retry={"max_attempts": 0}), e.InvalidRetryPolicyError, "1..100"),
    # (taken before, as 5 and 2 attempts: hunt of stop 28)
    (JobRequest("echo", retry={"max_attempts": "5"}), e.InvalidRetryPolicyError, "whole number"),
    (JobRequest("echo", retry={"max_attempts": 2.9}), e.InvalidRetryPolicyError, "whole number"),
    (JobRequest("echo", retry={"base_delay": "1"}), e.InvalidRetryPolicyError, "a number"),
    (JobRequest("echo", retry={"jitter": True}), e.InvalidRetryPolicyError, "a number"),
    (JobRequest("echo", idempotency_key="has space"), e.InvalidIdempotencyKeyError, "printable"),
    (JobRequest("echo", notify="Bad_Queue"), e.InvalidNotifyTargetError, "queue name"),
])
def test_bad_input_gets_its_own_error(request_: JobRequest, error: type[Exception],
                                      phrase: str) -> None:
    with pytest.raises(error, match=phrase.replace("(", r"\(").replace(")", r"\)")) as info:
        check(request_)
    assert isinstance(info.value, e.JobValidationError | ValueError)


@pytest.mark.parametrize("text", ["", "abc", "j20261122T1400-s003-0000-XYZ",
                                  "j20261399T1400-s003-0000-0123456789abcdef", "../etc/passwd"])
def test_malformed_job_ids_are_rejected(text: str) -> None:
    with pytest.raises(e.InvalidJobIdError, match="is not a job id"):
        parse_job_id(text)


def test_job_id_round_trips_to_its_shard_blob() -> None:
    shard = parse_job_id("j20261122T1400-s003-0002-0123456789abcdef")
    assert shard.name == "shards/s003/20261122T1400-0002.jsonl"
    assert new_job_id(shard, "0123456789abcdef") == "j20261122T1400-s003-0002-0123456789abcdef"


def test_valid_request_resolves_due_time_and_defaults() -> None:
    valid = validate(JobRequest("echo", delay=30), REG, SETTINGS, T0)
    assert valid.due_at == T0 + timedelta(seconds=30) and valid.retry == RetryPolicy()
    offset = validate(JobRequest("echo", due_at="2026-11-22T15:05:00+01:00"), REG, SETTINGS, T0)
    assert offset.due_at == T0 + timedelta(minutes=5)


def test_cron_recurrence_follows_its_time_zone() -> None:
    rec = parse_recurrence({"cron": "0 2 * * *", "timezone": "Europe/Berlin"})
    assert rec is not None
    assert next_occurrence(rec, T0).isoformat() == "2026-11-23T01:00:00+00:00"


def test_backoff_grows_exponentially_within_jitter() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=1, max_delay=60, jitter=0.2)
    for attempt, base in [(1, 1), (2, 2), (3, 4), (7, 60), (9, 60)]:
        delay = policy.delay(attempt)
        assert base * 0.8 <= delay <= base * 1.2


def test_settings_reject_unusable_values() -> None:
    with pytest.raises(ValueError, match="JOBS_BUCKET_MINUTES"):
        JobsSettings.from_env({"JOBS_BUCKET_MINUTES": "7"})
    with pytest.raises(ValueError, match="must be a number"):
        JobsSettings.from_env({"JOBS_SLOTS": "four"})
    assert JobsSettings.from_env({"JOBS_RETRY_MAX_ATTEMPTS": "3"}).retry.max_attempts == 3


NOTIFY = JobsSettings(notify_queues="billing, orders-*, jobshub-*")


@pytest.mark.parametrize(("queue", "allowed"), [
    ("billing", True), ("orders-eu", True), ("orders", False), ("billing-2", False),
    ("shipping", False),
    ("jobshub-control-00", False), ("jobshub-workitems", False),  # the task hub's own queues
    ("jobshub-events", True),
])
def test_notify_names_only_allowed_queues_and_never_the_task_hubs(queue: str,
                                                                   allowed: bool) -> None:
    request = JobRequest("echo", notify=queue)
    if allowed:
        assert validate(request, REG, NOTIFY, T0).notify == queue
        return
    with pytest.raises(e.InvalidNotifyTargetError) as raised:
        validate(request, REG, NOTIFY, T0)
    assert "JOBS_NOTIFY_QUEUES" in str(raised.value) or "task hub" in str(raised.value)


def test_without_an_allow_list_no_job_may_name_a_queue() -> None:
    with pytest.raises(e.InvalidNotifyTargetError, match="now: none"):
        validate(JobRequest("echo", notify="billing"), REG, JobsSettings(), T0)


@pytest.mark.parametrize("bad", ["Billing", "*", "a", "bad_queue", "x--*"])
def test_a_malformed_allow_list_is_refused_at_start(bad: str) -> None:
    with pytest.raises(SettingsError, match="JOBS_NOTIFY_QUEUES"):
        JobsSettings(notify_queues=f"billing,{bad}")
    assert JobsSettings.from_env({"JOBS_NOTIFY_QUEUES": " billing , ev-* "}).notify_queues \
        == "billing , ev-*"
