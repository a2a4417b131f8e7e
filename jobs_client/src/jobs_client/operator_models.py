"""The operator side of the API as dataclasses: scheduler status and start, shards, the
timeline and retention purges. Free-form counters (by status, by event kind) stay dicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._codec import EXTRA, WIRE


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds; a percentile is the upper bound of its histogram bucket."""

    count: int = 0
    p50: float | None = None
    p95: float | None = None
    max: float | None = None
    mean: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class Histogram:
    counts: list[int]
    max_ms: float = 0.0
    sum_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class EventsFromLog:
    """The last publish of state-change events from the job log."""

    blobs_read: int | None = None
    events: int | None = None
    messages_sent: int | None = None
    send_failures: int | None = None
    lagging: dict[str, int] | None = None
    errors: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class SlotMetrics:
    claim_ms: float | None = None
    lateness_ms: LatencySummary | None = None
    lateness_ms_total: LatencySummary | None = None
    lateness_histogram: Histogram | None = None
    retry_rate: float | None = None
    storage_requests_per_minute: int | None = None
    events: dict[str, int] | None = None
    events_from_log: EventsFromLog | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class SlotCustomStatus:
    """Set by a slot's orchestrator after each cycle."""

    slot: int | None = None
    cycle: int | None = None
    last_cycle: datetime | None = None
    next_wake: datetime | None = None
    due: int | None = None
    pending: int | None = None
    batches: int | None = None
    counts: dict[str, int] | None = None
    totals: dict[str, int] | None = None
    metrics: SlotMetrics | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    plans_overdue: int | None = None  # cycles in a row whose plan missed the deadline
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class SlotStatus:
    slot: int
    instance_id: str
    runtime_status: str | None = None
    custom_status: SlotCustomStatus | None = None
    last_updated: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class ClaimTimes:
    last_max: float | None = None
    last_mean: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class SchedulerMetrics:
    """Figures over every slot."""

    jobs: dict[str, int]
    failures: int = 0
    retry_rate: float | None = None
    lateness_ms: LatencySummary | None = None
    claim_ms: ClaimTimes | None = None
    storage_requests_per_minute: int | None = None
    events: dict[str, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class HandlerLimit:
    """A limited handler's limits and the permits in use now (``None``: not known)."""

    max_concurrency: int | None = None
    max_per_second: float | None = None
    in_use: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class SchedulerStatus:
    slots: list[SlotStatus]
    metrics: SchedulerMetrics
    handler_limits: dict[str, HandlerLimit] = field(default_factory=dict)  # by handler
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class SlotStart:
    slot: int
    instance_id: str
    action: str
    status: str | None = None
    previous: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class SchedulerStart:
    slots: list[SlotStart]
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class ShardRow:
    name: str
    slot: int
    bucket: datetime
    index: int = 0
    size: int = 0
    blocks: int | None = None
    block_limit: int = 0
    owner: str | None = None
    epoch: int | None = None
    claim_expires: datetime | None = None
    counts: dict[str, int] | None = None
    pending: int = 0
    next_due: datetime | None = None
    counts_source: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class ShardPage:
    shards: list[ShardRow]
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class TimelinePoint:
    at: datetime
    due: int = 0
    finished: int = 0
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class Timeline:
    from_: datetime | None = field(default=None, metadata={WIRE: "from"})
    to: datetime | None = None
    bucket_seconds: int = 60
    points: list[TimelinePoint] | None = None
    jobs_scanned: int = 0
    shards_read: int = 0
    errors: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class PurgeRequest:
    """The body of ``POST /api/maintenance/purge`` (``None``: the deployment's default)."""

    dry_run: bool | None = None
    retention_days: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class ShardPurge:
    """Shard blobs; in a dry run the ``*_deleted`` counts say what would be deleted."""

    cutoff: datetime
    dry_run: bool = False
    shards_scanned: int = 0
    shards_read: int = 0
    shards_deleted: int = 0
    jobs_deleted: int = 0
    bytes_deleted: int = 0
    shards_kept_recent: int = 0
    shards_kept_unfinished: int = 0
    shards_kept_changed: int = 0
    shards_kept_events: int = 0
    shards_vanished: int = 0
    error_count: int = 0
    errors: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class OrchestrationPurge:
    instances_deleted: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class KeyPurge:
    blobs_deleted: int | None = None  # None: a dry run (key blobs are not counted)
    window_days: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)


@dataclass(frozen=True)
class PurgeReport:
    dry_run: bool
    retention_days: float
    cutoff: datetime
    shards: ShardPurge
    orchestrations: OrchestrationPurge
    keys: KeyPurge | None = None  # (None from a server before key purging)
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False,
                                  metadata=EXTRA)
