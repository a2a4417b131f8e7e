"""Process-wide objects, created lazily on first use inside the running event loop.

Azure Functions runs every ``async def`` function of a Python worker on one event loop (devhost
does too), so one blob store, one scheduler and one executor per slot serve every invocation.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime

from cronsim import CronSim, CronSimError

from jobs_core import Executor, JobScheduler, JobsSettings
from jobs_core.blob_store import AzureBlobStore
from jobs_core.event_log import LogPublisher
from jobs_core.events import EventPublisher
from jobs_core.http_handler import HANDLER_NAME as HTTP_HANDLER
from jobs_core.http_handler import HttpHandler, managed_identity_tokens
from jobs_core.layout import check_layout
from jobs_core.notify_targets import QUEUE_NAME
from jobs_core.queue_sink import QueueEventSink
from jobs_core.request_counter import RequestCounter
from jobs_core.settings import SettingsError
from jobs_core.storage_settings import StorageSettings

from . import telemetry_setup
from .registry import handlers as registry
from .wake import WakeGate, raise_wake, slot_next_wake

DEFAULT_HUB = "JobsHub"
DEFAULT_EVENTS_QUEUE = "job-events"
EVENTS_OFF = "off"
MAX_BODY = 100 * 1024 * 1024  # the Functions host refuses larger requests
log = logging.getLogger(__name__)
# the storage SDK logs every request and response at INFO: far too much for a poller
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)


def _num(name: str, default: float, low: float, high: float) -> float:
    """A number setting within ``low..high``; a bad one raises ``SettingsError`` naming it and
    the range (like every ``JOBS_*`` setting: one never silently falls back to its default)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise SettingsError(f"{name} must be a number in {low:g}..{high:g}, got {raw!r}")
    return value


# NCRONTAB fields: numbers, '*', ranges, steps and lists; names only for month and weekday
_NUMERIC_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
_NAMED_FIELD = re.compile(r"^(\*|\w+(-\w+)?)(/\d+)?(,(\*|\w+(-\w+)?)(/\d+)?)*$")
_TIMESPAN = re.compile(r"^(\d+\.)?\d{1,2}:\d{2}(:\d{2})?$")


