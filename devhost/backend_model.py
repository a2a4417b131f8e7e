"""What the Durable extension's default Azure Storage backend would cost, and how it would
delay work, modelled on devhost (on by default; ``--no-backend-model`` turns it off).

Sources: DurableTask.AzureStorage (``TaskHubQueue``, ``BackoffPollingHelper`` with the
randomized exponential strategy borrowed from the WebJobs SDK, ``AzureStorageOrchestrationService``)
and the Durable extension, as summarised in the repository's DESIGN notes §6. Nothing here was
measured on Azure; ``devhost/README.md`` lists what is modelled and what is not.

* **Requests.** Every step is charged the storage requests the real backend makes for it:

  ========================  ================================================================
  episode                   4 (control-queue read, history query, history batch write,
                            instances-table merge) + 1 delete per message it consumed
                            + 1 put per activity or timer it scheduled
  activity                  3 (work-item get and delete, result message put)
                            + 3 per input or output above 45 KB (blob offload)
  raise_event               3 (two instances-table reads, a control-queue put)
  start                     3 (instances-table read and insert, a control-queue put)
  continue_as_new           2 (the new execution's start message put, instances-table write)
  timer left behind         3 (a timer a continue-as-new abandoned still arrives, is read and
                            discarded)
  poll                      1 per queue poll, empty or not
  ========================  ================================================================

* **Polling.** Each control queue (``partitionCount`` of them, host.json, default 4) and the
  work-item queue has a poller: 50 ms, then after every empty poll 50 ms + 50 ms * 2^(n-1) *
  U(0.8, 1.2), up to ``maxQueuePollingInterval`` (host.json, default 30 s); reset to 50 ms
  when a poll finds a message. A message put by this process (an activity's result, an
  episode's work items) wakes its poller at once. A timer becomes visible at its due time and
  an event raised from an HTTP instance arrives from another process: both wait for the next
  poll.
* **Limits.** At most 32 messages per episode. A message above 45 KB is offloaded to a blob
  (counted, and logged as a warning); a history property above 60 KB UTF-16 is logged too;
  a custom status above 16 KB UTF-16 fails the orchestration, as on the real host.
* **Crash recovery.** An activity that was running when the host died is delivered again
  only after its message's visibility timeout (5 minutes by default).
"""

from __future__ import annotations

import json
import logging
import random
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("devhost.backend")

OFFLOAD_BYTES = 45 * 1024  # a queue message above this goes to a blob
HISTORY_PROPERTY_UTF16 = 60 * 1024  # a history property above this goes to a blob
CUSTOM_STATUS_UTF16 = 16 * 1024  # the orchestration fails above this
MAX_MESSAGES_PER_EPISODE = 32
MIN_POLL_SECONDS = 0.05
DEFAULT_MAX_POLL_SECONDS = 30.0
DEFAULT_PARTITIONS = 4
DEFAULT_VISIBILITY_SECONDS = 300.0


def _timespan(text: str) -> float:
    """host.json's ``hh:mm:ss[.fff]`` as seconds."""
    hours, minutes, seconds = text.strip().split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@dataclass(frozen=True)
class BackendSettings:
    enabled: bool = True
    max_poll_seconds: float = DEFAULT_MAX_POLL_SECONDS  # maxQueuePollingInterval
    partitions: int = DEFAULT_PARTITIONS  # partitionCount
    visibility_seconds: float = DEFAULT_VISIBILITY_SECONDS  # an activity's message

    @classmethod
    def from_host_json(cls, app_dir: Path, *, enabled: bool = True,
                       visibility_seconds: float | None = None) -> BackendSettings:
        durable: dict[str, Any] = {}
        path = app_dir / "host.json"
        if path.exists():
            durable = json.loads(path.read_text()).get("extensions", {}).get("durableTask", {})
        provider = durable.get("storageProvider", {})
        interval = provider.get("maxQueuePollingInterval")
        return cls(
            enabled=enabled,
            max_poll_seconds=_timespan(interval) if interval else DEFAULT_MAX_POLL_SECONDS,
            partitions=int(provider.get("partitionCount", DEFAULT_PARTITIONS)),
            visibility_seconds=DEFAULT_VISIBILITY_SECONDS if visibility_seconds is None
            else visibility_seconds)


