"""One error root for the scheduler domain.

Every error a caller can act on derives from :class:`JobsError`; each also derives from the
built-in that fits (``ValueError`` for bad input, ``LookupError`` for unknown ids, ...), so code
that does not know this package can still catch it sensibly.
"""

from __future__ import annotations


class JobsError(Exception):
    """Root of every error raised by jobs_core."""


class SettingsError(JobsError, ValueError):
    """An app setting has a value the scheduler cannot use: the message names the setting and
    what it accepts. (Every ``JOBS_*`` setting raises it; none falls back silently.)"""


# --- bad input: the request is wrong and nothing was written -------------------------------


class JobValidationError(JobsError, ValueError):
    """A request to schedule or change a job is invalid. Nothing was written."""

    field: str = ""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field or self.field


class UnknownHandlerError(JobValidationError):
    field = "handler"

    def __init__(self, name: str, known: list[str]) -> None:
        listed = ", ".join(sorted(known)) or "(none registered)"
        super().__init__(f"no handler is registered under the name {name!r}; registered: {listed}")
        self.name = name


class InvalidHandlerNameError(JobValidationError):
    field = "handler"


class InvalidDueTimeError(JobValidationError):
    field = "due_at"


class HorizonExceededError(JobValidationError):
    field = "due_at"


class PayloadTooLargeError(JobValidationError):
    field = "payload"

    def __init__(self, size: int, limit: int, what: str = "payload") -> None:
        super().__init__(
            f"the {what} is {size} bytes of JSON; the limit is {limit} bytes "
            f"(store large data elsewhere and pass a reference)",
            field=what,
        )
        self.size = size
        self.limit = limit


class InvalidPayloadError(JobValidationError):
    field = "payload"


class InvalidRecurrenceError(JobValidationError):
    field = "recurrence"


class InvalidRetryPolicyError(JobValidationError):
    field = "retry"


class InvalidIdempotencyKeyError(JobValidationError):
    field = "idempotency_key"


class InvalidNotifyTargetError(JobValidationError):
    field = "notify"


class InvalidJobIdError(JobValidationError, LookupError):
    """The text is not a job id at all (so it cannot name an existing job)."""

    field = "id"

    def __init__(self, text: str) -> None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(
            f"{shown!r} is not a job id: ids look like 'j20261122T1400-s003-0000-1a2b3c4d5e6f7a8b' "
            "(as returned when the job was scheduled)"
        )


class InvalidCursorError(JobValidationError):
    field = "cursor"


# --- state: the job exists but the operation does not fit its state ------------------------


class JobNotFoundError(JobsError, LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r} exists (it may have been purged)")
        self.job_id = job_id


class JobUnreachableError(JobsError, RuntimeError):
    """The job's path of moves is longer than a reader follows: it may live on, so it is
    neither found nor reported gone (retention keeps the blobs it read)."""

    def __init__(self, job_id: str, hops: int) -> None:
        super().__init__(f"job {job_id}: gave up following its moves after {hops} blobs "
                         "(its home blob could not take pointers); it may still exist")
        self.job_id = job_id


class InvalidTransitionError(JobsError, RuntimeError):
    """An operation does not fit the job's current status."""

    def __init__(self, operation: str, from_status: str, to_status: str, detail: str = "") -> None:
        text = f"cannot {operation}: job is {from_status}"
        if to_status != from_status:  # (an update or a move keeps the status)
            text += f", so it cannot become {to_status}"
        super().__init__(f"{text} ({detail})" if detail else text)
        self.operation = operation
        self.from_status = from_status
        self.to_status = to_status


class JobConflictError(JobsError, RuntimeError):
    """The job changed while the operation was being applied (e.g. it was moving between
    blobs); nothing was changed. Trying again is safe."""


class IdempotencyConflictError(JobsError, ValueError):
    """The idempotency key was used before for a different request."""

    def __init__(self, key: str, job_id: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was already used for job {job_id} with a different "
            "handler or payload; use a new key for a different job"
        )
        self.key = key
        self.job_id = job_id


