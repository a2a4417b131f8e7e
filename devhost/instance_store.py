"""Durable persistence of orchestration instances: one JSON file per instance.

Every write goes to a temporary file in the same directory, is fsync'ed, then atomically
renamed over the previous version (and the directory is fsync'ed), so a SIGKILL at any point
leaves either the old or the new version of an instance, never a torn one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("devhost.store")

PENDING = "Pending"
RUNNING = "Running"
COMPLETED = "Completed"
FAILED = "Failed"
TERMINATED = "Terminated"
CONTINUED_AS_NEW = "ContinuedAsNew"
ACTIVE_STATES = frozenset({PENDING, RUNNING, CONTINUED_AS_NEW})


@dataclass
class InstanceRecord:
    """Everything devhost knows about one orchestration instance (current execution)."""

    instance_id: str
    name: str
    execution_id: str
    created_time: str
    last_updated_time: str
    status: str = PENDING
    input: Any = None
    output: Any = None
    custom_status: Any = None
    # Committed history of the current execution (what the SDK replays).
    history: list[dict[str, Any]] = field(default_factory=list)
    # Events not yet delivered to the orchestrator (durable inbox).
    inbox: list[dict[str, Any]] = field(default_factory=list)
    terminate_reason: str | None = None
    last_timestamp: str | None = None
    next_seq: int = 0
    # Action-derived schedule records in sequence order: {seq, kind, name, input, fire_at}.
    actions_seen: list[dict[str, Any]] = field(default_factory=list)
    # Scheduled activities whose result is not in the inbox/history yet: seq -> {name, input}.
    activities: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Armed timers not fired yet: seq -> fire_at.
    timers: dict[str, str] = field(default_factory=dict)
    # call_activity_with_retry bookkeeping.
    retry_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    retry_attempts: dict[str, str] = field(default_factory=dict)  # attempt seq -> group
    retry_timers: dict[str, str] = field(default_factory=dict)  # timer seq -> group

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstanceRecord:
        return cls(**data)


def _file_name(instance_id: str) -> str:
    digest = hashlib.sha256(instance_id.encode()).hexdigest()[:32]
    return f"{digest}.json"


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` via temp file + fsync + rename (+ directory fsync)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = json.dumps(data, separators=(",", ":")).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class InstanceStore:
    """Loads and saves :class:`InstanceRecord` files under ``<data_dir>/instances``."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir) / "instances"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, instance_id: str) -> Path:
        return self.dir / _file_name(instance_id)

    def save(self, record: InstanceRecord) -> None:
        atomic_write_json(self.path_for(record.instance_id), record.to_dict())

    def delete(self, instance_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(instance_id).unlink()

    def load_all(self) -> dict[str, InstanceRecord]:
        records: dict[str, InstanceRecord] = {}
        for tmp in self.dir.glob(".*.tmp"):  # leftovers of an interrupted write
            with contextlib.suppress(OSError):
                tmp.unlink()
        for path in sorted(self.dir.glob("*.json")):
            try:
                record = InstanceRecord.from_dict(json.loads(path.read_bytes()))
            except (ValueError, TypeError) as exc:
                log.error("Skipping unreadable instance file %s: %s", path, exc)
                continue
            records[record.instance_id] = record
        return records