class Poller:
    """One queue's poller (DTFx ``BackoffPollingHelper``), simulated lazily in loop time."""

    def __init__(self, max_seconds: float, rng: random.Random, now: float) -> None:
        self.max_seconds = max(MIN_POLL_SECONDS, max_seconds)
        self.rng = rng
        self.interval = MIN_POLL_SECONDS
        self.exponent = 1
        self.next_poll = now
        self.polls = 0

    def _empty(self) -> None:
        self.polls += 1
        if self.interval < self.max_seconds:
            grown = MIN_POLL_SECONDS + self.rng.uniform(0.8, 1.2) * \
                2 ** (self.exponent - 1) * MIN_POLL_SECONDS
            if grown < self.max_seconds:
                self.interval, self.exponent = grown, self.exponent + 1
            else:
                self.interval = self.max_seconds
        self.next_poll += self.interval

    def catch_up(self, now: float) -> None:
        """The empty polls made before ``now``."""
        while self.next_poll < now:
            self._empty()

    def receive(self, now: float) -> float:
        """A message visible from ``now`` (put by another process, or a timer come due): the
        moment the poller finds it."""
        self.catch_up(now)
        found = self.next_poll
        self.polls += 1
        self.interval, self.exponent = MIN_POLL_SECONDS, 1
        self.next_poll = found + MIN_POLL_SECONDS
        return found

    def signal(self, now: float) -> None:
        """A message put by this process: the poller's wait ends now."""
        self.catch_up(now)
        self.polls += 1
        self.interval, self.exponent = MIN_POLL_SECONDS, 1
        self.next_poll = now + MIN_POLL_SECONDS


@dataclass
class BackendModel:
    settings: BackendSettings = field(default_factory=BackendSettings)
    seed: int | None = None
    requests: Counter[str] = field(default_factory=Counter)  # storage requests by step
    steps: Counter[str] = field(default_factory=Counter)  # steps by kind
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._pollers: dict[str, Poller] = {}

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def _poller(self, queue: str, now: float) -> Poller:
        if queue not in self._pollers:
            self._pollers[queue] = Poller(self.settings.max_poll_seconds, self._rng, now)
        return self._pollers[queue]

    def control_queue(self, instance_id: str) -> str:
        """The instance's partition: a stable hash (not the extension's own) mod partitions."""
        return f"control-{zlib.crc32(instance_id.encode()) % self.settings.partitions:02d}"

    def begin(self, now: float) -> None:
        """The host started: every control queue and the work-item queue are polled."""
        for k in range(self.settings.partitions):
            self._poller(f"control-{k:02d}", now)
        self._poller("workitems", now)

    # --- delays ---------------------------------------------------------------------------
    def arrival(self, instance_id: str, now: float) -> float:
        """Seconds until a message visible now (a due timer, a remote event) is picked up."""
        return max(0.0, self._poller(self.control_queue(instance_id), now).receive(now) - now)

    def local_put(self, instance_id: str, now: float) -> None:
        self._poller(self.control_queue(instance_id), now).signal(now)

    def work_item_put(self, now: float) -> None:
        self._poller("workitems", now).signal(now)

    # --- costs ----------------------------------------------------------------------------
    def _charge(self, step: str, requests: int) -> None:
        self.steps[step] += 1
        self.requests[step] += requests

    def episode(self, consumed: int, scheduled: int, continued: bool, timers_left: int) -> None:
        self._charge("episode", 4 + consumed + scheduled)
        if continued:
            self._charge("continue_as_new", 2)
        for _ in range(timers_left):
            self._charge("timer left behind", 3)

    def activity(self, name: str, input_json: Any, output_json: str | None) -> None:
        offloads = 0
        for what, payload in (("input", input_json), ("output", output_json)):
            size = len(payload.encode()) if isinstance(payload, str) else \
                len(json.dumps(payload).encode())
            if size > OFFLOAD_BYTES:
                offloads += 1
                self._warn(f"activity '{name}' {what} is {size} bytes: above "
                           f"{OFFLOAD_BYTES} the Azure Storage backend offloads it to a blob")
        self._charge("activity", 3 + 3 * offloads)

    def raise_event(self) -> None:
        self._charge("raise_event", 3)

    def start(self) -> None:
        self._charge("start", 3)

    def history_property(self, what: str, text: str | None) -> None:
        if text is not None and len(text.encode("utf-16-le")) > HISTORY_PROPERTY_UTF16:
            self._warn(f"{what} is {len(text)} characters: above 60 KB UTF-16 the backend "
                       "stores it as a blob and downloads it on every replay")

    def custom_status_error(self, status: Any) -> str | None:
        """The failure the real host reports for a custom status above 16 KB UTF-16."""
        size = len(json.dumps(status).encode("utf-16-le"))
        if size > CUSTOM_STATUS_UTF16:
            return (f"The custom status is {size} bytes (UTF-16), above the "
                    f"{CUSTOM_STATUS_UTF16}-byte limit of the Azure Storage backend")
        return None

    def _warn(self, message: str) -> None:
        log.warning(message)
        if len(self.warnings) < 100:
            self.warnings.append(message)

    # --- report ---------------------------------------------------------------------------
    def report(self, now: float) -> dict[str, Any]:
        for poller in self._pollers.values():
            poller.catch_up(now)
        polls = {queue: p.polls for queue, p in sorted(self._pollers.items())}
        requests = dict(self.requests)
        requests["poll"] = sum(polls.values())
        return {"enabled": self.enabled, "settings": asdict(self.settings),
                "requests": requests, "total": sum(requests.values()),
                "steps": dict(self.steps), "polls": polls,
                "warnings": list(self.warnings)}