def timer_schedule(name: str, default: str) -> str:
    """A timer trigger's schedule from app setting ``name``: six NCRONTAB fields, ``sec min
    hour day month dow`` (UTC); unset or blank: ``default``.

    Read when the app is indexed (a timer trigger's decorator needs its schedule then), so a
    bad value fails indexing with ``SettingsError`` naming the setting, rather than the host's
    own error about a function it then disables. (``%Setting%`` schedules would leave the
    reading to the host, but make the setting mandatory for every app using the blueprint.)
    Each field's values are checked against its range (with cronsim, the recurrences' cron
    engine; the seconds like minutes). TimeSpan schedules (``hh:mm:ss``) are refused: the
    Flex Consumption plan this app deploys to takes NCRONTAB only.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if _TIMESPAN.fullmatch(raw):
        raise SettingsError(f"{name} must be an NCRONTAB schedule (six fields: sec min hour "
                            f"day month dow, e.g. {default!r}), got the TimeSpan {raw!r}: "
                            "TimeSpan schedules need an App Service plan, not Flex Consumption")
    fields = raw.split()
    shaped = len(fields) == 6 and all(_NUMERIC_FIELD.fullmatch(f) for f in fields[:4]) and all(
        _NAMED_FIELD.fullmatch(f) for f in fields[4:])
    try:
        if not shaped:
            raise CronSimError("not six fields")
        CronSim(f"{fields[0]} * * * *", datetime(2000, 1, 1))  # the seconds, as minutes
        CronSim(" ".join(fields[1:]), datetime(2000, 1, 1))
    except CronSimError as exc:
        raise SettingsError(
            f"{name} must be an NCRONTAB schedule of six fields (sec min hour day month dow, "
            f"e.g. {default!r}), got {raw!r} ({exc})") from None
    return raw


@dataclass(frozen=True)
class ApiSettings:
    """Settings of the Functions layer (``jobs_core`` ignores them)."""

    task_hub: str = DEFAULT_HUB  # JOBS_TASK_HUB: must match host.json's durableTask.hubName
    max_wait_seconds: float = 30.0  # JOBS_MAX_WAIT_SECONDS: cap of ?wait= / Prefer: wait=
    max_batch: int = 1000  # JOBS_MAX_BATCH: items per POST /api/jobs/batch
    max_body_bytes: int = 1024 * 1024  # JOBS_MAX_BODY_BYTES: body of POST /api/jobs
    max_batch_body_bytes: int = 32 * 1024 * 1024  # JOBS_MAX_BATCH_BODY_BYTES
    min_sleep_seconds: float = 1.0  # JOBS_MIN_SLEEP_SECONDS: first back-off step
    error_sleep_seconds: float = 5.0  # JOBS_ERROR_SLEEP_SECONDS: first error back-off step
    # JOBS_CYCLE_DEADLINE_SECONDS: a cycle waits this long for its activities, then re-plans
    # (an activity lost with its instance returns only after a 5-minute visibility timeout)
    cycle_deadline_seconds: float = 60.0
    min_cycle_seconds: float = 0.5  # JOBS_MIN_CYCLE_SECONDS: shortest working cycle, unless
    # more is due than one cycle takes
    events_queue: str | None = DEFAULT_EVENTS_QUEUE  # JOBS_EVENTS_QUEUE ("off": none)

    def __post_init__(self) -> None:
        if self.events_queue is not None and not QUEUE_NAME.fullmatch(self.events_queue):
            raise SettingsError(
                f"JOBS_EVENTS_QUEUE {self.events_queue!r} is not a storage queue name (3-63 "
                f"lowercase letters, digits and single hyphens), or '{EVENTS_OFF}'")

    @classmethod
    def from_env(cls) -> ApiSettings:
        return cls(
            task_hub=os.environ.get("JOBS_TASK_HUB", "").strip() or DEFAULT_HUB,
            # (230 s: the longest an HTTP request may take on Azure Functions)
            max_wait_seconds=_num("JOBS_MAX_WAIT_SECONDS", 30.0, 0, 230),
            max_batch=int(_num("JOBS_MAX_BATCH", 1000, 1, 100_000)),
            max_body_bytes=int(_num("JOBS_MAX_BODY_BYTES", 1024 * 1024, 1024, MAX_BODY)),
            max_batch_body_bytes=int(_num("JOBS_MAX_BATCH_BODY_BYTES", 32 * 1024 * 1024, 1024,
                                          MAX_BODY)),
            min_sleep_seconds=_num("JOBS_MIN_SLEEP_SECONDS", 1.0, 0.01, 3600),
            error_sleep_seconds=_num("JOBS_ERROR_SLEEP_SECONDS", 5.0, 0.01, 3600),
            cycle_deadline_seconds=_num("JOBS_CYCLE_DEADLINE_SECONDS", 60.0, 1, 3600),
            min_cycle_seconds=_num("JOBS_MIN_CYCLE_SECONDS", 0.5, 0, 3600),
            events_queue=_events_queue(os.environ.get("JOBS_EVENTS_QUEUE", "")),
        )


def _events_queue(raw: str) -> str | None:
    raw = raw.strip()
    if raw.lower() == EVENTS_OFF:
        return None
    return raw or DEFAULT_EVENTS_QUEUE


def instance_id(slot: int) -> str:
    return f"jobs-slot-{slot}"


class Runtime:
    def __init__(self) -> None:
        self.settings = JobsSettings.from_env()
        self.api = ApiSettings.from_env()
        if HTTP_HANDLER not in registry:  # the built-in http handler (jobs_core/http_handler)
            HttpHandler(self.settings.http_allowed_bases,
                        managed_identity_tokens()).register(registry)
        self.counter = RequestCounter()  # every storage request of this process
        self.events: EventPublisher | None = None
        self._store: AzureBlobStore | None = None
        self._scheduler: JobScheduler | None = None
        self._executors: dict[int, Executor] = {}
        self._log_publisher: LogPublisher | None = None
        self._wake_gate: WakeGate | None = None
        self.extras: dict[str, object] = {}  # other layers' process-wide objects (insights)
        self._lock: asyncio.Lock | None = None
        telemetry_setup.configure(readers={
            "jobs.storage.requests": lambda: self.counter.total,
            "jobs.events.sent": lambda: self.events.stats.messages_sent if self.events else 0,
            "jobs.events.failed": lambda: self.events.stats.send_failures if self.events else 0})

    async def store(self) -> AzureBlobStore:
        if self._store is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._store is None:
                    storage = StorageSettings.from_env()
                    store = await AzureBlobStore.open(storage, counter=self.counter)
                    try:  # settings that would misread the container's jobs: refuse them
                        await check_layout(store, self.settings)
                    except BaseException:
                        await store.close()
                        raise
                    # (only now: each failed open left a queue client unclosed behind)
                    self.events = self._publisher(storage)
                    self._store = store
        return self._store

    def _publisher(self, storage: StorageSettings) -> EventPublisher | None:
        sink = QueueEventSink.from_settings(storage, self.counter)
        if sink is None:
            log.warning("state-change events are OFF: storage settings name no queue service "
                        "(add QueueEndpoint= to JOBS_STORAGE_CONNECTION_STRING, or set "
                        "JOBS_STORAGE__queueServiceUri)")
            return None
        return EventPublisher(sink, self.api.events_queue)

    def wake_gate(self) -> WakeGate:
        """Wake-ups for new due work (one per process: its throttle is per process)."""
        if self._wake_gate is None:
            self._wake_gate = WakeGate(slot_next_wake, raise_wake)
        return self._wake_gate

    async def log_publisher(self) -> LogPublisher | None:
        """Publishes state-change events from the job log (None when events are off)."""
        store = await self.store()
        if self.events is None:
            return None
        if self._log_publisher is None:
            self._log_publisher = LogPublisher(store, self.events.sink, self.api.events_queue)
        return self._log_publisher

    async def scheduler(self) -> JobScheduler:
        store = await self.store()
        if self._scheduler is None:
            self._scheduler = JobScheduler(store, registry, self.settings, events=self.events)
        return self._scheduler

    def owner(self, slot: int) -> str:
        return f"{self.api.task_hub}/{instance_id(slot)}"

    async def executor(self, slot: int) -> Executor:
        store = await self.store()
        if slot not in self._executors:
            self._executors[slot] = Executor(store, registry, self.settings,
                                             owner=self.owner(slot), events=self.events)
        return self._executors[slot]


_runtime: Runtime | None = None
# get_runtime() is called from several threads: the slot orchestrator is a plain def that the
# worker runs on its thread pool, beside the event loop's thread. Without the lock, callers of
# a cold process each built a Runtime (two stores; telemetry reading a dropped one's counter)
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = Runtime()
    return _runtime