class IdempotencyKeyExpiredError(IdempotencyConflictError):
    """The key belongs to a job that no longer exists (purged by retention)."""

    def __init__(self, key: str, job_id: str) -> None:
        JobsError.__init__(
            self, f"idempotency key {key!r} was used for job {job_id}, which has been purged "
            "(JOBS_RETENTION_DAYS); use a new key for a new job")
        self.key = key
        self.job_id = job_id


# --- log format -----------------------------------------------------------------------------


class UnsupportedRecordVersionError(JobsError, ValueError):
    def __init__(self, version: object, blob: str) -> None:
        super().__init__(
            f"shard {blob} holds a record of format version {version!r}; this jobs_core reads "
            "versions 1 and 2 only. A newer release wrote it: upgrade every app that shares the "
            "storage."
        )
        self.version = version
        self.blob = blob


# --- ownership ------------------------------------------------------------------------------


class ClaimHeldError(JobsError, RuntimeError):
    """Another executor holds the slot's claim and it has not expired."""

    def __init__(self, slot: int, owner: str, expires: str) -> None:
        super().__init__(f"slot {slot} is claimed by {owner!r} until {expires}")
        self.slot = slot
        self.owner = owner
        self.expires = expires


# --- storage --------------------------------------------------------------------------------


class StoreError(JobsError, OSError):
    """A storage operation failed."""


class TransientStoreError(StoreError):
    """A storage failure worth retrying (timeouts, throttling, 5xx)."""


class BlobNotFoundError(StoreError, LookupError):
    pass


class ConcurrencyConflictError(StoreError):
    """A conditional write lost (HTTP 409/412): someone else changed the object first."""


class BlockLimitError(StoreError):
    """The append blob refuses more blocks (409 BlockCountExceedsLimit)."""


class ShardFullError(JobsError, RuntimeError):
    """A job's shard blob has no room left for this kind of record."""


class InvalidLabelsError(JobValidationError):
    field = "labels"


# --- raised by handlers (the executor's rule: a JobsError from a handler fails the job for
# good, except RetryLaterError) ----------------------------------------------------------------
class PermanentJobError(JobsError):
    """Raise from a handler for a failure that no retry can fix: the job fails at once."""


MAX_RETRY_AFTER_SECONDS = 86_400.0


class RetryLaterError(JobsError):
    """Raise from a handler to be retried no sooner than ``retry_after`` seconds (say, what a
    ``Retry-After`` header asked for): the next attempt waits for the longer of that and the
    job's back-off (at most a day). Like any failure, it uses up an attempt."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = None if retry_after is None else \
            min(max(0.0, retry_after), MAX_RETRY_AFTER_SECONDS)


class EventSendError(JobsError, ConnectionError):
    """A queue refused or could not take a message (the publisher retries it later)."""


__all__ = [
    "BlobNotFoundError",
    "BlockLimitError",
    "ClaimHeldError",
    "ConcurrencyConflictError",
    "EventSendError",
    "HorizonExceededError",
    "IdempotencyConflictError",
    "IdempotencyKeyExpiredError",
    "InvalidCursorError",
    "InvalidDueTimeError",
    "InvalidHandlerNameError",
    "InvalidIdempotencyKeyError",
    "InvalidJobIdError",
    "InvalidLabelsError",
    "InvalidNotifyTargetError",
    "InvalidPayloadError",
    "InvalidRecurrenceError",
    "InvalidRetryPolicyError",
    "InvalidTransitionError",
    "JobConflictError",
    "JobNotFoundError",
    "JobUnreachableError",
    "JobValidationError",
    "JobsError",
    "PayloadTooLargeError",
    "PermanentJobError",
    "RetryLaterError",
    "SettingsError",
    "ShardFullError",
    "StoreError",
    "TransientStoreError",
    "UnknownHandlerError",
    "UnsupportedRecordVersionError",
]
